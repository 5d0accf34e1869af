"""Step-by-step introspection: every gate and state of one input, recomputed BY HAND from the model's own weights.

The fused nn.RNN / nn.GRU / nn.LSTM modules only return the top layer's outputs and the final states. To show a
student what happens inside, we redo the computation one timestep at a time with the very same parameters
(`weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`, and `..._reverse` for the backward direction),
using PyTorch's formulas (gate blocks stacked in this order inside each weight matrix):

  RNN   h_t = tanh(pre_t),  pre_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
  GRU   r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)            reset gate
        z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)            update gate
        n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))         candidate state
        h_t = (1 - z) * n + z * h_{t-1}
  LSTM  i, f, o = sigmoid(...), g = tanh(...)   (each W_i* x_t + b_i* + W_h* h_{t-1} + b_h*)
        c_t = f * c_{t-1} + i * g ;  h_t = o * tanh(c_t)

A test checks that all of it equals the fused forward pass to within 1e-5, for every cell x layers x direction x
attention combination. The model is put in eval mode for the trace (no dropout) and restored afterwards.
Both directions of a bidirectional layer run in the same Python loop iteration (forward at t, backward at T+1-t),
so a trace costs one small batched matrix product per layer and timestep.

The arithmetic runs in NumPy, on the parameters' own float32 values (`_np`: a view of each weight tensor, no copy).
For ONE input every operation is a vector of a few hundred numbers, and what it costs is the call itself: about
1 us in NumPy against about 4 us for a PyTorch operation. Measured here (`python benchmarks/bench_introspection.py`,
a 50-token input, 256 hidden units, encoder + 50 teacher-forced decoder steps, the same machine and hour): one
bidirectional LSTM layer 18.5-19.2 ms with the same loops in PyTorch, 8.8-9.3 ms in NumPy; with dot attention
20.6-27.9 -> 9.3-12.2 ms; a unidirectional GRU 14.2 -> 3.6-4.5 ms. What is left is mostly reading the weights: at
H = 256 an LSTM's W_hh is 1 MB, read once per timestep and direction, and this core's L2 cache holds 1 MB.
Whole-sequence products (many rows at once) go through `_mm`. Only sampling a token goes back to PyTorch
(`sampling_probs`, torch.multinomial with the seeded generator), so a seeded sample draws what `decoding.sample` draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .data import tokenize
from .decoding import _eval, sampling_probs
from .model import EOS_ID, N_GATES, SOS_ID, Seq2Seq

GATE_NAMES = {"rnn": ("pre",), "gru": ("r", "z", "n"), "lstm": ("i", "f", "g", "o")}


@dataclass
class EncoderTrace:
    tokens: list[str]  # source tokens x_1..x_T as typed (no specials)
    ids: list[int]  # their ids (unknown tokens -> <unk>)
    embeddings: np.ndarray  # (T, E)
    h: np.ndarray  # (L, D, T, H) hidden states per layer / direction / timestep (backward also indexed by t)
    c: np.ndarray | None  # (L, D, T, H) LSTM memory cells c_t
    gates: dict[str, np.ndarray]  # GRU r, z, n; LSTM i, f, g, o (after their nonlinearity); RNN "pre"; (L, D, T, H)
    outputs: np.ndarray  # (T, D*H) top layer, [forward; backward]
    s0: np.ndarray  # (L, H) decoder initial state after the bridge
    context: np.ndarray  # (H,) context vector c = top layer of s0
    cell0: np.ndarray | None = None  # (L, H) LSTM decoder initial memory cell (bridged)
    keys: np.ndarray | None = None  # (T, H) attention keys k_j (None without attention)
    tokens_mode: str = "char"
    cell_type: str = "lstm"


@dataclass
class DecoderStep:
    t: int  # step 1.. (produces y_t; s_t is the state after reading y_{t-1})
    input_token: str  # y_{t-1} (<sos> at t = 1)
    input_id: int
    s: np.ndarray  # (L, H) decoder state s_t per layer
    cell: np.ndarray | None  # (L, H) LSTM memory cell
    attention: np.ndarray | None  # (S,) a_t over source positions
    logits: np.ndarray  # (V,)
    probs: np.ndarray  # (V,) softmax(logits): the model's distribution p_t (cross-entropy uses this)
    chosen_id: int
    chosen_token: str
    target_id: int | None
    target_token: str | None
    cross_entropy: float | None  # -log p_t(target)
    forced: bool  # the chosen token was forced by the user
    gates: dict[str, np.ndarray] = field(default_factory=dict)  # (L, H) each, same names as the encoder
    attn_context: np.ndarray | None = None  # (H,) ctx_t = sum_j a_tj k_j
    sample_probs: np.ndarray | None = None  # (V,) the distribution actually sampled from (temperature, top-k)


@dataclass
class DecoderTrace:
    steps: list[DecoderStep]
    output_tokens: list[str]  # chosen tokens up to (not including) <eos>, as Vocab.decode gives them
    mode: str  # "greedy" | "sample" | "teacher_forced"
    tgt_vocab: object = None

    def attention_matrix(self) -> np.ndarray | None:
        """(T_out, S) attention weights, one row per output step, or None without attention."""
        if not self.steps or self.steps[0].attention is None:
            return None
        return np.stack([st.attention for st in self.steps])

    @property
    def loss(self) -> float | None:
        """Mean per-token cross-entropy over the steps that have a target (None when no target was given)."""
        ce = [st.cross_entropy for st in self.steps if st.cross_entropy is not None]
        return float(np.mean(ce)) if ce else None


def _np(p: torch.Tensor) -> np.ndarray:
    """A parameter's values as a NumPy array: a view of the same memory, no copy."""
    return p.detach().numpy()


