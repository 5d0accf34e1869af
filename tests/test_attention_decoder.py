"""The hand-written backward of the teacher-forced attention decoder, dot and additive (seq2seq/attention_decoder.py),
against autograd: gradcheck of the Function itself, and values and every parameter's gradient against the model's
autograd path (Seq2Seq.fast_decoder = False), which steps PyTorch's own cell kernels."""

import pytest
import torch
import torch.nn.functional as F

from seq2seq import attention_decoder
from seq2seq.config import ModelConfig
from seq2seq.data import PAD_ID, SOS_ID
from seq2seq.model import N_GATES, Seq2Seq

torch.set_num_threads(1)
CELLS = ["rnn", "gru", "lstm"]


ATTENTIONS = ["dot", "additive"]


def inputs(cell, att="dot", B=3, S=5, T=4, E=3, H=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    G = N_GATES[cell]
    mask = torch.arange(S)[None, :] < torch.tensor([S, 2, 1])[:, None]  # full, short, a single source token
    m0 = r(B, H) if cell == "lstm" else None
    additive = [r(B, S, H), r(H, H), r(1, H)] if att == "additive" else []  # kp, W_s, v
    return [r(B, T, E), r(B, S, H), mask, r(B, H), m0, r(G * H, E + H), r(G * H, H), r(G * H), r(G * H)] + additive


@pytest.mark.parametrize("att", ATTENTIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_every_output(cell, att):
    e, k, mask, s0, m0, *rest = inputs(cell, att)
    diff = [e, k, s0] + ([m0] if m0 is not None else []) + rest

    def f(*args):
        args = list(args)
        e, k, s0 = args[:3]
        m0 = args.pop(3) if cell == "lstm" else None
        out = attention_decoder.decode(cell, e, k, mask, s0, m0, *args[3:])
        return tuple(o for o in out if o is not None)  # s, c, a, s_T (and m_T)

    assert torch.autograd.gradcheck(f, diff, atol=1e-7)


@pytest.mark.parametrize("att", ATTENTIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_only_some_outputs_used(cell, att):
    """Unused outputs get no gradient (None): the backward must not need them."""
    e, k, mask, s0, m0, *w = inputs(cell, att)
    s, c, a, s_T, m_T = attention_decoder.decode(cell, e, k, mask, s0, m0, *w)
    (g_e,) = torch.autograd.grad(s[:, :-1].sum(), [e])  # s_1 .. s_{T-1}
    assert torch.isfinite(g_e).all() and g_e[:, -1].abs().sum() == 0  # e_T only reaches s_T
    (g_k,) = torch.autograd.grad(attention_decoder.decode(cell, e, k, mask, s0, m0, *w)[2].square().sum(), [k])
    assert g_k[~mask].abs().sum() == 0  # padding keys get no gradient


def model(cell, att="dot", dtype=torch.float64, E=5, H=6, V=9):
    torch.manual_seed(0)
    return Seq2Seq(ModelConfig(V, V, cell=cell, embed=E, hidden=H, attention=att)).to(dtype)


def batch(V=9, B=4, S=7, T=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    src_len = torch.tensor([S, 3, 5, 1])
    src = torch.randint(4, V, (B, S), generator=g).masked_fill(torch.arange(S)[None] >= src_len[:, None], PAD_ID)
    tgt_in = torch.cat([torch.full((B, 1), SOS_ID), torch.randint(4, V, (B, T - 1), generator=g)], dim=1)
    return src, src_len, tgt_in, torch.randint(4, V, (B, T), generator=g)


def loss_and_grads(m, fast, src, src_len, tgt_in, tgt_out):
    m.fast_decoder = fast
    enc = m.encode(src, src_len)
    out = m.decode_teacher_forced(tgt_in, enc)
    s_T = out.state[0] if isinstance(out.state, tuple) else out.state
    loss = (
        F.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), tgt_out.reshape(-1))
        + out.attn.square().sum()
        + s_T.sum()
    )  # every output carries a gradient
    m.zero_grad()
    loss.backward()
    return out, {n: p.grad.clone() for n, p in m.named_parameters()}


@pytest.mark.parametrize("att", ATTENTIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_same_values_and_gradients_as_autograd(cell, att):
    m, b = model(cell, att), batch()
    fast, g_fast = loss_and_grads(m, True, *b)
    ref, g_ref = loss_and_grads(m, False, *b)
    for x, y in [(fast.logits, ref.logits), (fast.s, ref.s), (fast.attn, ref.attn)]:
        assert torch.allclose(x, y, atol=1e-12)
    assert set(g_fast) == set(g_ref)
    for n in g_ref:
        assert torch.allclose(g_fast[n], g_ref[n], atol=1e-10), n


@pytest.mark.parametrize("att", ATTENTIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_float32_default_size_close_to_autograd(cell, att):
    """At the library's default sizes in float32, within 1e-5 (tanh here is 2 sigmoid(2x) - 1)."""
    m, b = model(cell, att, torch.float32, E=32, H=128, V=30), batch(V=30, S=15, T=16)
    fast, g_fast = loss_and_grads(m, True, *b)
    ref, g_ref = loss_and_grads(m, False, *b)
    assert (fast.logits - ref.logits).abs().max() < 1e-5
    for n in g_ref:
        assert (g_fast[n] - g_ref[n]).abs().max() < 1e-5 * max(1.0, g_ref[n].abs().max()), n


def test_taken_only_for_one_layer_with_attention(monkeypatch):
    calls = []
    real = attention_decoder.decode
    monkeypatch.setattr(attention_decoder, "decode", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    src, src_len, tgt_in, _ = batch()
    for att, layers, expect in [("dot", 1, 1), ("additive", 1, 1), ("dot", 2, 0), ("additive", 3, 0), ("none", 1, 0)]:
        torch.manual_seed(0)
        m = Seq2Seq(ModelConfig(9, 9, cell="gru", embed=5, hidden=6, layers=layers, attention=att))
        calls.clear()
        m(src, src_len, tgt_in)
        assert len(calls) == expect, (att, layers)


@pytest.mark.parametrize("att", ATTENTIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_smallest_shapes(cell, att):
    """One example, one source token, one decoder step."""
    g = torch.Generator().manual_seed(3)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    G, H = N_GATES[cell], 2
    mask = torch.ones(1, 1, dtype=torch.bool)
    extra = [r(1, 1, H), r(H, H), r(1, H)] if att == "additive" else []
    m0 = [r(1, H)] if cell == "lstm" else []

    def f(e, k, s0, *rest):
        m0, w = (rest[0], rest[1:]) if cell == "lstm" else (None, rest)
        return tuple(o for o in attention_decoder.decode(cell, e, k, mask, s0, m0, *w) if o is not None)

    assert torch.autograd.gradcheck(
        f, [r(1, 1, 3), r(1, 1, H), r(1, H), *m0, r(G * H, 3 + H), r(G * H, H), r(G * H), r(G * H), *extra], atol=1e-7
    )


@pytest.mark.parametrize("cell", CELLS)
def test_training_mode_with_dropout_same_as_autograd(cell):
    """Dropout (on the embeddings and on o_t) happens outside the decoder loop, so with the same seed both paths
    drop the same units and agree."""
    torch.manual_seed(0)
    m = Seq2Seq(ModelConfig(9, 9, cell=cell, embed=5, hidden=6, attention="dot", dropout=0.3)).double().train()
    b = batch()
    results = []
    for fast in (True, False):
        torch.manual_seed(5)
        results.append(loss_and_grads(m, fast, *b))
    (fast, g_fast), (ref, g_ref) = results
    assert torch.allclose(fast.logits, ref.logits, atol=1e-12)
    for n in g_ref:
        assert torch.allclose(g_fast[n], g_ref[n], atol=1e-10), n


def _rel(x: torch.Tensor, y: torch.Tensor) -> float:
    return float((x - y).detach().norm() / y.detach().norm().clamp(min=1e-12))


@pytest.mark.parametrize("att", ATTENTIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_bf16_products_close_to_fp32(cell, att):
    """Mixed precision (lowp=bf16: the matrix products in bfloat16, everything else fp32): values and every input's
    gradient within bf16's rounding of the fp32 ones (8 bits of mantissa: ~0.4% per product), all in fp32."""
    args = [
        a.detach().float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
        for a in inputs(cell, att, B=8, S=7, T=6, E=8, H=16, seed=5)
    ]
    for i, fan_in in [(5, 8 + 16), (6, 16)] + ([(10, 16)] if att == "additive" else []):
        args[i] = args[i] / fan_in**0.5  # weights of a trained model's size, not N(0, 1): no chaotic recurrence
    args = [a.requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    args[2] = torch.arange(7)[None, :] < torch.tensor([7, 2, 1, 5, 7, 3, 6, 4])[:, None]
    diff = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    g = torch.Generator().manual_seed(6)
    outs, grads = {}, {}
    for lowp in (None, torch.bfloat16):
        out = attention_decoder.decode(cell, *args, lowp=lowp)
        out = [o for o in out if o is not None]
        w = [torch.randn(o.shape, generator=g.manual_seed(6 + i)) for i, o in enumerate(out)]
        loss = sum((o * wi).sum() for o, wi in zip(out, w))
        outs[lowp], grads[lowp] = out, torch.autograd.grad(loss, diff)
    for x, y in zip(outs[torch.bfloat16], outs[None]):
        assert x.dtype == torch.float32 and _rel(x, y) < 1.5e-2
    for x, y in zip(grads[torch.bfloat16], grads[None]):
        assert x.dtype == torch.float32 and _rel(x, y) < 1.5e-2


@pytest.mark.parametrize("cell", CELLS)
def test_model_lowp_only_in_training_mode(cell):
    """Seq2Seq.lowp changes the training-mode products only: eval mode (evaluation, decoding, introspection) is
    fp32, bit for bit; training mode is within bf16's rounding. Covers the encoder (oneDNN's bf16 LSTM for an
    LSTM), the keys' projection, the attention decoder and the output layer."""
    m, b = model(cell, "dot", torch.float32, E=16, H=32, V=30), batch(V=30, S=9, T=8)
    m.eval()
    with torch.no_grad():
        ref = m(*b[:3])
        m.lowp = torch.bfloat16
        assert torch.equal(m(*b[:3]), ref)
        m.train()
        low = m(*b[:3])
        m.lowp = None
        full = m(*b[:3])
    assert low.dtype == torch.float32 and 0 < _rel(low, full) < 1.5e-2
