"""Regenerate every shipped model in pretrained/ with the CLI's own `train`:

    python -m seq2seq.make_pretrained                 # all of them (about 5 minutes on an idle 2-core machine)
    python -m seq2seq.make_pretrained reverse dates   # only some

Each model is the command line in MODELS below, so `python -m seq2seq train <those arguments> --out DIR` makes the
same model by hand. Runs are deterministic: fixed seeds, one torch thread, and budgets in epochs (the --max-seconds
on each line is only a safety cap, far above the time a run needs; if a slow machine ever hits it, the run stops early
and this script says so, because the weights then depend on the machine's speed). metrics.json in each folder holds
the exact match on the held-out test split (and for "tatoeba" corpus BLEU and chrF against all references),
measured at the end of the run; pretrained/README.md is rewritten from the results.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .cli import build_parser, train

ROOT = Path(__file__).resolve().parent.parent / "pretrained"
MAX_MB = 2.0  # each shipped checkpoint stays under this size
# fp32 products: "auto" would train in bf16 on CPUs that have it and in fp32 elsewhere, so not the same bytes
# No early stopping: epoch budgets, so the same bytes on the same machine.
COMMON = ["--seed", "0", "--threads", "1", "--eval-every", "100", "--precision", "fp32", "--stop-patience", "0"]
# Three were made before the library's defaults moved on (plateau schedule, length buckets): pinned.
FIRST = ["--lr-schedule", "constant", "--no-bucket-by-length"]
# Three were made with the defaults before issue 13 (the plateau schedule with patience 1): pinned.
PLATEAU = ["--lr-schedule", "plateau", "--lr-patience", "1"]

# name -> (what it shows, CLI arguments). Together they cover RNN / GRU / LSTM cells, no / additive / dot attention,
# a bidirectional encoder, word-level tokens, and real sentences ("tatoeba": data CC BY 2.0 FR, see
# seq2seq/data_files/README.md). Its tokens are lowercased words with the 1,500 most frequent of each side kept, so
# it stays under MAX_MB; word tokens (not subwords) because Hugging Face's BPE trainer breaks ties between equally
# frequent merges differently from run to run, and this script promises the same model every time.
MODELS: dict[str, tuple[str, list[str]]] = {
    "reverse": (
        "GRU, bidirectional encoder, additive (Bahdanau) attention: reverse 5-15 letters",
        [
            "--task",
            "reverse",
            "--n-train",
            "20000",
            "--cell",
            "gru",
            "--bidirectional",
            "--attention",
            "additive",
            "--embed",
            "32",
            "--hidden",
            "128",
            "--batch-size",
            "64",
            "--epochs",
            "6",
            "--max-seconds",
            "1200",
            *PLATEAU,
        ],
    ),
    "dates": (
        "LSTM, no attention (everything passes through the context vector c): dates in many formats -> ISO",
        [
            "--task",
            "dates",
            "--cell",
            "lstm",
            "--no-bidirectional",
            "--attention",
            "none",
            "--embed",
            "32",
            "--hidden",
            "128",
            "--batch-size",
            "64",
            "--epochs",
            "8",
            "--max-seconds",
            "1200",
            *FIRST,
        ],
    ),
    "translate": (
        "GRU, dot (Luong) attention, word-level tokens: English-like sentences -> Toyish",
        [
            "--task",
            "translate",
            "--tokens",
            "word",
            "--cell",
            "gru",
            "--no-bidirectional",
            "--attention",
            "dot",
            "--embed",
            "32",
            "--hidden",
            "64",
            "--batch-size",
            "64",
            "--epochs",
            "8",
            "--max-seconds",
            "1200",
            *FIRST,
        ],
    ),
    "addition": (
        "LSTM, bidirectional encoder, no attention: 3-digit addition, 123+45 -> 168",
        [
            "--task",
            "addition",
            "--cell",
            "lstm",
            "--attention",
            "none",
            "--embed",
            "32",
            "--hidden",
            "128",
            "--batch-size",
            "64",
            "--epochs",
            "3",
            "--max-seconds",
            "1200",
            *PLATEAU,
        ],
    ),
    "copy": (
        "vanilla RNN (tanh), additive attention: copy 5-15 letters",
        [
            "--task",
            "copy",
            "--n-train",
            "5000",
            "--cell",
            "rnn",
            "--no-bidirectional",
            "--attention",
            "additive",
            "--embed",
            "32",
            "--hidden",
            "128",
            "--batch-size",
            "64",
            "--epochs",
            "14",
            "--max-seconds",
            "1200",
            *FIRST,
        ],
    ),
    "tatoeba": (
        "GRU, bidirectional encoder, dot attention, real sentences: English -> French (Tatoeba), scored "
        "with BLEU and chrF against every reference",
        [
            "--task",
            "tatoeba",
            "--tokens",
            "word",
            "--lowercase",
            "--vocab-size",
            "1500",
            "--cell",
            "gru",
            "--attention",
            "dot",
            "--embed",
            "48",
            "--hidden",
            "96",
            "--dropout",
            "0.2",
            "--batch-size",
            "32",
            "--epochs",
            "12",
            "--max-seconds",
            "1200",
            *PLATEAU,
        ],
    ),
}


def command(name: str) -> list[str]:
    """The full `python -m seq2seq train` argument list of one shipped model."""
    return ["train", *MODELS[name][1], *COMMON, "--out", f"pretrained/{name}"]


def make(name: str, root: Path = ROOT) -> None:
    args = build_parser().parse_args(command(name))
    args.out, args.overwrite = str(root / name), True
    m = train(args, training_state=False).metrics  # shipped models: no training state (half the bytes)
    size = sum(f.stat().st_size for f in (root / name).iterdir()) / 2**20
    if "time budget" in m.get("message", ""):
        print(
            f"WARNING {name}: stopped by the --max-seconds safety cap, so this model is NOT reproducible; "
            f"raise the cap or lower --epochs",
            file=sys.stderr,
        )
    if size > MAX_MB:
        print(f"WARNING {name}: {size:.2f} MB is over the {MAX_MB} MB budget for shipped models", file=sys.stderr)
    scores = f", BLEU {m['bleu']:.2f}, chrF {m['chrf']:.2f}" if "bleu" in m else ""
    print(
        f"{name}: test exact match {m['exact_match']:.4f}{scores} on {m['n']} held-out examples, {m['steps']} steps, "
        f"{m['seconds']:.0f} s training, {size:.2f} MB",
        flush=True,
    )


def write_readme(root: Path = ROOT) -> None:
    """pretrained/README.md from the checkpoints on disk (all of them, not only those just made)."""
    from .checkpoint import load

    rows = []
    for name in MODELS:
        if not (root / name).is_dir():
            continue
        c = load(root / name)
        m, cfg = c.metrics, c.model_cfg
        arch = (
            f"{cfg.cell.upper()} {cfg.layers}x{cfg.hidden}{', bidirectional' if cfg.bidirectional else ''}, "
            f"attention {cfg.attention}, {c.tokens} tokens"
        )
        scores = f"; BLEU {m['bleu']:.1f}, chrF {m['chrf']:.1f}" if "bleu" in m else ""
        rows.append(
            f"| `{name}` | {MODELS[name][0]} | {arch} | {m['n_params']:,} | {m['exact_match']:.3f}{scores} "
            f"(n={m['n']}) | {m['steps']} / {m['seconds']:.0f} s |"
        )
    text = (
        f"""# Pretrained models

