"""Which library learns the subword (BPE) pieces: Hugging Face `tokenizers` or `sentencepiece`, measured on the
Tatoeba English-French training split (the built-in task's, seed 0).

    python benchmarks/bench_subword.py [--vocab-size 1000] [--repeats 3]

For each library: seconds to learn a BPE of the given size from the training split (sources and targets; best of
--repeats, the two libraries interleaved), whether two trainings on the same text give the same model, the share of
held-out (valid + test) words cut without an unknown piece, pieces per word on held-out text, and the share of
held-out sentences that come back exactly from the library's own encode -> decode (after folding whitespace runs
into one space). Both are trained the way seq2seq/tokens.py uses a BPE: inside word tokens (words and punctuation
marks), never across them.
"""

import argparse
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seq2seq.tasks import generate_splits  # noqa: E402
from seq2seq.tokens import GLUE, Tokenizer, split_words, strip_glue  # noqa: E402


def words(text):
    return [strip_glue(w) for w in split_words(text)]


def train_hf(texts, n):
    return Tokenizer.train_subword(texts, n)


def train_sp(texts, n):
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([" ".join(words(t)) for t in texts]),
        model_writer=buf,
        vocab_size=n,
        model_type="bpe",
        character_coverage=1.0,
        normalization_rule_name="identity",
        minloglevel=2,
        hard_vocab_limit=False,
        num_threads=1,
    )
    return spm.SentencePieceProcessor(model_proto=buf.getvalue())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab-size", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    splits = generate_splits("tatoeba", seed=0)
    train = [x for p in splits["train"] for x in p]
    held = [x for k in ("valid", "test") for p in splits[k] for x in p]
    print(
        f"Tatoeba eng-fra: {len(splits['train'])} training pairs ({len(train)} texts), {len(held)} held-out texts, "
        f"vocab size {args.vocab_size}, best of {args.repeats}"
    )
    times = {"tokenizers": [], "sentencepiece": []}
    models = {"tokenizers": [], "sentencepiece": []}
    for _ in range(args.repeats):
        for name, fn in (("tokenizers", train_hf), ("sentencepiece", train_sp)):
            t = time.perf_counter()
            models[name].append(fn(train, args.vocab_size))
            times[name].append(time.perf_counter() - t)
    hw = [w for t in held for w in words(t)]
    norm = [" ".join(t.split()) for t in held]
    # tokenizers
    hf = models["tokenizers"][0]
    hf_vocab = set(hf.bpe["model"]["vocab"])
    hf_pieces = [[strip_glue(p) if i else p for i, p in enumerate(hf.tokenize(w))] for w in hw]
    hf_known = sum(all((p if i == 0 else GLUE + p) in hf_vocab for i, p in enumerate(ps)) for ps in hf_pieces)
    hf_rt = sum(hf.detokenize(hf.tokenize(t)) == n for t, n in zip(held, norm))
    hf_same = all(m == models["tokenizers"][0] for m in models["tokenizers"])
    # sentencepiece
    sp = models["sentencepiece"][0]
    sp_pieces = [sp.encode(w, out_type=int) for w in hw]
    sp_known = sum(sp.unk_id() not in ids for ids in sp_pieces)
    sp_rt = sum(sp.decode(sp.encode(t)) == n for t, n in zip(held, norm))
    sp_same = all(m.serialized_model_proto() == sp.serialized_model_proto() for m in models["sentencepiece"])
    rows = [
        ("tokenizers", min(times["tokenizers"]), hf_same, hf_known, sum(map(len, hf_pieces)), hf_rt),
        ("sentencepiece", min(times["sentencepiece"]), sp_same, sp_known, sum(map(len, sp_pieces)), sp_rt),
    ]
    print(
        f"{'library':14} {'train s':>8} {'same twice':>10} {'held-out words known':>21} {'pieces/word':>11} "
        f"{'round trip':>10}"
    )
    for name, t, same, known, npieces, rt in rows:
        print(
            f"{name:14} {t:8.3f} {str(same):>10} {known / len(hw):21.2%} {npieces / len(hw):11.2f} "
            f"{rt / len(held):10.2%}"
        )
    print(f"ratio train time sentencepiece / tokenizers: {rows[1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
