"""One training step page: one training pair through the encoder, the teacher-forced decoder, the loss, the
backward pass and one optimizer step, on a copy of the current model (seq2seq/one_step.py)."""

import copy

import numpy as np
import streamlit as st

from seq2seq.one_step import walk
from ui import figures_inspect as FI
from ui import figures_step as F
from ui import text_step as TXT
from ui.figures import OI
from ui.inspect import plot
from ui.state import LEARNING_RATES, current, ensure_app, fmt_lr, get_data, notice, set_current

ensure_app()  # run through app.py (sidebar, navigation) even on a deep link

K_PAIR, K_OPT, K_LR, K_CLIP, K_UID, K_CACHE, K_KEPT = (
    "step_pair",
    "step_opt",
    "step_lr",
    "step_clip",
    "step_uid",
    "step_cache",
    "step_kept",
)
OPTIMIZERS = {"adam": "Adam", "rmsprop": "RMSprop", "sgd": "SGD"}
CLIPS = (0.0, 0.1, 0.5, 1.0, 5.0)
N_PAIRS, N_OTHERS = 40, 5
K_STAGE = "step_stage"
STAGES = ("1. Encoder forward", "2. Decoder, teacher-forced", "3. The loss", "4. Backward", "5. One optimizer step")
ALL = "All five"


@st.cache_resource(show_spinner="Regenerating the model's training split…", max_entries=8)
def _recorded_train_split(task: str, seed: int, params: tuple, n_train, n_valid, n_test) -> list:
    """The first pairs of the training split a CLI-trained checkpoint records (task, seed, sizes): once per process."""
    from seq2seq.tasks import generate_splits

    return list(
        generate_splits(task, n_train=n_train, n_valid=n_valid, n_test=n_test, seed=seed, **dict(params))["train"][
            : N_PAIRS + N_OTHERS
        ]
    )


def training_pairs(cur) -> tuple[list, str]:
    """(pairs, where they come from): the Data page's training split when it is in the model's vocabularies, else
    the training split the checkpoint records, else examples of the model's task."""
    data = get_data()
    if data is not None and data.src_vocab.itos == cur.src_vocab.itos and data.tgt_vocab.itos == cur.tgt_vocab.itos:
        return list(data.train[: N_PAIRS + N_OTHERS]), "the training split of the Data page's data"
    d = cur.metrics.get("data") if isinstance(cur.metrics.get("data"), dict) else {}
    if cur.task and d.get("task") == cur.task and isinstance(d.get("seed"), int):
        try:
            params = tuple(sorted(dict(d.get("params") or {}).items()))
            return (
                _recorded_train_split(cur.task, d["seed"], params, d.get("n_train"), d.get("n_valid"), d.get("n_test")),
                f"the training split this model was trained on (task {cur.task}, seed {d['seed']})",
            )
        except Exception:  # noqa: BLE001 - an uploaded checkpoint with odd metadata: fall through
            pass
    if cur.task:
        from ui.inspect import _task_pairs

        try:
            return _task_pairs(cur.task, N_PAIRS + N_OTHERS, 4321), f"examples of the model's task ({cur.task})"
        except Exception:  # noqa: BLE001 - a task this version does not know
            pass
    return [], ""


def _walk(cur, pair, others, opt, lr, clip):
    """The walk for these settings, computed once (a few per session kept: each holds a copy of the weights)."""
    key = (cur.uid, pair, tuple(others), opt, lr, clip)
    cache = st.session_state.setdefault(K_CACHE, {})
    if key not in cache:
        if len(cache) >= 4:
            cache.pop(next(iter(cache)))
        cache[key] = walk(
            cur.model,
            cur.src_vocab,
            cur.tgt_vocab,
            cur.tokens,
            pair,
            others,
            optimizer=opt,
            lr=lr,
            clip=clip,
            max_len=max(len(pair[0]), len(pair[1]), 100),
        )
    return cache[key]


