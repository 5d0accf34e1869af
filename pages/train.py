"""Train page: train the chosen model on the chosen data in the background, and watch it learn.

The run lives in the trainer's worker pool, not in this script: the page only stores its run_id in the session and
polls a snapshot from a fragment (every 0.3 s, slower when many runs train: poll_seconds). So leaving the page (or
the whole app) and coming back finds the run and its curves where they are, and the widgets stay responsive while it
trains.
"""

import copy

import pandas as pd
import pyarrow as pa
import streamlit as st

from seq2seq.checkpoint import Checkpoint
from seq2seq.config import LR_SCHEDULES, OPTIMIZERS, ModelConfig, TrainConfig
from seq2seq.data import fit_to_vocab
from seq2seq.limits import LimitError, get_limits
from seq2seq.model import Seq2Seq, count_parameters
from seq2seq.training import PLATEAU_FLOOR, PLATEAU_SPACING
from ui import figures, sharing, state, text

state.ensure_app()

limits = get_limits()
Q = dict(bind="query-params", persist_state="session")
DEF = {k: s.default for k, s in state.settings().items()}  # the library's defaults (seq2seq/config.py)
ACTIVE = ("queued", "running")
OI = figures.OI

st.title("Train: watch the model learn")
with st.expander(
    "Loss, exact match and vanishing gradients: what am I looking at?", expanded=False, icon=":material/school:"
):
    st.markdown(text.TRAIN)

# ------------------------------------------------------------------------------------------------ what is trained
data = state.get_data() or state.default_data()
data_desc = state.get_data_desc() or state.default_data_desc()
cur = state.current()
init = st.radio(
    "Start from",
    state.INIT_CHOICES,
    horizontal=True,
    key="init",
    **Q,
    help="Random weights train the model set up on the Model page from scratch. The current model's "
    f"weights ({cur.name}) keep training the model shown in the sidebar: it must have been "
    "trained on data with the same vocabulary.",
)
warm = init == state.INIT_CHOICES[1]
mismatch = None
if warm:  # the data must be expressed in the current model's own vocabularies (its embedding rows, output units)
    fitted, mismatch = fit_to_vocab(data, cur.tokenizer, cur.src_vocab, cur.tgt_vocab)
if warm and not mismatch:
    data, model_cfg = fitted, cur.model_cfg
else:
    model_cfg = ModelConfig(len(data.src_vocab), len(data.tgt_vocab), **state.model_choice())
n_params = count_parameters(model_cfg)["total"]
if mismatch:
    st.warning(f"Can't continue from the current model on this data. {mismatch}", icon=":material/warning:")
c1, c2 = st.columns(2)
with c1:
    st.markdown("**Data**")
    st.text(f"{data_desc}: {len(data.train):,} training / {len(data.valid):,} validation pairs, {data.tokens} tokens")
    st.page_link("pages/data.py", label="Change the data", icon=":material/table_view:")
with c2:
    st.markdown("**Model**")
    st.text(f"{state.describe(model_cfg)}, E={model_cfg.embed}, H={model_cfg.hidden}: {n_params:,} parameters")
    st.page_link("pages/model.py", label="Change the model", icon=":material/account_tree:")

