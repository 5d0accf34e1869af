"""Compare page: 2-4 models trained side by side on the same data (same settings, seed and epochs), their curves
live, sample predictions, parameters and speed, the gradient reaching each encoder timestep, and accuracy by source
length; "Why attention?" sets up the classic experiment in one click. Session logic: ui/compare.py; figures:
ui/figures_compare.py (pure).

As on the Train page, the runs live in the trainer's worker pool; a fragment polls their snapshots while they train
and redraws only the live part. Measurements (accuracy by length, gradient per timestep) need the weights, so they
are made in this process once per finished model, or on "Measure now".
"""

import html

import pandas as pd
import streamlit as st

from seq2seq.limits import get_limits
from seq2seq.model import count_parameters
from ui import compare, figures, state, text_compare
from ui import figures_compare as fc

state.ensure_app()

limits = get_limits()
POLL = 0.5  # seconds between polls while the comparison trains (slower when many runs train on the server)

st.title("Compare models side by side")
with st.expander("Same data, same budget, one change: what am I looking at?", expanded=False, icon=":material/school:"):
    st.markdown(text_compare.COMPARE)

K_USED = "cmp_used"  # set by a "Use model" click inside the live fragment: rerun the whole page once, to show it
msg = state.notice()
if msg:
    (st.success if msg.startswith("Now showing") else st.warning)(msg)
    st.session_state.pop(K_USED, None)  # this run is a whole-page run: it shows the notice and the sidebar already

# ---------------------------------------------------------------------------------------------------- the preset
with st.container(border=True):
    a, b = st.columns([3, 1], gap="large", vertical_alignment="center")
    a.markdown(
        f"**Why attention?** Reversal of {compare.WHY_LENGTHS[0]}-{compare.WHY_LENGTHS[1]} letters, an LSTM "
        f"without and with attention, {compare.WHY_EPOCHS} epochs each: the classic experiment in one click."
    )

    def why_attention() -> None:
        problem = compare.start_why_attention()
        if problem:
            state.notice(problem)

    b.button(
        "Run “Why attention?”",
        type="primary",
        icon=":material/science:",
        on_click=why_attention,
        width="stretch",
        key="btn_why",
        help="Sets up the two models and the data below and starts training.",
    )

cmp = compare.get()
if cmp is not None and cmp.preset == "why_attention":
    st.info(text_compare.WHY_ATTENTION, icon=":material/lightbulb:")

# ---------------------------------------------------------------------------------------------------- the setup
data = state.get_data() or state.default_data()
data_desc = state.get_data_desc() or state.default_data_desc()
opts = compare.models()
cfgs = compare.configs(data, opts)
labels = fc.model_labels(cfgs)
with st.container(border=True):
    st.markdown(
        f"**Data** (for Start): {data_desc}: {len(data.train):,} training / {len(data.valid):,} validation pairs"
    )
    st.markdown("**Models** (A is the Model page's model; the others are A with one change)")
    for i, (cfg, label) in enumerate(zip(cfgs, labels)):
        c1, c2, c3 = st.columns([5, 2, 1], vertical_alignment="center")
        c1.markdown(
            f"<span style='color:{fc.MODEL_COLORS[i]};font-size:1.4em'>■</span> {html.escape(label)}",
            unsafe_allow_html=True,
        )  # escaped all the same: the label is drawn as HTML
        n = count_parameters(cfg)["total"]
        c2.markdown(f"{n:,} parameters" + (" — over the limit" if n > limits.max_params else ""))
        if i:
            c3.button(
                "Remove", key=f"btn_cmp_remove_{i}", icon=":material/close:", on_click=compare.remove_model, args=(i,)
            )
    a, b, c = st.columns([3, 1, 2], vertical_alignment="bottom")
    choices = compare.variant_choices(opts[0])
    full = len(opts) >= limits.max_compare_models
    pick = a.selectbox(
        "Add a model: the same as A, but …",
        choices,
        key="cmp_add",
        disabled=full,
        help=f"Up to {limits.max_compare_models} models (SEQ2SEQ_MAX_COMPARE_MODELS).",
    )

    def add() -> None:
        problem = compare.add_model(st.session_state.get("cmp_add"))
        if problem:
            state.notice(problem)

    b.button("Add", key="btn_cmp_add", icon=":material/add:", on_click=add, disabled=full, width="stretch")
    c.button(
        "Model A = the Model page's model",
        key="btn_cmp_reset",
        icon=":material/restart_alt:",
        on_click=compare.reset_models,
        width="stretch",
        help="Start the list again from the model set up on the Model page.",
    )
    st.page_link("pages/model.py", label="Change model A on the Model page", icon=":material/account_tree:")

    a, b = st.columns([1, 3], vertical_alignment="bottom")
    st.session_state.setdefault("cmp_epochs", compare.DEFAULT_EPOCHS)  # (the preset sets it: no value= here)
    epochs = a.number_input(
        "Epochs (every model)",
        1,
        1000,
        key="cmp_epochs",
        help="The same number of passes over the training pairs for every model.",
    )
    t_cfg = compare.train_config(epochs)
    b.caption(
        f"Training settings from the Train page, the same for every model: {t_cfg.optimizer}, learning rate "
        f"{state.fmt_lr(t_cfg.lr)} ({t_cfg.lr_schedule}), batch {t_cfg.batch_size}, seed {t_cfg.seed}, "
        f"teacher forcing {t_cfg.teacher_forcing:g}, clipping {t_cfg.clip:g}."
    )

