"""Session state: the one place that knows the st.session_state keys.

Every browser tab (a Streamlit "session") has its own:
  - current model  (Current): what the Encoder / Hidden states / Decoder pages show; starts as a shipped pretrained model;
  - data           (Seq2SeqData) chosen on the Data page, with a short description of where it came from;
  - trainer handle (SessionTrainer): this tab's view of the process-wide training pool. It only sees the runs this tab
    started, and stops them when the tab closes (st.cache_resource(scope="session", on_release=...)).

Shared, read-only things (pretrained checkpoints, the worker pool) are cached once per process with st.cache_resource;
anything a session may change (a model's weights) is copied first.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from seq2seq.config import ModelConfig, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
PRETRAINED_DIR = ROOT / "pretrained"
# First existing folder in this order is the model a new session opens with (reverse is the easiest to explain).
PREFERRED = ("reverse", "addition", "dates", "translate", "copy", "sort")

# session_state keys (pages use these constants, never bare strings)
K_CURRENT = "current"  # Current
K_DATA = "data"  # Seq2SeqData | None
K_DATA_DESC = "data_desc"  # str
K_RUN_ID = "run_id"  # str | None: the Train page's run, a copy of SessionTrainer.page_run (which is the truth)
K_TRAINED = "trained"  # dict name -> Checkpoint: models trained in this session (listed in the sidebar)
K_NOTICE = "notice"  # one-shot message shown at the top of the next page render
K_RECOMMENDED = "recommended"  # (data description, Markdown reasons) of the last "Recommended settings" press


@dataclass
class Current:
    """The model every inspection page shows (a private copy per session, eval mode, CPU)."""

    name: str
    model: Any  # seq2seq.model.Seq2Seq
    model_cfg: ModelConfig
    train_cfg: TrainConfig | None
    tokens: str  # "char" | "word" | "subword"
    task: str | None
    src_vocab: Any  # seq2seq.data.Vocab
    tgt_vocab: Any
    metrics: dict
    history: dict
    examples: list[str]
    tokenizer: Any = None  # seq2seq.tokens.Tokenizer: how this model cuts text (and joins its output back)
    uid: str = field(
        default_factory=lambda: uuid.uuid4().hex
    )  # changes whenever the current model changes: a cache key

    def __post_init__(self):
        if self.tokenizer is None:  # the plain tokenizer of `tokens` (char / word)
            from seq2seq.tokens import as_tokenizer

            self.tokenizer = as_tokenizer(self.tokens)


# --------------------------------------------------------------------------------------------- pretrained checkpoints
def list_pretrained() -> list[tuple[str, Path]]:
    """(folder name, path) of every shipped checkpoint, preferred first, then alphabetical."""
    if not PRETRAINED_DIR.is_dir():
        return []
    found = [
        p for p in PRETRAINED_DIR.iterdir() if (p / "config.json").is_file() and (p / "model.safetensors").is_file()
    ]

    def rank(p: Path) -> int:  # "reverse" also ranks "reverse_lstm_attention" first
        return next((i for i, n in enumerate(PREFERRED) if p.name.startswith(n)), len(PREFERRED))

    found.sort(key=lambda p: (rank(p), p.name))
    return [(p.name, p) for p in found]


@st.cache_resource(show_spinner=False)
def _load_shared(path: str, mtime: float):
    """A pretrained checkpoint, loaded once per process and shared by all sessions: never mutate it."""
    from seq2seq import checkpoint

    ckpt = checkpoint.load(path)
    ckpt.model.eval()
    return ckpt


def load_pretrained(name: str):
    """A private copy (safe to modify) of the shipped checkpoint `name`."""
    path = PRETRAINED_DIR / name
    shared = _load_shared(str(path), (path / "model.safetensors").stat().st_mtime)
    return copy.deepcopy(shared)


def describe(model_cfg: ModelConfig) -> str:
    """Short human label, e.g. 'LSTM + additive attention, bidirectional'."""
    s = model_cfg.cell.upper()
    if model_cfg.attention != "none":
        s += f" + {model_cfg.attention} attention"
    if model_cfg.bidirectional:
        s += ", bidirectional"
    if model_cfg.layers > 1:
        s += f", {model_cfg.layers} layers"
    return s


@st.cache_resource(show_spinner=False)
def _task_examples(task: str, n: int = 20) -> list[str]:
    from seq2seq.tasks import generate_splits

    splits = generate_splits(task, n_train=50, n_valid=10, n_test=n, seed=1234)
    return [src for src, _ in splits["test"]]


def _examples(task: str | None, src_vocab) -> list[str]:
    """Example inputs for the inspection pages: from the session's data when it fits the model, else from the task."""
    data = get_data()
    if data is not None and data.src_vocab.itos == src_vocab.itos:
        return [src for src, _ in (data.test or data.valid or data.train)[:20]]
    if task:
        try:
            return list(_task_examples(task))
        except Exception:  # an unknown task name in an uploaded checkpoint: offer no examples, never crash
            return []
    return []


