"""The baseline of bench_defaults.py: a minimal plain-PyTorch LSTM encoder-decoder, the way a tutorial writes it.

    encoder:  h_t, c_t = LSTM(emb(x_t), h_{t-1}, c_{t-1})             one layer, one direction
    decoder:  s_0 = (h_S, c_S);  s_t = LSTM(emb(y_{t-1}), s_{t-1});  p(y_t) = softmax(W s_t + b)
    loss:     cross-entropy of the real target tokens, teacher forcing; Adam(lr 1e-3), batch 64, clip 1.0

Nothing of the library's model or trainer: no attention, no schedule, no bucketing, no early stopping. It reads
the same batches of token ids (the library's vocabulary and padding: seq2seq.training.EncodedSplit) so both
sides see the same examples, and it is scored the same way: exact match is "the greedy output equals the
target", computed as "the teacher-forced argmax is right at every position" (the same thing for any model that
decodes greedily, see Run.evaluate).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

PAD = 0


class PlainSeq2Seq(nn.Module):
    def __init__(self, src_vocab: int, tgt_vocab: int, embed: int = 128, hidden: int = 256):
        super().__init__()
        self.src_emb = nn.Embedding(src_vocab, embed, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(tgt_vocab, embed, padding_idx=PAD)
        self.encoder = nn.LSTM(embed, hidden, batch_first=True)
        self.decoder = nn.LSTM(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, tgt_vocab)

    def forward(self, src, src_len, tgt_in):  # src (B, S), tgt_in (B, T) -> logits (B, T, V)
        packed = pack_padded_sequence(self.src_emb(src), src_len.clamp(min=1), batch_first=True, enforce_sorted=False)
        _, (h, c) = self.encoder(packed)  # the last real timestep's state of every example
        s, _ = self.decoder(self.tgt_emb(tgt_in), (h, c))  # (B, T, H)
        return self.out(s)


@torch.no_grad()
def evaluate(model: PlainSeq2Seq, split, limit: int | None = None) -> dict:
    model.eval()
    n = split.n if limit is None else min(limit, split.n)
    exact = correct = tokens = 0
    for a in range(0, n, 512):
        src, src_len, tgt_in, tgt_out = split.batch(torch.arange(a, min(a + 512, n)))
        pred = model(src, src_len, tgt_in).argmax(-1)
        real = tgt_out != PAD
        right = (pred == tgt_out) | ~real
        exact += int(right.all(1).sum())
        correct += int((right & real).sum())
        tokens += int(real.sum())
    model.train()
    return {"exact_match": exact / max(n, 1), "token_accuracy": correct / max(tokens, 1), "n": n}


def train_plain(
    data, budget_cpu_s: float, target: float = 0.99, seed: int = 0, eval_every: int = 50, batch_size: int = 64
) -> dict:
    """Train for `budget_cpu_s` CPU seconds (evaluations included). After each evaluation whose validation exact
    match (256 examples) reaches `target`, the test split is checked (not timed) and the run ends if it reaches
    `target` too. Returns the test scores, the CPU seconds to `target` (None if not reached), steps."""
    from seq2seq.training import EncodedSplit

    torch.manual_seed(seed)
    train, valid, test = (EncodedSplit(data, getattr(data, s)) for s in ("train", "valid", "test"))
    model = PlainSeq2Seq(len(data.src_vocab), len(data.tgt_vocab)).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    cpu, steps, reached, order = 0.0, 0, None, torch.empty(0, dtype=torch.long)
    while cpu < budget_cpu_s:
        t0 = time.process_time()
        if len(order) < batch_size:
            order = torch.randperm(train.n, generator=gen)
        idx, order = order[:batch_size], order[batch_size:]
        src, src_len, tgt_in, tgt_out = train.batch(idx)
        logits = model(src, src_len, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
        v = evaluate(model, valid, 256) if steps % eval_every == 0 else None
        cpu += time.process_time() - t0
        if v is not None and v["exact_match"] >= target and evaluate(model, test)["exact_match"] >= target:
            reached = cpu
            break
    result = evaluate(model, test)
    return dict(result, cpu_s=round(cpu, 2), steps=steps, to_target_s=None if reached is None else round(reached, 2))
