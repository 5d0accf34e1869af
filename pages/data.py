"""Data page: choose a built-in task (or upload pairs), and see how text becomes the timesteps the model reads."""

import pandas as pd
import streamlit as st

from seq2seq.data import DEDUP, DataError, build_data, compare_tokenizations, length_stats, walkthrough
from seq2seq.limits import LimitError, get_limits
from seq2seq.tasks import TASKS
from seq2seq.tokens import words_of
from ui import figures, state, text

state.ensure_app()

limits = get_limits()
Q = dict(bind="query-params", persist_state="session")  # shareable in the URL, kept across page switches

st.title("Data: from text to timesteps")
with st.expander("What happens to the text before the model sees it?", expanded=False, icon=":material/school:"):
    st.markdown(text.DATA)

# ---------------------------------------------------------------------------------------------------- choose data
SETTINGS = state.settings()  # options and bounds shared with the links (state.seed_from_url / sync_url)
TOKENS_HELP = (
    "char: one token per character. word: words and punctuation marks (Tom's here! -> Tom ##' ##s here "
    "##!; ## = written right after the previous token, so the text comes back as typed). subword: words "
    "cut into pieces learned by byte-pair encoding on the training split (frequent words whole, rare ones "
    "in pieces)."
)
DEDUP_LABELS = {
    "pairs": "repeated pairs only (keep every target of a source)",
    "source": "all but the first target of each source",
    "none": "nothing",
}


def token_options() -> tuple[str, bool, int]:
    """The uploaded file's tokenization widgets: tokens, lowercase, subword vocabulary size."""
    tokens = st.radio(
        "Tokens", state.TOKEN_CHOICES, key="up_tokens", horizontal=True, help=TOKENS_HELP, persist_state="session"
    )
    c1, c2 = st.columns(2)
    lower = c1.checkbox(
        "Lowercase",
        key="up_lowercase",
        persist_state="session",
        help="Lowercase the text before "
        "cutting it: fewer distinct tokens (Tom and tom are one), but the model writes lowercase.",
    )
    vocab = c2.number_input(
        "Subword vocabulary",
        30,
        limits.max_vocab,
        state.DEFAULT_VOCAB_SIZE,
        100,
        key="up_vocab_size",
        disabled=tokens != "subword",
        persist_state="session",
        help="Pieces the byte-pair encoding learns (subword tokens only).",
    )
    return tokens, bool(lower), int(vocab)