# ------------------------------------------------------------------------------------------------------- settings
lesson = state.lesson_seconds()  # a lesson's budget (a teacher's link or the operator) overrides the one chosen here
with st.container(border=True):
    a, b, c, d = st.columns(4, gap="medium")
    optimizer = a.segmented_control("Optimizer", OPTIMIZERS, default=DEF["opt"], key="opt", required=True, **Q)
    lr = a.select_slider("Learning rate", state.LEARNING_RATES, DEF["lr"], key="lr", **Q, format_func=state.fmt_lr)
    lr_schedule = a.selectbox(
        "Learning-rate schedule",
        LR_SCHEDULES,
        index=LR_SCHEDULES.index(DEF["sched"]),
        key="sched",
        **Q,
        help="plateau: halve the rate when an evaluation brings no new lowest validation loss"
        f"{'' if TrainConfig.lr_patience == 1 else f' ({TrainConfig.lr_patience} evaluations in a row)'}; "
        f"after a halving at step k, not again before step {PLATEAU_SPACING:g} k, and never below "
        f"1/{round(1 / PLATEAU_FLOOR)} of the starting rate. The fast start lasts while progress lasts, and "
        "the weights can settle at the end. constant: never change it. "
        f"halving: halve it every {TrainConfig.lr_half_life:,} steps, whatever happens.",
    )
    batch = b.select_slider("Batch size", state.BATCH_SIZES, DEF["batch"], key="batch", **Q)
    budget = b.segmented_control(
        "Train for",
        state.BUDGETS,
        default=DEF["budget"],
        key="budget",
        required=True,
        **Q,
        disabled=bool(lesson),
        help="until it stops improving: train until that many evaluations in a row bring "
        "neither a better validation exact match nor a lower validation loss (and at "
        f"most this server's {limits.max_train_seconds:g} s).",
    )
    epochs = seconds = None
    patience = 0
    if budget == "epochs":
        epochs = c.number_input(
            "Epochs",
            1,
            1000,
            DEF["epochs"],
            key="epochs",
            **Q,
            disabled=bool(lesson),
            help="One epoch = one pass over the training pairs.",
        )
    elif budget == "seconds":
        seconds = c.number_input(
            "Seconds", 5, int(limits.max_train_seconds), DEF["seconds"], key="seconds", **Q, disabled=bool(lesson)
        )
    else:
        patience = c.number_input(
            "Evaluations without progress",
            1,
            1000,
            DEF["patience"],
            key="patience",
            **Q,
            disabled=bool(lesson),
            help=f"Stop after this many evaluations in a row (one every "
            f"{TrainConfig.eval_every} steps) without a new best validation exact match "
            "or loss.",
        )
    seed = c.number_input(
        "Seed", 0, 1_000_000, DEF["seed"], key="seed", **Q, help="Same seed, same settings: same run."
    )
    teacher_forcing = d.slider(
        "Teacher forcing",
        0.0,
        1.0,
        DEF["tf"],
        0.05,
        key="tf",
        **Q,
        help="Probability of feeding the true previous token y_{t-1} to the decoder (else its own guess).",
    )
    clip = d.slider("Gradient clipping (max norm, 0 = off)", 0.0, 5.0, DEF["clip"], 0.25, key="clip", **Q)
    if lesson:
        epochs, seconds, patience = None, lesson, 0  # a lesson: every run trains its seconds, together
        st.caption(sharing.lesson_text(lesson, st.session_state.get(state.K_LESSON) is not None))


def diverge_preset() -> None:
    """Settings that make any model here blow up within a few steps (see docs/DESIGN.md, training)."""
    st.session_state.update(opt="sgd", lr=1000.0, clip=0.0)
    state.notice(
        "Set up a run that diverges: SGD, learning rate 1000, no gradient clipping. Press Start and watch "
        "the loss explode until the run is stopped. Then set the learning rate back to "
        f"{state.fmt_lr(DEF['lr'])}."
    )


d.button(
    "Show a diverging run",
    icon=":material/trending_up:",
    on_click=diverge_preset,
    key="btn_diverge",
    help="Fill in settings whose steps are far too large, to see what divergence looks like.",
)
train_cfg = TrainConfig(
    optimizer=optimizer,
    lr=float(lr),
    lr_schedule=lr_schedule,
    batch_size=int(batch),
    epochs=float(epochs) if epochs else None,
    max_seconds=float(seconds) if seconds else None,
    stop_patience=int(patience),
    clip=float(clip),
    teacher_forcing=float(teacher_forcing),
    seed=int(seed),
)
st.button(
    "Recommended settings for this data",
    icon=":material/auto_fix_high:",
    key="btn_recommend_train",
    on_click=state.apply_recommended,
    args=(data, data_desc),
    disabled=warm,
    help="Fill in the model and these settings as the defaults benchmark found to work on data like this "
    "one, sized from this dataset, each with the reason for it.",
)
rec = state.recommended_reasons()
if rec:
    with st.expander(f"Why these settings ({rec[0]})", expanded=False, icon=":material/lightbulb:"):
        st.markdown(rec[1])

# -------------------------------------------------------------------------------------------------------- controls
trainer = state.trainer()
if not warm:
    trainer.prepare(data)  # the workers encode this data now: Start trains at once
run_id = trainer.page_run
if run_id is not None and run_id not in trainer.run_ids:  # e.g. the server restarted: the run is gone
    run_id = None
st.session_state[state.K_RUN_ID] = run_id
snap = trainer.snapshot(run_id) if run_id else None
status = snap["status"] if snap else None


