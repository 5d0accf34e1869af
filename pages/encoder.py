"""Encoder page: step through the encoder one timestep at a time, h_t = f(x_t, h_{t-1})."""

import streamlit as st

from seq2seq.introspect import trace_encoder
from ui import figures_inspect as F
from ui import text_inspect as TXT
from ui.inspect import cached, input_picker, plot
from ui.state import current, ensure_app, theory

ensure_app()  # run through app.py (sidebar, navigation) even on a deep link

K_STEP, K_LAYER, K_PLAY = "enc_step", "enc_layer", "enc_play"

st.title("Encoder: reading the input one timestep at a time")
cur = current()
cfg = cur.model_cfg

with theory("How the encoder works", "encoder"):
    st.markdown(TXT.ENCODER_INTRO)
    st.markdown(TXT.CELL_TEXT[cfg.cell])
    if cfg.bidirectional:
        st.markdown(TXT.BIDIRECTIONAL)
    if cfg.layers > 1:
        st.markdown(TXT.LAYERS)

tokens = input_picker(cur)
if tokens is None:
    st.stop()
trace = cached(cur, "encoder", tuple(tokens), lambda: trace_encoder(cur.model, cur.src_vocab, tokens, cur.tokenizer))
L, D, T, H = trace.h.shape

# ---- controls: layer, step slider, back / forward buttons, play ------------------------------------------------
if st.session_state.get(K_LAYER) not in range(1, L + 1):  # another model with fewer layers: top layer
    st.session_state[K_LAYER] = L
if st.session_state.get(K_STEP, 1) > T:  # a shorter input than before: stay inside it
    st.session_state[K_STEP] = T


def _move(delta: int) -> None:
    st.session_state[K_STEP] = min(T, max(1, st.session_state.get(K_STEP, 1) + delta))


c_layer, c_back, c_slider, c_fwd = st.columns([2, 1, 7, 1], vertical_alignment="bottom")
with c_layer:
    layer = (
        st.selectbox(
            "Layer",
            list(range(1, L + 1)),
            key=K_LAYER,
            disabled=L == 1,
            help="Layer 1 reads the embeddings; each higher layer reads the states of the one below.",
        )
        - 1
    )
with c_back:
    st.button(
        "◀",
        help="Step back one token",
        on_click=_move,
        args=(-1,),
        disabled=st.session_state.get(K_STEP, 1) <= 1,
        width="stretch",
        key="enc_back",
    )
with c_fwd:
    st.button(
        "▶",
        help="Step forward one token",
        on_click=_move,
        args=(1,),
        disabled=st.session_state.get(K_STEP, 1) >= T,
        width="stretch",
        key="enc_fwd",
    )
with c_slider:
    k = (
        st.slider(
            "Reading step",
            1,
            max(T, 2),
            key=K_STEP,
            disabled=T == 1,
            help="How many tokens the encoder has read so far.",
        )
        if T > 1
        else 1
    )
k = min(k, T)
play = st.toggle("▶ Play the whole run as an animation (runs in your browser)", key=K_PLAY)

if play:
    plot(F.encoder_animation(trace, layer, start=k))

# ---- what is read at this step -------------------------------------------------------------------------------
at = [k - 1] + ([T - k] if D == 2 else [])
plot(
    F.token_strip(
        trace.tokens,
        at,
        "Input tokens (blue: forward reads this one" + ("; orange: backward reads this one)" if D == 2 else ")"),
    )
)
if cur.tokens in ("word", "subword"):
    from seq2seq.tokens import words_of
    from ui.text import md_escape

    groups = words_of(trace.tokens)
    if cur.tokens == "subword" and any(len(idx) > 1 for _, idx in groups):
        st.caption(
            "Subword pieces joined back into words (`##` = glued to the piece before): "
            + "   ".join(
                md_escape(f"{w} = {' + '.join(trace.tokens[i] for i in idx)}" if len(idx) > 1 else w)
                for w, idx in groups
            )
        )
    else:
        st.caption(
            "`##` marks a token written right after the previous one (no space): the input reads "
            f"“{md_escape(cur.tokenizer.detokenize(trace.tokens))}”."
        )

dirs = ["forward (left → right)", "backward (right → left)"][:D]
cols = st.columns(D)
for d, col in enumerate(dirs):
    t = at[d]
    with cols[d]:
        st.subheader(
            f"{col.capitalize()}: x_{t + 1} = {trace.tokens[t]!r}"
            if D == 2
            else f"Step {k}: reading x_{t + 1} = {trace.tokens[t]!r}"
        )
        if layer == 0:
            plot(
                F.vector_strip(
                    trace.embeddings[t],
                    f"Embedding of x_{t + 1} (E = {trace.embeddings.shape[1]})",
                    "x_t",
                    xlabel="embedding dimension",
                ),
                key=f"enc_embedding_{d}",
            )
        else:
            st.caption(f"Layer {layer + 1} reads layer {layer}'s state at t={t + 1} as its input x_t.")
        plot(F.encoder_step_figure(trace, layer, d, t))

# ---- all states so far, and the context at the end -------------------------------------------------------------
so_far, _ = F.states_so_far(trace, layer, k)
plot(
    F.states_heatmap(
        so_far,
        trace.tokens,
        f"Hidden states after {k} of {T} steps (layer {layer + 1})",
        zrange=F._signed_range(trace.h[layer]),
        highlight=k - 1,
        xlabel="hidden unit" + (" (forward | backward)" if D == 2 else ""),
        divider=H if D == 2 else None,
    )
)

if k == T:
    st.success("The encoder has read the whole input. Its summary goes to the decoder:")
    st.markdown(TXT.CONTEXT)
    plot(F.vector_strip(trace.context, "Context vector c (what the decoder starts from)", "c"))
else:
    st.caption(f"The context vector c appears after the last step ({T - k} more).")