# ------------------------------------------------------------------------------------------------------ current model
def set_current(ckpt, name: str) -> None:
    """Make checkpoint `ckpt` (seq2seq.checkpoint.Checkpoint, already a private copy) this session's current model."""
    ckpt.model.eval()
    st.session_state[K_CURRENT] = Current(
        name=name,
        model=ckpt.model,
        model_cfg=ckpt.model_cfg,
        train_cfg=ckpt.train_cfg,
        tokens=ckpt.tokens,
        task=ckpt.task,
        src_vocab=ckpt.src_vocab,
        tgt_vocab=ckpt.tgt_vocab,
        metrics=dict(ckpt.metrics or {}),
        history=dict(ckpt.history or {}),
        examples=_examples(ckpt.task, ckpt.src_vocab),
        tokenizer=ckpt.tokenizer,
    )


def current() -> Current:
    """This session's current model; on the first call, the first shipped pretrained model."""
    cur = st.session_state.get(K_CURRENT)
    if cur is None:
        shipped = list_pretrained()
        if shipped:
            name, _ = shipped[0]
            ckpt = load_pretrained(name)
            set_current(ckpt, f"pretrained: {name} ({describe(ckpt.model_cfg)})")
        else:
            set_current(_untrained_fallback(), "untrained (no pretrained model found in pretrained/)")
        cur = st.session_state[K_CURRENT]
    return cur


def _untrained_fallback():
    """Only when pretrained/ is empty (a fresh checkout before `make_pretrained`): a small random model on `reverse`,
    so the inspection pages still work; the sidebar names it 'untrained'."""
    from seq2seq.checkpoint import Checkpoint
    from seq2seq.data import build_data
    from seq2seq.model import Seq2Seq
    from seq2seq.tasks import generate_splits

    data = build_data(generate_splits("reverse", n_train=200, n_valid=20, n_test=20, seed=0), tokens="char")
    cfg = ModelConfig(len(data.src_vocab), len(data.tgt_vocab), cell="lstm", embed=16, hidden=32, attention="additive")
    return Checkpoint(
        model=Seq2Seq(cfg),
        model_cfg=cfg,
        train_cfg=None,
        tokens="char",
        src_vocab=data.src_vocab,
        tgt_vocab=data.tgt_vocab,
        metrics={},
        history={},
        task="reverse",
    )


def trained_models() -> dict:
    """name -> Checkpoint of the models trained in this session (the sidebar lists them)."""
    return st.session_state.setdefault(K_TRAINED, {})


