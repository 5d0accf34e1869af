"""The Compare page's session logic: the list of models to compare, a comparison's runs, its measurements, and
"use this model". The page (pages/compare.py) only draws; the session_state keys of the page live here.

A comparison trains 2 to 4 models on the same data with the same training settings, seed and number of epochs, at
the same time, through this session's trainer handle (state.trainer()). Its runs share one group id, so they count
as ONE run against SEQ2SEQ_MAX_RUNS_PER_SESSION, and their number against SEQ2SEQ_MAX_COMPARE_MODELS
(ui/state.py SessionTrainer.start). The budget is epochs, not seconds: the same number of optimizer steps on the
same batches for every model, whatever share of the CPU each run got.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field

import streamlit as st

from seq2seq.config import ModelConfig, TrainConfig
from ui import figures_compare as fc
from ui import state

K_MODELS = "cmp_models"  # list[dict]: ModelConfig options (no vocabulary sizes) of the models to compare, A first
K_CMP = "cmp_run"  # Comparison | None: the comparison started last
ACTIVE = ("queued", "running")
LIVE = ACTIVE + ("paused",)
PROBE_PER_LENGTH = 12  # held-out examples per source length for accuracy by length
GRAD_EXAMPLES = 32  # held-out examples (all of one length) for the gradient per encoder timestep
DEFAULT_EPOCHS = 3
BEYOND = 10  # lengths past the longest training length in the length probe (within max_seq_len)

# "Add a model: the same as A, but ..." -> the options it changes
VARIANTS = {
    "with additive attention": {"attention": "additive"},
    "with dot attention": {"attention": "dot"},
    "without attention": {"attention": "none"},
    "with an RNN cell": {"cell": "rnn"},
    "with a GRU cell": {"cell": "gru"},
    "with an LSTM cell": {"cell": "lstm"},
    "with a one-directional encoder": {"bidirectional": False},
    "with a bidirectional encoder": {"bidirectional": True},
    "with half the hidden units": {"hidden": "half"},
    "with twice the hidden units": {"hidden": "double"},
}

# The "Why attention?" preset: the classic experiment (Bahdanau et al. 2015), on reversal.
WHY_TASK = "reverse"
WHY_LENGTHS = (5, 30)
WHY_N_TRAIN = 10_000
WHY_EPOCHS = 6  # 940 steps: measured, the model with attention is near 100% up to 30 letters by then
WHY_MODEL = {
    "cell": "lstm",
    "embed": 32,
    "hidden": 128,
    "layers": 1,
    "bidirectional": True,
    "attention": "none",
    "dropout": 0.0,
}


@dataclass
class Comparison:
    id: str
    run_ids: list[str]
    cfgs: list[ModelConfig]
    labels: list[str]
    train_cfg: TrainConfig
    data: object  # Seq2SeqData
    data_desc: str
    task: str | None
    train_range: tuple[int, int] | None  # source lengths seen in training (tokens)
    preset: str | None = None
    results: dict = field(default_factory=dict)  # run_id -> {"step", "by_length", "grads", "grad_length"}


# ----------------------------------------------------------------------------------------------- the model list
def models() -> list[dict]:
    """The models to compare (option dicts), A first; at first the Model page's model alone."""
    if not st.session_state.get(K_MODELS):
        st.session_state[K_MODELS] = [dict(state.model_choice())]
    return st.session_state[K_MODELS]


def variant(base: dict, name: str) -> dict:
    """Model A's options with one change (VARIANTS[name])."""
    out = dict(base)
    for k, v in VARIANTS[name].items():
        if k == "hidden":
            sizes = state.HIDDEN_SIZES
            i = sizes.index(base["hidden"]) if base["hidden"] in sizes else sizes.index(128)
            v = sizes[max(0, i - 1)] if v == "half" else sizes[min(len(sizes) - 1, i + 1)]
        out[k] = v
    return out


def variant_choices(base: dict) -> list[str]:
    """The variants that change something."""
    return [n for n in VARIANTS if variant(base, n) != base]


def add_model(name: str) -> str | None:
    """Append 'the same as A, but <name>'; returns a problem in words, or None."""
    from seq2seq.limits import get_limits

    ms = models()
    cap = get_limits().max_compare_models
    if len(ms) >= cap:
        return f"A comparison holds at most {cap} models (SEQ2SEQ_MAX_COMPARE_MODELS): remove one first."
    if name not in VARIANTS:
        return "Choose what the new model changes."
    new = variant(ms[0], name)
    if new in ms:
        return f"That model ({name}) is already in the list."
    ms.append(new)
    return None


