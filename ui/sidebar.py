"""The sidebar on every page: the current model, and ways to change it (pretrained, trained here, uploaded) or save it;
the Train page run's status, live; and a link that opens this whole setup."""

from __future__ import annotations

import re

import streamlit as st

from seq2seq.checkpoint import Checkpoint, CheckpointError, from_zip_bytes, to_zip_bytes
from seq2seq.model import count_parameters
from ui import state

K_PICK = "sb_model"
K_UPLOAD_SEEN = "sb_upload_seen"


def _choices() -> dict[str, tuple[str, str]]:
    """label -> (kind, key) for every model this session can switch to."""
    out = {f"pretrained: {name}": ("pretrained", name) for name, _ in state.list_pretrained()}
    out.update({name: ("trained", name) for name in state.trained_models()})
    return out


def _on_pick() -> None:
    label = st.session_state.get(K_PICK)
    kind, key = _choices().get(label, (None, None))
    try:
        if kind == "pretrained":
            ckpt = state.load_pretrained(key)
            state.set_current(ckpt, f"pretrained: {key} ({state.describe(ckpt.model_cfg)})")
        elif kind == "trained":
            import copy

            state.set_current(copy.deepcopy(state.trained_models()[key]), key)
    except CheckpointError as e:
        state.notice(f"Could not load {label}: {e}", where="sidebar")


def _label_of(cur: state.Current, choices: dict) -> str | None:
    for label, (kind, key) in choices.items():
        if (kind == "pretrained" and cur.name.startswith(f"pretrained: {key} (")) or cur.name == label:
            return label
    return None


def _upload() -> None:
    up = st.file_uploader(
        "Upload a checkpoint (.zip)",
        type=["zip"],
        key="sb_upload",
        help="A .zip made by the Download button or by `python -m seq2seq train --out DIR` (zip the folder's files).",
    )
    if up is None or st.session_state.get(K_UPLOAD_SEEN) == up.file_id:
        return
    st.session_state[K_UPLOAD_SEEN] = up.file_id
    try:
        ckpt = from_zip_bytes(up.getvalue())
    except CheckpointError as e:
        st.error(f"This file is not a usable checkpoint: {e}")
        return
    state.set_current(ckpt, f"uploaded: {up.name}")
    st.success(f"Loaded {up.name}.")


def _card(cur: state.Current) -> None:
    cfg = cur.model_cfg
    n_params = count_parameters(cfg)["total"]
    st.markdown("**Current model**")
    st.text(cur.name)  # may hold an uploaded file's name: st.text shows it literally (no markdown)
    rows = {
        "task": cur.task or "(custom data)",
        "cell": cfg.cell.upper(),
        "embed E / hidden H / layers": f"{cfg.embed} / {cfg.hidden} / {cfg.layers}",
        "bidirectional": "yes" if cfg.bidirectional else "no",
        "attention": cfg.attention,
        "parameters": f"{n_params:,}",
        "tokens": cur.tokenizer.describe() if cur.tokenizer is not None else cur.tokens,
    }
    em = cur.metrics.get("exact_match")
    if em is None and cur.history.get("exact_match"):
        em = max((v for v in cur.history["exact_match"] if v is not None), default=None)
    rows["best exact match"] = "—" if em is None else f"{100 * em:.1f}%"
    if isinstance(cur.metrics.get("bleu"), (int, float)):
        rows["test BLEU / chrF"] = f"{cur.metrics['bleu']:.1f} / {cur.metrics.get('chrf') or 0:.1f}"
    rows["training"] = _origin(cur)
    st.table({"": list(rows.keys()), "value": [str(v) for v in rows.values()]}, border="horizontal")
    run_id = state.trainer().page_run
    if run_id:
        snap = _snapshot(run_id)
        active = snap is not None and snap["status"] in ACTIVE
        # Live while the run trains: only this small fragment reruns each second (a snapshot read, no model math),
        # so the page around it neither reruns nor flickers.
        st.fragment(_run_status, run_every=1.0 if active else None)(run_id, active)


ACTIVE = ("queued", "running")


def _origin(cur: state.Current) -> str:
    if cur.name.startswith("pretrained"):
        return "pretrained (shipped)"
    if cur.name.startswith("uploaded"):
        return "uploaded checkpoint"
    if cur.name.startswith("untrained"):
        return "untrained"
    return "trained in this session"


def _snapshot(run_id: str) -> dict | None:
    try:
        return state.trainer().snapshot(run_id)
    except Exception:  # the run is gone (closed, server restarted): no status line
        return None