left, right = st.columns([1, 2], gap="large")
with left:
    source = st.segmented_control(
        "Data source", state.DATA_SOURCES, default=state.DATA_SOURCES[0], key="source", required=True, **Q
    )
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
        n_train = st.slider(
            "Training examples",
            100,
            min(spec.n_train * 2, limits.max_rows),
            min(spec.n_train, limits.max_rows),
            100,
            key=f"{task}.n",
            **Q,
        )
        if spec.license:
            st.caption(f"Data: {spec.license}")
        tokens = st.radio(
            "Tokens",
            state.TOKEN_CHOICES,
            index=state.TOKEN_CHOICES.index(spec.tokens),
            key=f"{task}.tokens",
            horizontal=True,
            **Q,
            help=TOKENS_HELP,
        )
        c1, c2 = st.columns(2)
        lowercase = c1.checkbox(
            "Lowercase",
            key="lowercase",
            **Q,
            help="Lowercase the text before cutting it: "
            "fewer distinct tokens (Tom and tom are one), but the model writes lowercase.",
        )
        vocab_size = c2.number_input(
            "Subword vocabulary",
            30,
            limits.max_vocab,
            state.DEFAULT_VOCAB_SIZE,
            100,
            key="vocab_size",
            disabled=tokens != "subword",
            **Q,
            help="Pieces the byte-pair encoding learns (subword tokens only).",
        )
        max_len = st.slider(
            "Maximum length (timesteps)",
            1,
            limits.max_seq_len,
            50,
            key="max_len",
            **Q,
            help="Longer sources and targets are cut to this many tokens.",
        )
        seed = st.number_input("Seed", 0, 1_000_000, 0, key="data_seed", **Q)
        try:
            data = state.task_data(
                task,
                tokens,
                int(max_len),
                int(seed),
                int(n_train),
                tuple(sorted(params.items())),
                bool(lowercase),
                int(vocab_size),
            )
            desc = f"task: {task}"
        except (ValueError, DataError) as e:
            st.error(f"These task settings do not work: {e}")
    else:
        up = st.file_uploader(
            "Pairs file (.tsv, .txt or .csv)",
            type=["tsv", "txt", "csv"],
            key="data_upload",
            help="TSV/TXT: `source<TAB>target` per line, no header; more columns are fine (pick "
            "two below). CSV: a header line naming the columns.",
        )
        table = None
        if up is not None:
            from seq2seq.loaders import load_pairs, read_table

            try:
                table = read_table(up.getvalue(), up.name, limits)
            except (DataError, LimitError) as e:
                st.error(f"{up.name}: {e}")
        columns = None
        if table is not None:
            names, first_rows = table
            st.markdown("**Columns** (the first rows of the file)")
            st.dataframe(
                pd.DataFrame(first_rows, columns=[n if n.strip() else f"({i + 1})" for i, n in enumerate(names)]),
                hide_index=True,
                key="up_preview",
            )
            lower_names = [n.strip().lower() for n in names]
            d_src = lower_names.index("source") if "source" in lower_names else 0
            d_tgt = lower_names.index("target") if "target" in lower_names else min(1, len(names) - 1)
            tsv = names == [str(i + 1) for i in range(len(names))]
            fmt = (lambda n: f"column {n}") if tsv else str
            c1, c2 = st.columns(2)
            src_col = c1.selectbox("Source column", names, index=d_src, key="up_src_col", format_func=fmt)
            tgt_col = c2.selectbox("Target column", names, index=d_tgt, key="up_tgt_col", format_func=fmt)
            columns = (src_col, tgt_col)
        dedup = st.radio(
            "Remove duplicates",
            DEDUP,
            key="up_dedup",
            format_func=DEDUP_LABELS.get,
            persist_state="session",
            help="Several correct targets for one source (translations) are "
            "kept by default: training sees them all, and evaluation counts an output as right if it "
            "matches any of them.",
        )
        tokens, lowercase, vocab_size = token_options()
        max_len = st.slider(
            "Maximum length (timesteps)", 1, limits.max_seq_len, 50, key="up_max_len", persist_state="session"
        )
        if up is None:
            st.info("Upload a file of (source, target) pairs, or go back to a built-in task.")
        elif table is not None:
            try:
                pairs = load_pairs(up.getvalue(), up.name, limits, columns=columns)
                data = build_data(
                    pairs,
                    tokens=tokens,
                    max_len=int(max_len),
                    max_vocab=limits.max_vocab,
                    lowercase=lowercase,
                    vocab_size=vocab_size if tokens == "subword" else None,
                    dedup=dedup,
                )
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
i = st.number_input(
    "Example number (row of the training data)", 0, len(data.train) - 1, 0, key="example", persist_state="session"
)
src, tgt = data.train[int(i)]
w = walkthrough(data, src, tgt)
for col, side, text_, sym in zip(st.columns(2), ("src", "tgt"), (src, tgt), ("x_t", "y_t")):
    with col:
        st.markdown(f"**{'Source' if side == 'src' else 'Target'} text**")
        st.code(text_, language=None)
        st.markdown(f"**tokens {sym} → ids**")
        toks, ids = w[f"{side}_tokens"], w[f"{side}_ids"]
        st.dataframe(
            pd.DataFrame({"t": range(1, len(toks) + 1), "token": toks, "id": ids + [None] * (len(toks) - len(ids))}),
            hide_index=True,
            height=200,
        )
