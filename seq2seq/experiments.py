"""Measurements that compare models: accuracy by source length, and the gradient reaching each encoder timestep.

    rows = accuracy_by_length(model, data, pairs)          # [{length, n, exact_match, token_accuracy}, ...]
    pairs = length_test_pairs("reverse", range(5, 41), 40, exclude=data.train)  # held out, lengths past training
    g = encoder_grad_norms(model, src, src_len, tgt_in, tgt_out)   # ||dL_i/dh_t|| per example i, timestep t

Why attention (the classic experiment, Bahdanau et al. 2015, Fig. 2): without attention the decoder sees the source
only through one context vector c of H numbers, so exact match falls as sources get longer; with attention it can
look back at every h_t. accuracy_by_length makes that a chart with one line per model.

The gradient: the encoder's top-layer state h_t (for a bidirectional encoder the concatenation [h_fwd_t; h_bwd_t]
of both directions at timestep t, 2H numbers) receives the gradient dL/dh_t of the loss, the *total* derivative:
through the attention at that position and through every later encoder timestep, the bridge and the decoder.
retain_grad() on the fused RNN's outputs would give only the first part (zero for a model without attention,
whose decoder reads h_t only through the final state), so the encoder is recomputed one timestep at a time from
its own weights (training.UnrolledRNN) with one tensor per h_t. With a vanilla RNN the norm shrinks towards the
first timesteps (vanishing gradient); an LSTM or GRU keeps it.

No Streamlit here; everything runs on CPU in eval mode (no dropout), without changing the model.
"""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .data import PAD_ID, make_batch, tokenize
from .tasks import TASKS, generate_splits

LENGTH_PARAMS = ("min_len", "max_len")  # tasks with these parameters draw their source length (tokens) uniformly


def _encode(data, pairs: list[tuple[str, str]]) -> tuple[list[list[int]], list[list[int]]]:
    """Source and target ids in the data's (or checkpoint's) vocabularies, NOT cut to max_len: a length probe must
    show the model the whole input, however long."""
    src = [data.src_vocab.encode_text_tokens(tokenize(s, data.tokens)) for s, _ in pairs]
    tgt = [data.tgt_vocab.encode_text_tokens(tokenize(t, data.tokens)) for _, t in pairs]
    return src, tgt


# ------------------------------------------------------------------------------------------- accuracy by length
@torch.no_grad()
def accuracy_by_length(model, data, pairs: list[tuple[str, str]], batch_size: int = 256) -> list[dict]:
    """Exact match and token accuracy per source length (in tokens) over `pairs`, one row per length, ascending:
    {"length", "n" (examples), "exact_match", "token_accuracy"}. `data`: anything with src_vocab, tgt_vocab and
    tokens (Seq2SeqData, Checkpoint, Current).

    Both measures come from one teacher-forced pass, as in training.Run.evaluate: token accuracy = share of target
    tokens (<eos> included) whose argmax is right; exact match = share of examples whose argmax is right at every
    position, which is exactly when greedy decoding writes the target (tests/test_experiments.py checks it)."""
    src_ids, tgt_ids = _encode(data, pairs)
    by_len: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(src_ids):
        by_len[len(s)].append(i)
    was_training = model.training
    model.eval()
    rows = []
    try:
        for length in sorted(by_len):
            idx = by_len[length]
            exact = correct = tokens = 0
            for a in range(0, len(idx), batch_size):
                part = idx[a : a + batch_size]
                b = make_batch([src_ids[i] for i in part], [tgt_ids[i] for i in part])
                logits = model(b.src, b.src_len, b.tgt_in, 1.0)  # (B, T, V)
                real = b.tgt_out != PAD_ID
                right = (logits.argmax(-1) == b.tgt_out) | ~real
                exact += int(right.all(1).sum())
                correct += int((right & real).sum())
                tokens += int(real.sum())
            rows.append(
                {
                    "length": length,
                    "n": len(idx),
                    "exact_match": exact / len(idx),
                    "token_accuracy": correct / max(tokens, 1),
                }
            )
    finally:
        model.train(was_training)
    return rows