# ------------------------------------------------------------------------------------------------------ controls
statuses = [state.trainer().snapshot(r)["status"] for r in cmp.run_ids] if cmp else []
any_active = any(s in compare.ACTIVE for s in statuses)


def start() -> None:
    problem = compare.start(
        data, data_desc, compare.models(), st.session_state.get("cmp_epochs") or compare.DEFAULT_EPOCHS
    )
    if problem:
        state.notice(problem)


cols = st.columns([1.6, 1, 1, 1, 4])
cols[0].button(
    "Start the comparison" if not cmp else "Start again",
    type="primary",
    icon=":material/play_arrow:",
    on_click=start,
    width="stretch",
    key="btn_cmp_start",
    disabled=len(opts) < 2,
    help="Train every model above from fresh random weights, at the same time."
    if len(opts) > 1
    else "Add at least one more model first.",
)
cols[1].button(
    "Pause",
    icon=":material/pause:",
    on_click=compare.control,
    args=("pause",),
    width="stretch",
    disabled=not any_active,
    key="btn_cmp_pause",
)
cols[2].button(
    "Resume",
    icon=":material/resume:",
    on_click=compare.control,
    args=("resume",),
    width="stretch",
    disabled="paused" not in statuses,
    key="btn_cmp_resume",
)
cols[3].button(
    "Stop",
    icon=":material/stop:",
    on_click=compare.control,
    args=("stop",),
    width="stretch",
    disabled=not any(s in compare.LIVE for s in statuses),
    key="btn_cmp_stop",
)


# ----------------------------------------------------------------------------------------------------- live view
def poll_seconds() -> float:
    return min(2.0, max(POLL, 0.1 * state.shared_trainer().n_active()))


def chart(col, title: str, table, spec: dict, key: str, empty: str) -> None:
    col.markdown(title)
    if len(table):
        col.vega_lite_chart(table, spec, key=key)
    else:
        col.caption(empty)


K_LIVE = "cmp_live_charts"  # (version, tables, specs): rebuilt only when a snapshot has new points
K_FIGS = (
    "cmp_figs"  # (version, figures): the measurement figures, rebuilt only when a measurement or the choice changes
)