rows = [
    ("encoder input x_t", [r["token"] for r in w["source"]], [r["id"] for r in w["source"]]),
    ("decoder input y_{t-1}", [r["decoder input"] for r in w["target"]], [r["input id"] for r in w["target"]]),
    ("decoder target y_t", [r["target"] for r in w["target"]], [r["target id"] for r in w["target"]]),
]
st.markdown(
    f"Padded as in a batch of {w['batch_size']} examples: the encoder runs **{w['S']} timesteps**, the decoder "
    f"**{w['T']}**. Each cell shows the token and its id."
)
st.plotly_chart(figures.fig_padded_example(rows), key="fig_example")
if w["truncated"]:
    st.warning(f"This example is longer than the maximum length ({data.max_len}) and was cut.")
if w["src_unknown"] or w["tgt_unknown"]:
    st.info(
        f"{len(w['src_unknown']) + len(w['tgt_unknown'])} token(s) of this example are not in the vocabulary "
        "(built from the training split only) and become <unk>."
    )


# ------------------------------------------------------------------------------------------ tokenizations compared
@st.cache_resource(show_spinner="Comparing tokenizations (learning the subword pieces)…", max_entries=16)
def _compare(key: tuple, _data, example: str, vocab_size: int, lowercase: bool) -> list[dict]:
    return compare_tokenizations(_data, example, vocab_size, lowercase)


st.subheader("How each tokenization cuts this example")
lc, vs = data.tokenizer.lowercase, data.tokenizer.vocab_size or state.DEFAULT_VOCAB_SIZE
fingerprint = (desc, len(data.train), tuple(data.train[:5]), tuple(data.valid[:5]), vs, lc)
cmp_rows = _compare(fingerprint, data, src, vs, lc)
st.dataframe(
    pd.DataFrame(
        [
            {
                "tokens": r["tokens"] + (" (this data)" if r["tokens"] == data.tokens else ""),
                "the source cut into tokens": "  ·  ".join(r["example"]),
                "count": len(r["example"]),
                "source / target vocabulary": f"{r['source vocab']:,} / {r['target vocab']:,}",
                "held-out coverage": f"{r['coverage']:.1%}",
                "tokens per sentence": round(r["tokens per sentence"], 1),
            }
            for r in cmp_rows
        ]
    ),
    hide_index=True,
    key="tok_compare",
)
st.caption(
    "Vocabularies are built from the training split; coverage is the share of the validation and test tokens "
    "they contain (the rest become <unk>). `##` marks a token written right after the previous one, with no "
    f"space, so every tokenization joins back into the text as it was typed. Subwords: {vs:,} pieces learned "
    "by byte-pair encoding on the training split."
)
if data.tokens == "subword":
    pieces = w["src_tokens"]
    st.caption(
        "This example's pieces joined back into words: "
        + "   ".join(
            text.md_escape(f"{word} = {' + '.join(pieces[i] for i in idx)}" if len(idx) > 1 else word)
            for word, idx in words_of(pieces)
        )
    )

# ------------------------------------------------------------------------------------------------ lengths + vocabulary
a, b = st.columns(2)
with a:
    st.subheader("Sequence lengths")
    ls = length_stats(data)
    st.plotly_chart(figures.fig_length_hist(ls["source"], ls["target"], ls["max_len"]), key="fig_lengths")
    if ls["n_truncated"]:
        st.warning(
            f"Truncation cuts {ls['n_truncated']:,} of {ls['n']:,} examples ({ls['n_src_cut']:,} sources, "
            f"{ls['n_tgt_cut']:,} targets are longer than {ls['max_len']} tokens)."
        )
    else:
        st.success(f"No example is longer than the maximum length ({ls['max_len']}): truncation cuts nothing.")
with b:
    st.subheader("Vocabulary")
    st.caption(
        f"{len(data.src_vocab)} source and {len(data.tgt_vocab)} target tokens, including the 4 specials. "
        "Most frequent in the training data:"
    )
    t1, t2 = st.tabs(["source", "target"])
    t1.plotly_chart(figures.fig_top_tokens(data.src_vocab.most_common(15), "source tokens"), key="fig_src_vocab")
    t2.plotly_chart(
        figures.fig_top_tokens(data.tgt_vocab.most_common(15), "target tokens", figures.OI["orange"]),
        key="fig_tgt_vocab",
    )