def _keep(cur, w) -> None:
    from seq2seq.checkpoint import Checkpoint

    model = copy.deepcopy(cur.model)
    model.load_state_dict(w.new_state)
    n = st.session_state.get(K_KEPT, 0) + 1
    st.session_state[K_KEPT] = n
    base = cur.name.split(" + ")[0].removeprefix("pretrained: ").split(" (")[0]
    ckpt = Checkpoint(
        model=model,
        model_cfg=cur.model_cfg,
        train_cfg=cur.train_cfg,
        tokens=cur.tokens,
        src_vocab=cur.src_vocab,
        tgt_vocab=cur.tgt_vocab,
        metrics={},
        history=cur.history,
        task=cur.task,
    )
    set_current(ckpt, f"{base} + {n} single-example step{'s' * (n > 1)} (this session)")
    notice(
        f"Kept the step: the current model is now the stepped copy (loss on that example "
        f"{w.losses[0]['before']:.4f} → {w.losses[0]['after']:.4f})."
    )


st.title("One training step")
msg = notice()
if msg:
    st.success(msg)
cur = current()
cfg, tcfg = cur.model_cfg, cur.train_cfg
with st.expander("What am I looking at?", expanded=True):
    st.markdown(TXT.INTRO)
    st.caption(TXT.CAVEAT)

pairs, where = training_pairs(cur)
if not pairs:
    st.info(
        "No training pairs are known for this model. Choose data on the Data page (with this model's "
        "vocabulary), or switch to a pretrained model in the sidebar."
    )
    st.stop()
if st.session_state.get(K_UID) != cur.uid:  # a new model: its own defaults
    st.session_state[K_UID] = cur.uid
    st.session_state[K_PAIR] = 0
    st.session_state[K_OPT] = tcfg.optimizer if tcfg else "adam"
    lr = tcfg.lr if tcfg else 3e-3
    st.session_state[K_LR] = min(LEARNING_RATES, key=lambda v: abs(np.log(v / lr)))
    st.session_state[K_CLIP] = min(CLIPS, key=lambda v: abs(v - (tcfg.clip if tcfg else 1.0)))
shown = pairs[:N_PAIRS]
if st.session_state.get(K_PAIR) not in range(len(shown)):
    st.session_state[K_PAIR] = 0

c1, c2, c3, c4 = st.columns([4, 3, 2, 2])
i = c1.selectbox(
    "Training pair",
    range(len(shown)),
    key=K_PAIR,
    help=f"From {where}.",
    format_func=lambda j: f"{j + 1}: {shown[j][0]}  →  {shown[j][1]}",
)
opt = c2.radio("Optimizer", list(OPTIMIZERS), key=K_OPT, format_func=OPTIMIZERS.get, horizontal=True)
lr = c3.select_slider("Learning rate", LEARNING_RATES, key=K_LR, format_func=fmt_lr)
clip = c4.select_slider("Clip gradient norm at", CLIPS, key=K_CLIP, format_func=lambda v: "off" if v == 0 else f"{v:g}")
if tcfg is not None:
    st.caption(
        f"The model's own training settings: {OPTIMIZERS.get(tcfg.optimizer, tcfg.optimizer)}, learning rate "
        f"{tcfg.lr:g}, clip {tcfg.clip:g}. Pairs from {where}."
    )
pair = tuple(shown[i])
others = [tuple(p) for p in pairs if tuple(p) != pair][:N_OTHERS]
w = _walk(cur, pair, others, opt, lr, clip)
D = 2 if cfg.bidirectional else 1
if st.session_state.get(K_STAGE) not in STAGES + (ALL,):
    st.session_state[K_STAGE] = STAGES[0]
stage = st.segmented_control(
    "Stage of the step (in the order the computer does them)",
    STAGES + (ALL,),
    key=K_STAGE,
    help="One stage at a time (the projector's view), or all five in a row.",
)


def stage_encoder():
    st.header(STAGES[0])
    st.markdown(TXT.ENCODER)
    H = cfg.hidden
    plot(
        FI.states_heatmap(
            w.h,
            w.src_tokens,
            f"Encoder states h_1..h_{len(w.src_tokens)} (top layer)",
            xlabel="hidden unit" + (" (forward | backward)" if D == 2 else ""),
            divider=H if D == 2 else None,
        ),
        key="step_fig_enc",
    )