# ------------------------------------------------------------------------------------------- shareable settings (URL)
# Options of the widgets whose values travel in a shared link (the pages build their widgets from these).
DATA_SOURCES = ("Built-in task", "Upload a file")
TOKEN_CHOICES = ("char", "word", "subword")
DEFAULT_VOCAB_SIZE = 1000  # subword pieces (seq2seq.tokens.DEFAULT_VOCAB_SIZE)
PARAM_BOUNDS = {  # task parameter -> (min, max) for the Data page's number inputs; others: (0, 10_000)
    "min_len": (1, None),
    "max_len": (1, None),
    "digits": (1, 9),
    "min_digits": (1, 9),  # None: limits.max_seq_len
    "min_year": (1, 9999),
    "max_year": (1, 9999),
    "max_adjectives": (0, 4),
}
EMBED_SIZES = (4, 8, 16, 32, 64, 128, 256)
HIDDEN_SIZES = (4, 8, 16, 32, 64, 128, 256, 512)
INIT_CHOICES = ("random weights", "the current model's weights")
BUDGETS = ("until it stops improving", "epochs", "seconds")  # the Train page's "Train for"
_M = ModelConfig(5, 5)  # the library's defaults are the app's defaults (widgets, links)
_T = TrainConfig()
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 10.0, 100.0, 1000.0)
BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512)
K_URL_SEEDED = "url_seeded"  # True once this session's first run applied the link's settings
URL_MODEL = "model"  # query parameter naming the current shipped pretrained model (absent: the default one)
URL_LESSON = "lesson"  # query parameter: a lesson's time budget in seconds for every run (a teacher's link)
K_LESSON = "lesson_seconds"  # float | None: the lesson budget a link set for this session
LESSON_MIN = 5  # seconds: the shortest lesson budget (the Train page's shortest time budget)


def fmt_lr(v: float) -> str:
    return f"{v:g}"


@dataclass(frozen=True)
class Setting:
    """One shareable setting: a widget (its key is also its URL query parameter) on the page `page`."""

    page: str  # "data" | "model" | "train": the page whose widget owns it
    default: Any
    options: tuple = ()  # the allowed values; empty: a number in [lo, hi], or free text (a str default)
    lo: float | None = None
    hi: float | None = None
    fmt: Any = None  # the widget's format_func: how Streamlit writes an option in the URL

    def to_url(self, v: Any) -> str:
        """The value as Streamlit writes it for this widget, so the owning page's bind="query-params" reads it back."""
        if self.fmt is not None:
            return self.fmt(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float) and v == int(v):
            return str(int(v))
        return str(v)

    def parse(self, raw: str) -> Any:
        """The value a URL string stands for, or None when it is not allowed. Options match case-insensitively and
        by number ("gru", "GRU"; "0.01", "1e-2"); numbers out of range are clamped; text is cut to 60 characters."""
        raw = raw.strip()
        if self.options:
            for o in self.options:
                if raw.lower() in (str(o).lower(), self.to_url(o).lower()):
                    return o
            try:
                x = float(raw)
            except ValueError:
                return None
            return next((o for o in self.options if not isinstance(o, (bool, str)) and math.isclose(x, o)), None)
        d = self.default
        if isinstance(d, bool):
            return {"true": True, "false": False}.get(raw.lower())
        if isinstance(d, str):
            return raw[:60]
        try:
            x = float(raw)
        except ValueError:
            return None
        if not math.isfinite(x):
            return None
        x = min(max(x, self.lo), self.hi)
        return int(x) if isinstance(d, int) else x


def settings() -> dict[str, Setting]:
    """Every shareable setting, by widget key, with the same options, bounds and defaults as its widget."""
    from seq2seq.limits import get_limits

    return _settings(get_limits())


