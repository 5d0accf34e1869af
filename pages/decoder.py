"""Decoder page: s_t = g(y_{t-1}, c, s_{t-1}), the output distribution p_t at every step, attention, decoding
strategies (greedy, sampling, beam search with its tree), teacher forcing with cross-entropy, and forcing a token."""

import numpy as np
import streamlit as st

from seq2seq.data import PAD, SOS, detokenize, tokenize
from seq2seq.decoding import beam_search
from seq2seq.introspect import trace_decoder, trace_encoder
from ui import figures_inspect as F
from ui import text_inspect as TXT
from ui.inspect import K_TEXT, cached, input_picker, plot, reference_target
from ui.state import current, ensure_app, theory

ensure_app()  # run through app.py (sidebar, navigation) even on a deep link

GREEDY, SAMPLE, BEAM = "Greedy", "Sampling", "Beam search"
FREE, FORCED = "Free-running", "Teacher-forced against a target"
K_STRAT, K_TEMP, K_TOPK, K_SEED, K_BEAM = "dec_strategy", "dec_temperature", "dec_topk", "dec_seed", "dec_beam"
K_MODE, K_TARGET, K_TARGET_FOR, K_STEP, K_SHOW = "dec_mode", "dec_target", "dec_target_for", "dec_step", "dec_show_k"
K_FORCE = "dec_force"  # (model uid, source text, step t, token) while a forced token is active

st.title("Decoder: writing the output one token at a time")
cur = current()
cfg, itos = cur.model_cfg, cur.tgt_vocab.itos
has_attention = cfg.attention != "none"

with theory("How the decoder works", "decoder"):
    st.markdown(TXT.DECODER_INTRO)
    st.markdown(TXT.ATTENTION_TEXT if has_attention else TXT.NO_ATTENTION)

tokens = input_picker(cur)
if tokens is None:
    st.stop()
src_text = st.session_state.get(K_TEXT, "")
enc = cached(cur, "encoder", tuple(tokens), lambda: trace_encoder(cur.model, cur.src_vocab, tokens, cur.tokenizer))

# ---- strategy and mode ---------------------------------------------------------------------------------------
c1, c2 = st.columns(2)
with c1:
    strategy = st.radio("Decoding strategy", [GREEDY, SAMPLE, BEAM], horizontal=True, key=K_STRAT)
with c2:
    mode = st.radio(
        "Mode",
        [FREE, FORCED],
        horizontal=True,
        key=K_MODE,
        disabled=strategy == BEAM,
        help="Beam search is always free-running.",
    )
if strategy == BEAM:
    mode = FREE
st.markdown(TXT.STRATEGY_TEXT[{GREEDY: "greedy", SAMPLE: "sample", BEAM: "beam"}[strategy]])

temperature, top_k, seed, width = 1.0, 0, 0, 3
if strategy == SAMPLE:
    s1, s2, s3 = st.columns(3)
    temperature = s1.slider("Temperature T", 0.1, 3.0, 1.0, 0.1, key=K_TEMP)
    top_k = s2.number_input("Top-k (0 = all tokens)", 0, len(itos), 0, key=K_TOPK)
    seed = s3.number_input("Seed", 0, 1_000_000, 0, key=K_SEED)
elif strategy == BEAM:
    width = st.slider("Beam width k", 1, 8, 3, key=K_BEAM)

target_tokens = None
if mode == FORCED:
    st.markdown(TXT.TEACHER_FORCING)
    if st.session_state.get(K_TARGET_FOR) != (cur.uid, src_text):  # a new input: offer its known correct output
        st.session_state[K_TARGET_FOR] = (cur.uid, src_text)
        st.session_state[K_TARGET] = reference_target(cur, src_text) or ""
    target_text = st.text_input("Target y (the correct output)", key=K_TARGET)
    target_tokens = tokenize(target_text, cur.tokenizer)
    if not target_tokens:
        st.error("Type a target to score the model against (the correct output for this input).")
        st.stop()
    unknown = [t for t in target_tokens if t not in cur.tgt_vocab.stoi]
    if unknown:
        st.warning(f"{len(unknown)} target token(s) are not in the model's output vocabulary and count as <unk>.")

