"""seq2seq/experiments.py: the encoder-timestep gradient against finite differences through the fused modules, and
accuracy by length on a model whose answers are known."""

import numpy as np
import pytest
import torch
from torch import nn

from seq2seq.config import ModelConfig
from seq2seq.data import EOS_ID, PAD_ID, build_data
from seq2seq.decoding import greedy_batch
from seq2seq.experiments import accuracy_by_length, encoder_grad_norms, length_test_pairs, probe_batch
from seq2seq.model import Seq2Seq
from seq2seq.tasks import generate_splits

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return build_data(
        generate_splits("reverse", n_train=300, n_valid=30, n_test=30, seed=0, min_len=3, max_len=8), tokens="char"
    )


# ------------------------------------------------------------------------------------------------ gradient check
class Perturbed(nn.Module):
    """Stands in for the fused encoder RNN: the same fused module (one direction at a time), with `delta` added to
    the top-layer state h_t at timestep t ([h_fwd; h_bwd] halves for a bidirectional one) and the run continued from
    there. An independent path to L(h_t + delta): no unrolled recomputation, no autograd."""

    def __init__(self, fused: nn.RNNBase, t: int, delta: torch.Tensor):
        super().__init__()
        self.__dict__["fused"] = fused
        self.t, self.delta = t, delta
        self.dirs = []
        for sfx in [""] + (["_reverse"] if fused.bidirectional else []):
            one = type(fused)(fused.input_size, fused.hidden_size, 1, batch_first=True).to(delta.dtype)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(one, name + "_l0").data.copy_(getattr(fused, name + "_l0" + sfx).data)
            self.dirs.append(one)

    def _run(self, rnn, x, k, d):  # x (B, S, E) in reading order; perturb after reading position k
        lstm = isinstance(rnn, nn.LSTM)
        o1, st = rnn(x[:, : k + 1])
        o1 = o1.clone()
        o1[:, k] += d
        h = o1[:, k][None]
        st = (h, st[1]) if lstm else h
        if k + 1 < x.shape[1]:
            o2, st = rnn(x[:, k + 1 :], st)
            o1 = torch.cat([o1, o2], 1)
        return o1, st

    def forward(self, x, hx=None):
        assert isinstance(x, torch.Tensor), "the test batches have no padding"
        H, S = self.fused.hidden_size, x.shape[1]
        out_f, st_f = self._run(self.dirs[0], x, self.t, self.delta[:, :H])
        if len(self.dirs) == 1:
            return out_f, st_f
        out_b, st_b = self._run(self.dirs[1], x.flip(1), S - 1 - self.t, self.delta[:, H:])
        out = torch.cat([out_f, out_b.flip(1)], -1)
        if isinstance(st_f, tuple):
            return out, tuple(torch.cat([a, b]) for a, b in zip(st_f, st_b))
        return out, torch.cat([st_f, st_b])


def per_example_loss(model, src, src_len, tgt_in, tgt_out):
    logits = model(src, src_len, tgt_in, 1.0)
    ce = nn.functional.cross_entropy(logits.transpose(1, 2), tgt_out, ignore_index=PAD_ID, reduction="none")
    return ce.sum(1) / (tgt_out != PAD_ID).sum(1)