def live_charts(cmp, snaps) -> tuple[dict, dict]:
    """The live charts' Arrow tables and Vega-Lite specs, rebuilt only when some run has new points."""
    version = (
        cmp.id,
        tuple((s["step"], len((s.get("history") or {}).get("eval_step") or []), s["status"]) for s in snaps),
    )
    cached = st.session_state.get(K_LIVE)
    if cached and cached[0] == version:
        return cached[1], cached[2]
    hist = [(label, s.get("history") or {}) for label, s in zip(cmp.labels, snaps)]
    measures = {
        "train": ("step", "train_loss", "cross-entropy", None),
        "valid": ("eval_step", "valid_loss", "cross-entropy", None),
        "em": ("eval_step", "exact_match", "share exactly right", (0, 1)),
        "tok": ("eval_step", "token_accuracy", "share of tokens right", (0, 1)),
    }
    tables, specs = {}, {}
    for name, (x, y, y_title, dom) in measures.items():
        tables[name] = figures.arrow(fc.curves_table(hist, x, y))
        specs[name] = fc.compare_line_spec(cmp.labels, "optimizer step", y_title, y_domain=dom, points=name != "train")
    st.session_state[K_LIVE] = (version, tables, specs)
    return tables, specs


def use(i: int) -> None:
    compare.use_model(i)
    st.session_state[K_USED] = True


def live(polling: bool) -> None:
    cmp = compare.get()
    if cmp is None:
        return
    t = state.trainer()
    snaps = [t.snapshot(r) for r in cmp.run_ids]
    st.caption(
        f"This comparison trains on {cmp.data_desc}: {len(cmp.data.train):,} training pairs; "
        f"{cmp.train_cfg.epochs:g} epochs per model."
    )
    # the status of each model, and the table of sizes and speeds
    rows = []
    for i, (label, snap) in enumerate(zip(cmp.labels, snaps)):
        steps_s = snap["step"] / snap["seconds"] if snap.get("seconds") else None
        best = snap.get("best_exact_match")
        rows.append(
            {
                "model": label,
                "status": snap["status"],
                "parameters": count_parameters(cmp.cfgs[i])["total"],
                "step": snap["step"],
                "epoch": round(snap["epoch"], 2),
                "steps/s": round(steps_s, 1) if steps_s else None,
                "best exact match": None if best is None else round(100 * best, 1),
            }
        )
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        key="cmp_table",
        column_config={
            "parameters": st.column_config.NumberColumn(format="localized"),
            "best exact match": st.column_config.NumberColumn(format="%.1f %%"),
        },
    )
    cols = st.columns(len(cmp.labels))
    for i, (col, snap) in enumerate(zip(cols, snaps)):
        col.button(
            f"Use model {fc.LETTERS[i]}",
            key=f"btn_cmp_use_{i}",
            icon=":material/check_circle:",
            on_click=use,
            args=(i,),
            width="stretch",
            disabled=snap["status"] in compare.ACTIVE + ("diverged", "error") or not snap["step"],
            help=f"Make {cmp.labels[i]} the current model: the Encoder, Hidden states and Decoder pages "
            "show it, and the sidebar lists it.",
        )
    if st.session_state.pop(K_USED, False):
        st.rerun()  # the whole page: the sidebar shows the new current model, the notice its name
    for snap, label in zip(snaps, cmp.labels):
        if snap["status"] in ("diverged", "error"):
            st.error(f"{label}: {snap['status']}. {snap.get('message') or ''}")
        elif snap["status"] == "queued":
            st.info(f"{label}: waiting for a free trainer (position {snap.get('queue_position')} in the queue).")
    every = cmp.train_cfg.eval_every
    after_eval = f"Appears after the first evaluation (every {every} optimizer steps)."
    tables, specs = live_charts(cmp, snaps)
    a, b = st.columns(2)
    chart(
        a,
        "**Training loss**",
        tables["train"],
        specs["train"],
        "cmp_chart_train",
        "Appears after the first optimizer step.",
    )
    chart(b, "**Validation loss**", tables["valid"], specs["valid"], "cmp_chart_valid", after_eval)
    a, b = st.columns(2)
    chart(a, "**Validation exact match**", tables["em"], specs["em"], "cmp_chart_em", after_eval)
    chart(b, "**Validation token accuracy**", tables["tok"], specs["tok"], "cmp_chart_tok", after_eval)

    # the same validation inputs through every model (each run's samples are the first validation pairs)
    st.markdown("**Sample predictions** (the same validation inputs, at each model's latest evaluation)")
    samples = [s.get("samples") or [] for s in snaps]
    if all(samples):
        n = min(len(x) for x in samples)
        table = {"input": [r[0] for r in samples[0][:n]], "target": [r[2] for r in samples[0][:n]]}
        for i, x in enumerate(samples):
            table[f"{fc.LETTERS[i]}"] = [("✓ " if r[1] == r[2] else "✗ ") + r[1] for r in x[:n]]
        st.dataframe(pd.DataFrame(table), hide_index=True, key="cmp_samples")
    else:
        st.caption(after_eval)

    # measurements: once per finished (or stopped) model, at its final weights; only in a run that does not poll,
    # because the next timed rerun of a polling fragment would interrupt a measurement that takes longer than POLL
    # (so a model that finishes first is measured when the last one does, or on "Measure now")
    for i, (rid, snap) in enumerate(zip(cmp.run_ids, snaps)):
        done = snap["status"] in ("finished", "stopped") and snap["step"] > 0
        have = cmp.results.get(rid)
        if done and not polling and (have is None or have["step"] != snap["step"]):
            with st.spinner(f"Measuring model {fc.LETTERS[i]} on held-out examples…"):
                compare.measure(cmp, i, snap["step"])
    measurements(cmp, snaps)
    if polling and not any(s["status"] in compare.ACTIVE for s in snaps):
        st.rerun()  # every run ended: redraw the whole page (buttons) and stop polling