Small checkpoints the app opens with, so every page works before anyone trains. Each folder is a checkpoint
(see `seq2seq/checkpoint.py`): `model.safetensors`, `config.json`, `vocab.json`, `metrics.json` (held-out exact
match on the test split, measured by the command that made it) and `history.json` (training curves).

Regenerate all of them (deterministic: fixed seeds, 1 thread, epoch budgets; the same bytes on the same
machine; about 5 minutes on an idle 2-core machine, longer when it is shared):

    python -m seq2seq.make_pretrained

| model | what it shows | architecture | parameters | test exact match | steps / training time when made |
|---|---|---|---|---|---|
{chr(10).join(rows)}

The command behind each one (`python -m seq2seq train ...`):

"""
        + "\n".join(f"    python -m seq2seq {' '.join(command(n))}" for n in MODELS)
        + """

Check them: `python -m seq2seq eval pretrained/reverse --task reverse --seed 7` measures exact match on freshly
generated examples (those seen in training are dropped), and `python -m pytest tests/test_pretrained.py` does that
for every model (for `tatoeba`: BLEU and chrF on its test split, against every reference of a source).

`tatoeba` is trained on sentences from the Tatoeba project (tatoeba.org, via manythings.org/anki), licensed
CC BY 2.0 FR: the contributors of every pair are named in the third column of
`seq2seq/data_files/tatoeba-eng-fra-5k.tsv` (see `seq2seq/data_files/README.md`).
"""
    )
    (root / "README.md").write_text(text)


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(MODELS)
    if {"-h", "--help"} & set(names):
        print(
            f"usage: python -m seq2seq.make_pretrained [NAME ...]   (default: all of {', '.join(MODELS)})\n"
            f"Trains each named shipped model with its recorded command into pretrained/NAME and rewrites "
            f"pretrained/README.md."
        )
        return 0
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        print(f"error: unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}", file=sys.stderr)
        return 2
    for name in names:
        make(name)
    write_readme()
    return 0


if __name__ == "__main__":
    sys.exit(main())
