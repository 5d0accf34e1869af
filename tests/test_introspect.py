"""Introspection equals the fused model: every cell x layers x direction x attention cell, within 1e-5.

For each combination a batch of two sources (the second one padded) runs through the fused modules, and the
step-by-step traces of both sources are compared with it: embeddings, h_t of every layer and direction (against
fused modules truncated to the first l+1 layers), LSTM c_t (against torch's own LSTMCell), gate consistency, the
bridge (s_0, context), attention keys, and on the decoder side s_t of every layer, attention weights, logits and
cross-entropy of a teacher-forced pass.
"""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.config import ModelConfig
from seq2seq.data import EOS_ID, SOS_ID, Vocab
from seq2seq.decoding import greedy, sample
from seq2seq.introspect import DecoderTrace, EncoderTrace, trace_decoder, trace_encoder
from seq2seq.model import Seq2Seq

torch.set_num_threads(1)
TOL = 1e-5
E, H = 5, 6
SV = Vocab.build([list("abcdefg")])
TV = Vocab.build([list("uvwxyz")])
SRC = ["abcdae", "gfb"]  # the second one is padded in the batch
TGT = ["xyzuv", "wu"]
CELLS = list(itertools.product(["rnn", "gru", "lstm"], [1, 2, 3], [False, True], ["none", "additive", "dot"]))


def make_model(cell, layers, bidir, att, seed=0, dropout=0.0) -> Seq2Seq:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        len(SV),
        len(TV),
        cell=cell,
        embed=E,
        hidden=H,
        layers=layers,
        bidirectional=bidir,
        attention=att,
        dropout=dropout,
    )
    m = Seq2Seq(cfg)
    with torch.no_grad():  # move biases off their init values so every parameter matters
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m.eval()


def pad(rows):
    n = max(map(len, rows))
    return torch.tensor([r + [0] * (n - len(r)) for r in rows]), torch.tensor([len(r) for r in rows])


def truncated(rnn, layers: int):
    """A fused module with only the first `layers` layers of `rnn` (same weights): its outputs are layer l's h_t."""
    kw = dict(batch_first=True, bidirectional=rnn.bidirectional)
    if isinstance(rnn, torch.nn.RNN):
        kw["nonlinearity"] = "tanh"
    sub = type(rnn)(rnn.input_size, rnn.hidden_size, layers, **kw)
    sub.load_state_dict({k: v for k, v in rnn.state_dict().items() if int(k.split("_l")[1][0]) < layers})
    return sub


