"""Shared Streamlit helpers of the three inspection pages (Encoder, Hidden states & context, Decoder).

* input_picker: the source text (typed, or picked from the model's examples), validated with clear messages;
  one shared value across the three pages, so the decoder decodes what the encoder page just stepped through;
* cached: a small per-session cache keyed by (current model, what was computed), so moving a slider never
  recomputes a trace: a rerun only builds the figures for the visible step;
* plot: st.plotly_chart with the app's settings.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import streamlit as st

from seq2seq.data import DataError, check_input_text
from seq2seq.limits import get_limits
from ui.state import Current

K_SRC = "inspect_src"  # the text box's widget key (Streamlit drops a widget's state when its page is left)
K_TEXT = "inspect_text"  # the source text shared by the three pages: plain session state, survives page switches
K_EXAMPLE = "inspect_example"
K_SRC_UID = "inspect_src_uid"  # model uid the source text was chosen for
K_CACHE = "inspect_cache"
CACHE_SIZE = 48


def cached(cur: Current, kind: str, key, fn: Callable):
    """fn() computed once per (current model, kind, key) in this session; the oldest entries are dropped."""
    cache: OrderedDict = st.session_state.setdefault(K_CACHE, OrderedDict())
    k = (cur.uid, kind, key)
    if k in cache:
        cache.move_to_end(k)
        return cache[k]
    value = fn()
    cache[k] = value
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return value


def _use_example() -> None:
    ex = st.session_state.get(K_EXAMPLE)
    if ex is not None:
        st.session_state[K_TEXT] = ex


def _typed() -> None:
    st.session_state[K_TEXT] = st.session_state[K_SRC]


def input_picker(cur: Current, label: str = "Input sequence x") -> list[str] | None:
    """Text box + example picker. Returns the validated source tokens, or None (after showing why) when the text
    cannot be used. Warnings (unknown tokens) are shown but do not block."""
    examples = cur.examples
    if st.session_state.get(K_SRC_UID) != cur.uid:  # a new model: start from one of its examples
        st.session_state[K_SRC_UID] = cur.uid
        st.session_state[K_TEXT] = examples[0] if examples else ""
        st.session_state.pop(K_EXAMPLE, None)
    mode = {
        "char": "characters",
        "word": "words and punctuation marks",
        "subword": "subword pieces (learned by byte-pair encoding)",
    }.get(cur.tokens, cur.tokens)
    c1, c2 = st.columns([3, 2])
    with c1:
        st.session_state[K_SRC] = st.session_state.get(K_TEXT, "")  # the box shows the shared text on every page
        text = st.text_input(
            label, key=K_SRC, on_change=_typed, help=f"Tokens are {mode}. Pick an example or type your own."
        )
    with c2:
        if examples:
            st.selectbox(
                "…or pick an example",
                examples,
                index=None,
                key=K_EXAMPLE,
                on_change=_use_example,
                placeholder="choose an example input",
            )
    try:
        tokens, warnings = check_input_text(text, cur.src_vocab, cur.tokenizer, get_limits().max_seq_len)
    except DataError as e:
        st.error(str(e))
        return None
    for w in warnings:
        st.warning(w)
    return tokens


def plot(fig, key: str | None = None) -> None:
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})


@st.cache_data(show_spinner=False, max_entries=32)
def _task_pairs(task: str, n: int, seed: int) -> list[tuple[str, str]]:
    from seq2seq.tasks import generate_splits

    return list(generate_splits(task, n_train=1, n_valid=0, n_test=n, seed=seed)["test"])


def _session_pairs(cur: Current) -> list[tuple[str, str]]:
    """Pairs of the session's data (Data page) when its vocabulary is the model's, else of the model's task."""
    from ui.state import get_data

    data = get_data()
    if data is not None and data.src_vocab.itos == cur.src_vocab.itos:
        return list(data.test) + list(data.valid) + list(data.train)
    if cur.task:
        try:
            return _task_pairs(cur.task, 100, 4321)
        except Exception:  # an uploaded checkpoint naming a task this version does not know
            return []
    return []


def many_inputs(cur: Current, n: int) -> dict[str, list[str]]:
    """Up to n distinct valid source texts -> their tokens (for the PCA trajectories)."""
    max_len = get_limits().max_seq_len
    out: dict[str, list[str]] = {}
    for text in list(cur.examples) + [s for s, _ in _session_pairs(cur)]:
        if len(out) >= n:
            break
        if text in out:
            continue
        try:
            tokens, _ = check_input_text(text, cur.src_vocab, cur.tokenizer, max_len)
        except DataError:
            continue
        out[text] = tokens
    return out


def reference_target(cur: Current, src: str) -> str | None:
    """The correct output for `src` when we know it: from the session's data or the task's examples, or computed
    for the rule-based tasks (copy, reverse, sort, addition). None otherwise."""
    for s, t in _session_pairs(cur):
        if s == src:
            return t
    if cur.task in ("copy", "reverse", "sort", "addition"):
        if cur.task == "copy":
            return src
        if cur.task == "reverse":
            return src[::-1]
        if cur.task == "sort":
            return "".join(sorted(src))
        a, plus, b = src.partition("+")
        if plus and a.isdigit() and b.isdigit():
            return str(int(a) + int(b))
    return None