@functools.lru_cache(maxsize=4)
def _settings(lim) -> dict[str, Setting]:  # built once per set of limits (it is read several times per rerun)
    from seq2seq.config import ATTENTIONS, CELLS, LR_SCHEDULES, OPTIMIZERS
    from seq2seq.tasks import TASKS

    out = {"source": Setting("data", DATA_SOURCES[0], DATA_SOURCES), "task": Setting("data", "reverse", tuple(TASKS))}
    for task, spec in TASKS.items():
        for name, default in spec.params.items():
            if isinstance(default, float):
                out[f"{task}.{name}"] = Setting("data", default, lo=0.0, hi=1.0)
            elif isinstance(default, int):
                lo, hi = PARAM_BOUNDS.get(name, (0, 10_000))
                out[f"{task}.{name}"] = Setting("data", default, lo=lo, hi=lim.max_seq_len if hi is None else hi)
            else:
                out[f"{task}.{name}"] = Setting("data", default)
        n_max = min(spec.n_train * 2, lim.max_rows)
        out[f"{task}.n"] = Setting("data", min(spec.n_train, lim.max_rows), lo=100, hi=n_max)
        out[f"{task}.tokens"] = Setting("data", spec.tokens, TOKEN_CHOICES)
    out["max_len"] = Setting("data", 50, lo=1, hi=lim.max_seq_len)
    out["lowercase"] = Setting("data", False)
    out["vocab_size"] = Setting("data", DEFAULT_VOCAB_SIZE, lo=30, hi=lim.max_vocab)
    out["data_seed"] = Setting("data", 0, lo=0, hi=1_000_000)
    out.update(
        {
            "cell": Setting("model", _M.cell, CELLS, fmt=str.upper),
            "emb": Setting("model", _M.embed, EMBED_SIZES),
            "hidden": Setting("model", _M.hidden, HIDDEN_SIZES),
            "layers": Setting("model", _M.layers, (1, 2, 3)),
            "bidir": Setting("model", _M.bidirectional),
            "attention": Setting("model", _M.attention, ATTENTIONS),
            "dropout": Setting("model", _M.dropout, lo=0.0, hi=0.5),
            "init": Setting("train", INIT_CHOICES[0], INIT_CHOICES),
            "opt": Setting("train", _T.optimizer, OPTIMIZERS),
            "lr": Setting("train", _T.lr, LEARNING_RATES, fmt=fmt_lr),
            "batch": Setting("train", _T.batch_size, BATCH_SIZES),
            "budget": Setting("train", BUDGETS[0], BUDGETS),
            "epochs": Setting("train", 20, lo=1, hi=1000),
            "patience": Setting("train", _T.stop_patience or 10, lo=1, hi=1000),
            "seconds": Setting("train", min(60, int(lim.max_train_seconds)), lo=5, hi=int(lim.max_train_seconds)),
            "seed": Setting("train", _T.seed, lo=0, hi=1_000_000),
            "tf": Setting("train", _T.teacher_forcing, lo=0.0, hi=1.0),
            "clip": Setting("train", _T.clip, lo=0.0, hi=5.0),
            "sched": Setting("train", _T.lr_schedule, LR_SCHEDULES),
        }
    )
    return out


def setting(key: str, specs: dict[str, Setting] | None = None) -> Any:
    """The session's value of a shareable setting: its widget's value, kept across pages (persist_state), or the
    value a shared link set, or the default (from `specs`, settings() when not given)."""
    v = st.session_state.get(key)
    return (specs or settings())[key].default if v is None else v


def share_params() -> dict[str, str]:
    """The query parameters of a link that opens this session's setup: every setting that differs from its default
    and matters (only the chosen task's parameters; epochs or seconds as chosen), and the pretrained model shown."""
    specs = settings()
    keys = ["source"]
    if setting("source", specs) == DATA_SOURCES[0]:  # an uploaded file cannot travel in a link
        task = setting("task", specs)
        keys += ["task", *(k for k in specs if k.startswith(f"{task}.")), "max_len", "data_seed"]
    keys += [k for k, s in specs.items() if s.page in ("model", "train")]
    skip = {"dropout"} if setting("layers", specs) == 1 else set()
    budget = setting("budget", specs)
    skip |= {"epochs", "seconds", "patience"} - {{"epochs": "epochs", "seconds": "seconds"}.get(budget, "patience")}
    out = {}
    for k in keys:
        v = setting(k, specs)
        if k not in skip and v != specs[k].default:
            out[k] = specs[k].to_url(v)
    name = current_pretrained()
    shipped = list_pretrained()
    if name is not None and shipped and name != shipped[0][0]:
        out[URL_MODEL] = name
    if st.session_state.get(K_LESSON) is not None:  # a lesson link stays a lesson link
        out[URL_LESSON] = f"{st.session_state[K_LESSON]:g}"
    return out


def share_link(params: dict[str, str] | None = None) -> str:
    """The link to this setup: the app's URL (st.context.url, the address the browser uses, with the page's path)
    and the query string; without a browser (AppTest) the path alone."""
    from urllib.parse import urlencode

    query = urlencode(share_params() if params is None else params)
    base = st.context.url or ""
    return base + ("?" + query if query else "")


