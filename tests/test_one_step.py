"""One example, one training step (seq2seq/one_step.py) against the training code: the same loss and the same
updated weights as one real Run.step() on that example, to 1e-6, for every optimizer and cell; the model itself is
left unchanged; the timestep gradients are the real derivatives."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from seq2seq import checkpoint as C
from seq2seq.config import ModelConfig, TrainConfig
from seq2seq.data import Seq2SeqData, build_data
from seq2seq.model import Seq2Seq
from seq2seq.one_step import walk
from seq2seq.tasks import generate_splits
from seq2seq.training import Run
from tests.test_export import PRETRAINED

torch.set_num_threads(1)


def tiny(cell="gru", attention="dot", bidirectional=True, layers=1, seed=0):
    data = build_data(generate_splits("reverse", 60, 10, 10, seed=0, min_len=3, max_len=7), tokens="char")
    torch.manual_seed(seed)
    cfg = ModelConfig(
        len(data.src_vocab),
        len(data.tgt_vocab),
        cell=cell,
        attention=attention,
        bidirectional=bidirectional,
        layers=layers,
        embed=8,
        hidden=16,
    )
    return data, cfg, Seq2Seq(cfg).eval()


def real_step(model, cfg, data, pair, optimizer, lr, clip):
    one = Seq2SeqData(
        tokens=data.tokens,
        src_vocab=data.src_vocab,
        tgt_vocab=data.tgt_vocab,
        train=[pair],
        valid=[pair],
        test=[pair],
        max_len=data.max_len,
    )
    run = Run(
        one,
        cfg,
        TrainConfig(
            optimizer=optimizer, lr=lr, clip=clip, precision="fp32", epochs=1, lr_schedule="constant", batch_size=1
        ),
        state_dict=model.state_dict(),
    )
    metrics = run.step()
    return metrics, run.model.state_dict()


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd"])
@pytest.mark.parametrize(
    "arch",
    [
        dict(cell="gru", attention="dot"),
        dict(cell="lstm", attention="additive"),
        dict(cell="rnn", attention="none", bidirectional=False),
        dict(cell="lstm", attention="none", layers=2),
    ],
    ids=["gru-dot", "lstm-additive", "rnn-none-uni", "lstm-none-2layers"],
)
def test_same_loss_and_weights_as_one_real_training_step(optimizer, arch):
    data, cfg, model = tiny(**arch)
    pair = data.train[3]
    original = copy.deepcopy(model.state_dict())
    w = walk(
        model,
        data.src_vocab,
        data.tgt_vocab,
        data.tokens,
        pair,
        data.train[:4],
        optimizer=optimizer,
        lr=0.01,
        clip=1.0,
        max_len=data.max_len,
    )
    metrics, after = real_step(model, cfg, data, pair, optimizer, 0.01, 1.0)
    assert abs(w.loss - metrics["train_loss"]) < 1e-6
    assert abs(w.grad_total - metrics["grad_norm"]) < 1e-5
    for k, v in after.items():
        assert (w.new_state[k] - v).abs().max().item() < 1e-6, k
    assert any((w.new_state[k] - original[k]).abs().max() > 0 for k in original)  # it did move
    for k, v in model.state_dict().items():  # and the model it was given is untouched
        assert torch.equal(v, original[k]), k
    assert abs(w.loss_unrolled - w.loss) < 1e-5
    assert np.isclose(w.token_ce.mean(), w.loss, atol=1e-5)
    assert w.losses[0]["this"] and w.losses[0]["source"] == pair[0] and len(w.losses) == 4
    assert abs(w.losses[0]["before"] - w.loss) < 1e-5


def test_clipping_and_grad_groups_match_the_run():
    data, cfg, model = tiny(cell="gru", attention="additive")
    pair = data.train[0]
    w = walk(
        model,
        data.src_vocab,
        data.tgt_vocab,
        data.tokens,
        pair,
        optimizer="sgd",
        lr=1.0,
        clip=0.05,
        max_len=data.max_len,
    )
    metrics, after = real_step(model, cfg, data, pair, "sgd", 1.0, 0.05)
    assert w.clip_factor < 1  # clipped
    for g, v in metrics["grad_norms"].items():
        assert abs(w.grad_groups[g] - v) < 1e-5, g
    # SGD without momentum: each group moved by lr * its clipped gradient
    for g in w.groups:
        assert abs(w.moved[g] - 1.0 * w.clip_factor * w.grad_groups[g]) < 1e-5, g
    for k, v in after.items():
        assert (w.new_state[k] - v).abs().max().item() < 1e-6, k


def test_timestep_gradients_are_the_real_derivatives():
    """||d loss / d h_t|| of the last encoder timestep equals the gradient taken another way: with s_0 (which is
    h_S here: unidirectional, no bridge) as a leaf of the fused model's own teacher-forced pass, in float64."""
    data, cfg, model = tiny(cell="gru", attention="none", bidirectional=False)
    pair = data.train[1]
    w = walk(model, data.src_vocab, data.tgt_vocab, data.tokens, pair, max_len=data.max_len)
    S, T = len(w.src_tokens), len(w.targets)
    assert w.grad_h.shape == (1, S) and w.grad_s.shape == (T,)
    assert np.all(np.isfinite(w.grad_h)) and np.all(w.grad_h > 0) and np.all(w.grad_s > 0)
    from seq2seq.training import EncodedSplit, token_loss

    m = copy.deepcopy(model).double()
    src, src_len, tgt_in, tgt_out = EncodedSplit(data, [pair]).batch(torch.arange(1))
    enc = m.encode(src, src_len)
    s0 = enc.state0.detach().requires_grad_(True)
    loss = token_loss(m.decode_teacher_forced(tgt_in, enc._replace(state0=s0, context=s0[-1])).logits, tgt_out)
    (g,) = torch.autograd.grad(loss, s0)
    assert abs(g.norm().item() - w.grad_h[0, -1]) < 1e-4


def test_pretrained_models_walk():
    for folder in PRETRAINED:
        ck = C.load(folder)
        pairs = generate_splits(ck.task, n_train=5, n_valid=0, n_test=0, seed=1)["train"]
        w = walk(ck.model, ck.src_vocab, ck.tgt_vocab, ck.tokens, pairs[0], pairs[1:], max_len=50)
        assert w.probs.shape == (len(w.targets), len(ck.tgt_vocab)) and np.allclose(w.probs.sum(1), 1, atol=1e-5)
        assert (w.attention is None) == (ck.model_cfg.attention == "none")
        assert set(w.moved) == set(w.grad_groups) and all(v > 0 for v in w.moved.values())
        assert w.prediction_before and w.losses[0]["this"]