def _weights(rnn, layer: int, D: int) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray], np.ndarray]:
    """Per direction, as the fused module stores them (views, no copy): W_ih (GH, n_in) and W_hh (GH, H) as lists of
    D matrices, b_ih and b_hh stacked (D, GH)."""
    sfx = ["", "_reverse"][:D]
    get = lambda name: [_np(getattr(rnn, f"{name}_l{layer}{s}")) for s in sfx]  # noqa: E731
    return get("weight_ih"), np.stack(get("bias_ih")), get("weight_hh"), np.stack(get("bias_hh"))


def sigmoid(a: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-a)), written as 0.5 tanh(a / 2) + 0.5: the same function, and it cannot overflow."""
    out = np.multiply(a, 0.5)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def cell_step(cell: str, xw: np.ndarray, h: np.ndarray, c: np.ndarray | None, W_hh: list[np.ndarray], b_hh: np.ndarray):
    """One step of `cell` for a stack of independent rows (directions, or one layer).

    xw = W_ih x_t + b_ih (N, G*H) already computed; h, c (N, H); W_hh: N matrices (G*H, H); b_hh (N, G*H).
    Returns (h_t, c_t, gates (N, G*H)), gates after their nonlinearity (for the RNN: the pre-activation)."""
    H = h.shape[-1]
    hw = np.empty_like(xw)
    for k, W in enumerate(W_hh):
        np.matmul(W, h[k], out=hw[k])  # W_hh h
    hw += b_hh
    if cell == "rnn":
        pre = xw + hw
        return np.tanh(pre), None, pre
    if cell == "gru":
        rz = sigmoid(xw[:, : 2 * H] + hw[:, : 2 * H])
        r, z = rz[:, :H], rz[:, H:]
        n = np.tanh(xw[:, 2 * H :] + r * hw[:, 2 * H :])
        return n + z * (h - n), None, np.concatenate([rz, n], axis=1)  # (1 - z) n + z h
    hw += xw  # lstm: the pre-activations of i, f, g, o
    act = sigmoid(hw)
    np.tanh(hw[:, 2 * H : 3 * H], out=act[:, 2 * H : 3 * H])
    i, f, g, o = (act[:, k * H : (k + 1) * H] for k in range(4))
    c = f * c + i * g
    return o * np.tanh(c), c, act


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for a whole sequence at once (many rows), by PyTorch, so it runs on PyTorch's thread setting: NumPy's
    BLAS would start threads of its own for these sizes and keep them spinning (twice the CPU time on 2 cores).
    One row (a free-running decoder step) stays in NumPy: a vector times a matrix runs on one thread."""
    if a.ndim == 2 and a.shape[0] == 1:
        return a @ b
    return torch.matmul(torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(b)).numpy()


