"""Server limits: the one place that says how much one user may ask of a shared classroom server.

Every limit has a default, an environment variable that overrides it, and a sentence saying what it bounds.
`get_limits()` reads the environment; `Limits.describe()` feeds the README table and the app's messages.
When a request goes past a limit, raise `LimitError`: its message names the limit, the value that was asked for,
and what the user (or the operator) can do about it.

The upload size must agree with `.streamlit/config.toml` (`server.maxUploadSize`), which Streamlit enforces in
the browser before our code ever sees the file; a test checks that the two match.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace

ENV_PREFIX = "SEQ2SEQ_"


class LimitError(ValueError):
    """A request went past a server limit. `env_var` names the variable an operator would raise."""

    def __init__(self, message: str, env_var: str | None = None):
        super().__init__(message)
        self.env_var = env_var


# field name -> (what it bounds, what a user can do when they hit it)
_MEANING: dict[str, tuple[str, str]] = {
    "max_upload_mb": (
        "largest dataset or checkpoint file a user may upload, in megabytes",
        "upload a smaller file (a sample of your data)",
    ),
    "max_rows": (
        "most source/target pairs read from one uploaded dataset",
        "upload fewer rows (a random sample of your data works well)",
    ),
    "max_seq_len": (
        "longest sequence, in tokens, kept for training or typed into the app",
        "use shorter examples or a smaller maximum length",
    ),
    "max_line_chars": (
        "longest line, in characters, accepted in an uploaded dataset",
        "split or shorten the long lines",
    ),
    "max_vocab": (
        "largest vocabulary (tokens, including the 4 special ones) per language side",
        "use character tokens or a smaller vocabulary; rare words become <unk>",
    ),
    "max_params": (
        "most trainable parameters in a model",
        "choose fewer hidden units, a smaller embedding or fewer layers",
    ),
    "max_train_seconds": (
        "longest training time of one run, in seconds",
        "train for fewer epochs or set a shorter time budget",
    ),
    "max_runs": (
        "training runs that exist at once on this server (each holds its model, optimizer and data in a "
        "worker's memory; all of them train at once, sharing the cores); later runs wait in a queue",
        "wait for your place in the queue",
    ),
    "max_runs_per_session": (
        "training runs one browser session may have queued or running at once (a comparison "
        "on the Compare page counts as one)",
        "stop or finish one of your runs first",
    ),
    "lesson_seconds": (
        "a lesson's time budget: every run started on the Train page trains this many seconds "
        "(0 = off: each student chooses); a teacher's link can set it too (?lesson=60)",
        "ask the operator",
    ),
    "max_compare_models": (
        "models one comparison on the Compare page trains side by side",
        "compare fewer models at once",
    ),
}
OPTIONAL = {"lesson_seconds"}  # limits where 0 means "off"
LEGACY = {"max_runs": "SEQ2SEQ_MAX_CONCURRENT_RUNS"}  # older names still read when the new one is not set


@dataclass(frozen=True)
class Limits:
    max_upload_mb: float = 5  # must match .streamlit/config.toml server.maxUploadSize
    max_rows: int = 50_000
    max_seq_len: int = 200  # targets of 200 tokens (semantic parsing, long sentences) must fit
    max_line_chars: int = 1000
    max_vocab: int = 5000
    max_params: int = 5_000_000
    max_train_seconds: float = 600
    max_runs: int = 48  # each holds its model, optimizer state and data in a worker (benchmarks/bench_server.py)
    max_runs_per_session: int = 3
    lesson_seconds: float = 0
    max_compare_models: int = 4

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @staticmethod
    def env_var(name: str) -> str:
        """The environment variable that overrides field `name`: max_rows -> SEQ2SEQ_MAX_ROWS."""
        return ENV_PREFIX + name.upper()

    @classmethod
    def describe(cls) -> list[tuple[str, object, str]]:
        """(environment variable, default, meaning) for every limit, in declaration order."""
        return [(cls.env_var(f.name), f.default, _MEANING[f.name][0]) for f in fields(cls)]

    def check(self, name: str, value: float, what: str | None = None) -> None:
        """Raise LimitError when `value` is over limit `name`. `what` describes the value in the message."""
        limit = getattr(self, name)
        if value > limit:
            meaning, advice = _MEANING[name]
            what = what or meaning.split(",")[0]
            raise LimitError(
                f"{what.capitalize()}: {_fmt(value)} is over this server's limit of {_fmt(limit)} "
                f"({self.env_var(name)}: {meaning}). To continue, {advice}.",
                env_var=self.env_var(name),
            )


MAX_INT_DIGITS = 18  # no number a file or a flag gives is longer: a 5,000-digit integer is refused before arithmetic


def check_number(name: str, value: object, lo: float, hi: float, integer: bool = False) -> int | float:
    """`value` as a number in [lo, hi], or ValueError naming `name` in one line. Refuses booleans, text, NaN,
    infinities (JSON's Infinity, 1e400), integers of more than MAX_INT_DIGITS digits, fractions where a whole
    number is expected: what a hand-edited checkpoint or a hostile flag may say, checked before any use."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a number, got {_short(value)}")
    if isinstance(value, int) and abs(value) >= 10**MAX_INT_DIGITS:  # str() of it may itself fail (4,300 digits)
        raise ValueError(
            f"{name} must be between {_fmt(lo)} and {_fmt(hi)}, got an integer of about "
            f"{int(value.bit_length() * 0.30103) + 1:,} digits"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number between {_fmt(lo)} and {_fmt(hi)}, got {value}")
    if integer and value != int(value):
        raise ValueError(f"{name} must be a whole number, got {value}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {_fmt(lo)} and {_fmt(hi)}, got {_fmt(value)}")
    return int(value) if integer else value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fmt(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) or float(x).is_integer() else f"{x:,.2f}"


def get_limits(environ: dict[str, str] | None = None) -> Limits:
    """Limits with every SEQ2SEQ_* variable of `environ` (default: os.environ) applied.

    A value that is not a positive number raises ValueError naming the variable, so a typo in the server's
    configuration stops it at start-up instead of silently using a default.
    """
    environ = os.environ if environ is None else environ
    overrides = {}
    for f in fields(Limits):
        var = Limits.env_var(f.name)
        raw = environ.get(var)
        if (raw is None or raw.strip() == "") and f.name in LEGACY:
            var = LEGACY[f.name]
            raw = environ.get(var)
        if raw is None or raw.strip() == "":
            continue
        text = raw.strip().replace("_", "")
        try:
            value = float(text) if f.type in ("float", float) else int(text)
        except ValueError:
            kind = "a number" if f.type in ("float", float) else "a whole number"
            raise ValueError(f"{var}={raw!r} is not valid: expected {kind} ({_MEANING[f.name][0]})") from None
        if f.name in OPTIONAL and value == 0:
            pass
        elif not math.isfinite(value) or value <= 0:
            zero = " (or 0: off)" if f.name in OPTIONAL else ""
            raise ValueError(f"{var}={raw!r} is not valid: it must be greater than 0{zero} ({_MEANING[f.name][0]})")
        overrides[f.name] = value
    return replace(Limits(), **overrides)
