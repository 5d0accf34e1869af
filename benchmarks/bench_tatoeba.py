"""The explorer's translation model against a minimal plain-PyTorch, tutorial-style one on the same data and budget.

    python benchmarks/bench_tatoeba.py [--seconds 120] [--threads 1]

Data: the built-in task "tatoeba" (English -> French, seed 0): the same train / test split for both. Budget: the
same wall-clock seconds of training for both, in this process, one after the other (on a shared machine the two
runs see different loads: run it on an idle one, or read the ratio with that in mind).
  * ours: seq2seq.training.Run with the shipped pretrained model's settings (seq2seq/make_pretrained.py "tatoeba").
  * plain: the PyTorch tutorial's recipe ("NLP from scratch: translation with a seq2seq network and attention"):
    lowercased words, punctuation split off, a GRU encoder and a GRU decoder with Bahdanau attention, Adam at lr
    1e-3, batches of 32, no length buckets, no clipping, no schedule; greedy decoding.
Both are scored the same way on the test split: exact match against any reference of a source, corpus BLEU and
chrF (sacrebleu) against all of them, on the text joined back from tokens.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seq2seq.cli import build_parser, make_data  # noqa: E402
from seq2seq.config import ModelConfig, TrainConfig  # noqa: E402
from seq2seq.make_pretrained import command  # noqa: E402
from seq2seq.scores import corpus_scores  # noqa: E402
from seq2seq.training import Run  # noqa: E402


def score(outputs: dict[str, str], refs: dict[str, list[str]], norm) -> dict:
    srcs = list(refs)
    hyps = [outputs[s] for s in srcs]
    rr = [[norm(t) for t in refs[s]] for s in srcs]
    em = sum(h in r for h, r in zip(hyps, rr)) / len(srcs)
    return {"exact_match": em, **corpus_scores(hyps, rr)}


def ours(seconds: float):
    args = build_parser().parse_args(command("tatoeba"))
    data, _ = make_data(args)
    mc = ModelConfig(
        len(data.src_vocab),
        len(data.tgt_vocab),
        cell=args.cell,
        embed=args.embed,
        hidden=args.hidden,
        bidirectional=args.bidirectional,
        attention=args.attention,
    )
    tc = TrainConfig(
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=None,
        max_seconds=seconds,
        seed=0,
        eval_every=args.eval_every,
        precision="fp32",
        lr_schedule=args.lr_schedule,
    )
    run = Run(data, mc, tc)
    while not run.done:
        run.step()
    r = run.evaluate("test")
    return data, {k: r[k] for k in ("exact_match", "bleu", "chrf")}, run.step_count


# ---------------------------------------------------------------------------------------- the tutorial's model
class Encoder(nn.Module):
    def __init__(self, V, H):
        super().__init__()
        self.emb, self.gru = nn.Embedding(V, H), nn.GRU(H, H, batch_first=True)

    def forward(self, x):
        return self.gru(self.emb(x))


class AttnDecoder(nn.Module):  # Bahdanau attention, as in the tutorial
    def __init__(self, V, H):
        super().__init__()
        self.emb, self.gru, self.out = nn.Embedding(V, H), nn.GRU(2 * H, H, batch_first=True), nn.Linear(H, V)
        self.Wa, self.Ua, self.Va = nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, 1)

    def step(self, y, h, keys, mask):
        q = h.permute(1, 0, 2)  # (B, 1, H)
        s = self.Va(torch.tanh(self.Wa(q) + self.Ua(keys))).squeeze(2).masked_fill(~mask, -1e9)
        c = torch.bmm(torch.softmax(s, -1).unsqueeze(1), keys)
        o, h = self.gru(torch.cat([self.emb(y), c], 2), h)
        return self.out(o), h


def plain(data, seconds: float, H: int = 128):
    norm = data.tokenizer  # the same lowercased word tokens, so the scores compare like with like

    def ids(vocab, text):
        return [vocab.stoi.get(t, 3) for t in norm.tokenize(text)][:30]

    sv, tv = data.src_vocab, data.tgt_vocab
    train = [(ids(sv, s), ids(tv, t) + [2]) for s, t in data.train]
    torch.manual_seed(0)
    enc, dec = Encoder(len(sv), H), AttnDecoder(len(tv), H)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    pad = lambda seqs: nn.utils.rnn.pad_sequence([torch.tensor(s) for s in seqs], batch_first=True)  # noqa: E731
    t0, steps, g = time.perf_counter(), 0, torch.Generator().manual_seed(0)
    while time.perf_counter() - t0 < seconds:
        order = torch.randperm(len(train), generator=g).tolist()
        for a in range(0, len(order), 32):
            if time.perf_counter() - t0 >= seconds:
                break
            b = [train[i] for i in order[a : a + 32]]
            x, y = pad([s for s, _ in b]), pad([t for _, t in b])
            keys, h = enc(x)
            y_in = torch.cat([torch.full((len(b), 1), 1), y[:, :-1]], 1)
            loss, mask = 0.0, x != 0
            for t in range(y.shape[1]):  # teacher forcing, one step at a time as in the tutorial
                logits, h = dec.step(y_in[:, t : t + 1], h, keys, mask)
                loss = loss + nn.functional.cross_entropy(logits.squeeze(1), y[:, t], ignore_index=0, reduction="sum")
            loss = loss / (y != 0).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    outputs = {}
    with torch.no_grad():
        for s in dict.fromkeys(s for s, _ in data.test):
            x = torch.tensor([ids(sv, s)])
            keys, h = enc(x)
            y, out = torch.tensor([[1]]), []
            for _ in range(40):
                logits, h = dec.step(y, h, keys, x != 0)
                y = logits.argmax(-1)
                if y.item() == 2:
                    break
                out.append(tv.itos[y.item()])
            outputs[s] = norm.detokenize(out)
    return outputs, steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    data, r_ours, steps_ours = ours(a.seconds)
    outputs, steps_plain = plain(data, a.seconds)
    refs = data.references("test")
    r_plain = score(outputs, refs, lambda t: data.tokenizer.detokenize(data.tokenizer.tokenize(t)))
    print(
        f"Tatoeba eng->fra, test split: {len(refs)} sources, {len(data.test)} references; {a.seconds:g} s of "
        f"training each, {a.threads} thread(s)"
    )
    print(f"{'model':34} {'steps':>6} {'exact match':>11} {'BLEU':>6} {'chrF':>6}")
    print(
        f"{'ours (pretrained settings)':34} {steps_ours:6d} {r_ours['exact_match']:11.3f} {r_ours['bleu']:6.2f} "
        f"{r_ours['chrf']:6.2f}"
    )
    print(
        f"{'plain PyTorch (tutorial recipe)':34} {steps_plain:6d} {r_plain['exact_match']:11.3f} "
        f"{r_plain['bleu']:6.2f} {r_plain['chrf']:6.2f}"
    )
    print(
        f"ratio ours / plain: BLEU {r_ours['bleu'] / max(r_plain['bleu'], 1e-9):.2f}, chrF "
        f"{r_ours['chrf'] / max(r_plain['chrf'], 1e-9):.2f}"
    )


if __name__ == "__main__":
    main()