def _tokenize(text_or_tokens: str | list[str], mode: str) -> list[str]:
    if isinstance(text_or_tokens, str):
        return tokenize(text_or_tokens, mode)
    return list(text_or_tokens)


def trace_encoder(
    model: Seq2Seq, src_vocab, text_or_tokens: str | list[str], tokens_mode: str = "char"
) -> EncoderTrace:
    """Run the encoder on one input step by step. Raises ValueError for an empty input."""
    tokens = _tokenize(text_or_tokens, tokens_mode)
    if not tokens:
        raise ValueError("the input is empty: type at least one token")
    ids = src_vocab.encode_text_tokens(tokens)  # as in training: typed "<eos>" is plain text -> <unk>
    return _trace_encoder_ids(model, ids, tokens, tokens_mode)


def _trace_encoder_ids(model: Seq2Seq, ids: list[int], tokens: list[str], tokens_mode: str) -> EncoderTrace:
    cfg = model.cfg
    L, D, H, T, G = cfg.layers, 2 if cfg.bidirectional else 1, cfg.hidden, len(ids), N_GATES[cfg.cell]
    lstm = cfg.cell == "lstm"
    with _eval(model):
        emb = _np(model.src_embed.weight)[ids]  # (T, E), a copy
        h_layers, c_layers, g_layers, finals_h, finals_c = [], [], [], [], []
        x = emb
        for l in range(L):
            W_ih, b_ih, W_hh, b_hh = _weights(model.enc_rnn, l, D)
            xw = np.stack([_mm(x, W.T) for W in W_ih]) + b_ih[:, None, :]  # W_ih x_t + b_ih, all t at once (D,T,GH)
            if D == 2:  # backward direction reads x_T .. x_1: align its inputs to the loop counter
                xw = _unflip(xw)
            h = np.zeros((D, H), np.float32)
            c = np.zeros((D, H), np.float32) if lstm else None
            hs, gs = np.empty((D, T, H), np.float32), np.empty((D, T, G * H), np.float32)
            cs = np.empty((D, T, H), np.float32) if lstm else None
            for i in range(T):
                h, c, g = cell_step(cfg.cell, xw[:, i], h, c, W_hh, b_hh)
                hs[:, i], gs[:, i] = h, g
                if lstm:
                    cs[:, i] = c
            finals_h.append(h)
            finals_c.append(c)
            if D == 2:  # put the backward direction back in source order
                hs, gs = _unflip(hs), _unflip(gs)
                cs = _unflip(cs) if lstm else None
            h_layers.append(hs), c_layers.append(cs), g_layers.append(gs)
            x = hs.transpose(1, 0, 2).reshape(T, D * H)  # next layer's input: [h_fwd_t; h_bwd_t]
        outputs = x
        h_all, g_all = np.stack(h_layers), np.stack(g_layers)
        c_all = np.stack(c_layers) if lstm else None
        s0 = _bridge(model, np.stack(finals_h), "bridge_h")
        cell0 = _bridge(model, np.stack(finals_c), "bridge_c") if lstm else None
        keys = None
        if cfg.attention != "none":
            keys = (
                _mm(outputs, _np(model.mem_proj.weight).T) + _np(model.mem_proj.bias) if cfg.bidirectional else outputs
            )
        gates = {name: g_all[..., k * H : (k + 1) * H] for k, name in enumerate(GATE_NAMES[cfg.cell])}
        return EncoderTrace(
            tokens=list(tokens),
            ids=list(ids),
            embeddings=emb,
            h=h_all,
            c=c_all,
            gates=gates,
            outputs=outputs,
            s0=s0,
            context=s0[-1].copy(),
            cell0=cell0,
            keys=keys,
            tokens_mode=tokens_mode,
            cell_type=cfg.cell,
        )


