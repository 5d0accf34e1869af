"""The encoder-decoder model, built on PyTorch's fused recurrent modules (nn.RNN / nn.GRU / nn.LSTM).

The math, in the notation used throughout the app:

    encoder   h_t = f(x_t, h_{t-1})                 t = 1..T, one h_t per layer (and per direction)
    context   c   = q(h_1, ..., h_T)                the final encoder state (through the bridge, below)
    decoder   s_t = g(y_{t-1}, c, s_{t-1})          s_0 = the bridged final encoder states, y_0 = <sos>
              s_t = g(y_{t-1}, c_t, s_{t-1})        with attention: c_t = sum_j a_tj k_j, a_t from s_{t-1}
    output    p(y_t | y_<t, x) = softmax(W_out o_t + b_out)

f and g are the same kind of cell (vanilla RNN with tanh, GRU or LSTM), stacked 1 to 3 layers deep.

Encoder. x_t is embedded (nn.Embedding, <pad> = id 0 maps to a zero vector) and run through `enc_rnn`. Padded
timesteps are skipped with `pack_padded_sequence`, so h_T of every sequence is the state after its own last real
token, and the backward direction of a bidirectional encoder starts at that token, not at the padding. A batch of
only a few source lengths (as length-bucketed training batches are) runs the fused module once per length instead,
unpadded (`_encode_by_length`): the same results, and oneDNN's kernel, which takes no packed sequences.

Bridge (q). Unidirectional: s_0 = (h_T of every layer), unchanged. Bidirectional: the decoder runs one direction
only, so each layer l gets  s_0[l] = tanh(W_b[l] [h_fwd_T[l]; h_bwd_1[l]] + b_b[l])  (one nn.Linear(2H, H) per layer,
`bridge_h`), and for an LSTM the same for the memory cell with `bridge_c`. The context vector c is the top layer of s_0.

Decoder (g), without attention. The input at step t is [embed(y_{t-1}); c]: the context is fed at every step, so
the decoder sees the whole-input summary all the time. The input never depends on the decoder's own outputs, so a
teacher-forced pass is ONE fused `dec_rnn` call over all T steps.

Decoder with attention (Bahdanau et al. 2015; the d2l.ai seq2seq-with-attention decoder). The fixed c becomes a
context c_t that is recomputed at every step from where the decoder looks:
    a_t   = softmax_j(score(s_{t-1}, k_j))       over the real (unpadded) source positions; s_0 as above
    c_t   = sum_j a_tj k_j
    s_t   = g([embed(y_{t-1}); c_t], s_{t-1})
    o_t   = tanh(W_o [s_t; c_t] + b_o)          (`att_out`), and p(y_t | y_<t, x) = softmax(W_out o_t + b_out)
Memory: the encoder outputs h_1..h_S of the top layer; keys k_j = h_j when unidirectional, or
k_j = W_m [h_fwd_j; h_bwd_j] + b_m (`mem_proj`, 2H -> H) when bidirectional. Scores:
    dot (Luong, scaled): score(s, k_j) = s . k_j / sqrt(H)
    additive (Bahdanau): score(s, k_j) = v . tanh(W_s s + W_k k_j + b_k)
Why the query is s_{t-1} and c_t goes INTO the cell (measured on reversal, 5-15 letters, 20,000 pairs): with the
cheaper form that attends from s_t on top of the decoder and never feeds c_t back (one fused call), the decoder
does not know where it looked at the previous step. It learned to find "the letter I just wrote" by content and
jumped to the wrong copy of a repeated letter (kaaah -> haak; cvbxsebs... -> ...sbvcbvc): training loss 0.001 while
held-out exact match stayed at 0.95-0.98 (LSTM and GRU, hidden 64 or 128, any learning-rate schedule). Feeding c_t
into the cell carries the alignment from step to step, and every cell reaches 99%. The price: a teacher-forced pass
steps the decoder one timestep at a time. It does so with PyTorch's cell kernels (torch.lstm_cell / gru_cell /
rnn_tanh_cell) on `dec_rnn`'s own weights (`_dec_cell`), because the fused module's oneDNN kernel called on a
sequence of length 1 costs several times its arithmetic (reversal, H=128, batch 64, one training step: LSTM 48 -> 41
ms, GRU 46 -> 33 ms, RNN 30 -> 21 ms with the cell kernels and the elementwise dot products in `attend`).
For one layer (dot or additive attention) a teacher-forced pass goes through `attention_decoder.decode` instead: the
same math with autograd off inside the loop and the backward pass written out (the weight gradients as one product
over all steps); its values and gradients are tested against this loop's. Reversal, batch 64, one training step: dot
attention LSTM 42.9 -> 34.8 ms, GRU 43.9 -> 37.3, RNN 21.1 -> 18.0; additive LSTM 55.2 -> 44.7, GRU 51.4 -> 44.5
(`bench_training.py --part breakdown`).
Why the dot score is divided by sqrt(H): s and k_j have H entries in [-1, 1], so an unscaled dot product is a sum of
H terms whose size grows with sqrt(H); at H=128 the softmax starts out nearly one-hot, its gradient almost zero, and
the model is slow to learn where to look. The same scaling as a Transformer's "scaled dot-product attention".

Dropout (cfg.dropout) is applied between stacked RNN layers (PyTorch's own), to the embeddings and to o_t; it is
off in eval mode, which the introspection and decoding functions use.

Initialization (see `Seq2Seq.reset_parameters`), chosen so deep-in-time gradients neither vanish nor explode at step 0:
  * recurrent weights W_h* : orthogonal, separately for each gate's H x H block (eigenvalues on the unit circle);
  * input weights W_i*     : Xavier-uniform per gate block;
  * biases                 : 0, except one gate per cell that starts open, b = 2 (sigma(2) = 0.88): the GRU's
                             reset gate r, so its candidate n = tanh(W_in x + b_in + r (W_hn h + b_hn)) hears the
                             previous state at nearly full strength from the first step instead of at half (r = 0.5),
                             and the LSTM's input gate i, so the candidate g enters the memory cell m at nearly full
                             strength. New information then moves through the state quickly, which is what reversal
                             with attention turns on (counting positions, to know which of two equal letters to look
                             at next). Measured with bf16 training on 2026-12-07, steps to 99% held-out exact match on
                             reversal (seeds 0-11 for the GRU, 0-7 for the LSTM):
                               GRU  b_ir = 0: mean 600 (500 450 450 550 1,000 600 650 450 650 850 450, seeds 0-10);
                                    1: 442; 2: 375 (450 350 300 350 550 350 350 350 350 400 350 350); 3: 342
                               LSTM b_ii = 0: mean 444 (500 450 400 450 600 350 400 400); 1: 362;
                                    2: 362 (400 350 500 350 300 350 300 350)
                             3-digit addition to 99% (seed 0): GRU 3,350 -> 2,750 steps (b_ir = 2); LSTM 2,150 ->
                             1,800 (seed 1: 2,600 -> 3,050). b = 2 rather than 3: about as fast, and the gate keeps
                             a gradient twice as large (sigma'(2) = 0.10, sigma'(3) = 0.05) to learn when to close.
                             Not the usual "remember by default" bias of 1 on the LSTM's forget gate f or the GRU's
                             update gate z: these tasks are short, and a state that starts out keeping everything
                             moves too slowly from one timestep to the next. GRU with b_iz = 1 (z about 0.73; PyTorch's
                             GRU keeps the old state with weight z): reversal took 35.1 / 28.9 / 25.5 s to 99% (seeds
                             0 / 1 / 2), against 18.7 / 14.5 / 21.8 s with 0 (b_iz = -1: slower too); LSTM with b_if
                             = 1: 500 / 600 / over 1,200 / 600 steps (seeds 0-3; seed 2 sat at 98.4% from step 500 on,
                             its errors all repeated letters: vhwwwwnytcaag -> gaactynwwwhv), against 500 / 450 / 400 /
                             450 with 0; 3-digit addition 2,150 steps instead of 1,850;
  * embeddings: N(0, 1) (PyTorch default), the <pad> row zero; Linear layers: PyTorch default.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from . import attention_decoder
from .config import ModelConfig
from .data import EOS_ID, PAD_ID, SOS_ID  # noqa: F401  (specials: <pad> 0, <sos> 1, <eos> 2, <unk> 3)

RNN_CLASSES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
SPLIT_MAX_LENGTHS = 4  # a batch with at most this many source lengths runs the encoder once per length (not packed)
N_GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # weight blocks per layer: RNN 1; GRU r,z,n; LSTM i,f,g,o

State = Tensor | tuple[Tensor, Tensor]  # (L, B, H), or (s, cell) for an LSTM


class EncoderOutput(NamedTuple):
    enc_out: Tensor  # (B, S, D*H) top-layer encoder outputs h_1..h_S (zeros at padding)
    keys: Tensor | None  # (B, S, H) attention keys k_j (None when attention is "none")
    mask: Tensor  # (B, S) True at real source tokens
    state0: State  # decoder initial state s_0: (L, B, H), or (s_0, cell_0) for an LSTM
    context: Tensor  # (B, H) context vector c = top layer of s_0
    keys_proj: Tensor | None = None  # (B, S, H) W_k k_j + b_k, precomputed once for additive attention


class DecoderOutput(NamedTuple):
    logits: Tensor  # (B, T, Vt)
    s: Tensor  # (B, T, H) top-layer decoder states s_1..s_T
    attn: Tensor | None  # (B, T, S) attention weights a_t (computed from s_{t-1})
    state: State  # final decoder state, every layer


def _make_rnn(cell: str, n_in: int, cfg: ModelConfig, bidirectional: bool) -> nn.RNNBase:
    kwargs = dict(batch_first=True, bidirectional=bidirectional, dropout=cfg.dropout if cfg.layers > 1 else 0.0)
    if cell == "rnn":
        kwargs["nonlinearity"] = "tanh"
    return RNN_CLASSES[cell](n_in, cfg.hidden, cfg.layers, **kwargs)


# The gate that starts open (see the top of this file): PyTorch's gate order is GRU (r, z, n), LSTM (i, f, g, o).
OPEN_GATE = {"gru": 0, "lstm": 0}  # the GRU's reset gate r, the LSTM's input gate i
OPEN_GATE_BIAS = 2.0  # its b_ih: sigma(2) = 0.88


@functools.cache
def _bf16_lstm_runs() -> bool:
    """Whether oneDNN has a bf16 LSTM kernel on this CPU (it refuses to build one on CPUs without native bf16): if
    not, a bf16 run keeps its LSTM in fp32 and only the other products go to bf16. Tried once per process."""
    try:
        with torch.autocast("cpu", torch.bfloat16):
            nn.LSTM(4, 4, batch_first=True, bidirectional=True)(torch.zeros(2, 3, 4))
        return True
    except RuntimeError:
        return False


class Seq2Seq(nn.Module):
    fast_decoder = True  # teacher-forced with attention, one layer: attention_decoder.decode (same math, faster)
    lowp: torch.dtype | None = None  # training mode only: the matrix products in this dtype (bf16), see training.py

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        E, H, L = cfg.embed, cfg.hidden, cfg.layers
        D = 2 if cfg.bidirectional else 1
        # encoder
        self.src_embed = nn.Embedding(cfg.src_vocab_size, E, padding_idx=PAD_ID)
        self.enc_rnn = _make_rnn(cfg.cell, E, cfg, cfg.bidirectional)
        # bridge (bidirectional only)
        if cfg.bidirectional:
            self.bridge_h = nn.ModuleList(nn.Linear(2 * H, H) for _ in range(L))
            if cfg.cell == "lstm":
                self.bridge_c = nn.ModuleList(nn.Linear(2 * H, H) for _ in range(L))
        # attention
        if cfg.attention != "none":
            if cfg.bidirectional:
                self.mem_proj = nn.Linear(D * H, H)
            if cfg.attention == "additive":
                self.att_Ws = nn.Linear(H, H, bias=False)
                self.att_Wk = nn.Linear(H, H)
                self.att_v = nn.Linear(H, 1, bias=False)
            self.att_out = nn.Linear(2 * H, H)  # W_o [s_t; ctx_t]
        # decoder
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab_size, E, padding_idx=PAD_ID)
        self.dec_rnn = _make_rnn(cfg.cell, E + H, cfg, False)
        self.out = nn.Linear(H, cfg.tgt_vocab_size)
        self.drop = nn.Dropout(cfg.dropout)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialization documented at the top of this file (random draws from `generator`, default: torch's)."""
        H, G = self.cfg.hidden, N_GATES[self.cfg.cell]
        for rnn in (self.enc_rnn, self.dec_rnn):
            for name, p in rnn.named_parameters():
                blocks = p.view(G, H, *p.shape[1:])  # one block per gate
                for b in blocks:
                    if name.startswith("weight_hh"):
                        nn.init.orthogonal_(b, generator=generator)
                    elif name.startswith("weight_ih"):
                        nn.init.xavier_uniform_(b, generator=generator)
                    else:
                        b.zero_()  # the gates' biases too (see the top of this file) ...
                if name.startswith("bias_ih") and self.cfg.cell in OPEN_GATE:
                    blocks[OPEN_GATE[self.cfg.cell]].fill_(OPEN_GATE_BIAS)  # ... but one gate starts open

    # ---- encoder -------------------------------------------------------------------------------------------------
    def encode(self, src: Tensor, src_len: Tensor) -> EncoderOutput:
        """src (B, S) padded ids, src_len (B,) -> EncoderOutput. An empty source is treated as one <pad> token."""
        cfg, (B, S) = self.cfg, src.shape  # noqa: F841  (B: the shape, named as in the comments)
        lengths = src_len.detach().to("cpu", torch.int64).clamp(1, S)
        x = self.drop(self.src_embed(src))
        distinct, counts = lengths.unique(return_counts=True)  # ascending
        if len(distinct) == 1 and int(distinct[0]) == S:  # no padding in this batch: skip packing (fastest kernel)
            with self._lowp_lstm():
                enc_out, h_n = self.enc_rnn(x)
        # per length only through the fused module (training's gradient probe swaps in an UnrolledRNN: whole batches)
        elif len(distinct) <= SPLIT_MAX_LENGTHS and isinstance(self.enc_rnn, nn.RNNBase):
            with self._lowp_lstm():
                enc_out, h_n = self._encode_by_length(x, lengths, distinct.tolist(), counts.tolist())
        else:  # packed: PyTorch's loop over timesteps, which a bf16 autocast would only slow down
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, h_n = self.enc_rnn(packed)
            enc_out, _ = pad_packed_sequence(out, batch_first=True, total_length=S)
        enc_out, h_n = self._to_dtype(enc_out, h_n, x.dtype)
        mask = torch.arange(S, device=src.device)[None, :] < lengths.to(src.device)[:, None]
        if cfg.cell == "lstm":
            h_n, c_n = h_n
            state0 = (self._bridge(h_n, "bridge_h"), self._bridge(c_n, "bridge_c"))
            context = state0[0][-1]
        else:
            state0 = self._bridge(h_n, "bridge_h")
            context = state0[-1]
        keys = keys_proj = None
        if cfg.attention != "none":
            keys = self._lp_linear(self.mem_proj, enc_out) if cfg.bidirectional else enc_out
            if cfg.attention == "additive":
                keys_proj = self.att_Wk(keys)
        return EncoderOutput(enc_out, keys, mask, state0, context, keys_proj)

    def _encode_by_length(self, x: Tensor, lengths: Tensor, distinct: list[int], counts: list[int]):
        """The fused encoder once per source length, on the unpadded sub-batch of that length, put back in batch
        order: the same outputs and final states as packing, through PyTorch's fastest (oneDNN) kernel, which does
        not take packed sequences. A length-bucketed batch that straddles two lengths (a quarter of reversal's
        batches): LSTM encoder forward + backward 12-14 ms instead of 20-25 ms packed. `distinct` (ascending) and
        `counts`: the batch's source lengths and how many rows have each."""
        S = x.shape[1]
        order = torch.argsort(lengths, stable=True)  # rows grouped by length, in the order of `distinct`
        outs, finals, start = [], [], 0
        for L, n in zip(distinct, counts):
            rows = order[start : start + n]
            start += n
            out, h_n = self.enc_rnn(x[rows, :L])
            outs.append(F.pad(out, (0, 0, 0, S - L)))
            finals.append(h_n)
        back = torch.argsort(order)  # sorted position of each original row
        enc_out = torch.cat(outs)[back]
        if isinstance(finals[0], tuple):  # LSTM: (h_n, c_n)
            return enc_out, tuple(torch.cat([f[i] for f in finals], dim=1)[:, back] for i in range(2))
        return enc_out, torch.cat(finals, dim=1)[:, back]

    def _bridge(self, final: Tensor, which: str) -> Tensor:
        """final (L*D, B, H) from the fused RNN (layer-major, forward then backward) -> decoder s_0 (L, B, H)."""
        if not self.cfg.bidirectional:
            return final
        L = self.cfg.layers
        f = final.view(L, 2, *final.shape[1:])
        bridge = getattr(self, which)
        return torch.stack([torch.tanh(bridge[l](torch.cat([f[l, 0], f[l, 1]], dim=-1))) for l in range(L)])

    # ---- attention ----------------------------------------------------------------------------------------------
    def attend(self, q: Tensor, enc: EncoderOutput) -> tuple[Tensor, Tensor]:
        """Query q (B, H) = s_{t-1} -> (a_t (B, S), c_t (B, H)). Masked softmax over the real source positions.
        The dot products are elementwise products summed over H, not a batched matmul of B (1 x H) @ (H x S): on
        this CPU that is about 4x faster for these small shapes, forward and backward."""
        k = enc.keys
        if self.cfg.attention == "dot":
            scores = (k * q.unsqueeze(1)).sum(-1) * self.cfg.hidden**-0.5  # s . k_j / sqrt(H)
        else:  # additive: v . tanh(W_s s + W_k k_j + b_k)
            scores = self.att_v(torch.tanh(self.att_Ws(q).unsqueeze(1) + enc.keys_proj)).squeeze(-1)
        a = torch.softmax(scores.masked_fill(~enc.mask, float("-inf")), dim=-1)
        return a, (a.unsqueeze(-1) * k).sum(1)

    def _dec_cell(self, x: Tensor, state: list[Tensor] | tuple[list[Tensor], list[Tensor]]):
        """One decoder step through every layer of `dec_rnn`, with PyTorch's own cell kernels (torch.lstm_cell /
        gru_cell / rnn_tanh_cell, what nn.LSTMCell & co. run) on the fused module's own weights, so there is one
        set of weights. x (B, E+H); state: per-layer lists [s_l] (or ([s_l], [cell_l]) for an LSTM). Dropout
        between layers as nn.LSTM applies it. Why not the fused module on a length-1 sequence: see the top of
        this file."""
        rnn, cell, L = self.dec_rnn, self.cfg.cell, self.cfg.layers
        hs, cs = state if cell == "lstm" else (state, None)
        new_h, new_c, inp = [], [], x
        for l in range(L):
            w = (
                getattr(rnn, f"weight_ih_l{l}"),
                getattr(rnn, f"weight_hh_l{l}"),
                getattr(rnn, f"bias_ih_l{l}"),
                getattr(rnn, f"bias_hh_l{l}"),
            )
            if cell == "lstm":
                h, c = torch.lstm_cell(inp, (hs[l], cs[l]), *w)
                new_c.append(c)
            elif cell == "gru":
                h = torch.gru_cell(inp, hs[l], *w)
            else:
                h = torch.rnn_tanh_cell(inp, hs[l], *w)
            new_h.append(h)
            inp = F.dropout(h, rnn.dropout, self.training) if l < L - 1 and rnn.dropout > 0 else h
        return (new_h, new_c) if cell == "lstm" else new_h

    @staticmethod
    def _split(state: State):
        """(L, B, H) state (or an LSTM's pair) -> per-layer lists, the form `_dec_cell` steps."""
        return (
            (list(state[0].unbind(0)), list(state[1].unbind(0))) if isinstance(state, tuple) else list(state.unbind(0))
        )

    @staticmethod
    def _join(state) -> State:
        return (torch.stack(state[0]), torch.stack(state[1])) if isinstance(state, tuple) else torch.stack(state)

    def _logits(self, s: Tensor, c: Tensor | None) -> Tensor:
        """Top-layer s_t (and c_t with attention) -> logits: W_out o_t + b_out, o_t = tanh(W_o [s_t; c_t] + b_o)."""
        o = s if c is None else torch.tanh(self._lp_linear(self.att_out, torch.cat([s, c], dim=-1)))
        return self.out(self.drop(o))

    # ---- mixed precision (training only) -------------------------------------------------------------------------
    def _lowp(self) -> torch.dtype | None:
        """The dtype of the matrix products right now: `lowp` in training mode, None (fp32) in eval mode."""
        return self.lowp if self.training else None

    def _lowp_lstm(self):
        """A context in which the fused LSTM runs in bf16 (oneDNN's kernel; a bidirectional forward + backward 1.3-1.7x
        faster here on training batches, 2.6x at one fixed shape) when training in mixed precision. Only the LSTM: PyTorch's GRU and RNN on the CPU are a loop over timesteps, which autocast
        would make slower, casting the weights again at every step."""
        lowp = self._lowp() if self.cfg.cell == "lstm" and _bf16_lstm_runs() else None
        return torch.autocast("cpu", lowp or torch.bfloat16, enabled=lowp is not None)

    @staticmethod
    def _to_dtype(out: Tensor, state: State, dtype: torch.dtype) -> tuple[Tensor, State]:
        """A fused RNN's outputs and final state in `dtype`: a bf16 LSTM's (see _lowp_lstm) back to fp32."""
        if out.dtype == dtype:
            return out, state
        return out.to(dtype), (tuple(h.to(dtype) for h in state) if isinstance(state, tuple) else state.to(dtype))

    def _lp_linear(self, lin: nn.Linear, x: Tensor) -> Tensor:
        """lin(x), its product in `lowp` when training in mixed precision; the result in x's dtype (fp32)."""
        lowp = self._lowp()
        if lowp is None:
            return lin(x)
        return F.linear(x.to(lowp), lin.weight.to(lowp), lin.bias.to(lowp)).to(x.dtype)

    @staticmethod
    def _top(state: State) -> Tensor:
        """The top layer of a decoder state, stacked (L, B, H) or per-layer lists: s_t (B, H)."""
        return state[0][-1] if isinstance(state, tuple) else state[-1]

    # ---- decoder -------------------------------------------------------------------------------------------------
    def decode_teacher_forced(self, tgt_in: Tensor, enc: EncoderOutput) -> DecoderOutput:
        """All T decoder steps fed the true previous tokens: tgt_in (B, T) = <sos> y_1 .. y_{T-1}. Without attention
        one fused dec_rnn call; with attention one `_dec_cell` step at a time (c_t depends on s_{t-1})."""
        e = self.drop(self.tgt_embed(tgt_in))
        if self.cfg.attention == "none":
            c = enc.context.unsqueeze(1).expand(-1, tgt_in.shape[1], -1)
            with self._lowp_lstm():
                s, state = self.dec_rnn(torch.cat([e, c], dim=-1), enc.state0)
            s, state = self._to_dtype(s, state, e.dtype)
            return DecoderOutput(self._logits(s, None), s, None, state)
        if self.fast_decoder and self.cfg.layers == 1:
            r = self.dec_rnn
            s0, m0 = enc.state0 if self.cfg.cell == "lstm" else (enc.state0, None)
            additive = () if self.cfg.attention == "dot" else (enc.keys_proj, self.att_Ws.weight, self.att_v.weight)
            s, c, a, s_T, m_T = attention_decoder.decode(
                self.cfg.cell,
                e,
                enc.keys,
                enc.mask,
                s0[0],
                None if m0 is None else m0[0],
                r.weight_ih_l0,
                r.weight_hh_l0,
                r.bias_ih_l0,
                r.bias_hh_l0,
                *additive,
                lowp=self._lowp(),
            )
            state = (s_T[None], m_T[None]) if m0 is not None else s_T[None]
            return DecoderOutput(self._logits(s, c), s, a, state)
        state, S, C, A = self._split(enc.state0), [], [], []
        for t in range(tgt_in.shape[1]):
            a, c = self.attend(self._top(state), enc)
            state = self._dec_cell(torch.cat([e[:, t], c], dim=-1), state)
            S.append(self._top(state)), C.append(c), A.append(a)
        s = torch.stack(S, dim=1)
        return DecoderOutput(self._logits(s, torch.stack(C, dim=1)), s, torch.stack(A, dim=1), self._join(state))

    def decode_step(self, y_prev: Tensor, state: State, enc: EncoderOutput) -> tuple[Tensor, State, Tensor | None]:
        """One step s_t = g(y_{t-1}, c_t, s_{t-1}): y_prev (B,) -> (logits (B, Vt), new state, a_t (B, S) or None).
        Without attention c_t is the fixed context vector c."""
        e = self.drop(self.tgt_embed(y_prev))
        a, c = (None, enc.context) if self.cfg.attention == "none" else self.attend(self._top(state), enc)
        state = self._join(self._dec_cell(torch.cat([e, c], dim=-1), self._split(state)))
        return self._logits(self._top(state), None if a is None else c), state, a

    def forward(self, src: Tensor, src_len: Tensor, tgt_in: Tensor, teacher_forcing: float = 1.0) -> Tensor:
        """Logits (B, T, Vt) for every target position. teacher_forcing = probability (per example and step) that
        the decoder is fed the true y_{t-1}; otherwise it gets its own previous argmax."""
        enc = self.encode(src, src_len)
        if teacher_forcing >= 1.0:
            return self.decode_teacher_forced(tgt_in, enc).logits
        state, y, all_logits = enc.state0, tgt_in[:, 0], []
        for t in range(tgt_in.shape[1]):
            if t > 0:
                use_true = torch.rand(y.shape[0], device=y.device) < teacher_forcing
                y = torch.where(use_true, tgt_in[:, t], all_logits[-1].argmax(-1))
            logits, state, _ = self.decode_step(y, state, enc)
            all_logits.append(logits)
        return torch.stack(all_logits, dim=1)


