"""Hidden states & context page: all encoder states at once, the context vector c, trajectories of many inputs in
2-D (PCA), and two inputs compared."""

import numpy as np
import streamlit as st

from seq2seq.data import DataError, check_input_text
from seq2seq.introspect import trace_encoder
from seq2seq.limits import get_limits
from ui import figures_inspect as F
from ui import text_inspect as TXT
from ui.inspect import cached, input_picker, many_inputs, plot
from ui.state import current, ensure_app, theory

ensure_app()  # run through app.py (sidebar, navigation) even on a deep link

K_LAYER, K_N, K_B = "states_layer", "states_n_inputs", "states_input_b"

st.title("Hidden states & context")
cur = current()
cfg = cur.model_cfg


def encode(tokens: list[str]):
    return cached(cur, "encoder", tuple(tokens), lambda: trace_encoder(cur.model, cur.src_vocab, tokens, cur.tokenizer))


with theory("What am I looking at?", "states"):
    st.markdown(TXT.STATES_INTRO)
    if cfg.bidirectional:
        st.markdown(
            "This encoder is **bidirectional**: each row is [h_t→ ; h_t←], forward units left of the dashed "
            "line, backward units right of it."
        )

tokens = input_picker(cur)
if tokens is None:
    st.stop()
trace = encode(tokens)
L, D, T, H = trace.h.shape

if st.session_state.get(K_LAYER) not in range(1, L + 1):
    st.session_state[K_LAYER] = L
layer = st.selectbox("Layer", list(range(1, L + 1)), key=K_LAYER, disabled=L == 1) - 1
states = np.concatenate([trace.h[layer, d] for d in range(D)], axis=1)  # (T, D*H)
xlabel = "hidden unit" + (" (forward | backward)" if D == 2 else "")
plot(
    F.states_heatmap(
        states,
        trace.tokens,
        f"All encoder states h_1..h_{T} (layer {layer + 1})",
        xlabel=xlabel,
        divider=H if D == 2 else None,
    )
)
st.markdown(TXT.CONTEXT)
plot(F.vector_strip(trace.context, "Context vector c", "c"))

# ---- trajectories of many inputs -----------------------------------------------------------------------------
st.header("Trajectories of many inputs (PCA)")
st.markdown(TXT.PCA_TEXT)
n = st.slider("Number of inputs", 10, 100, 40, step=10, key=K_N)
texts = many_inputs(cur, n)
if len(texts) < 2:
    st.info("Not enough example inputs for this model to draw trajectories (load data on the Data page).")
else:

    def fit():
        outs = [encode(toks).outputs for toks in texts.values()]
        return F.pca_fit(outs)

    mean, comps, ratio = cached(cur, "pca", (n, len(texts)), fit)
    names = list(texts)
    coords = [F.pca_project(encode(toks).outputs, mean, comps) for toks in texts.values()]
    tok_lists = [encode(toks).tokens for toks in texts.values()]
    # the current input is drawn thick on top, projected with the same PCA
    coords.append(F.pca_project(trace.outputs, mean, comps))
    tok_lists.append(trace.tokens)
    names.append(cur.tokenizer.detokenize(trace.tokens))
    plot(F.pca_trajectories_figure(coords, names, tok_lists, ratio, highlight=[len(coords) - 1]))
    st.caption(
        "The states are the encoder's top-layer outputs"
        + (" [h_t→ ; h_t←]" if D == 2 else "")
        + ". The thick black path is your input."
    )

# ---- compare two inputs -------------------------------------------------------------------------------------
st.header("Compare two inputs")
st.markdown(TXT.COMPARE_TEXT)
if st.session_state.get(K_B + "_uid") != cur.uid:
    st.session_state[K_B + "_uid"] = cur.uid
    others = [e for e in cur.examples if e != st.session_state.get("inspect_src")]
    st.session_state[K_B] = others[0] if others else ""
text_b = st.text_input("Input B (input A is the one above)", key=K_B)
try:
    tokens_b, warnings_b = check_input_text(text_b, cur.src_vocab, cur.tokenizer, get_limits().max_seq_len)
except DataError as e:
    st.error(str(e))
    st.stop()
for w in warnings_b:
    st.warning(w)
trace_b = encode(tokens_b)
sim = F.cosine(trace.context, trace_b.context)
dist = float(np.linalg.norm(trace.context - trace_b.context))
c1, c2 = st.columns(2)
c1.metric("cosine similarity of the contexts cos(c_A, c_B)", f"{sim:.3f}")
c2.metric("distance |c_A − c_B|", f"{dist:.3f}")
states_b = np.concatenate([trace_b.h[layer, d] for d in range(D)], axis=1)
plot(F.compare_heatmaps(states, trace.tokens, states_b, trace_b.tokens, ("input A", "input B")))