def _unflip(x: np.ndarray) -> np.ndarray:
    """(2, T, .) with the backward direction in reading order (x_T first) -> both in source order (and back)."""
    return np.stack([x[0], x[1, ::-1]])


def _bridge(model: Seq2Seq, finals: np.ndarray, which: str) -> np.ndarray:
    """finals (L, D, H) -> s_0 (L, H): identity, or tanh(W_b[l] [h_fwd; h_bwd] + b_b[l]) per layer."""
    if finals.shape[1] == 1:
        return finals[:, 0]
    bridge = getattr(model, which)
    return np.stack([np.tanh(_np(b.weight) @ finals[l].reshape(-1) + _np(b.bias)) for l, b in enumerate(bridge)])


def _token_id(tok: str | int, tgt_vocab) -> int:
    if isinstance(tok, (int, np.integer)):
        if not 0 <= int(tok) < len(tgt_vocab.itos):
            raise ValueError(f"token id {tok} is outside the target vocabulary (0..{len(tgt_vocab.itos) - 1})")
        return int(tok)
    if tok not in tgt_vocab.stoi:
        raise ValueError(f"{tok!r} is not in the target vocabulary")
    return tgt_vocab.stoi[tok]


def trace_decoder(
    model: Seq2Seq,
    enc: EncoderTrace | list[int] | str | list[str],
    tgt_vocab,
    *,
    strategy: str = "greedy",
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    target: str | list[str] | None = None,
    teacher_forced: bool = False,
    force: dict[int, str | int] | None = None,
    max_steps: int | None = None,
    src_vocab=None,
    tokens_mode: str | None = None,
) -> DecoderTrace:
    """Run the decoder step by step from an EncoderTrace (or source ids; or source text/tokens with `src_vocab`).

    strategy "greedy" picks argmax p_t, "sample" draws from softmax(logits / temperature) restricted to the top_k
    tokens (0 = all), with a torch.Generator seeded by `seed`. With `target`, every step with a target token gets
    its cross-entropy -log p_t(y_t); `teacher_forced=True` then feeds the true y_{t-1} instead of the model's own
    choice. `force={t: token}` replaces the chosen token at step t (1-based) and continues from it: it is fed to step
    t + 1 (in teacher-forced mode later steps go back to the target). Free-running stops after <eos> or `max_steps`
    (default: 2 * source length + 10, at least the target length + 1)."""
    if strategy not in ("greedy", "sample"):
        raise ValueError(f"strategy must be 'greedy' or 'sample', got {strategy!r}")
    if strategy == "sample" and not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if not isinstance(enc, EncoderTrace):
        if isinstance(enc, list) and enc and all(isinstance(i, (int, np.integer)) for i in enc):
            tokens = src_vocab.decode(enc, strip_special=False) if src_vocab is not None else [str(i) for i in enc]
            enc = _trace_encoder_ids(model, [int(i) for i in enc], tokens, tokens_mode or "char")
        else:
            if src_vocab is None:
                raise ValueError("pass src_vocab to trace_decoder when giving source text instead of an EncoderTrace")
            enc = trace_encoder(model, src_vocab, enc, tokens_mode or "char")
    mode = tokens_mode or enc.tokens_mode
    target_ids = None
    if target is not None:
        target_ids = tgt_vocab.encode_text_tokens(_tokenize(target, mode)) + [EOS_ID]
    if teacher_forced and target_ids is None:
        raise ValueError("teacher forcing needs a target")
    forced = {int(t): _token_id(tok, tgt_vocab) for t, tok in (force or {}).items()}
    if any(t < 1 for t in forced):
        raise ValueError("forced steps are numbered from 1")
    if max_steps is None:
        max_steps = len(target_ids) if teacher_forced else max(2 * len(enc.ids) + 10, len(target_ids or []) + 1)
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")

    cfg = model.cfg
    L, H, lstm = cfg.layers, cfg.hidden, cfg.cell == "lstm"
    itos = tgt_vocab.itos
    gen = torch.Generator().manual_seed(seed)
    if teacher_forced:  # every input is known in advance: <sos>, then the target (or the forced token)
        max_steps = min(max_steps, len(target_ids))
        y_in = [SOS_ID] + [forced.get(t, target_ids[t - 1]) for t in range(1, max_steps)]
    with _eval(model):
        rnn, E = model.dec_rnn, cfg.embed
        W = [_weights(rnn, l, 1) for l in range(L)]
        W_ih, b_ih = [w[0][0] for w in W], [w[1][0] for w in W]  # per layer: W_ih (GH, n_in), b_ih (GH,)
        W_l = [(w[2], w[3]) for w in W]  # per layer: [W_hh (GH, H)], b_hh (1, GH)
        W_e, W_c = W_ih[0][:, :E], W_ih[0][:, E:]  # layer 0's input weights: the embedding's part, the context's part
        cw = W_c @ enc.context + b_ih[0]  # without attention the context's part is the same at every step
        emb = _np(model.tgt_embed.weight)
        keys, keys_proj = enc.keys, None
        if cfg.attention == "additive":
            keys_proj = _mm(keys, _np(model.att_Wk.weight).T) + _np(model.att_Wk.bias)
            W_sT, v = _np(model.att_Ws.weight).T, _np(model.att_v.weight)[0]
        if cfg.attention != "none":
            W_oT, b_o = _np(model.att_out.weight).T, _np(model.att_out.bias)
            # W_c c_t = W_c sum_j a_tj k_j = sum_j a_tj (W_c k_j): with the S products W_c k_j made once, a step
            # reads an (S, GH) table instead of the (GH, H) matrix W_c (4x less memory to read at S = 50, H = 256)
            W_ck = _mm(keys, W_c.T)
        W_outT, b_out = _np(model.out.weight).T, _np(model.out.bias)

        def attend(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Query q (1, H) = s_{t-1} (top layer) -> a_t (1, S), c_t (1, H)."""
            if cfg.attention == "dot":
                scores = q @ keys.T * cfg.hidden**-0.5  # s_{t-1} . k_j / sqrt(H)
            else:  # v . tanh(W_s s_{t-1} + W_k k_j + b_k)
                scores = np.tanh((q @ W_sT)[:, None, :] + keys_proj) @ v
            a = softmax(scores)
            return a, a @ keys

        def output(s_top: np.ndarray, c: np.ndarray | None) -> np.ndarray:
            """Top-layer states (N, H) and their c_t (N, H) -> logits (N, V): o_t = tanh(W_o [s_t; c_t] + b_o)."""
            o = s_top if c is None else np.tanh(_mm(np.concatenate([s_top, c], axis=-1), W_oT) + b_o)
            return _mm(o, W_outT) + b_out

        def choose(t: int, logits: np.ndarray) -> tuple[int, torch.Tensor | None]:
            if t in forced:
                return forced[t], None
            if strategy == "greedy":
                return int(logits.argmax()), None
            sp = sampling_probs(torch.from_numpy(logits), temperature, top_k)
            return int(torch.multinomial(sp, 1, generator=gen)), sp

        s_l = list(enc.s0.copy()[:, None, :])  # L arrays (1, H): s_{t-1} per layer
        c_l = list(enc.cell0.copy()[:, None, :]) if lstm else [None] * L
        S_hist, C_hist, G_hist = [[] for _ in range(L)], [[] for _ in range(L)], [[] for _ in range(L)]
        A_hist, CTX_hist = [], []
        if teacher_forced:  # the embedding's part of layer 0's input for all steps in one matrix product
            X0 = _mm(emb[y_in], W_e.T) + (cw if cfg.attention == "none" else b_ih[0])
        inputs, chosen, sprobs, step_logits = [], [], [], []
        y_prev, n = SOS_ID, 0
        for t in range(1, max_steps + 1):
            if teacher_forced:
                y_prev = y_in[t - 1]
            inputs.append(y_prev)
            ctx = None
            if cfg.attention != "none":  # a_t and c_t from the previous top-layer state s_{t-1}
                a, ctx = attend(s_l[-1])
                A_hist.append(a), CTX_hist.append(ctx)
            # layer 0's input: W_e e(y_{t-1}) + W_c c_t + b_ih (c_t = c without attention, already in cw)
            if teacher_forced:
                x = X0[t - 1 : t]
            else:
                x = (W_e @ emb[y_prev] + (cw if ctx is None else b_ih[0]))[None]
            if ctx is not None:
                x = x + a @ W_ck  # W_c c_t
            for l in range(L):
                xw = x if l == 0 else (W_ih[l] @ x[0] + b_ih[l])[None]  # W_ih x + b_ih
                x, c_l[l], g = cell_step(cfg.cell, xw, s_l[l], c_l[l], *W_l[l])
                s_l[l] = x
                S_hist[l].append(x), C_hist[l].append(c_l[l]), G_hist[l].append(g)
            n = t
            if not teacher_forced:  # the next input depends on this step's output
                logits_t = output(x, ctx)
                step_logits.append(logits_t)
                tok, sp = choose(t, logits_t[0])
                chosen.append(tok)
                sprobs.append(sp)
                if tok == EOS_ID:
                    break
                y_prev = tok
        S = np.stack([np.concatenate(S_hist[l]) for l in range(L)], 1)  # (n, L, H)
        Gt = np.stack([np.concatenate(G_hist[l]) for l in range(L)], 1)
        C = np.stack([np.concatenate(C_hist[l]) for l in range(L)], 1) if lstm else None
        A = np.concatenate(A_hist) if A_hist else None
        CTX = np.concatenate(CTX_hist) if CTX_hist else None
        if teacher_forced:  # the output layer for all steps in one go
            logits = output(S[:n, -1], CTX)
            for t in range(1, n + 1):
                tok, sp = choose(t, logits[t - 1])
                chosen.append(tok)
                sprobs.append(sp)
        else:
            logits = np.concatenate(step_logits)
        z = logits - logits.max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # log softmax
        probs = np.exp(logp)
    names = GATE_NAMES[cfg.cell]
    steps = []
    for i in range(n):
        t, tok = i + 1, chosen[i]
        tgt = target_ids[i] if target_ids is not None and i < len(target_ids) else None
        steps.append(
            DecoderStep(
                t=t,
                input_token=itos[inputs[i]],
                input_id=inputs[i],
                s=S[i],
                cell=None if C is None else C[i],
                attention=None if A is None else A[i],
                logits=logits[i],
                probs=probs[i],
                chosen_id=tok,
                chosen_token=itos[tok],
                target_id=tgt,
                target_token=None if tgt is None else itos[tgt],
                cross_entropy=None if tgt is None else float(-logp[i, tgt]),
                forced=t in forced,
                gates={name: Gt[i, :, k * H : (k + 1) * H] for k, name in enumerate(names)},
                attn_context=None if CTX is None else CTX[i],
                sample_probs=None if sprobs[i] is None else sprobs[i].numpy(),
            )
        )
    out_tokens = tgt_vocab.decode(chosen)  # up to <eos>, <pad>/<sos> dropped (as translate)
    return DecoderTrace(steps, out_tokens, "teacher_forced" if teacher_forced else strategy, tgt_vocab)