def length_test_pairs(
    task: str, lengths, per_length: int = 40, seed: int = 1, exclude=(), **params
) -> list[tuple[str, str]]:
    """Fresh examples of a built-in task at each source length in `lengths` (tokens), `per_length` of each (fewer
    where fewer distinct sources exist), none whose source is in `exclude` (the training pairs, or their sources).

    Tasks with min_len/max_len (copy, reverse, sort, translate) are generated at exactly each length, so lengths past
    the training range can be asked for; translate only makes sentences of 5..7+2*max_adjectives words and skips the
    others. Other tasks (addition, dates) have no length parameter: their examples are drawn with the given
    parameters and grouped by length, and `lengths` only filters."""
    spec = TASKS[task]
    seen = {p[0] if isinstance(p, tuple) else p for p in exclude}
    lengths = sorted(set(int(n) for n in lengths))
    out: list[tuple[str, str]] = []
    if all(k in spec.params for k in LENGTH_PARAMS):
        for n in lengths:
            try:
                splits = generate_splits(
                    task,
                    n_train=per_length + 20,
                    n_valid=0,
                    n_test=0,
                    seed=seed * 1000 + n,
                    **{**params, "min_len": n, "max_len": n},
                )
            except ValueError:  # e.g. a sentence length translate cannot make
                continue
            fresh = [p for p in splits["train"] if p[0] not in seen]
            out += fresh[:per_length]
        return out
    want = set(lengths)
    counts: dict[int, int] = defaultdict(int)
    rng = random.Random(f"length-probe:{task}:{seed}")
    p = {**spec.params, **params}
    for _ in range(200 * per_length * max(len(want), 1)):
        src, tgt = spec.generate(rng, **p)
        n = len(tokenize(src, spec.tokens))
        if n in want and counts[n] < per_length and src not in seen:
            seen.add(src)
            counts[n] += 1
            out.append((src, tgt))
            if all(counts[k] >= per_length for k in want):
                break
    return out


# ------------------------------------------------------------------------------------ gradient reaching each h_t
def encoder_grad_norms(model, src: Tensor, src_len: Tensor, tgt_in: Tensor, tgt_out: Tensor) -> dict:
    """||dL_i/dh_t|| for every example i of a batch and every encoder timestep t (top layer), where L_i is example i's
    mean cross-entropy over its target tokens (teacher-forced, eval mode) and dL_i/dh_t the total derivative.

    Returns {"norm": (B, S) array, NaN past each source's length; "mean": (S,) mean over the examples that have
    timestep t; "forward", "backward": (B, S) norms of the two halves of h_t = [h_fwd_t; h_bwd_t] when the encoder is
    bidirectional (norm**2 = forward**2 + backward**2), else None}. The model is left unchanged (weights, mode)."""
    from .training import UnrolledRNN

    was_training, fused = model.training, model.enc_rnn
    unrolled = UnrolledRNN(fused, model.cfg.cell)
    model.eval()
    try:
        with torch.enable_grad():
            model.enc_rnn = unrolled
            logits = model(src, src_len, tgt_in, 1.0)
            ce = F.cross_entropy(logits.transpose(1, 2), tgt_out, ignore_index=PAD_ID, reduction="none")  # (B, T)
            loss = (ce.sum(1) / (tgt_out != PAD_ID).sum(1).clamp(min=1)).sum()  # sum_i L_i: row i gets dL_i/dh_t
            hs = [h for direction in unrolled.h_top for h in direction]  # D * S tensors (B, H)
            grads = torch.autograd.grad(loss, hs, allow_unused=True)
    finally:
        model.enc_rnn = fused
        model.train(was_training)
    B, S = src.shape
    D = len(unrolled.h_top)
    sq = torch.zeros(D, B, S)
    for k, g in enumerate(grads):
        if g is not None:
            sq[k // S, :, k % S] = g.detach().square().sum(-1)
    has_t = (torch.arange(S)[None, :] < src_len.clamp(min=1)[:, None]).numpy()
    halves = np.where(has_t[None], sq.sqrt().numpy(), np.nan)
    norm = np.where(has_t, sq.sum(0).sqrt().numpy(), np.nan)
    counts = has_t.sum(0)
    mean = np.where(counts > 0, np.nansum(norm, 0) / np.maximum(counts, 1), np.nan)
    return {
        "norm": norm,
        "mean": mean,
        "forward": halves[0] if D == 2 else None,
        "backward": halves[1] if D == 2 else None,
    }


def probe_batch(data, pairs: list[tuple[str, str]]):
    """pairs -> (src, src_len, tgt_in, tgt_out) in the data's vocabularies (not cut), for encoder_grad_norms."""
    src_ids, tgt_ids = _encode(data, pairs)
    b = make_batch(src_ids, tgt_ids)
    return b.src, b.src_len, b.tgt_in, b.tgt_out
