"""Model page: every option of the encoder-decoder, a diagram that follows them, and what they cost in parameters."""

import streamlit as st

from seq2seq.config import ATTENTIONS, CELLS, ModelConfig
from seq2seq.limits import get_limits
from seq2seq.model import count_parameters
from ui import figures, state, text

state.ensure_app()

limits = get_limits()
Q = dict(bind="query-params", persist_state="session")
DEF = {k: s.default for k, s in state.settings().items()}  # the library's defaults (seq2seq/config.py)

st.title("Model: encoder, context vector, decoder")
with st.expander(
    "Hidden units, timesteps, layers, attention: what do they mean?", expanded=False, icon=":material/school:"
):
    st.markdown(text.MODEL)

data = state.get_data() or state.default_data()  # before the Data page ran: the task of a shared link, or reverse
data_desc = state.get_data_desc() or state.default_data_desc()
st.button(
    "Recommended settings for this data",
    icon=":material/auto_fix_high:",
    key="btn_recommend_model",
    on_click=state.apply_recommended,
    args=(data, data_desc),
    help="Fill in the model (and the Train page's settings) that the defaults benchmark found to work on data "
    "like this one, sized from this dataset, each with the reason for it.",
)
rec = state.recommended_reasons()
if rec:
    with st.expander(f"Why these settings ({rec[0]})", expanded=True, icon=":material/lightbulb:"):
        st.markdown(rec[1])
left, right = st.columns([1, 2], gap="large")
with left:
    cell = st.segmented_control(
        "Cell",
        CELLS,
        default=DEF["cell"],
        format_func=str.upper,
        key="cell",
        required=True,
        **Q,
        help="RNN: h_t = tanh(W x_t + U h_{t-1} + b). GRU and LSTM add gates that decide what "
        "to keep and what to forget, so gradients survive long inputs.",
    )
    embed = st.select_slider(
        "Embedding size E",
        state.EMBED_SIZES,
        DEF["emb"],
        key="emb",
        **Q,
        help="Each token id becomes a vector of E numbers (learned).",
    )
    hidden = st.select_slider(
        "Hidden units H",
        state.HIDDEN_SIZES,
        DEF["hidden"],
        key="hidden",
        **Q,
        help="The size of every state vector h_t and s_t: the model's memory.",
    )
    layers = st.segmented_control("Layers", [1, 2, 3], default=DEF["layers"], key="layers", required=True, **Q)
    bidirectional = st.toggle(
        "Bidirectional encoder",
        DEF["bidir"],
        key="bidir",
        **Q,
        help="A second encoder reads the input right to left; a bridge joins both final "
        "states into the decoder's start state.",
    )
    attention = st.segmented_control(
        "Attention",
        ATTENTIONS,
        default=DEF["attention"],
        key="attention",
        required=True,
        **Q,
        help="additive = Bahdanau, dot = Luong.",
    )
    dropout = st.slider(
        "Dropout (between layers)",
        0.0,
        0.5,
        DEF["dropout"],
        0.05,
        key="dropout",
        **Q,
        disabled=layers == 1,
        help="Only acts between stacked layers, so it needs 2+ layers.",
    )

cfg = ModelConfig(
    len(data.src_vocab),
    len(data.tgt_vocab),
    cell=cell,
    embed=int(embed),
    hidden=int(hidden),
    layers=int(layers),
    bidirectional=bool(bidirectional),
    attention=attention,
    dropout=float(dropout) if layers > 1 else 0.0,
)
counts = count_parameters(cfg)
total = counts.pop("total")

with right:
    st.plotly_chart(figures.fig_architecture(cfg), key="fig_arch", config={"displayModeBar": False})
    desc = state.get_data_desc() or state.default_data_desc()
    st.caption(
        f"Vocabulary sizes come from the current dataset ({desc}): "
        f"{cfg.src_vocab_size} source and {cfg.tgt_vocab_size} target tokens."
    )

a, b = st.columns([2, 1], gap="large")
with a:
    st.plotly_chart(
        figures.fig_param_counts({k: v for k, v in counts.items() if v}, limits.max_params), key="fig_params"
    )
with b:
    st.metric("Total parameters", f"{total:,}")
    over = total > limits.max_params
    if over:
        st.error(
            f"This model has {total:,} parameters, over this server's limit of {limits.max_params:,} "
            f"(SEQ2SEQ_MAX_PARAMS). Choose fewer hidden units, a smaller embedding or fewer layers."
        )
    else:
        st.success(f"Within this server's limit of {limits.max_params:,} parameters.")
    st.markdown(
        f"One input of T tokens runs **T encoder timesteps**, each producing an h_t of **{hidden * (2 if bidirectional else 1)}** "
        f"numbers per layer{' (forward and backward halves)' if bidirectional else ''}; the decoder runs one "
        f"timestep per output token with an s_t of **{hidden}** numbers."
    )
    # on_click + a flag, not `if st.button(...)`: a click survives the extra rerun of state.ensure_app()
    st.button(
        "Train this model",
        type="primary",
        icon=":material/arrow_forward:",
        disabled=over,
        key="btn_train",
        help="The Train page trains the model configured here.",
        on_click=lambda: st.session_state.update(go_train=True),
    )
    if st.session_state.pop("go_train", False):
        st.switch_page("pages/train.py", query_params={})  # {} not None: None clear()s and raises on bound params