def start(generation: int) -> None:
    """Start (again). `generation` is the trainer's count of starts when this button was drawn: clicks that arrive
    while a start is in flight (20 in a second) start one run, not one each (SessionTrainer.start)."""
    if n_params > limits.max_params:
        state.notice(
            f"This model has {n_params:,} parameters, over this server's limit of {limits.max_params:,} "
            f"(SEQ2SEQ_MAX_PARAMS). Choose fewer hidden units, a smaller embedding or fewer layers."
        )
        return
    if len(data.train) < 2 or not data.valid:
        state.notice("The dataset is too small to train and validate on: use more examples on the Data page.")
        return
    if mismatch:
        state.notice(f"Training could not start: {mismatch}")
        return

    try:
        trainer.start(
            data,
            model_cfg,
            train_cfg,
            cur.model.state_dict() if warm else None,
            generation=generation,
            page_info=(data, (model_cfg, train_cfg, data_desc)),
        )
    except (LimitError, ValueError) as e:
        state.notice(f"Training could not start: {e}")


def use_trained() -> None:
    run_id = trainer.page_run
    if run_id not in trainer.run_ids:
        return
    snap = trainer.snapshot(run_id)
    run_data, (m_cfg, t_cfg, desc) = trainer.page_info
    model = Seq2Seq(m_cfg)
    model.load_state_dict(trainer.weights(run_id))
    metrics = dict(snap.get("last_eval") or {})
    metrics["best_exact_match"] = snap.get("best_exact_match")
    task = desc[len("task: ") :].split(" ")[0] if desc.startswith("task: ") else None
    name = (
        f"trained in this session #{len(state.trained_models()) + 1}: {task or 'custom data'} ({state.describe(m_cfg)})"
    )
    ckpt = Checkpoint(
        model=model,
        model_cfg=m_cfg,
        train_cfg=t_cfg,
        tokens=run_data.tokens,
        tokenizer=run_data.tokenizer,
        src_vocab=run_data.src_vocab,
        tgt_vocab=run_data.tgt_vocab,
        metrics=metrics,
        history=snap.get("history") or {},
        task=task,
    )
    state.trained_models()[name] = ckpt
    state.set_current(copy.deepcopy(ckpt), name)
    state.notice(f"Now showing {name} on the Encoder, Hidden states and Decoder pages.")


def control(action: str) -> None:
    rid = trainer.page_run
    if rid not in trainer.run_ids:
        return
    if action == "continue":
        trainer.extend(rid, epochs=train_cfg.epochs, seconds=train_cfg.max_seconds)
    else:
        getattr(trainer, action)(rid)


cols = st.columns([1.3, 1, 1, 1, 1.4, 2.2])
cols[0].button(
    "Start" if not run_id else "Start again",
    type="primary",
    icon=":material/play_arrow:",
    on_click=start,
    args=(trainer.generation,),
    width="stretch",
    key="btn_start",
    help="Start a new run from fresh random weights.",
)
cols[1].button(
    "Pause",
    icon=":material/pause:",
    on_click=control,
    args=("pause",),
    disabled=status not in ACTIVE,
    width="stretch",
    key="btn_pause",
)
cols[2].button(
    "Resume",
    icon=":material/resume:",
    on_click=control,
    args=("resume",),
    disabled=status != "paused",
    width="stretch",
    key="btn_resume",
)
cols[3].button(
    "Stop",
    icon=":material/stop:",
    on_click=control,
    args=("stop",),
    disabled=status not in ACTIVE + ("paused",),
    width="stretch",
    key="btn_stop",
)
cols[4].button(
    "Continue",
    icon=":material/fast_forward:",
    on_click=control,
    args=("continue",),
    disabled=status not in ("finished", "stopped"),
    width="stretch",
    key="btn_continue",
    help="Train the same run further: by the epochs or seconds set above, or until it stops improving again.",
)
cols[5].button(
    "Use the trained model",
    icon=":material/check_circle:",
    on_click=use_trained,
    width="stretch",
    disabled=not snap or status in ACTIVE + ("diverged", "error") or not snap.get("step"),
    key="btn_use",
    help="Show this model on the Encoder, Hidden states and Decoder pages.",
)
msg = state.notice()
if msg:  # a problem from the buttons above (a limit, the data, the vocabulary), or the model now shown
    (st.success if msg.startswith("Now showing") else st.warning)(msg)
st.caption(sharing.load_text(state.shared_trainer().load()))  # how busy the server is (what a teacher checks)


def stop_run(rid: str) -> None:
    if rid in trainer.run_ids:
        trainer.stop(rid)


