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
import os
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
K_RUN_ID = "run_id"  # str | None: the Train page's run
K_RUN_DATA = "run_data"  # Seq2SeqData the run trains on (kept for "Use the trained model")
K_RUN_CFGS = "run_cfgs"  # (ModelConfig, TrainConfig) of the run
K_TRAINED = "trained"  # dict name -> Checkpoint: models trained in this session (listed in the sidebar)
K_NOTICE = "notice"  # one-shot message shown at the top of the next page render


@dataclass
class Current:
    """The model every inspection page shows (a private copy per session, eval mode, CPU)."""

    name: str
    model: Any  # seq2seq.model.Seq2Seq
    model_cfg: ModelConfig
    train_cfg: TrainConfig | None
    tokens: str
    task: str | None
    src_vocab: Any  # seq2seq.data.Vocab
    tgt_vocab: Any
    metrics: dict
    history: dict
    examples: list[str]
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)  # changes whenever the current model changes: a cache key


# --------------------------------------------------------------------------------------------- pretrained checkpoints
def list_pretrained() -> list[tuple[str, Path]]:
    """(folder name, path) of every shipped checkpoint, preferred first, then alphabetical."""
    if not PRETRAINED_DIR.is_dir():
        return []
    found = [p for p in PRETRAINED_DIR.iterdir() if (p / "config.json").is_file() and (p / "model.safetensors").is_file()]
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
    return Checkpoint(model=Seq2Seq(cfg), model_cfg=cfg, train_cfg=None, tokens="char", src_vocab=data.src_vocab,
                      tgt_vocab=data.tgt_vocab, metrics={}, history={}, task="reverse")


def trained_models() -> dict:
    """name -> Checkpoint of the models trained in this session (the sidebar lists them)."""
    return st.session_state.setdefault(K_TRAINED, {})


# ------------------------------------------------------------------------------------------------- model page choice
# ModelConfig field -> (Model page widget key, default). The Train page trains what the Model page shows.
MODEL_WIDGETS = {"cell": ("cell", "lstm"), "embed": ("emb", 32), "hidden": ("hidden", 128), "layers": ("layers", 1),
                 "bidirectional": ("bidir", False), "attention": ("attention", "none"), "dropout": ("dropout", 0.0)}


def model_choice() -> dict:
    """The ModelConfig options (without vocabulary sizes) chosen on the Model page, or their defaults."""
    out = {f: st.session_state.get(key, default) for f, (key, default) in MODEL_WIDGETS.items()}
    out = {f: default if out[f] is None else out[f] for f, (_, default) in MODEL_WIDGETS.items()}
    if out["layers"] == 1:
        out["dropout"] = 0.0
    return out


# --------------------------------------------------------------------------------------------------------------- data
def get_data():
    """The Seq2SeqData chosen on the Data page, or None before the Data page ran in this session."""
    return st.session_state.get(K_DATA)


def get_data_desc() -> str:
    return st.session_state.get(K_DATA_DESC, "")


@st.cache_resource(show_spinner="Generating the dataset…", max_entries=32)
def task_data(task: str, tokens: str, max_len: int, seed: int, n_train: int, params: tuple = ()):
    """A built-in task's Seq2SeqData, built once per process for each setting and shared by sessions (read-only).
    `params` is a tuple of (name, value) pairs (hashable). Split sizes: valid = test = n_train / 10 (at least 20)."""
    from seq2seq.data import build_data
    from seq2seq.tasks import generate_splits

    n_eval = max(20, n_train // 10)
    splits = generate_splits(task, n_train=n_train, n_valid=n_eval, n_test=n_eval, seed=seed, **dict(params))
    data = build_data(dict(splits), tokens=tokens, max_len=max_len, seed=seed)
    data.notes = list(getattr(splits, "notes", [])) + list(data.notes)
    return data


def default_data():
    """The data the Train page uses when the Data page was never opened: the first task's defaults."""
    from seq2seq.tasks import TASKS

    spec = TASKS["reverse"]
    return task_data("reverse", spec.tokens, 50, 0, spec.n_train, tuple(sorted(spec.params.items())))


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

    def __init__(self, shared) -> None:
        self._t = shared
        self._ids: list[str] = []

    @property
    def run_ids(self) -> list[str]:
        """This session's runs that the trainer still knows (a run closed elsewhere, e.g. at shutdown, drops out)."""
        known = set(self._t.run_ids())
        self._ids = [r for r in self._ids if r in known]
        return list(self._ids)

    def _own(self, run_id: str) -> str:
        if run_id not in self.run_ids:
            raise KeyError(f"run {run_id!r} does not belong to this session")
        return run_id

    def start(self, data, model_cfg: ModelConfig, train_cfg: TrainConfig, state_dict=None) -> str:
        """Start a run; raises LimitError past the per-session limit of live runs or the parameter limit."""
        from seq2seq.limits import get_limits
        from seq2seq.model import count_parameters

        limits = get_limits()
        live = sum(self._t.snapshot(r)["status"] in ("queued", "running", "paused") for r in self.run_ids)
        limits.check("max_runs_per_session", live + 1, "training runs in this browser tab")
        limits.check("max_params", count_parameters(model_cfg)["total"], "the model's parameter count")
        run_id = self._t.start(data, model_cfg, train_cfg, state_dict)
        self._ids.append(run_id)
        return run_id

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
        self._own(run_id)
        try:
            self._t.close(run_id)
        finally:
            self._ids.remove(run_id)

    def close_all(self) -> None:
        """Called when the tab closes (and by tests): no run outlives its session."""
        for run_id in list(self.run_ids):
            try:
                self.close(run_id)
            except Exception:
                pass


@st.cache_resource(scope="session", on_release=lambda t: t.close_all(), show_spinner=False)
def trainer() -> SessionTrainer:
    """This session's trainer handle (runs released when the tab closes)."""
    return SessionTrainer(shared_trainer())


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