def close(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    err = np.abs(a - b).max() if a.size else 0.0
    assert err < TOL, f"{what}: max abs difference {err:.2e}"


@pytest.mark.parametrize("cell,layers,bidir,att", CELLS, ids=["-".join(map(str, c)) for c in CELLS])
def test_trace_matches_fused(cell, layers, bidir, att):
    m = make_model(cell, layers, bidir, att)
    D, lstm = (2 if bidir else 1), cell == "lstm"
    src, src_len = pad([SV.encode(list(s)) for s in SRC])
    tgt = [TV.encode(list(t)) for t in TGT]
    tgt_in, _ = pad([[SOS_ID] + t for t in tgt])
    tgt_out, _ = pad([t + [EOS_ID] for t in tgt])
    with torch.no_grad():
        enc = m.encode(src, src_len)
        dec = m.decode_teacher_forced(tgt_in, enc)
        x = m.src_embed(src)
        packed = pack_padded_sequence(x, src_len, batch_first=True, enforce_sorted=False)
        layer_out = [
            pad_packed_sequence(truncated(m.enc_rnn, l + 1)(packed)[0], batch_first=True)[0] for l in range(layers)
        ]  # (B, S, D*H) per layer
        # layer 0's input at step t: [embed(y_{t-1}); c_t], c_t = sum_j a_tj k_j with attention, else the fixed c
        c_t = enc.context[:, None].expand(-1, tgt_in.shape[1], -1) if att == "none" else dec.attn @ enc.keys
        dec_in = torch.cat([m.tgt_embed(tgt_in), c_t], -1)
        s0 = enc.state0
        dec_layers = [
            truncated(m.dec_rnn, l + 1)(dec_in, tuple(z[: l + 1] for z in s0) if lstm else s0[: l + 1])[0]
            for l in range(layers)
        ]

    for b, (text, target) in enumerate(zip(SRC, TGT)):
        T, Tt = len(text), len(target) + 1
        et = trace_encoder(m, SV, text, "char")
        assert isinstance(et, EncoderTrace) and et.tokens == list(text) and et.ids == SV.encode(list(text))
        close(et.embeddings, x[b, :T], "embeddings")
        assert et.h.shape == (layers, D, T, H)
        for l in range(layers):
            for d in range(D):
                close(et.h[l, d], layer_out[l][b, :T, d * H : (d + 1) * H], f"h layer {l} dir {d}")
        close(et.outputs, enc.enc_out[b, :T], "top-layer outputs")
        state0 = enc.state0[0] if lstm else enc.state0
        close(et.s0, state0[:, b], "s0 (bridge)")
        close(et.context, enc.context[b], "context")
        if lstm:
            close(et.cell0, enc.state0[1][:, b], "cell0 (bridge)")
        if att != "none":
            close(et.keys, enc.keys[b, :T], "attention keys")
        else:
            assert et.keys is None
        _check_cells_and_gates(m, et, layers, D, T)

        dt = trace_decoder(m, et, TV, target=target, teacher_forced=True)
        assert isinstance(dt, DecoderTrace) and dt.mode == "teacher_forced" and len(dt.steps) == Tt
        close(np.stack([s.logits for s in dt.steps]), dec.logits[b, :Tt], "logits")
        close(np.stack([s.s[-1] for s in dt.steps]), dec.s[b, :Tt], "top-layer s_t")
        for l in range(layers):
            close(np.stack([s.s[l] for s in dt.steps]), dec_layers[l][b, :Tt], f"decoder s_t layer {l}")
        if att != "none":
            close(dt.attention_matrix(), dec.attn[b, :Tt, :T], "attention")
            close(np.stack([s.attn_context for s in dt.steps]), c_t[b, :Tt], "attention context c_t")
            assert float(dec.attn[b, :Tt, T:].abs().sum()) == 0.0  # padding gets no attention
        else:
            assert dt.attention_matrix() is None
        ce = F.cross_entropy(dec.logits[b, :Tt], tgt_out[b, :Tt], reduction="none")
        close([s.cross_entropy for s in dt.steps], ce, "cross-entropy")
        assert abs(dt.loss - float(ce.mean())) < TOL
        assert [s.input_id for s in dt.steps] == tgt_in[b, :Tt].tolist()


def _check_cells_and_gates(m, et, layers, D, T):
    """LSTM c_t against torch.nn.LSTMCell (an independent kernel), and each cell's update rule from the gates."""
    cell = m.cfg.cell
    for l in range(layers):
        x_in = torch.from_numpy(et.embeddings if l == 0 else et.h[l - 1].transpose(1, 0, 2).reshape(T, D * H))
        for d in range(D):
            order = range(T) if d == 0 else range(T - 1, -1, -1)
            h_ref, c_ref = torch.zeros(1, H), torch.zeros(1, H)
            if cell == "lstm":
                ref = torch.nn.LSTMCell(x_in.shape[1], H)
                sfx = "_reverse" if d else ""
                names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                ref.load_state_dict({k: getattr(m.enc_rnn, f"{k}_l{l}{sfx}") for k in names})
                with torch.no_grad():
                    for t in order:
                        h_ref, c_ref = ref(x_in[t : t + 1], (h_ref, c_ref))
                        close(et.c[l, d, t], c_ref[0], f"c_t layer {l} dir {d} t {t}")
                        close(et.h[l, d, t], h_ref[0], f"h_t (LSTMCell) layer {l} dir {d} t {t}")
            g = et.gates
            for t in order:
                prev = (t - 1) if d == 0 else (t + 1)
                h_prev = et.h[l, d, prev] if 0 <= prev < T else np.zeros(H, np.float32)
                if cell == "rnn":
                    close(np.tanh(g["pre"][l, d, t]), et.h[l, d, t], "rnn h = tanh(pre)")
                elif cell == "gru":
                    z, n = g["z"][l, d, t], g["n"][l, d, t]
                    close((1 - z) * n + z * h_prev, et.h[l, d, t], "gru h = (1-z) n + z h_prev")
                    assert 0 <= g["r"][l, d, t].min() and g["r"][l, d, t].max() <= 1
                else:
                    c_prev = et.c[l, d, prev] if 0 <= prev < T else np.zeros(H, np.float32)
                    i, f, gg, o = (g[k][l, d, t] for k in "ifgo")
                    close(f * c_prev + i * gg, et.c[l, d, t], "lstm c = f c_prev + i g")
                    close(o * np.tanh(et.c[l, d, t]), et.h[l, d, t], "lstm h = o tanh(c)")


def test_trace_restores_training_mode_and_ignores_dropout():
    m = make_model("gru", 2, True, "additive", dropout=0.5).train()
    et = trace_encoder(m, SV, "abc", "char")
    assert m.training
    with torch.no_grad():
        enc = m.eval().encode(*pad([SV.encode(list("abc"))]))
    close(et.outputs, enc.enc_out[0], "outputs with dropout model")


def test_free_running_greedy_matches_decoding_greedy():
    for cell, bidir, att in [("lstm", True, "dot"), ("gru", False, "additive"), ("rnn", False, "none")]:
        m = make_model(cell, 2, bidir, att, seed=3)
        et = trace_encoder(m, SV, "gabba", "char")
        dt = trace_decoder(m, et, TV, max_steps=12)
        ids = greedy(m, et.ids, 11)
        assert [s.chosen_id for s in dt.steps][: len(ids)] == ids
        if len(ids) < 11:  # greedy ended with <eos> (else it was cut at max_len = 11 tokens)
            assert dt.output_tokens == TV.decode(ids)
        assert dt.mode == "greedy"
        # without a target there is no cross-entropy; the step inputs are the previous choices
        assert all(s.cross_entropy is None for s in dt.steps)
        assert [s.input_id for s in dt.steps[1:]] == [s.chosen_id for s in dt.steps[:-1]]


def test_sampling_is_seeded_and_top1_is_greedy():
    m = make_model("lstm", 1, False, "dot", seed=1)
    et = trace_encoder(m, SV, "abcdefg", "char")
    a = trace_decoder(m, et, TV, strategy="sample", temperature=2.0, seed=7, max_steps=15)
    b = trace_decoder(m, et, TV, strategy="sample", temperature=2.0, seed=7, max_steps=15)
    assert [s.chosen_id for s in a.steps] == [s.chosen_id for s in b.steps]
    outs = {
        tuple(
            s.chosen_id
            for s in trace_decoder(m, et, TV, strategy="sample", temperature=3.0, seed=k, max_steps=15).steps
        )
        for k in range(8)
    }
    assert len(outs) > 1  # different seeds give different samples
    # the same seed gives the same tokens as decoding.sample
    assert a.output_tokens == TV.decode(sample(m, et.ids, 14, temperature=2.0, top_k=0, seed=7))
    top1 = trace_decoder(m, et, TV, strategy="sample", top_k=1, temperature=5.0, seed=3, max_steps=15)
    g = trace_decoder(m, et, TV, max_steps=15)
    assert [s.chosen_id for s in top1.steps] == [s.chosen_id for s in g.steps]
    st = top1.steps[0]
    assert np.count_nonzero(st.sample_probs) == 1 and abs(st.probs.sum() - 1) < 1e-5


def test_forcing_a_token_changes_later_steps():
    m = make_model("gru", 2, False, "additive", seed=2)
    et = trace_encoder(m, SV, "abcab", "char")
    A, B, C = TV.stoi["x"], TV.stoi["y"], TV.stoi["z"]
    base = trace_decoder(m, et, TV, max_steps=8, force={1: "x", 2: C})
    forced = trace_decoder(m, et, TV, max_steps=8, force={1: "x", 2: B})
    for t in (0, 1):  # up to the forced step (its own distribution included) nothing changes
        close(forced.steps[t].logits, base.steps[t].logits, f"step {t + 1} before forcing")
    assert [s.forced for s in forced.steps[:3]] == [True, True, False]
    assert forced.steps[0].chosen_id == A and forced.steps[1].chosen_id == B and forced.steps[2].input_id == B
    assert np.abs(forced.steps[2].s - base.steps[2].s).max() > 1e-4  # ... and it changes every later step
    assert np.abs(forced.steps[2].logits - base.steps[2].logits).max() > 1e-4
    # an unforced free run continues from the forced token
    assert all(s.input_id == p.chosen_id for p, s in zip(forced.steps, forced.steps[1:]))
    # teacher-forced mode goes back to the target after the forced step
    tf = trace_decoder(m, et, TV, target="xyzu", teacher_forced=True, force={1: C})
    assert tf.steps[1].input_id == C and tf.steps[2].input_id == TV.stoi["y"]


def test_cross_entropy_and_errors():
    m = make_model("lstm", 1, True, "dot")
    et = trace_encoder(m, SV, "abc", "char")
    dt = trace_decoder(m, et, TV, target="xy", max_steps=6)  # free-running, scored against a target
    for s in dt.steps[:3]:
        assert abs(s.cross_entropy + np.log(s.probs[s.target_id])) < 1e-4
    assert all(s.cross_entropy is None for s in dt.steps[3:])
    assert dt.steps[2].target_token == "<eos>"
    assert abs(dt.attention_matrix().sum(1) - 1).max() < 1e-5
    with pytest.raises(ValueError, match="target"):
        trace_decoder(m, et, TV, teacher_forced=True)
    with pytest.raises(ValueError, match="vocabulary"):
        trace_decoder(m, et, TV, force={1: "no such token"})
    with pytest.raises(ValueError, match="temperature"):
        trace_decoder(m, et, TV, strategy="sample", temperature=0)
    with pytest.raises(ValueError, match="empty"):
        trace_encoder(m, SV, "", "char")
    with pytest.raises(ValueError, match="max_steps"):
        trace_decoder(m, et, TV, max_steps=0)
    # source given as text with its vocabulary, or as ids: same trace
    a = trace_decoder(m, "abc", TV, src_vocab=SV, tokens_mode="char", max_steps=5)
    b = trace_decoder(m, et.ids, TV, max_steps=5)
    assert [s.chosen_id for s in a.steps] == [s.chosen_id for s in b.steps]


def test_word_mode_and_unknown_tokens():
    sv = Vocab.build([["the", "cat", "sat"]])
    tv = Vocab.build([["le", "chat"]])
    m = Seq2Seq(ModelConfig(len(sv), len(tv), cell="gru", embed=4, hidden=5)).eval()
    et = trace_encoder(m, sv, "the  dog sat", "word")
    assert et.tokens == ["the", "dog", "sat"] and et.ids[1] == 3  # <unk>
    dt = trace_decoder(m, et, tv, target="le chat", teacher_forced=True)
    assert [s.target_token for s in dt.steps] == ["le", "chat", "<eos>"]