def remove_run(rid: str) -> None:
    if rid in trainer.run_ids:
        trainer.close(rid)


def other_runs() -> None:
    """Every run this session owns besides the one shown below, each with a Stop: no run of a session trains where
    its student cannot see it or stop it (it would hold one of the server's training slots)."""
    others = [r for r in trainer.run_ids if r != run_id]
    if not others:
        return
    st.markdown(f"**Your other runs on this server** ({len(others)})")
    for rid in others:
        s = trainer.snapshot(rid)
        cfg = s.get("model_cfg") or {}
        a, b, c = st.columns([4, 1, 1], vertical_alignment="center")
        a.text(
            f"run {rid[:6]}: {str(cfg.get('cell', '?')).upper()} H={cfg.get('hidden', '?')} · {s['status']} · "
            f"step {int(s.get('step') or 0):,}"
        )
        b.button(
            "Stop",
            icon=":material/stop:",
            on_click=stop_run,
            args=(rid,),
            key=f"btn_stop_{rid}",
            disabled=s["status"] not in ACTIVE + ("paused",),
            width="stretch",
        )
        c.button(
            "Remove",
            icon=":material/delete:",
            on_click=remove_run,
            args=(rid,),
            key=f"btn_remove_{rid}",
            disabled=s["status"] in ACTIVE + ("paused",),
            width="stretch",
            help="Forget this ended run (stop it first).",
        )


other_runs()


# ------------------------------------------------------------------------------------------------------- live view
# The fragment below reruns every POLL seconds while a run trains, so it only reads the snapshot and draws: the
# tables behind the charts are rebuilt only when the snapshot has new points (keyed by run, step and evaluation count),
# each curve is thinned to figures.MAX_POINTS, and the chart specs never change (so each chart stays ONE element whose
# data the browser swaps in place).
POLL = 0.3  # seconds: ~3 polls a second keep the curves redrawn at least twice a second on a busy 2-core box
K_LIVE = "train_live_tables"


def poll_seconds() -> float:
    """POLL for a lone user; slower when many runs train on this server, so that 30 Train pages polling at once do
    not saturate the web process (each poll is a script run): about 10 polls a second in all, never slower than 2 s."""
    active = state.shared_trainer().n_active()
    return min(2.0, max(POLL, 0.1 * active))


LOSS_SPEC = figures.line_spec(
    "step", "optimizer step", "loss", {"training loss": OI["blue"], "validation loss": OI["orange"]}
)
ACC_SPEC = figures.line_spec(
    "step",
    "optimizer step",
    "share correct",
    {"exact match": OI["green"], "token accuracy": OI["purple"]},
    y_domain=(0, 1),
    points=True,
)
SCORE_SPEC = figures.line_spec(
    "step",
    "optimizer step",
    "score (0-100)",
    {"BLEU": OI["vermillion"], "chrF": OI["sky"]},
    y_domain=(0, 100),
    points=True,
)
GROUP_SPEC = figures.bar_spec("parameter group", "‖gradient‖ (log)", OI["blue"], horizontal=True)
STEP_SPEC = figures.bar_spec("encoder timestep", "‖∂L/∂h_t‖ (log)", OI["vermillion"])


def live_tables(run_id: str, snap: dict) -> dict[str, pa.Table]:
    """The charts' and the sample table's data, rebuilt only when this snapshot differs from the last one drawn."""
    history = snap.get("history") or {}
    version = (run_id, snap.get("step"), len(history.get("eval_step") or []), snap.get("status"))
    cached = st.session_state.get(K_LIVE)
    if cached and cached[0] == version:
        return cached[1]
    table = pd.DataFrame(snap.get("samples") or [], columns=["input", "prediction", "target"])
    # a source with several correct targets shows them as "a | b | c": right if the output is any of them
    table["correct"] = [p in t.split(" | ") for p, t in zip(table["prediction"], table["target"])]
    tables = {
        "loss": figures.curves_frame(
            history, {"training loss": ("step", "train_loss"), "validation loss": ("eval_step", "valid_loss")}
        ),
        "acc": figures.curves_frame(
            history, {"exact match": ("eval_step", "exact_match"), "token accuracy": ("eval_step", "token_accuracy")}
        ),
        "scores": figures.curves_frame(history, {"BLEU": ("eval_step", "bleu"), "chrF": ("eval_step", "chrf")}),
        "groups": figures.bars_frame(snap.get("grad_norms") or {}),
        "steps": figures.bars_frame(snap.get("timestep_grad_norms") or [], prefix="t="),
        "samples": table,
    }
    tables = {name: figures.arrow(df) for name, df in tables.items()}  # serialised once, not on every poll
    st.session_state[K_LIVE] = (version, tables)
    return tables