# ---- forcing a token ------------------------------------------------------------------------------------------
force = st.session_state.get(K_FORCE)
if force is not None and force[:2] != (cur.uid, src_text):
    force = st.session_state[K_FORCE] = None
force_dict = {force[2]: force[3]} if force is not None and strategy != BEAM else None


def run(force_: dict | None):
    key = (
        tuple(tokens),
        strategy,
        temperature,
        top_k,
        seed,
        tuple(target_tokens or ()),
        tuple(sorted((force_ or {}).items())),
    )
    return cached(
        cur,
        "decoder",
        key,
        lambda: trace_decoder(
            cur.model,
            enc,
            cur.tgt_vocab,
            strategy="sample" if strategy == SAMPLE else "greedy",
            temperature=temperature,
            top_k=int(top_k),
            seed=int(seed),
            target=target_tokens,
            teacher_forced=mode == FORCED,
            force=force_,
        ),
    )


beam = None
if strategy == BEAM:
    beam = cached(
        cur,
        "beam",
        (tuple(tokens), width),
        lambda: beam_search(cur.model, enc.ids, width, max_len=2 * len(enc.ids) + 10),
    )
    best = [itos[i] for i in beam.best]
    # step through the best hypothesis: feed it back as the "target" to see p_t and attention along its path
    trace = cached(
        cur,
        "decoder",
        (tuple(tokens), "beam-path", tuple(best)),
        lambda: trace_decoder(cur.model, enc, cur.tgt_vocab, target=best, teacher_forced=True),
    )
    before = None
else:
    trace = run(force_dict)
    before = run(None) if force_dict else None

# ---- the output ------------------------------------------------------------------------------------------------
out_tokens = trace.output_tokens if strategy != BEAM else best
st.subheader("Output y")
st.code(detokenize(out_tokens, cur.tokenizer) or "(empty: the first token was <eos>)", language=None)
if mode == FORCED:
    m1, m2 = st.columns(2)
    m1.metric("loss: mean cross-entropy", f"{trace.loss:.3g}")  # 3 significant digits: a confident model is near 0
    n_right = sum(int(np.argmax(s.probs)) == s.target_id for s in trace.steps)
    m2.metric("steps where the model's top choice = target", f"{n_right} / {len(trace.steps)}")

if strategy == BEAM:
    plot(
        F.beam_tree_figure(beam.tree, itos, best_ids=F.beam_best_path(beam.tree, beam.best), max_pruned_per_step=width)
    )
    st.caption(
        f"Showing every kept node and at most {width} pruned candidates per step. Scores are total "
        "log-probabilities (higher is better); the final ranking divides by the length."
    )
    st.dataframe(
        {
            "hypothesis": [detokenize([itos[i] for i in ids], cur.tokenizer) for ids, _ in beam.hypotheses],
            "score (mean log p per token)": [round(sc, 4) for _, sc in beam.hypotheses],
        },
        hide_index=True,
    )
elif force_dict:
    t_f, tok_f = force[2], force[3]
    plot(F.force_compare_figure([s.chosen_token for s in before.steps], [s.chosen_token for s in trace.steps], t_f - 1))
    changed = sum(a.chosen_token != b.chosen_token for a, b in zip(before.steps[t_f:], trace.steps[t_f:]))
    changed += abs(len(before.steps) - len(trace.steps))
    st.info(f"Forced y_{t_f} = {tok_f!r}. {changed} later step(s) changed.")

