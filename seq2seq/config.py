"""Configuration dataclasses: what a model is (ModelConfig) and how it is trained (TrainConfig).

Both round-trip through plain dicts (JSON in checkpoints, query parameters in the app) and validate what they read,
so a hand-edited or hostile config gives a clear ValueError instead of a broken model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .limits import check_number

CELLS = ("rnn", "gru", "lstm")
ATTENTIONS = ("none", "additive", "dot")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
LR_SCHEDULES = ("plateau", "constant", "halving")
PRECISIONS = ("auto", "fp32", "bf16")


# Bounds of every number read from a dict (a checkpoint's JSON, a payload): wide, but finite and sized so that no
# value can make the code allocate or loop without end. validate() then applies the tighter rules.
_RANGES = {
    "src_vocab_size": (1, 1_000_000),
    "tgt_vocab_size": (1, 1_000_000),
    "embed": (1, 1_000_000),
    "hidden": (1, 1_000_000),
    "layers": (1, 3),
    "dropout": (0.0, 1.0),
    "lr": (0.0, 1000.0),
    "lr_half_life": (1, 10_000_000),
    "lr_patience": (1, 1000),
    "batch_size": (1, 4096),
    "epochs": (0.0, 1_000_000.0),
    "max_seconds": (0.0, 10_000_000.0),
    "clip": (0.0, 1_000_000.0),
    "teacher_forcing": (0.0, 1.0),
    "seed": (0, 2**63 - 1),
    "eval_every": (1, 10_000_000),
    "threads": (1, 1024),
}


_INTS = {
    "src_vocab_size",
    "tgt_vocab_size",
    "embed",
    "hidden",
    "layers",
    "lr_half_life",
    "lr_patience",
    "batch_size",
    "seed",
    "eval_every",
    "threads",
}


def _from_dict(cls, d: dict):
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(d).__name__}")
    names = {f.name: f for f in fields(cls)}
    extra = sorted(set(d) - set(names))
    if extra:
        raise ValueError(f"{cls.__name__}: unknown key(s) {', '.join(extra)}")
    kwargs = {}
    for k, v in d.items():
        default = getattr(cls, k, None)
        kind = type(default) if default is not None else None
        if k in ("epochs", "max_seconds"):
            kind = float if v is not None else type(None)  # None = no limit of that kind
        if kind is bool:
            if not isinstance(v, bool):
                raise ValueError(f"{cls.__name__}.{k}: expected true/false, got {v!r}")
        elif kind in (int, float):  # Infinity, 1e400, a 5,000-digit integer: refused here, before any arithmetic
            lo, hi = _RANGES.get(k, (-1e15, 1e15))
            v = kind(check_number(f"{cls.__name__}.{k}", v, lo, hi, integer=kind is int))
        elif kind is str and not isinstance(v, str):
            raise ValueError(f"{cls.__name__}.{k}: expected text, got {v!r}")
        kwargs[k] = v
    obj = cls(**kwargs)
    obj.validate()
    return obj


# Why these defaults (measured on this 2-core CPU). A bidirectional encoder reads the digits of an addition both
# ways, so its backward half meets them in the order the carries flow (`python benchmarks/bench_training.py --part
# converge`). Attention ("dot"), the "constant" learning rate and the budget "until it stops improving"
# (TrainConfig.epochs None, stop_patience 10) were chosen on the TUNING half of benchmarks/families.py
# (`python benchmarks/bench_defaults.py`, issue 13): with 20 CPU-s per run, dot attention took 1,000-word lexicon
# translation from 12% to 98% exact match, 10%-noisy copying from 38% to 86%, 1,000-pair digit reversal from 36% to
# 95%; the old "plateau" schedule with a patience of 1 halved the rate on a noisy validation loss and stalled uniform
# 3-digit addition (the file: 58% with dot attention, 97% with dot and a constant rate, in 45 s); and 20
# epochs were 260 steps on 1,000 pairs. The held-out half was never used to choose them.
@dataclass
class ModelConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    cell: str = "lstm"  # "rnn" | "gru" | "lstm"
    embed: int = 32  # embedding size E
    hidden: int = 128  # hidden units H (per direction)
    layers: int = 1  # 1..3
    bidirectional: bool = True  # encoder only (see the note above on the defaults)
    attention: str = "dot"  # "none" | "additive" | "dot" (see the note above on the defaults)
    dropout: float = 0.0

    def validate(self) -> ModelConfig:
        for name in ("src_vocab_size", "tgt_vocab_size", "embed", "hidden", "layers", "dropout"):
            check_number(name, getattr(self, name), -1e18, 1e18, integer=name != "dropout")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {self.attention!r}")
        for name in ("src_vocab_size", "tgt_vocab_size", "embed", "hidden"):
            if not 1 <= getattr(self, name) <= 1_000_000:
                raise ValueError(f"{name} must be between 1 and 1,000,000, got {getattr(self, name)}")
        if self.src_vocab_size < 5 or self.tgt_vocab_size < 5:
            raise ValueError("a vocabulary needs the 4 special tokens and at least one real token")
        if not 1 <= self.layers <= 3:
            raise ValueError(f"layers must be 1, 2 or 3, got {self.layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return _from_dict(cls, d)


@dataclass
class TrainConfig:
    optimizer: str = "adam"  # "adam" | "rmsprop" | "sgd"
    lr: float = 3e-3
    lr_schedule: str = "constant"  # "plateau": halve lr when the validation loss stops improving (Run._plateau)
    #                                "constant" | "halving": lr_k = lr * 0.5 ** (k / lr_half_life) at optimizer step k
    lr_half_life: int = 1000  # optimizer steps over which the "halving" schedule halves the learning rate
    lr_patience: int = 1  # "plateau": evaluations without a new best validation loss before the rate halves
    batch_size: int = 64
    bucket_by_length: bool = True  # batch examples of about the same length together (less padding: faster steps)
    epochs: float | None = None  # stop after this many epochs (None = no epoch limit)
    max_seconds: float | None = None  # stop after this many seconds of training (None = no time limit)
    clip: float = 1.0  # max global gradient norm (0 = off)
    teacher_forcing: float = 1.0  # probability of feeding the true y_{t-1} to the decoder
    seed: int = 0
    eval_every: int = 50  # optimizer steps between validation evaluations
    stop_patience: int = 10  # stop when `stop_patience` evaluations in a row bring neither a new best validation
    #                         exact match nor a new best validation loss ("until it stops improving"); 0 = never
    threads: int = 1  # torch threads in the training process
    precision: str = "auto"  # matrix products of a training step: "fp32", or "bf16" (mixed precision: weights,
    #                          gradients, optimizer state, loss and every evaluation stay fp32); "auto" = bf16 where
    #                          the CPU multiplies bfloat16 natively, else fp32 (see training.resolve_precision)

    def validate(self) -> TrainConfig:
        for name in _RANGES:  # the numbers first: NaN, infinities, huge integers and text never pass
            if hasattr(self, name) and getattr(self, name) is not None and name not in ModelConfig.__annotations__:
                check_number(
                    "learning rate" if name == "lr" else name, getattr(self, name), -1e18, 1e18, integer=name in _INTS
                )
        for name in (
            "seed",
            "threads",
            "clip",
            "epochs",
            "max_seconds",
            "eval_every",
        ):  # the ranges checked nowhere else
            if getattr(self, name) is not None and getattr(self, name) > 0:
                check_number(name, getattr(self, name), *_RANGES[name], integer=name in _INTS)
        if self.seed < 0:
            raise ValueError(f"seed must be between 0 and {2**63 - 1:,}, got {self.seed}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not 0 < self.lr <= 1000:  # absurd values are allowed on purpose: they show a run diverging
            raise ValueError(f"learning rate must be in (0, 1000], got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not 1 <= self.lr_patience <= 1000:
            raise ValueError(f"lr_patience must be between 1 and 1000 evaluations, got {self.lr_patience}")
        if not 1 <= self.lr_half_life <= 10_000_000:
            raise ValueError(f"lr_half_life must be between 1 and 10,000,000 steps, got {self.lr_half_life}")
        if not 1 <= self.batch_size <= 4096:
            raise ValueError(f"batch size must be between 1 and 4096, got {self.batch_size}")
        if self.epochs is None and self.max_seconds is None and not self.stop_patience:
            raise ValueError(
                "set a number of epochs, a time budget in seconds or a stop patience (train until it "
                "stops improving), or several"
            )
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, got {self.max_seconds}")
        if self.clip < 0:
            raise ValueError(f"clip must be >= 0 (0 turns clipping off), got {self.clip}")
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise ValueError(f"teacher forcing ratio must be in [0, 1], got {self.teacher_forcing}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not 0 <= self.stop_patience <= 10_000:
            raise ValueError(f"stop_patience must be between 0 (off) and 10,000 evaluations, got {self.stop_patience}")
        if self.eval_every < 1 or self.threads < 1:
            raise ValueError("eval_every and threads must be at least 1")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return _from_dict(cls, d)
