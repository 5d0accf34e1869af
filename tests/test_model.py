"""The fused model: shapes, padding, decode_step vs one fused call, parameter counts, initialization, learning."""

import itertools
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from seq2seq.config import ModelConfig
from seq2seq.data import EOS_ID, PAD_ID, SOS_ID
from seq2seq.model import Seq2Seq, component_of, count_parameters

torch.set_num_threads(1)
VS, VT = 9, 8
COMBOS = list(itertools.product(["rnn", "gru", "lstm"], [False, True], ["none", "additive", "dot"]))
IDS = ["-".join(map(str, c)) for c in COMBOS]


def make(cell="lstm", layers=2, bidir=False, att="none", **kw) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(
        ModelConfig(VS, VT, cell=cell, embed=5, hidden=6, layers=layers, bidirectional=bidir, attention=att, **kw)
    )


def batch():
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, VS, (3, 6), generator=g)
    src_len = torch.tensor([6, 2, 4])
    src[1, 2:] = PAD_ID
    src[2, 4:] = PAD_ID
    tgt_in = torch.cat([torch.full((3, 1), SOS_ID), torch.randint(4, VT, (3, 4), generator=g)], dim=1)
    return src, src_len, tgt_in


@pytest.mark.parametrize("cell,bidir,att", COMBOS, ids=IDS)
def test_decode_step_loop_equals_fused_teacher_forcing(cell, bidir, att):
    m = make(cell, 2, bidir, att).eval()
    src, src_len, tgt_in = batch()
    with torch.no_grad():
        fused = m(src, src_len, tgt_in)
        enc = m.encode(src, src_len)
        state, steps, attn = enc.state0, [], []
        for t in range(tgt_in.shape[1]):
            logits, state, a = m.decode_step(tgt_in[:, t], state, enc)
            steps.append(logits)
            attn.append(a)
        dec = m.decode_teacher_forced(tgt_in, enc)
    assert fused.shape == (3, 5, VT)
    assert torch.allclose(torch.stack(steps, 1), fused, atol=1e-5)
    if att == "none":
        assert dec.attn is None and all(a is None for a in attn)
    else:
        assert torch.allclose(torch.stack(attn, 1), dec.attn, atol=1e-6)
        assert torch.allclose(dec.attn.sum(-1), torch.ones(3, 5), atol=1e-6)
        assert float(dec.attn[1, :, 2:].sum()) == 0.0  # masked padding


@pytest.mark.parametrize("cell,bidir,att", COMBOS, ids=IDS)
def test_padding_does_not_change_the_encoding(cell, bidir, att):
    """A source alone and the same source padded inside a batch: same h_t, same s_0 (packing skips the padding,
    so the backward direction starts at the last real token)."""
    m = make(cell, 2, bidir, att).eval()
    src, src_len, tgt_in = batch()
    with torch.no_grad():
        full = m.encode(src, src_len)
        alone = m.encode(src[1:2, :2], src_len[1:2])
        s_full = full.state0[0] if cell == "lstm" else full.state0
        s_alone = alone.state0[0] if cell == "lstm" else alone.state0
        assert torch.allclose(full.enc_out[1, :2], alone.enc_out[0], atol=1e-6)
        assert float(full.enc_out[1, 2:].abs().sum()) == 0.0
        assert torch.allclose(s_full[:, 1], s_alone[:, 0], atol=1e-6)
        assert torch.allclose(full.context[1], alone.context[0], atol=1e-6)
        assert torch.allclose(m(src, src_len, tgt_in)[1], m(src[1:2, :2], src_len[1:2], tgt_in[1:2])[0], atol=1e-5)


@pytest.mark.parametrize("cell,bidir,att", COMBOS, ids=IDS)
@pytest.mark.parametrize("layers", [1, 3])
def test_count_parameters_matches_the_model(cell, bidir, att, layers):
    cfg = ModelConfig(11, 7, cell=cell, embed=4, hidden=5, layers=layers, bidirectional=bidir, attention=att)
    m = Seq2Seq(cfg)
    actual = Counter()
    for name, p in m.named_parameters():
        actual[component_of(name)] += p.numel()
    counts = count_parameters(cfg)
    assert list(counts) == [
        "encoder embedding",
        "encoder RNN",
        "bridge",
        "attention",
        "decoder embedding",
        "decoder RNN",
        "output layer",
        "total",
    ]
    for k, v in counts.items():
        if k != "total":
            assert v == actual.get(k, 0), k
    assert counts["total"] == sum(p.numel() for p in m.parameters())
    assert (counts["bridge"] > 0) == bidir and (counts["attention"] > 0) == (att != "none")