@pytest.mark.parametrize(
    "cell,attention,bidir",
    [
        ("rnn", "none", False),
        ("gru", "additive", False),
        ("lstm", "dot", False),
        ("lstm", "none", True),
        ("rnn", "additive", True),
    ],
)
def test_encoder_grad_norms_match_finite_differences(data, cell, attention, bidir):
    torch.manual_seed(0)
    cfg = ModelConfig(
        len(data.src_vocab), len(data.tgt_vocab), cell=cell, embed=6, hidden=5, attention=attention, bidirectional=bidir
    )
    model = Seq2Seq(cfg).double().eval()
    pairs = [p for p in data.valid if len(p[0]) == 5][:3]  # one length: no padding, the fused path
    src, src_len, tgt_in, tgt_out = probe_batch(data, pairs)
    got = encoder_grad_norms(model, src, src_len, tgt_in, tgt_out)
    B, S, D, H = src.shape[0], src.shape[1], 2 if bidir else 1, cfg.hidden
    fused, eps = model.enc_rnn, 1e-6
    fd = np.zeros((B, S, D * H))
    try:
        for t in range(S):
            for j in range(D * H):
                loss = []
                for sign in (1, -1):
                    delta = torch.zeros(B, D * H, dtype=torch.float64)
                    delta[:, j] = sign * eps
                    model.enc_rnn = Perturbed(fused, t, delta)
                    with torch.no_grad():
                        loss.append(per_example_loss(model, src, src_len, tgt_in, tgt_out))
                fd[:, t, j] = ((loss[0] - loss[1]) / (2 * eps)).numpy()
    finally:
        model.enc_rnn = fused
    np.testing.assert_allclose(got["norm"], np.linalg.norm(fd, axis=-1), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(got["mean"], np.linalg.norm(fd, axis=-1).mean(0), rtol=1e-5, atol=1e-9)
    if bidir:  # h_t = [h_fwd_t; h_bwd_t]: the halves
        np.testing.assert_allclose(got["forward"], np.linalg.norm(fd[..., :H], axis=-1), rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(got["backward"], np.linalg.norm(fd[..., H:], axis=-1), rtol=1e-5, atol=1e-9)
    else:
        assert got["forward"] is None and got["backward"] is None
    if attention == "none" and not bidir:  # the last state feeds the decoder directly: never a zero gradient
        assert (got["norm"][:, -1] > 0).all()


def test_encoder_grad_norms_with_padding_are_per_example(data):
    """A padded batch gives each example the norms it gets alone; timesteps past a source's end are NaN; the model's
    weights and mode are untouched."""
    torch.manual_seed(1)
    cfg = ModelConfig(len(data.src_vocab), len(data.tgt_vocab), cell="gru", embed=8, hidden=8, attention="additive")
    model = Seq2Seq(cfg).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pairs = sorted(data.valid[:6], key=lambda p: len(p[0]))
    got = encoder_grad_norms(model, *probe_batch(data, pairs))
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    for i, p in enumerate(pairs):
        alone = encoder_grad_norms(model, *probe_batch(data, [p]))["norm"][0]
        n = len(p[0])
        np.testing.assert_allclose(got["norm"][i, :n], alone, rtol=1e-4, atol=1e-7)
        assert np.isnan(got["norm"][i, n:]).all()
    counts = np.array([sum(len(p[0]) > t for p in pairs) for t in range(got["norm"].shape[1])])
    np.testing.assert_allclose(got["mean"], np.nansum(got["norm"], 0) / counts, rtol=1e-6)


# ------------------------------------------------------------------------------------------- accuracy by length
class Oracle(nn.Module):
    """A 'model' whose answers are known: it predicts the right next target token (read off tgt_in, and <eos> at
    the end), except the first output token of every source whose length is in `wrong`."""

    def __init__(self, vocab_size: int, wrong: set[int]):
        super().__init__()
        self.V, self.wrong = vocab_size, wrong

    def forward(self, src, src_len, tgt_in, teacher_forcing=1.0):
        B, T = tgt_in.shape
        nxt = torch.cat([tgt_in[:, 1:], torch.full((B, 1), PAD_ID)], 1)
        n = (tgt_in != PAD_ID).sum(1)  # <sos> + target tokens: <eos> goes at position n - 1
        nxt[torch.arange(B), n - 1] = EOS_ID
        for i in range(B):
            if int(src_len[i]) in self.wrong:
                nxt[i, 0] = (nxt[i, 0] + 1) % self.V or 4
        return nn.functional.one_hot(nxt, self.V).double()


def test_accuracy_by_length_on_an_oracle(data):
    pairs = length_test_pairs("reverse", [3, 4, 5, 9, 12], per_length=7, exclude=data.train, min_len=3, max_len=8)
    rows = accuracy_by_length(Oracle(len(data.tgt_vocab), wrong={4, 12}), data, pairs, batch_size=4)
    assert [r["length"] for r in rows] == [3, 4, 5, 9, 12]  # past the training range (3..8) too
    assert all(r["n"] == 7 for r in rows)
    for r in rows:
        n_tok = r["length"] + 1  # reversal: as many target tokens as source tokens, plus <eos>
        if r["length"] in (4, 12):
            assert r["exact_match"] == 0 and r["token_accuracy"] == pytest.approx((n_tok - 1) / n_tok)
        else:
            assert r["exact_match"] == 1 and r["token_accuracy"] == 1


def test_accuracy_by_length_exact_match_is_greedy_decoding(data):
    """On a real (randomly initialised, then briefly trained) model: exact match per length is the share of
    examples whose greedy output is exactly the target."""
    from seq2seq.config import TrainConfig
    from seq2seq.training import Run

    cfg = ModelConfig(len(data.src_vocab), len(data.tgt_vocab), cell="lstm", embed=16, hidden=32, attention="dot")
    run = Run(data, cfg, TrainConfig(epochs=20, batch_size=32, eval_every=1000, lr=1e-2))
    while not run.done:
        run.step()
    model = run.model.eval()
    pairs = length_test_pairs("reverse", range(3, 11), per_length=12, exclude=data.train)
    rows = accuracy_by_length(model, data, pairs)
    assert 0 < sum(r["exact_match"] for r in rows)  # it learned something, or the check below proves little
    for r in rows:
        part = [p for p in pairs if len(p[0]) == r["length"]]
        src, src_len, tgt_in, tgt_out = probe_batch(data, part)
        out = greedy_batch(model, src, src_len, tgt_out.shape[1])
        hits = 0
        for i, (_, tgt) in enumerate(part):
            ids = out[i].tolist()
            ids = ids[: ids.index(EOS_ID)] if EOS_ID in ids else None
            hits += ids == data.tgt_vocab.encode(list(tgt))
        assert r["exact_match"] == pytest.approx(hits / len(part))


def test_length_test_pairs_lengths_exclusion_and_tasks(data):
    train_src = {s for s, _ in data.train}
    pairs = length_test_pairs("reverse", range(3, 31), per_length=5, exclude=data.train)
    lens = [len(s) for s, _ in pairs]
    assert sorted(set(lens)) == list(range(3, 31)) and all(lens.count(n) == 5 for n in range(3, 31))
    assert not train_src & {s for s, _ in pairs} and all(t == s[::-1] for s, t in pairs)
    assert pairs == length_test_pairs("reverse", range(3, 31), per_length=5, exclude=data.train)  # deterministic
    few = length_test_pairs("copy", [1, 2], per_length=50, alphabet="ab")  # only 2 and 4 distinct sources, of which
    assert sorted(len(s) for s, _ in few) == [1, 2, 2, 2]  # generate_splits draws at most 90% (tasks.py)
    words = length_test_pairs("translate", [3, 5, 6, 20], per_length=4)  # 3 and 20 words: no such sentences
    assert sorted({len(s.split()) for s, _ in words}) == [5, 6]
    sums = length_test_pairs("addition", [3, 5, 7], per_length=6)  # no length parameter: drawn, then grouped
    assert sorted(len(s) for s, _ in sums) == [3] * 6 + [5] * 6 + [7] * 6
    assert all(str(eval(s)) == t for s, t in sums)  # noqa: S307 (digits and one '+')