def remove_model(i: int) -> None:
    ms = models()
    if 0 < i < len(ms):
        ms.pop(i)


def reset_models() -> None:
    """Model A = the Model page's model, and no others."""
    st.session_state[K_MODELS] = [dict(state.model_choice())]


def configs(data, opts: list[dict]) -> list[ModelConfig]:
    return [ModelConfig(len(data.src_vocab), len(data.tgt_vocab), **o) for o in opts]


# ---------------------------------------------------------------------------------------------- the comparison
def train_config(epochs: float) -> TrainConfig:
    """The Train page's settings (optimizer, rate, schedule, batch, seed, teacher forcing, clipping) with this
    page's number of epochs: the same for every model."""
    g = state.setting
    return TrainConfig(
        optimizer=g("opt"),
        lr=float(g("lr")),
        lr_schedule=g("sched"),
        batch_size=int(g("batch")),
        epochs=float(epochs),
        max_seconds=None,
        clip=float(g("clip")),
        teacher_forcing=float(g("tf")),
        seed=int(g("seed")),
    )


def get() -> Comparison | None:
    cmp = st.session_state.get(K_CMP)
    if cmp is not None:
        known = set(state.trainer().run_ids)
        if not all(r in known for r in cmp.run_ids):  # e.g. the server restarted: the runs are gone
            close()
            return None
    return cmp


def close() -> None:
    """Stop and free the runs of the current comparison."""
    cmp = st.session_state.pop(K_CMP, None)
    if cmp is None:
        return
    t = state.trainer()
    for rid in cmp.run_ids:
        if rid in t.run_ids:
            t.close(rid)


def _task_of(desc: str) -> str | None:
    return desc[len("task: ") :].split(" ")[0] if desc.startswith("task: ") else None


def _train_range(data) -> tuple[int, int] | None:
    from seq2seq.data import tokenize

    lens = [len(tokenize(s, data.tokens)) for s, _ in data.train]
    return (min(lens), max(lens)) if lens else None


def start(data, data_desc: str, opts: list[dict], epochs: float, preset: str | None = None) -> str | None:
    """Start one run per model (same data, settings, seed, epochs); returns a problem in words, or None."""
    from seq2seq.limits import LimitError

    if len(opts) < 2:
        return "Add at least one more model to compare (below model A)."
    if len(data.train) < 2 or not data.valid:
        return "The dataset is too small to train and validate on: use more examples on the Data page."
    close()
    cfgs = configs(data, opts)
    train_cfg = train_config(epochs)
    gid, t, ids = uuid.uuid4().hex, state.trainer(), []
    try:
        for cfg in cfgs:
            ids.append(t.start(data, cfg, train_cfg, group=gid))
    except (LimitError, ValueError) as e:
        for rid in ids:
            t.close(rid)
        return f"The comparison could not start: {e}"
    st.session_state[K_CMP] = Comparison(
        gid,
        ids,
        cfgs,
        fc.model_labels(cfgs),
        train_cfg,
        data,
        data_desc,
        _task_of(data_desc),
        _train_range(data),
        preset,
    )
    return None


def control(action: str) -> None:
    """pause / resume / stop every run of the comparison that is in a state where it applies."""
    cmp = get()
    if cmp is None:
        return
    t = state.trainer()
    for rid in cmp.run_ids:
        s = t.snapshot(rid)["status"]
        if (
            (action == "pause" and s in ACTIVE)
            or (action == "resume" and s == "paused")
            or (action == "stop" and s in LIVE)
        ):
            getattr(t, action)(rid)


def why_attention_data():
    """Reversal with sources of 5-30 letters, built once per process (state.task_data)."""
    lo, hi = WHY_LENGTHS
    return state.task_data(
        WHY_TASK,
        "char",
        50,
        0,
        WHY_N_TRAIN,
        (("alphabet", "abcdefghijklmnopqrstuvwxyz"), ("max_len", hi), ("min_len", lo)),
    )