def parse_lesson(raw: str, max_seconds: float) -> float | None:
    """The lesson budget a link's `lesson=` stands for: seconds, clamped to [LESSON_MIN, max_seconds]; None for
    anything that is not a plain finite number (text, nan, inf, a 1,000-digit string); "0" or "off" means off."""
    raw = (raw or "").strip()
    if raw.lower() in ("0", "off") or len(raw) > 12:
        return None
    try:
        x = float(raw)
    except ValueError:
        return None
    if not math.isfinite(x) or x <= 0:
        return None
    return float(round(min(max(x, LESSON_MIN), max_seconds)))


def lesson_seconds() -> float | None:
    """This session's lesson budget in seconds: the link's (`?lesson=60`), else the operator's
    SEQ2SEQ_LESSON_SECONDS, else None (each student chooses). Never over the server's max_train_seconds."""
    from seq2seq.limits import get_limits

    lim = get_limits()
    v = st.session_state.get(K_LESSON)
    if v is None and lim.lesson_seconds:
        v = max(LESSON_MIN, lim.lesson_seconds)
    return None if v is None else float(min(v, lim.max_train_seconds))


def current_pretrained() -> str | None:
    """The folder name of the shipped pretrained model that is current, or None (trained, uploaded, untrained)."""
    cur = st.session_state.get(K_CURRENT)
    if cur is None:
        return None
    return next((n for n, _ in list_pretrained() if cur.name.startswith(f"pretrained: {n} (")), None)


def seed_from_url() -> None:
    """On a session's first run, apply a shared link: each setting in the URL goes into session_state, where the
    widget of its page picks it up when that page is first drawn (Streamlit's bind="query-params" applies a link
    only to the widgets of the page opened), and where model_choice(), default_data() and the sidebar's link read it
    before. `model=NAME` makes that shipped pretrained model current. Bad values are ignored (and sync_url drops
    them from the URL)."""
    if st.session_state.get(K_URL_SEEDED):
        return
    st.session_state[K_URL_SEEDED] = True
    qp = st.query_params
    for key, s in settings().items():
        if key not in qp:
            continue
        raw = qp[key]
        v = s.parse(raw)
        if v is not None:
            st.session_state[key] = v
    if URL_LESSON in qp:
        from seq2seq.limits import get_limits

        st.session_state[K_LESSON] = parse_lesson(qp[URL_LESSON], get_limits().max_train_seconds)
    name = qp.get(URL_MODEL)
    if name and name in dict(list_pretrained()) and K_CURRENT not in st.session_state:
        from seq2seq.checkpoint import CheckpointError

        try:
            ckpt = load_pretrained(name)
            set_current(ckpt, f"pretrained: {name} ({describe(ckpt.model_cfg)})")
        except CheckpointError:
            pass


def sync_url() -> None:
    """After a run: make the URL carry the whole setup. Streamlit 1.67 keeps only the current page's bound widgets
    in the URL (it clears the query string on every page switch), so the settings of the other pages, and the model,
    are written here. A key bound to a widget of this page cannot be set directly (StreamlitAPIException): Streamlit
    keeps it itself."""
    from streamlit.errors import StreamlitAPIException

    want = share_params()
    qp = st.query_params
    for key in [*settings(), URL_MODEL, URL_LESSON]:
        try:
            if key in want and qp.get(key) != want[key]:
                qp[key] = want[key]
            elif key not in want and key in qp:
                del qp[key]
        except StreamlitAPIException:
            pass


# ------------------------------------------------------------------------------------------------- model page choice
# ModelConfig field -> Model page widget key. The Train page trains what the Model page shows.
MODEL_WIDGETS = {
    "cell": "cell",
    "embed": "emb",
    "hidden": "hidden",
    "layers": "layers",
    "bidirectional": "bidir",
    "attention": "attention",
    "dropout": "dropout",
}


def model_choice() -> dict:
    """The ModelConfig options (without vocabulary sizes) chosen on the Model page (or in a shared link), or their
    defaults."""
    specs = settings()
    out = {f: setting(key, specs) for f, key in MODEL_WIDGETS.items()}
    if out["layers"] == 1:
        out["dropout"] = 0.0
    return out


