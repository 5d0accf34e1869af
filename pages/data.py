"""Data page: choose a built-in task (or upload pairs), and see how text becomes the timesteps the model reads."""
import pandas as pd
import streamlit as st

from seq2seq.data import DataError, build_data, length_stats, walkthrough
from seq2seq.limits import LimitError, get_limits
from seq2seq.tasks import TASKS
from ui import figures, state, text

state.ensure_app()

limits = get_limits()
Q = dict(bind="query-params", persist_state="session")  # shareable in the URL, kept across page switches

st.title("Data: from text to timesteps")
with st.expander("What happens to the text before the model sees it?", expanded=False, icon=":material/school:"):
    st.markdown(text.DATA)

# ---------------------------------------------------------------------------------------------------- choose data
SETTINGS = state.settings()  # options and bounds shared with the links (state.seed_from_url / sync_url)


left, right = st.columns([1, 2], gap="large")
with left:
    source = st.segmented_control("Data source", state.DATA_SOURCES, default=state.DATA_SOURCES[0],
                                  key="source", required=True, **Q)
    data, desc = None, ""
    if source == "Built-in task":
        task = st.selectbox("Task", list(TASKS), index=list(TASKS).index("reverse"), key="task", **Q)
        spec = TASKS[task]
        st.caption(spec.description)
        params = {}
        cols = st.columns(2)
        for i, (name, default) in enumerate(spec.params.items()):
            key, label = f"{task}.{name}", name.replace("_", " ")
            with cols[i % 2]:
                if isinstance(default, float):
                    params[name] = st.slider(label, 0.0, 1.0, default, 0.05, key=key, **Q)
                elif isinstance(default, int):
                    lo, hi = int(SETTINGS[key].lo), int(SETTINGS[key].hi)
                    params[name] = st.number_input(label, lo, hi, default, key=key, **Q)
                else:
                    params[name] = st.text_input(label, default, max_chars=60, key=key, **Q)
        n_train = st.slider("Training examples", 100, min(spec.n_train * 2, limits.max_rows), min(spec.n_train, limits.max_rows),
                            100, key=f"{task}.n", **Q)
        tokens = st.radio("Tokens", ["char", "word"], index=["char", "word"].index(spec.tokens), key=f"{task}.tokens",
                          horizontal=True, **Q, help="One token per character, or per space-separated word.")
        max_len = st.slider("Maximum length (timesteps)", 1, limits.max_seq_len, 50, key="max_len", **Q,
                            help="Longer sources and targets are cut to this many tokens.")
        seed = st.number_input("Seed", 0, 1_000_000, 0, key="data_seed", **Q)
        try:
            data = state.task_data(task, tokens, int(max_len), int(seed), int(n_train), tuple(sorted(params.items())))
            desc = f"task: {task}"
        except (ValueError, DataError) as e:
            st.error(f"These task settings do not work: {e}")
    else:
        up = st.file_uploader("Pairs file (.tsv, .txt or .csv)", type=["tsv", "txt", "csv"], key="data_upload",
                              help="TSV/TXT: `source<TAB>target` per line, no header. CSV: a header with columns "
                                   "`source,target`.")
        tokens = st.radio("Tokens", ["char", "word"], key="up_tokens", horizontal=True, persist_state="session")
        max_len = st.slider("Maximum length (timesteps)", 1, limits.max_seq_len, 50, key="up_max_len",
                            persist_state="session")
        if up is None:
            st.info("Upload a file of (source, target) pairs, or go back to a built-in task.")
        else:
            from seq2seq.loaders import load_pairs

            try:
                pairs = load_pairs(up.getvalue(), up.name, limits)
                data = build_data(pairs, tokens=tokens, max_len=int(max_len), max_vocab=limits.max_vocab)
                desc = f"uploaded file: {up.name}"
            except (DataError, LimitError) as e:
                st.error(f"{up.name}: {e}")
            except ValueError as e:
                st.error(f"{up.name} could not be read: {e}")