def start_why_attention() -> str | None:
    """The preset: reversal 5-30, the same LSTM without and with additive attention, WHY_EPOCHS epochs each."""
    base = dict(WHY_MODEL)
    st.session_state[K_MODELS] = [base, variant(base, "with additive attention")]
    st.session_state["cmp_epochs"] = WHY_EPOCHS
    lo, hi = WHY_LENGTHS
    desc = f"task: {WHY_TASK} (sources of {lo}-{hi} letters, {WHY_N_TRAIN:,} training pairs: the Why attention? preset)"
    return start(why_attention_data(), desc, st.session_state[K_MODELS], WHY_EPOCHS, preset="why_attention")


# ------------------------------------------------------------------------------------------------ measurements
def _model(cmp: Comparison, i: int):
    from seq2seq.model import Seq2Seq

    model = Seq2Seq(cmp.cfgs[i])
    model.load_state_dict(state.trainer().weights(cmp.run_ids[i]))
    return model.eval()


@st.cache_data(show_spinner=False, max_entries=8)
def _probe_pairs(task: str, lo: int, hi: int, per_length: int, seed: int, _train: list, train_key: str):
    from seq2seq.experiments import length_test_pairs

    return length_test_pairs(task, range(lo, hi + 1), per_length, seed=seed + 1, exclude=_train)


def probe_pairs(cmp: Comparison) -> list[tuple[str, str]]:
    """Held-out pairs for accuracy by length: for a built-in task with a length parameter, fresh examples at every
    length from the shortest training length to BEYOND past the longest (within the data's max_len); otherwise
    the validation and test splits."""
    from seq2seq.tasks import TASKS

    data = cmp.data
    if cmp.task in TASKS and "max_len" in TASKS[cmp.task].params and cmp.train_range:
        lo, hi = cmp.train_range
        top = min(hi + BEYOND, data.max_len)
        return _probe_pairs(cmp.task, lo, top, PROBE_PER_LENGTH, 0, data.train, f"{id(data)}:{len(data.train)}")
    return list(data.valid) + list(data.test)


def measure(cmp: Comparison, i: int, step: int) -> dict:
    """Accuracy by length and the gradient per encoder timestep of model i at its current weights (web process)."""
    from seq2seq.data import tokenize
    from seq2seq.experiments import accuracy_by_length, encoder_grad_norms, probe_batch

    model = _model(cmp, i)
    pairs = probe_pairs(cmp)
    rows = accuracy_by_length(model, cmp.data, pairs)
    # the gradient on examples of ONE length (the longest training length, or the longest there are), so that
    # every timestep averages the same examples
    lens: dict[int, list] = {}
    for p in list(cmp.data.valid) + pairs:
        lens.setdefault(len(tokenize(p[0], cmp.data.tokens)), []).append(p)
    want = cmp.train_range[1] if cmp.train_range else max(lens)
    length = want if want in lens else max(lens)
    grads = encoder_grad_norms(model, *probe_batch(cmp.data, lens[length][:GRAD_EXAMPLES]))
    result = {"step": step, "by_length": rows, "grads": [float(v) for v in grads["mean"]], "grad_length": length}
    cmp.results[cmp.run_ids[i]] = result
    return result


def use_model(i: int) -> None:
    """Make model i of the comparison the current model of the inspection pages (and list it in the sidebar)."""
    from seq2seq.checkpoint import Checkpoint

    cmp = get()
    if cmp is None:
        return
    t = state.trainer()
    snap = t.snapshot(cmp.run_ids[i])
    model = _model(cmp, i)
    metrics = dict(snap.get("last_eval") or {})
    metrics["best_exact_match"] = snap.get("best_exact_match")
    name = (
        f"trained in this session #{len(state.trained_models()) + 1}: {cmp.task or 'custom data'} "
        f"({state.describe(cmp.cfgs[i])}; model {fc.LETTERS[i]} of a comparison)"
    )
    ckpt = Checkpoint(
        model=model,
        model_cfg=cmp.cfgs[i],
        train_cfg=cmp.train_cfg,
        tokens=cmp.data.tokens,
        src_vocab=cmp.data.src_vocab,
        tgt_vocab=cmp.data.tgt_vocab,
        metrics=metrics,
        history=snap.get("history") or {},
        task=cmp.task,
    )
    state.trained_models()[name] = ckpt
    state.set_current(copy.deepcopy(ckpt), name)
    state.notice(f"Now showing {name} on the Encoder, Hidden states and Decoder pages.")