def measure_now() -> None:
    cmp = compare.get()
    if cmp is None:
        return
    t = state.trainer()
    for i, rid in enumerate(cmp.run_ids):
        snap = t.snapshot(rid)
        if snap["step"] > 0 and snap["status"] not in ("diverged", "error"):
            compare.measure(cmp, i, snap["step"])


def measurements(cmp, snaps) -> None:
    st.markdown("#### Gradient reaching each encoder timestep, and accuracy by source length")
    res = [cmp.results.get(r) for r in cmp.run_ids]
    have = [(lab, r) for lab, r in zip(cmp.labels, res) if r]
    if any(s["status"] in compare.ACTIVE for s in snaps):
        st.button(
            "Measure now",
            icon=":material/straighten:",
            key="btn_cmp_measure",
            on_click=measure_now,
            help="Measure the models at their current weights (each model is measured by itself when it finishes).",
        )
    if not have:
        st.caption("Measured on fresh held-out examples when the models finish training (or press Measure now).")
        return
    a, b = st.columns(2)
    version = (cmp.id, tuple((lab, r["step"]) for lab, r in have))
    cached = st.session_state.get(K_FIGS)
    if not cached or cached[0] != version:  # both accuracy measures at once: switching between them is free
        lengths = sorted({r["grad_length"] for _, r in have})
        grads = fc.fig_timestep_grads(
            [(lab, r["grads"]) for lab, r in have], f"‖∂L/∂h_t‖ on inputs of {', '.join(map(str, lengths))} tokens"
        )
        by_len = {
            m: fc.fig_accuracy_by_length(
                [(lab, r["by_length"]) for lab, r in have], m.replace(" ", "_"), cmp.train_range
            )
            for m in ("exact match", "token accuracy")
        }
        cached = st.session_state[K_FIGS] = (version, grads, by_len)
    a.plotly_chart(cached[1], key="cmp_fig_grads", config={"displayModeBar": False})
    a.caption(
        "Mean over up to 32 held-out inputs of one length, at each model's latest measured weights "
        "(step " + ", ".join(f"{lab[0]}: {r['step']:,}" for lab, r in have) + "). Log scale: a line falling "
        "towards t = 1 is a vanishing gradient."
    )
    measure = b.segmented_control(
        "Accuracy", ["exact match", "token accuracy"], default="exact match", key="cmp_measure", required=True
    )
    b.plotly_chart(cached[2][measure], key="cmp_fig_length", config={"displayModeBar": False})
    n = sum(x["n"] for x in have[0][1]["by_length"])
    b.caption(f"{n:,} held-out examples (none of them in the training data).")


if cmp is not None:
    st.fragment(live, run_every=poll_seconds() if any_active else None)(any_active)
else:
    st.info(
        "Add a model (for example “with additive attention”), then press **Start the comparison**; or run the "
        "**Why attention?** preset above. The curves of every model appear here, live."
    )