if data is None:
    with right:
        st.warning("No dataset yet: fix the settings on the left. Other pages keep using the last valid dataset.")
    state.sync_url()  # st.stop() ends the whole run here, before app.py brings the URL up to date
    st.stop()

state.set_data(data, desc)
for note in data.notes:
    st.info(note)

# --------------------------------------------------------------------------------------------------- sample + stats
with right:
    c = st.columns(5)
    c[0].metric("train", f"{len(data.train):,}")
    c[1].metric("valid", f"{len(data.valid):,}")
    c[2].metric("test", f"{len(data.test):,}")
    c[3].metric("source vocab", len(data.src_vocab))
    c[4].metric("target vocab", len(data.tgt_vocab))
    st.subheader("Sample of the training pairs")
    st.dataframe(pd.DataFrame(data.train[:200], columns=["source", "target"]), height=260, hide_index=False)

# ------------------------------------------------------------------------------------------------- one example walked
st.subheader("One example, step by step")
i = st.number_input("Example number (row of the training data)", 0, len(data.train) - 1, 0, key="example",
                    persist_state="session")
src, tgt = data.train[int(i)]
w = walkthrough(data, src, tgt)
for col, side, text_, sym in zip(st.columns(2), ("src", "tgt"), (src, tgt), ("x_t", "y_t")):
    with col:
        st.markdown(f"**{'Source' if side == 'src' else 'Target'} text**")
        st.code(text_, language=None)
        st.markdown(f"**tokens {sym} → ids**")
        toks, ids = w[f"{side}_tokens"], w[f"{side}_ids"]
        st.dataframe(pd.DataFrame({"t": range(1, len(toks) + 1), "token": toks,
                                   "id": ids + [None] * (len(toks) - len(ids))}), hide_index=True, height=200)
rows = [("encoder input x_t", [r["token"] for r in w["source"]], [r["id"] for r in w["source"]]),
        ("decoder input y_{t-1}", [r["decoder input"] for r in w["target"]], [r["input id"] for r in w["target"]]),
        ("decoder target y_t", [r["target"] for r in w["target"]], [r["target id"] for r in w["target"]])]
st.markdown(f"Padded as in a batch of {w['batch_size']} examples: the encoder runs **{w['S']} timesteps**, the decoder "
            f"**{w['T']}**. Each cell shows the token and its id.")
st.plotly_chart(figures.fig_padded_example(rows), key="fig_example")
if w["truncated"]:
    st.warning(f"This example is longer than the maximum length ({data.max_len}) and was cut.")
if w["src_unknown"] or w["tgt_unknown"]:
    st.info(f"{len(w['src_unknown']) + len(w['tgt_unknown'])} token(s) of this example are not in the vocabulary "
            "(built from the training split only) and become <unk>.")

# ------------------------------------------------------------------------------------------------ lengths + vocabulary
a, b = st.columns(2)
with a:
    st.subheader("Sequence lengths")
    ls = length_stats(data)
    st.plotly_chart(figures.fig_length_hist(ls["source"], ls["target"], ls["max_len"]), key="fig_lengths")
    if ls["n_truncated"]:
        st.warning(f"Truncation cuts {ls['n_truncated']:,} of {ls['n']:,} examples ({ls['n_src_cut']:,} sources, "
                   f"{ls['n_tgt_cut']:,} targets are longer than {ls['max_len']} tokens).")
    else:
        st.success(f"No example is longer than the maximum length ({ls['max_len']}): truncation cuts nothing.")
with b:
    st.subheader("Vocabulary")
    st.caption(f"{len(data.src_vocab)} source and {len(data.tgt_vocab)} target tokens, including the 4 specials. "
               "Most frequent in the training data:")
    t1, t2 = st.tabs(["source", "target"])
    t1.plotly_chart(figures.fig_top_tokens(data.src_vocab.most_common(15), "source tokens"), key="fig_src_vocab")
    t2.plotly_chart(figures.fig_top_tokens(data.tgt_vocab.most_common(15), "target tokens", figures.OI["orange"]),
                    key="fig_tgt_vocab")