@pytest.mark.parametrize("cell,bidir,att", COMBOS, ids=IDS)
def test_every_parameter_gets_a_gradient(cell, bidir, att):
    m = make(cell, 2, bidir, att, dropout=0.1).train()
    src, src_len, tgt_in = batch()
    logits = m(src, src_len, tgt_in)
    F.cross_entropy(logits.reshape(-1, VT), tgt_in.roll(-1, 1).reshape(-1), ignore_index=PAD_ID).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if "embed" not in name:
            assert p.grad.abs().sum() > 0, name


def test_scheduled_sampling_feeds_argmax():
    """teacher_forcing=0: every input after <sos> is the previous step's argmax; 1.0 and a 0.5 mix have the shape."""
    m = make("gru", 2, True, "dot").eval()
    src, src_len, tgt_in = batch()
    with torch.no_grad():
        free = m(src, src_len, tgt_in, teacher_forcing=0.0)
        enc = m.encode(src, src_len)
        y, state, ref = tgt_in[:, 0], enc.state0, []
        for _ in range(tgt_in.shape[1]):
            logits, state, _ = m.decode_step(y, state, enc)
            ref.append(logits)
            y = logits.argmax(-1)
        assert torch.allclose(free, torch.stack(ref, 1), atol=1e-5)
        assert m(src, src_len, tgt_in, teacher_forcing=0.5).shape == free.shape


def test_initialization():
    for cell, G in [("lstm", 4), ("gru", 3), ("rnn", 1)]:
        m = make(cell, 1)
        H = 6
        W_hh = m.enc_rnn.weight_hh_l0.detach().view(G, H, H)
        for block in W_hh:  # orthogonal per gate
            assert torch.allclose(block @ block.T, torch.eye(H), atol=1e-5)
        b = m.dec_rnn.bias_ih_l0.detach().view(G, H)
        if cell in ("gru", "lstm"):  # the GRU's reset gate r and the LSTM's input gate i start open (gate 0), every
            assert torch.all(b[0] == 2) and torch.all(b[1:] == 0)  # other bias at 0 (forget and update gates too)
        else:
            assert torch.all(b == 0)
        assert torch.all(m.enc_rnn.bias_hh_l0 == 0)
        assert torch.all(m.src_embed.weight[PAD_ID] == 0)


def test_config_is_validated():
    with pytest.raises(ValueError, match="layers"):
        Seq2Seq(ModelConfig(9, 9, layers=4))
    with pytest.raises(ValueError, match="cell"):
        count_parameters(ModelConfig(9, 9, cell="transformer").validate())


def test_learns_to_reverse_a_few_sequences():
    """A real learning check: a small GRU + attention memorises reversing 16 sequences in 80 Adam steps."""
    torch.manual_seed(0)
    m = Seq2Seq(ModelConfig(VS, VS, cell="gru", embed=8, hidden=24, attention="dot"))
    g = torch.Generator().manual_seed(0)
    src = torch.randint(4, VS, (16, 5), generator=g)
    src_len = torch.full((16,), 5)
    tgt = src.flip(1)
    tgt_in = torch.cat([torch.full((16, 1), SOS_ID), tgt], 1)
    tgt_out = torch.cat([tgt, torch.full((16, 1), EOS_ID)], 1)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(80):
        loss = F.cross_entropy(m(src, src_len, tgt_in).reshape(-1, VS), tgt_out.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    with torch.no_grad():
        assert torch.equal(m.eval()(src, src_len, tgt_in).argmax(-1), tgt_out)


@pytest.mark.parametrize("cell,bidir", list(itertools.product(["rnn", "gru", "lstm"], [False, True])))
def test_encoder_by_length_equals_packing(cell, bidir, monkeypatch):
    """A batch of a few source lengths runs the fused encoder once per length (model._encode_by_length): the same
    outputs, final states and gradients as packing the whole batch."""
    import seq2seq.model as M

    m = make(cell, 2, bidir, "dot")
    src, src_len, tgt_in = batch()  # lengths 6, 2, 4

    def run(split_max):
        monkeypatch.setattr(M, "SPLIT_MAX_LENGTHS", split_max)
        m.zero_grad()
        enc = m.encode(src, src_len)
        s0 = enc.state0[0] if isinstance(enc.state0, tuple) else enc.state0
        (enc.enc_out.square().sum() + s0.square().sum() + m.decode_teacher_forced(tgt_in, enc).logits.sum()).backward()
        return enc, {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}

    (split, g_split), (packed, g_packed) = run(4), run(0)
    assert torch.allclose(split.enc_out, packed.enc_out, atol=1e-6)
    assert torch.allclose(split.context, packed.context, atol=1e-6)
    assert split.enc_out[1, 2:].abs().sum() == 0  # zeros at padding, as pad_packed_sequence gives
    assert g_split.keys() == g_packed.keys()
    for n in g_split:
        assert torch.allclose(g_split[n], g_packed[n], atol=1e-5), n