def stage_decoder():
    st.header(STAGES[1])
    st.markdown(TXT.DECODER)
    plot(F.distributions_figure(w.probs, w.dec_inputs, w.targets, cur.tgt_vocab.itos), key="step_fig_dec")
    if w.attention is not None:
        plot(FI.attention_matrix_figure(w.attention, w.src_tokens, w.targets), key="step_fig_att")


def stage_loss():
    st.header(STAGES[2])
    st.markdown(TXT.LOSS)
    plot(F.token_loss_figure(w.targets, w.token_ce, w.loss), key="step_fig_loss")
    m1, m2 = st.columns(2)
    m1.metric("loss of this example", f"{w.loss:.4f}")
    m2.metric("a uniform guess would score", f"{np.log(len(cur.tgt_vocab)):.2f}", help="log V, V = target vocabulary")


def stage_backward():
    st.header(STAGES[3])
    st.markdown(TXT.BACKWARD)
    log_scale = st.toggle("Logarithmic gradient axis", key="step_log", value=False)
    g1, g2 = st.columns(2)
    with g1:
        plot(
            F.timestep_grads_figure(w.grad_h, w.src_tokens, "Encoder: ‖∂loss/∂h_t‖", "timestep t (x_t)", log=log_scale),
            key="step_fig_gh",
        )
    with g2:
        plot(
            F.timestep_grads_figure(
                w.grad_s[None, :], w.targets, "Decoder: ‖∂loss/∂s_t‖", "step t (target y_t)", log=log_scale
            ),
            key="step_fig_gs",
        )
    st.markdown(TXT.GROUPS)
    clipped = (
        f"clipped to {w.clip:g}: every gradient × {w.clip_factor:.3g}"
        if w.clip_factor < 1
        else ("not clipped" if w.clip > 0 else "clipping off")
    )
    plot(
        F.group_bars_figure(
            w.grad_groups,
            f"Gradient per weight group (global norm {w.grad_total:.3g}, {clipped})",
            "‖∂loss/∂θ‖ (before clipping)",
        ),
        key="step_fig_gg",
    )


def stage_step():
    st.header(f"{STAGES[4]}: {OPTIMIZERS[opt]}, learning rate {lr:g}")
    st.markdown(TXT.OPTIMIZER[opt])
    o1, o2 = st.columns(2)
    with o1:
        plot(
            F.group_bars_figure(
                w.moved, "How far each group moved: ‖θ_after − θ_before‖", "distance moved", color=OI["green"]
            ),
            key="step_fig_moved",
        )
    with o2:
        rel = {g: w.moved[g] / max(w.size[g], 1e-12) for g in w.moved}
        plot(
            F.group_bars_figure(rel, "…relative to its size: ‖Δθ‖ / ‖θ‖", "relative change", color=OI["purple"]),
            key="step_fig_rel",
        )
    before, after = w.losses[0]["before"], w.losses[0]["after"]
    st.markdown(TXT.AFTER)
    if after > before:
        st.warning(TXT.WENT_UP)
    plot(F.before_after_figure(w.losses), key="step_fig_after")
    a1, a2 = st.columns([1, 2])
    a1.metric("loss of this example after the step", f"{after:.4f}", f"{after - before:+.4f}", delta_color="inverse")
    a2.table(
        {
            "": ["source x", "target y", "greedy output before the step", "greedy output after the step"],
            "text": [pair[0], pair[1], w.prediction_before, w.prediction_after],
        },
        border="horizontal",
    )
    st.button(
        "Keep this step (make the stepped copy the current model)",
        key="step_keep",
        on_click=_keep,
        args=(cur, w),
        icon=":material/check:",
        help="The current model stays as it is unless you press this. The sidebar then names the stepped model.",
    )


def _next(k: int) -> None:
    st.session_state[K_STAGE] = STAGES[k]


for k, draw in enumerate((stage_encoder, stage_decoder, stage_loss, stage_backward, stage_step)):
    if stage in (STAGES[k], ALL):
        draw()
        if stage != ALL and k + 1 < len(STAGES):
            st.button(f"Next: {STAGES[k + 1]} →", key="step_next", on_click=_next, args=(k + 1,), type="primary")
if stage is None:  # the segmented control was clicked off
    st.info("Pick a stage above.")