# TrainConfig field -> Train page widget key (what "Recommended settings for this data" fills in).
TRAIN_WIDGETS = {
    "optimizer": "opt",
    "lr": "lr",
    "lr_schedule": "sched",
    "batch_size": "batch",
    "clip": "clip",
    "teacher_forcing": "tf",
    "stop_patience": "patience",
}


def apply_recommended(data, data_desc: str) -> str:
    """Set the Model and Train pages' widgets to seq2seq.recommend's settings for `data` (budget: until it stops
    improving) and keep its reasons (recommended_reasons() reads them). Returns the reasons as Markdown. Called from
    a button's on_click, before the widgets are drawn."""
    from seq2seq.recommend import recommend

    rec = recommend(data)
    for field_name, key in MODEL_WIDGETS.items():
        st.session_state[key] = rec.model[field_name]
    for field_name, key in TRAIN_WIDGETS.items():
        st.session_state[key] = rec.train[field_name]
    st.session_state["budget"] = BUDGETS[0]
    text = rec.explain()
    st.session_state[K_RECOMMENDED] = (data_desc, text)
    return text


def recommended_reasons() -> tuple[str, str] | None:
    """(data description, Markdown reasons) of the last recommendation applied in this session, or None."""
    return st.session_state.get(K_RECOMMENDED)


# --------------------------------------------------------------------------------------------------------------- data
def get_data():
    """The Seq2SeqData chosen on the Data page, or None before the Data page ran in this session."""
    return st.session_state.get(K_DATA)


def get_data_desc() -> str:
    return st.session_state.get(K_DATA_DESC, "")