def after_first_eval(snap: dict) -> str:
    every = (snap.get("train_cfg") or {}).get("eval_every") or TrainConfig().eval_every
    return f"Appears after the first evaluation on the validation set (every {every} optimizer steps)."


def chart(col, title: str, table: pa.Table, spec: dict, key: str, empty: str) -> None:
    """One live chart (a single stable vega-lite element), or a caption saying when it will appear."""
    col.markdown(title)
    if len(table):
        col.vega_lite_chart(table, spec, key=key)
    else:
        col.caption(empty)


def curves(snap: dict, tables: dict[str, pa.Table]) -> None:
    scored = "bleu" in (snap.get("history") or {})  # word and subword data: BLEU and chrF next to exact match
    cols = st.columns(3 if scored else 2)
    chart(
        cols[0],
        "**Loss (cross-entropy)**",
        tables["loss"],
        LOSS_SPEC,
        "chart_loss",
        "The training loss appears after the first optimizer step.",
    )
    chart(cols[1], "**Validation accuracy**", tables["acc"], ACC_SPEC, "chart_acc", after_first_eval(snap))
    if scored:
        chart(
            cols[2],
            "**Translation scores** (BLEU, chrF; sacrebleu)",
            tables["scores"],
            SCORE_SPEC,
            "chart_scores",
            after_first_eval(snap),
        )
        last = snap.get("last_eval") or {}
        if "bleu" in last:
            cols[2].caption(
                f"Latest: BLEU {last['bleu']:.1f}, chrF {last['chrf']:.1f} on the first "
                f"{last.get('n_scored', 0)} validation sources, scored against all their references."
            )


def gradients(snap: dict, tables: dict[str, pa.Table]) -> None:
    a, b = st.columns(2)
    chart(
        a,
        "**Gradient norm per parameter group** (latest step)",
        tables["groups"],
        GROUP_SPEC,
        "chart_groups",
        "Appears after the first optimizer step.",
    )
    chart(
        b,
        "**Gradient reaching each encoder timestep** ‖∂L/∂h_t‖",
        tables["steps"],
        STEP_SPEC,
        "chart_steps",
        after_first_eval(snap),
    )


def live(run_id: str, polling: bool) -> None:
    snap = trainer.snapshot(run_id)
    s = snap["status"]
    label = f"{s} · step {snap['step']:,} · epoch {snap['epoch']:.2f} · {snap['seconds']:.1f} s"
    if snap.get("best_exact_match") is not None:
        label += f" · best exact match {100 * snap['best_exact_match']:.1f}%"
    if "bleu" in (snap.get("last_eval") or {}):
        label += f" · BLEU {snap['last_eval']['bleu']:.1f}"
    st.progress(min(1.0, max(0.0, float(snap.get("progress") or 0.0))), text=label)
    if s == "running":
        st.caption(sharing.share_text(snap))
    if s == "queued" and snap.get("queue_position"):
        st.info(sharing.queue_text(snap), icon=":material/hourglass_top:")
    elif s == "diverged":
        st.error(text.DIVERGED + (f" ({snap['message']})" if snap.get("message") else ""))
    elif s == "error":
        st.error(f"Training failed: {snap.get('message') or 'unknown error'}")
    elif snap.get("message") and s in ("finished", "stopped", "paused"):
        st.caption(snap["message"])
    tables = live_tables(run_id, snap)
    curves(snap, tables)
    gradients(snap, tables)
    st.markdown("**Sample predictions** (validation inputs, at the latest evaluation)")
    if len(tables["samples"]):
        st.dataframe(
            tables["samples"],
            hide_index=True,
            key="samples_table",
            column_config={"correct": st.column_config.CheckboxColumn("correct")},
        )
    else:
        st.caption(after_first_eval(snap))
    if polling and s not in ACTIVE:
        st.rerun()  # the run ended: redraw the whole page (buttons) and stop polling


if run_id:
    st.fragment(live, run_every=poll_seconds() if status in ACTIVE else None)(run_id, status in ACTIVE)
else:
    st.info(
        "Press **Start** to train. The curves appear here and update a few times a second; you can switch pages "
        "while it trains and come back."
    )
