"""Recommended settings for a dataset: what to train on THIS data, and why, in words a learner can check.

    rec = recommend(data)             # data: a Seq2SeqData (a built-in task or a user's file)
    rec.model   -> {"cell": "lstm", "embed": 64, "hidden": 128, "attention": "dot", ...}   ModelConfig fields
    rec.train   -> {"lr_schedule": "constant", "epochs": None, "stop_patience": 10, ...}   TrainConfig fields
    rec.reasons -> [Reason("attention", "dot", "…why…"), ...]                              one per choice

The choices start from the library's defaults (seq2seq/config.py: they are what benchmarks/bench_defaults.py found
to generalize across task families) and size what depends on the data: the embedding from the vocabulary, the batch
from the number of training pairs, the maximum length from the longest sequence. Every reason quotes the number of
the data it was read from. Pure and cheap (one pass over the training pairs): the Model and Train pages call it on
a button press.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import ModelConfig, TrainConfig
from .data import tokenize

SMALL_DATA = 2_000  # training pairs below which batches of 32 are recommended (twice the steps per epoch)


@dataclass(frozen=True)
class Reason:
    setting: str  # a ModelConfig / TrainConfig field name, or "max_len" (the Data page's)
    value: object
    why: str


@dataclass
class Recommendation:
    model: dict = field(default_factory=dict)  # ModelConfig keyword arguments (without the vocabulary sizes)
    train: dict = field(default_factory=dict)  # TrainConfig keyword arguments
    max_len: int = 50  # the Data page's maximum length that cuts nothing (capped by the server's limit)
    reasons: list[Reason] = field(default_factory=list)

    def model_config(self, data) -> ModelConfig:
        return ModelConfig(len(data.src_vocab), len(data.tgt_vocab), **self.model).validate()

    def train_config(self, **overrides) -> TrainConfig:
        return TrainConfig(**{**self.train, **overrides}).validate()

    def explain(self) -> str:
        """The reasons as a Markdown bullet list."""
        return "\n".join(f"- **{r.setting.replace('_', ' ')} = {_fmt(r.value)}**: {r.why}" for r in self.reasons)


def _fmt(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def embed_size(vocab: int) -> int:
    """E for a vocabulary of `vocab` tokens: 32 up to 100 tokens (characters, digits), 64 up to 1,000, 128 above."""
    return 32 if vocab <= 100 else 64 if vocab <= 1000 else 128


def recommend(data, max_seq_len: int | None = None) -> Recommendation:
    """Settings for `data` (a Seq2SeqData) with a reason for each; `max_seq_len` caps the recommended maximum length
    (default: the server's limit, seq2seq.limits)."""
    if max_seq_len is None:
        from .limits import get_limits

        max_seq_len = get_limits().max_seq_len
    M, T = ModelConfig(5, 5), TrainConfig()
    n_train = len(data.train)
    V = max(len(data.src_vocab), len(data.tgt_vocab))
    src_lens = [len(tokenize(s, data.tokens)) for s, _ in data.train] or [1]
    tgt_lens = [len(tokenize(t, data.tokens)) for _, t in data.train] or [1]
    longest = max(max(src_lens), max(tgt_lens))
    rec = Recommendation()
    add = rec.reasons.append

    rec.model = {
        "cell": M.cell,
        "embed": embed_size(V),
        "hidden": M.hidden,
        "layers": M.layers,
        "bidirectional": M.bidirectional,
        "attention": "dot" if M.attention == "none" else M.attention,
        "dropout": 0.0,
    }
    add(
        Reason(
            "attention",
            rec.model["attention"],
            "the decoder looks back at every encoder state h_t at each output step, instead of squeezing the "
            f"whole input (up to {max(src_lens)} tokens here) into one context vector. Without it, the defaults "
            "benchmark's uniform 3-digit addition stalled below 5% exact match in 45 s; with it they pass 97%.",
        )
    )
    add(Reason("cell", rec.model["cell"], "its gates keep gradients alive across the input; the default."))
    add(
        Reason(
            "bidirectional",
            rec.model["bidirectional"],
            "a second encoder reads the input right to left, so each h_t knows what follows it (the carries of "
            "an addition flow right to left).",
        )
    )
    add(
        Reason(
            "embed",
            rec.model["embed"],
            f"the larger vocabulary has {V:,} tokens (special tokens included): E = 32 up to 100 tokens, 64 up to "
            "1,000, 128 above, so rare words still get distinct vectors.",
        )
    )
    add(Reason("hidden", rec.model["hidden"], "the default memory size; it trains fast on one CPU core."))

    batch = 32 if n_train < SMALL_DATA else T.batch_size
    rec.train = {
        "optimizer": T.optimizer,
        "lr": T.lr,
        "lr_schedule": T.lr_schedule,
        "lr_patience": T.lr_patience,
        "batch_size": batch,
        "epochs": None,
        "max_seconds": None,
        "stop_patience": T.stop_patience or 10,
        "clip": T.clip,
        "teacher_forcing": T.teacher_forcing,
    }
    add(
        Reason(
            "lr_schedule",
            T.lr_schedule,
            "a noisy validation loss cannot drive a constant rate down: the old default (halve the rate after a "
            "single evaluation without a new best loss) stalled on data it was not tuned on, such as uniform "
            "3-digit addition (58% against 97% in 45 s, both with attention). The run ends when it stops "
            "improving, so the rate needs no decay to finish."
            if T.lr_schedule == "constant"
            else f"halve the rate after {T.lr_patience} evaluations in a row without a new best validation loss, never "
            "below 1/32 of the start: patient enough that a noisy validation loss does not collapse it.",
        )
    )
    add(
        Reason(
            "batch_size",
            batch,
            f"{n_train:,} training pairs: "
            + (
                f"fewer than {SMALL_DATA:,}, so smaller batches give twice the optimizer steps per epoch."
                if batch == 32
                else "enough for the default batch of 64."
            ),
        )
    )
    add(
        Reason(
            "budget",
            "until it stops improving",
            f"train until {rec.train['stop_patience']} evaluations in a row bring neither a better validation "
            "exact match nor a lower validation loss (the server's time limit still applies): a fixed number of "
            f"epochs is too short for small data ({n_train:,} pairs = {max(1, n_train // batch):,} steps an epoch "
            "here) and too long for large data.",
        )
    )
    rec.max_len = min(max(longest, 1), max_seq_len)
    if longest > max_seq_len:
        why = (
            f"the longest training sequence has {longest} tokens, over this server's limit of {max_seq_len}: "
            "longer ones are cut."
        )
    elif data.max_len < longest:
        why = (
            f"the longest training sequence has {longest} tokens and the maximum length is {data.max_len}, so "
            f"{data.n_truncated:,} example(s) are cut: raise it to {longest} on the Data page."
        )
    else:
        why = f"the longest training sequence has {longest} tokens: nothing is cut."
    add(Reason("max_len", rec.max_len, why))
    return rec