@st.cache_resource(show_spinner="Generating the dataset…", max_entries=32)
def task_data(
    task: str,
    tokens: str,
    max_len: int,
    seed: int,
    n_train: int,
    params: tuple = (),
    lowercase: bool = False,
    vocab_size: int | None = None,
):
    """A built-in task's Seq2SeqData, built once per process for each setting and shared by sessions (read-only).
    `params` is a tuple of (name, value) pairs (hashable). Split sizes: valid = test = n_train / 10 (at least 20);
    a file task (tatoeba) keeps its own valid/test split, so its held-out numbers match the CLI's and the shipped
    model's. `lowercase` and `vocab_size` (subword pieces) matter for word/subword tokens."""
    from seq2seq.data import build_data
    from seq2seq.tasks import TASKS, generate_splits

    spec = TASKS.get(task)
    if spec is not None and spec.file is not None:
        splits = generate_splits(task, n_train=min(n_train, spec.n_train), seed=seed)
    else:
        n_eval = max(20, n_train // 10)
        splits = generate_splits(task, n_train=n_train, n_valid=n_eval, n_test=n_eval, seed=seed, **dict(params))
    data = build_data(
        dict(splits),
        tokens=tokens,
        max_len=max_len,
        seed=seed,
        lowercase=lowercase,
        vocab_size=vocab_size if tokens == "subword" else None,
    )
    data.notes = list(getattr(splits, "notes", [])) + list(data.notes)
    return data


def default_data():
    """The data the Model and Train pages use before the Data page ran in this session: the built-in task of the
    session's settings (a shared link's `task=addition&addition.digits=4...`), else reverse with its defaults."""
    from seq2seq.data import DataError
    from seq2seq.tasks import TASKS

    specs = settings()

    def made(get) -> object:  # the dataset of one source of setting values: the session's, or the defaults
        task = get("task")
        params = tuple(sorted((name, get(f"{task}.{name}")) for name in TASKS[task].params))
        return task_data(
            task,
            get(f"{task}.tokens"),
            int(get("max_len")),
            int(get("data_seed")),
            int(get(f"{task}.n")),
            params,
            bool(get("lowercase")),
            int(get("vocab_size")),
        )

    try:
        return made(lambda key: setting(key, specs))
    except (ValueError, DataError):  # settings from a link that do not make a dataset: the plain default
        return made(lambda key: specs[key].default)


def default_data_desc() -> str:
    """How the pages name default_data()."""
    return f"task: {setting('task')} (change it on the Data page)"


def set_data(data, source_desc: str) -> None:
    st.session_state[K_DATA] = data
    st.session_state[K_DATA_DESC] = source_desc


# ------------------------------------------------------------------------------------------------------------ trainer
def backend_name() -> str:
    """'process' (default: a pool of worker processes) or 'thread' (in-process; tests and debugging)."""
    return os.environ.get("SEQ2SEQ_TRAINER_BACKEND", "process")


@st.cache_resource(show_spinner=False)
def shared_trainer():
    """The process-wide trainer (worker pool), started once per server process. Only SessionTrainer touches it."""
    from seq2seq.trainer import get_trainer

    return get_trainer(backend_name())


class SessionTrainer:
    """One tab's handle on the shared trainer: starts runs, and can see or control only the runs it started."""

    START_DEBOUNCE = 1.0  # seconds: a second Start this soon after one that started a run is the same click

    def __init__(self, shared) -> None:
        self._t = shared
        self._ids: list[str] = []
        # Streamlit (fastReruns) may run a session's button callbacks in two script threads at once: 20 fast clicks
        # on Start once ran 4 start() calls side by side, each seeing "no run yet". One lock per session makes
        # "close the old run, start the new one" one step, and `generation` (bumped by every start) lets a click on
        # a Start button drawn before the latest start be recognised as part of the same request.
        self._lock = threading.RLock()
        self.generation = 0
        self._started_at = -math.inf
        self.page_run: str | None = None  # the Train page's run (see start)
        self.page_info: Any = None  # what the page keeps with it: (data, (model_cfg, train_cfg, data description))
        self._group: dict[str, str] = {}  # run_id -> comparison id (Compare page): a comparison counts as one run

    @property
    def run_ids(self) -> list[str]:
        """This session's runs that the trainer still knows (a run closed elsewhere, e.g. at shutdown, drops out)."""
        with self._lock:
            known = set(self._t.run_ids())
            self._ids = [r for r in self._ids if r in known]
            return list(self._ids)

    def _own(self, run_id: str) -> str:
        if run_id not in self.run_ids:
            raise KeyError(f"run {run_id!r} does not belong to this session")
        return run_id

    def start(
        self,
        data,
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        state_dict=None,
        generation: int | None = None,
        page_info: Any = None,
        group: str | None = None,
    ) -> str | None:
        """Start a run; raises LimitError past the per-session limit of live runs or the parameter limit.

        `page_info` (anything, e.g. the run's data and configs): this run becomes the Train page's run
        (self.page_run, self.page_info) and the page's previous run is closed, in the same locked step. The page
        reads its run from here, not from st.session_state: a write to session_state made in a callback that runs
        beside another one was seen lost (the next Start saw "no run" and left the first one training unseen).
        `generation`: the value of self.generation when the Start button was drawn. When given, a start is
        idempotent while another is in flight: if a run was started since that button was drawn, or less than
        START_DEBOUNCE seconds ago, nothing happens and None is returned (the run already started stands).
        The runs of one comparison (same `group`, the Compare page) count as one run against max_runs_per_session,
        and their number against max_compare_models."""
        from seq2seq.limits import get_limits
        from seq2seq.model import count_parameters

        with self._lock:
            if generation is not None and (
                generation != self.generation or time.monotonic() - self._started_at < self.START_DEBOUNCE
            ):
                return None
            limits = get_limits()
            limits.check("max_params", count_parameters(model_cfg)["total"], "the model's parameter count")
            if page_info is not None and self.page_run in self.run_ids:
                self.close(self.page_run)
            live = [r for r in self.run_ids if self._t.snapshot(r)["status"] in ("queued", "running", "paused")]
            units = {self._group.get(r, r) for r in live}
            limits.check(
                "max_runs_per_session",
                len(units | {group or "new run"}),
                "training runs (a comparison counts as one) in this browser tab",
            )
            if group is not None:
                limits.check(
                    "max_compare_models",
                    sum(self._group.get(r) == group for r in live) + 1,
                    "models in this comparison",
                )
            run_id = self._t.start(data, model_cfg, train_cfg, state_dict)
            self._ids.append(run_id)
            if group is not None:
                self._group[run_id] = group
            self.generation += 1
            self._started_at = time.monotonic()
            if page_info is not None:
                self.page_run, self.page_info = run_id, page_info
            return run_id

    def prepare(self, data) -> None:
        """Let the workers encode `data` before a Start needs it (a no-op once they have it)."""
        if hasattr(self._t, "prepare"):
            self._t.prepare(data)

    def pause(self, run_id: str) -> None:
        self._t.pause(self._own(run_id))

    def resume(self, run_id: str) -> None:
        self._t.resume(self._own(run_id))

    def stop(self, run_id: str) -> None:
        self._t.stop(self._own(run_id))

    def extend(self, run_id: str, epochs: float | None = None, seconds: float | None = None) -> None:
        self._t.extend(self._own(run_id), epochs=epochs, seconds=seconds)

    def snapshot(self, run_id: str) -> dict:
        return self._t.snapshot(self._own(run_id))

    def weights(self, run_id: str) -> dict:
        return self._t.weights(self._own(run_id))

    def close(self, run_id: str) -> None:
        """Stop the run and free it in the worker."""
        with self._lock:
            self._own(run_id)
            try:
                self._t.close(run_id)
            finally:
                if run_id in self._ids:
                    self._ids.remove(run_id)
                self._group.pop(run_id, None)
                if run_id == self.page_run:
                    self.page_run = self.page_info = None

    def close_all(self) -> None:
        """Called when the tab closes (and by tests): no run outlives its session."""
        for run_id in list(self.run_ids):
            try:
                self.close(run_id)
            except Exception:
                pass


@st.cache_resource(scope="session", on_release=lambda t: t.close_all(), show_spinner=False)
def _trainer(token: str) -> SessionTrainer:
    return SessionTrainer(shared_trainer())


def trainer() -> SessionTrainer:
    """This session's trainer handle (runs released when the tab closes). Keyed by a token kept in the session's
    state as well as by the session: AppTest gives every test app the same session id, and without the token one
    test's runs (and its Start debounce) leaked into the next."""
    return _trainer(st.session_state.setdefault(K_TRAINER_TOKEN, uuid.uuid4().hex))


K_TRAINER_TOKEN = "trainer_token"  # str: keys this session's SessionTrainer (see trainer())
K_THEORY = "theory_open"  # bool: the inspection pages' theory text is open (the session's last choice)


def theory(label: str, page: str):
    """The theory text of an inspection page (Encoder, Hidden states, Decoder): collapsed by default, so that on a
    projector (1024x768) the figure the teacher talks about is on the first screen; opened or closed once, it opens
    or stays closed on every inspection page for the rest of the session."""
    wkey = f"theory_{page}"

    def remember() -> None:
        st.session_state[K_THEORY] = bool(st.session_state.get(wkey))

    return st.expander(
        label,
        expanded=bool(st.session_state.get(K_THEORY, False)),
        key=wkey,
        on_change=remember,
        icon=":material/school:",
    )


def notice(message: str | None = None, where: str = "page") -> str | None:
    """Set (with a message) or pop (without) a one-shot notice shown at the next render, either at the top of the
    page that set it (`where="page"`) or in the sidebar (`where="sidebar"`, for the sidebar's own actions)."""
    key = f"{K_NOTICE}.{where}"
    if message is not None:
        st.session_state[key] = message
        return None
    return st.session_state.pop(key, None)


def _leave_legacy_pages_mode() -> None:
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False


_leave_legacy_pages_mode()  # at first import: from then on this server process always runs app.py (see ensure_app)


def ensure_app() -> None:
    """Call first in every page file. Streamlit 1.67 quirk: because this app keeps its pages in a folder named
    `pages/`, Streamlit's legacy multipage mode runs a page file *alone* (no app.py: no sidebar, no wide layout)
    when a fresh server's first request is a deep link such as /model, and in AppTest on every run after the first.
    st.navigation (in app.py) turns that mode off; here we turn it off and rerun, so app.py runs and shows the page."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None:
        return
    main = os.path.realpath(ctx.pages_manager.main_script_path)
    if os.path.basename(main) != "app.py":  # a page run on its own as the main script (AppTest of one page)
        return
    # legacy mode lists the main script itself as a page; our st.navigation never does
    if any(os.path.realpath(p["script_path"]) == main for p in ctx.pages_manager.get_pages().values()):
        _leave_legacy_pages_mode()
        st.rerun()