@torch.no_grad()
def build(cfg: ModelConfig, generator: torch.Generator) -> Seq2Seq:
    """Seq2Seq(cfg) with every initial weight drawn from `generator`, not from torch's process-wide generator: runs
    built at once in several threads get their own weights. The draws replay, in the same order, what the modules'
    constructors and `reset_parameters` draw, so build(cfg, torch.Generator().manual_seed(s)) equals
    `torch.manual_seed(s); Seq2Seq(cfg)` bit for bit (tests/test_training.py)."""
    with torch.device("meta"):  # shapes only: nothing drawn, nothing allocated
        model = Seq2Seq(cfg)
    model = model.to_empty(device="cpu")
    for m in model.modules():  # registration order = construction order
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, generator=generator)
            if m.padding_idx is not None:
                m.weight[m.padding_idx].fill_(0)
        elif isinstance(m, nn.RNNBase):
            stdv = 1.0 / m.hidden_size**0.5
            for w in m.parameters():
                nn.init.uniform_(w, -stdv, stdv, generator=generator)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=5**0.5, generator=generator)
            if m.bias is not None:
                bound = 1 / m.weight.shape[1] ** 0.5 if m.weight.shape[1] > 0 else 0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
    model.reset_parameters(generator)
    return model


def count_parameters(cfg: ModelConfig) -> dict[str, int]:
    """Parameters per component (computed from the config, without building the model), plus "total"."""
    E, H, L, G = cfg.embed, cfg.hidden, cfg.layers, N_GATES[cfg.cell]
    D = 2 if cfg.bidirectional else 1

    def rnn(n_in: int, dirs: int) -> int:  # per layer and direction: W_ih, W_hh, b_ih, b_hh
        first = G * H * (n_in + H) + 2 * G * H
        rest = G * H * (dirs * H + H) + 2 * G * H
        return dirs * (first + (L - 1) * rest)

    attention = 0
    if cfg.attention != "none":
        attention = (D * H * H + H if cfg.bidirectional else 0) + (2 * H * H + H)  # mem_proj, W_o
        if cfg.attention == "additive":
            attention += H * H + (H * H + H) + H  # W_s, W_k (+ b_k), v
    counts = {
        "encoder embedding": cfg.src_vocab_size * E,
        "encoder RNN": rnn(E, D),
        "bridge": (L * (2 * H * H + H) * (2 if cfg.cell == "lstm" else 1)) if cfg.bidirectional else 0,
        "attention": attention,
        "decoder embedding": cfg.tgt_vocab_size * E,
        "decoder RNN": rnn(E + H, 1),
        "output layer": H * cfg.tgt_vocab_size + cfg.tgt_vocab_size,
    }
    counts["total"] = sum(counts.values())
    return counts


def component_of(param_name: str) -> str:
    """Which count_parameters component a parameter (state_dict name) belongs to: for gradient norms per group."""
    prefix = param_name.split(".")[0]
    return {
        "src_embed": "encoder embedding",
        "enc_rnn": "encoder RNN",
        "bridge_h": "bridge",
        "bridge_c": "bridge",
        "mem_proj": "attention",
        "att_Ws": "attention",
        "att_Wk": "attention",
        "att_v": "attention",
        "att_out": "attention",
        "tgt_embed": "decoder embedding",
        "dec_rnn": "decoder RNN",
        "out": "output layer",
    }[prefix]
