"""Decoding: greedy (single and batched), seeded sampling, beam search and its tree, translate."""

import math

import pytest
import torch

from seq2seq.config import ModelConfig
from seq2seq.data import EOS_ID, PAD_ID, Vocab
from seq2seq.decoding import beam_search, greedy, greedy_batch, sample, sampling_probs, translate
from seq2seq.model import Seq2Seq

torch.set_num_threads(1)
SV = Vocab.build([list("abcdefg")])
TV = Vocab.build([list("uvwxyz")])
CONFIGS = [("lstm", 2, True, "dot"), ("gru", 1, False, "additive"), ("rnn", 3, False, "none")]
SOURCES = [[4, 5, 6], [7, 8, 9, 10, 4], [6], [5, 5, 5, 5, 5, 5, 5]]


def make(cell, layers, bidir, att, seed=0) -> Seq2Seq:
    torch.manual_seed(seed)
    m = Seq2Seq(
        ModelConfig(len(SV), len(TV), cell=cell, embed=6, hidden=8, layers=layers, bidirectional=bidir, attention=att)
    )
    with torch.no_grad():  # a sharper, less uniform output layer than at init, so decisions are not near-ties
        m.out.weight.mul_(4)
        m.out.bias.add_(torch.randn_like(m.out.bias))
    return m.eval()


def seq_logprob(m: Seq2Seq, src: list[int], ids: list[int]) -> float:
    """Total log-probability of ids + <eos> under the model (teacher forced)."""
    tgt = ids + [EOS_ID]
    with torch.no_grad():
        logits = m(torch.tensor([src]), torch.tensor([len(src)]), torch.tensor([[1] + ids]))[0]
    return float(torch.log_softmax(logits, -1)[range(len(tgt)), tgt].sum())


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_greedy_batch_equals_greedy_and_beam1(cfg):
    m = make(*cfg)
    rows = [greedy(m, s, 10) for s in SOURCES]
    n = max(map(len, SOURCES))
    src = torch.tensor([s + [PAD_ID] * (n - len(s)) for s in SOURCES])
    out = greedy_batch(m, src, torch.tensor([len(s) for s in SOURCES]), 10)
    assert out.dtype == torch.long and out.shape[0] == len(SOURCES) and out.shape[1] <= 11
    for row, ids in zip(out.tolist(), rows):
        assert row[: len(ids)] == ids
        if EOS_ID in row:  # <eos> ends the row, then padding
            k = row.index(EOS_ID)
            assert k == len(ids) and all(t == PAD_ID for t in row[k + 1 :])
        else:
            assert len(ids) == 10
    for s, ids in zip(SOURCES, rows):
        r = beam_search(m, s, 1, 10)
        assert r.best == ids  # beam width 1 is greedy
        assert len(r.hypotheses) == 1


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_beam_tree_is_consistent(cfg):
    m = make(*cfg)
    for s in SOURCES:
        for norm in (True, False):
            r = beam_search(m, s, 3, 8, length_norm=norm)
            tree = r.tree
            assert tree[0].parent is None and tree[0].step == 0 and tree[0].kept
            for node in tree[1:]:
                parent = tree[node.parent]
                assert parent.kept and not parent.finished and node.step == parent.step + 1
                assert math.isclose(node.score, parent.score + node.logprob, abs_tol=1e-5)
                assert node.logprob <= 0 and node.finished == (node.token_id == EOS_ID)
            for step in range(1, max(n.step for n in tree) + 1):
                assert sum(n.kept for n in tree if n.step == step) <= 3
            scores = [sc for _, sc in r.hypotheses]
            assert scores == sorted(scores, reverse=True) and r.best == r.hypotheses[0][0]
            assert 1 <= len(r.hypotheses) <= 3
            finished = [n for n in tree if n.kept and n.finished]
            for n in finished:  # tree scores are the model's own sequence log-probabilities
                ids = r.path(n.id)
                assert ids[-1] == EOS_ID and math.isclose(n.score, seq_logprob(m, s, ids[:-1]), abs_tol=1e-4)
                final = n.score / n.step if norm else n.score
                assert any(h == ids[:-1] and math.isclose(sc, final, abs_tol=1e-6) for h, sc in r.hypotheses)


def test_beam_finds_at_least_greedys_score_on_a_sharp_model():
    """With a wide beam the best raw-score hypothesis is at least as likely as the greedy output here."""
    m = make("gru", 1, False, "dot", seed=4)
    for s in SOURCES:
        g = greedy(m, s, 8)
        r = beam_search(m, s, 6, 8, length_norm=False)
        if len(g) < 8:  # greedy finished with <eos>
            assert r.hypotheses[0][1] >= seq_logprob(m, s, g) - 1e-5


def test_sampling_is_reproducible_and_top1_is_greedy():
    m = make("lstm", 1, False, "none", seed=2)
    for s in SOURCES:
        assert sample(m, s, 10, temperature=1.5, seed=11) == sample(m, s, 10, temperature=1.5, seed=11)
        assert sample(m, s, 10, temperature=4.0, top_k=1, seed=5) == greedy(m, s, 10)
    outs = {tuple(sample(m, SOURCES[1], 10, temperature=3.0, seed=k)) for k in range(10)}
    assert len(outs) > 1


def test_sampling_probs():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0])
    p = sampling_probs(logits, 1.0, 2)
    assert torch.allclose(p.sum(), torch.tensor(1.0)) and p[2] == 0 and p[3] == 0 and p[0] > p[1] > 0
    assert torch.allclose(sampling_probs(logits), torch.softmax(logits, 0))
    cold, hot = sampling_probs(logits, 0.1), sampling_probs(logits, 10.0)
    assert cold[0] > 0.99 and hot.max() < 0.35
    with pytest.raises(ValueError):
        sampling_probs(logits, 0.0)


def test_translate():
    class Data:  # anything with src_vocab, tgt_vocab, tokens (Seq2SeqData, Checkpoint)
        src_vocab, tgt_vocab, tokens, max_len = SV, TV, "char", 6

    m = make("lstm", 2, True, "additive")
    text = "abcab"
    ids = greedy(m, SV.encode(list(text)), 6)
    out = translate(m, Data(), text)
    assert isinstance(out, str) and out == "".join(TV.decode(ids))
    assert translate(m, (SV, TV, "char"), text, max_len=6) == out
    assert translate(m, Data(), text, beam=3) == "".join(TV.decode(beam_search(m, SV.encode(list(text)), 3, 6).best))
    assert translate(m, Data(), "a?!") == translate(m, Data(), "a<>")  # unknown characters -> <unk>
    with pytest.raises(ValueError, match="empty"):
        translate(m, Data(), "")
    m.train()
    translate(m, Data(), text)
    assert m.training  # decoding restores the mode it found