def run_status_text(snap: dict) -> str:
    """One line on the Train page's run: status, progress, step, best exact match."""
    text = f"Train page run: {snap['status']} · {100 * float(snap.get('progress') or 0):.0f}%"
    text += f" · step {int(snap.get('step') or 0):,}"
    if snap.get("best_exact_match") is not None:
        text += f" · best exact match {100 * snap['best_exact_match']:.1f}%"
    return text


def _run_status(run_id: str, polling: bool) -> None:
    """The Train page run's status under the model card (a fragment: redrawn every second while the run trains)."""
    snap = _snapshot(run_id)
    if snap is None:
        return
    st.progress(min(1.0, max(0.0, float(snap.get("progress") or 0.0))), text=run_status_text(snap))
    if polling and snap["status"] not in ACTIVE:
        st.rerun()  # the run ended: one full rerun redraws the card (and the Train page's buttons) and stops polling


def _share() -> None:
    """The link that opens this setup: data, model and training settings, and the shipped model shown. Drawn before
    the page runs, from the settings as this run starts (a widget's new value is already in session_state then)."""
    params = state.share_params()
    link = state.share_link(params)
    with st.expander("Share this setup", icon=":material/link:"):
        st.code(
            link or "(all settings are at their defaults: the app's address opens this setup)",
            language=None,
            wrap_lines=True,
        )
        notes = [
            "Copy it with the button at its right: it opens this page with the same data, model and training "
            "settings. The address bar holds the same link."
        ]
        if not link.startswith("http"):
            notes.append("Put the app's address in front of it (for example http://localhost:8501/train).")
        if state.setting("source") != state.DATA_SOURCES[0]:
            notes.append("An uploaded data file cannot travel in a link: share the file too.")
        if state.URL_MODEL not in params and state.current_pretrained() is None:
            notes.append(
                "The current model was trained here or uploaded: the link opens the default pretrained "
                "model; share the model with the Download button."
            )
        st.caption(" ".join(notes))


def _code_download(cur: state.Current) -> None:
    """The current model as one standalone Python file + its weights (seq2seq/export.py), zipped; built only when
    clicked. A model the exporter cannot write (an unknown tokenization) gets a one-line reason instead."""
    from seq2seq.export import ExportError, check_exportable, zip_bytes

    ckpt = Checkpoint(
        model=cur.model,
        model_cfg=cur.model_cfg,
        train_cfg=cur.train_cfg,
        tokens=cur.tokens,
        src_vocab=cur.src_vocab,
        tgt_vocab=cur.tgt_vocab,
        metrics=cur.metrics,
        history=cur.history,
        task=cur.task,
    )
    try:
        check_exportable(ckpt)
    except ExportError as e:
        st.caption(f"No code download for this model: {e}")
        return
    stem = re.sub(r"[^A-Za-z0-9_]", "_", cur.task or "seq2seq")[:40] + "_model"  # a task name may be anything
    st.download_button(
        "Download the code behind it (.py)",
        data=lambda: zip_bytes(ckpt, stem),
        file_name=f"{stem}.zip",
        mime="application/zip",
        icon=":material/code:",
        width="stretch",
        help=f"A zip of {stem}.py (the model, tokenizer, vocabulary, a greedy decoder and a short "
        f"training loop; needs only PyTorch and safetensors) and its weights {stem}.safetensors. "
        f'Unzip, then:  python {stem}.py "your input"',
    )


def render() -> None:
    with st.sidebar:
        msg = state.notice(where="sidebar")
        if msg:
            st.warning(msg)
        cur = state.current()
        _card(cur)
        choices = _choices()
        if choices:
            label = _label_of(cur, choices)
            if label is not None:
                st.session_state[K_PICK] = label
            elif K_PICK in st.session_state:
                del st.session_state[K_PICK]
            st.selectbox(
                "Switch model",
                list(choices),
                index=None,
                key=K_PICK,
                on_change=_on_pick,
                placeholder="Choose a model…",
                help="Shipped pretrained models, and the models you trained in this session.",
            )
        _upload()
        cur = state.current()

        def _zip(c=cur) -> bytes:
            return to_zip_bytes(
                Checkpoint(
                    model=c.model,
                    model_cfg=c.model_cfg,
                    train_cfg=c.train_cfg,
                    tokens=c.tokens,
                    src_vocab=c.src_vocab,
                    tgt_vocab=c.tgt_vocab,
                    metrics=c.metrics,
                    history=c.history,
                    task=c.task,
                    tokenizer=c.tokenizer,
                )
            )

        st.download_button(
            "Download current model (.zip)",
            data=_zip,
            file_name="seq2seq-model.zip",
            mime="application/zip",
            icon=":material/download:",
            width="stretch",
        )
        _code_download(cur)
        _share()