if strategy != BEAM:
    with st.expander("Force a token at step t", expanded=force_dict is not None):
        st.markdown(TXT.FORCE_TEXT)
        base = before or trace
        f1, f2, f3, f4 = st.columns([1, 2, 1, 1], vertical_alignment="bottom")
        t_pick = f1.number_input("Step t", 1, len(base.steps), min(2, len(base.steps)), key="dec_force_t")
        st_pick = base.steps[t_pick - 1]
        options = [t for t in itos if t not in (PAD, SOS)]
        runner_up = next(
            (itos[i] for i in np.argsort(-st_pick.probs) if itos[i] in options and i != st_pick.chosen_id), options[0]
        )
        tok_pick = f2.selectbox(
            f"Token y_{t_pick} (default: the runner-up at step {t_pick})", options, index=options.index(runner_up)
        )
        if f3.button("Force it", type="primary", key="dec_force_go"):
            st.session_state[K_FORCE] = (cur.uid, src_text, int(t_pick), tok_pick)
            st.rerun()
        if f4.button("Clear", disabled=force_dict is None, key="dec_force_clear"):
            st.session_state[K_FORCE] = None
            st.rerun()

# ---- step by step ------------------------------------------------------------------------------------------------
st.header("Step by step")
n_steps = len(trace.steps)
if st.session_state.get(K_STEP, 1) > n_steps:
    st.session_state[K_STEP] = n_steps
if n_steps > 1:
    t = st.slider("Output step t", 1, n_steps, key=K_STEP)
else:
    t = 1
step = trace.steps[t - 1]
what = (
    "forced"
    if step.forced
    else ("sampled" if strategy == SAMPLE else "top choice" if strategy == GREEDY else "beam's choice")
)
if mode == FORCED or strategy == BEAM:
    line = (
        f"Step {t}: input y_{t - 1} = {step.input_token!r} → target y_{t} = {step.target_token!r}; "
        f"model's top choice {itos[int(np.argmax(step.probs))]!r}"
    )
    if mode == FORCED:
        line += f"; cross-entropy −log p = {step.cross_entropy:.3g}"
else:
    line = f"Step {t}: input y_{t - 1} = {step.input_token!r} → output y_{t} = {step.chosen_token!r} ({what})"
st.subheader(line)

show_k = st.slider("Tokens shown in the distribution", 3, min(30, len(itos)), min(10, len(itos)), key=K_SHOW)
cl, cr = st.columns(2)
with cl:
    chosen_id = step.chosen_id if mode == FREE and strategy != BEAM else int(np.argmax(step.probs))
    plot(
        F.topk_figure(
            step.probs,
            itos,
            chosen_id,
            show_k,
            step.target_id if mode == FORCED or strategy == BEAM else None,
            title=f"Output distribution p_{t}",
        )
    )
    if step.sample_probs is not None:
        plot(
            F.topk_figure(
                step.sample_probs,
                itos,
                step.chosen_id,
                show_k,
                title=f"Distribution sampled from (T = {temperature}, top-k = {top_k or 'all'})",
            )
        )
with cr:
    if has_attention and step.attention is not None:
        plot(F.attention_bar(step.attention, enc.tokens, f"Attention a_{t} over the source"))
    else:
        st.info(
            "No attention in this model: at every step the decoder sees the same context vector c, never the "
            "individual encoder states h_1..h_T."
        )
    plot(F.vector_strip(step.s[-1], f"Decoder state s_{t} (top layer)", "s_t"))

# ---- all steps -------------------------------------------------------------------------------------------------
row_tokens = [s.chosen_token if mode == FREE and strategy != BEAM else s.target_token for s in trace.steps]
A = trace.attention_matrix()
if A is not None:
    plot(
        F.attention_matrix_figure(
            A,
            enc.tokens,
            row_tokens,
            highlight=t - 1,
            title="Attention over all steps (rows: output tokens, columns: source tokens)",
        )
    )
if mode == FORCED:
    plot(
        F.cross_entropy_figure(
            [s.cross_entropy for s in trace.steps],
            [s.target_token for s in trace.steps],
            [itos[int(np.argmax(s.probs))] for s in trace.steps],
            highlight=t - 1,
        )
    )
