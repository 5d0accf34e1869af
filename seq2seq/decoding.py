"""Decoding: turning the decoder's distributions p_t into an output sequence.

    greedy       y_t = argmax p_t                                   (batched for evaluation: greedy_batch)
    sample       y_t ~ softmax(logits / temperature), restricted to the top_k most likely tokens (0 = all);
                 a seed makes it reproducible; top_k = 1 is greedy; low temperature approaches greedy
    beam search  keep the k best partial outputs by total log-probability sum_t log p_t(y_t); every candidate
                 considered is recorded in a tree (BeamNode with a parent pointer), so the app can draw it

All functions run the fused model in eval mode (no dropout) without gradients, one source at a time except
greedy_batch. `max_len` is the most output tokens produced before <eos> (so at most max_len + 1 decoder steps;
an output that has not ended by then is cut to max_len tokens).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from .data import EOS_ID, PAD_ID, SOS_ID, detokenize, tokenize
from .model import EncoderOutput, Seq2Seq


@contextmanager
def _eval(model: Seq2Seq):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def sampling_probs(logits: Tensor, temperature: float = 1.0, top_k: int = 0) -> Tensor:
    """The distribution sampling draws from: softmax(logits / temperature) over the top_k largest logits (0 = all)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = logits / temperature
    if 0 < top_k < z.shape[-1]:
        kth = z.topk(top_k, dim=-1).values[..., -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    return torch.softmax(z, dim=-1)


def _encode_one(model: Seq2Seq, src_ids: list[int]) -> EncoderOutput:
    if len(src_ids) == 0:
        raise ValueError("the input is empty")
    return model.encode(torch.tensor([src_ids]), torch.tensor([len(src_ids)]))


def greedy_batch(model: Seq2Seq, src: Tensor, src_len: Tensor, max_len: int) -> Tensor:
    """Greedy decoding of a whole batch: (B, n) ids, each row y_1 .. y_m <eos> <pad> ... (n <= max_len + 1 steps;
    a row that never produced <eos> has no <eos>). Stops as soon as every row has finished."""
    with _eval(model):
        enc = model.encode(src, src_len)
        B = src.shape[0]
        y = torch.full((B,), SOS_ID, dtype=torch.long)
        state, done, out = enc.state0, torch.zeros(B, dtype=torch.bool), []
        for _ in range(max_len + 1):
            logits, state, _ = model.decode_step(y, state, enc)
            y = logits.argmax(-1)
            out.append(y.masked_fill(done, PAD_ID))
            done = done | (y == EOS_ID)
            if bool(done.all()):
                break
        return torch.stack(out, dim=1)


def greedy(model: Seq2Seq, src_ids: list[int], max_len: int) -> list[int]:
    """Output ids y_1..y_m for one source (without <eos>)."""
    if len(src_ids) == 0:
        raise ValueError("the input is empty")
    row = greedy_batch(model, torch.tensor([src_ids]), torch.tensor([len(src_ids)]), max_len)[0].tolist()
    return row[: row.index(EOS_ID)] if EOS_ID in row else row[:max_len]


def sample(
    model: Seq2Seq, src_ids: list[int], max_len: int, temperature: float = 1.0, top_k: int = 0, seed: int = 0
) -> list[int]:
    """Sampled output ids (without <eos>); the same seed gives the same output."""
    gen = torch.Generator().manual_seed(seed)
    with _eval(model):
        enc = _encode_one(model, src_ids)
        state, y, out = enc.state0, torch.tensor([SOS_ID]), []
        for _ in range(max_len + 1):
            logits, state, _ = model.decode_step(y, state, enc)
            tok = int(torch.multinomial(sampling_probs(logits[0], temperature, top_k), 1, generator=gen))
            if tok == EOS_ID or len(out) == max_len:
                break
            out.append(tok)
            y = torch.tensor([tok])
        return out


@dataclass
class BeamNode:
    id: int  # index in BeamResult.tree
    parent: int | None  # id of the node this one extends (None for the root <sos>)
    step: int  # output step t (0 for the root)
    token_id: int
    logprob: float  # log p_t(token | its prefix)
    score: float  # total log-probability of the prefix ending here
    finished: bool  # token is <eos>
    kept: bool  # selected into the beam (False: considered, then pruned)


@dataclass
class BeamResult:
    best: list[int]  # ids of the best hypothesis, without <eos>
    hypotheses: list[tuple[list[int], float]]  # (ids without <eos>, final score), best first
    tree: list[BeamNode]
    length_norm: bool = True

    def path(self, node_id: int) -> list[int]:
        """Token ids from the root to a node (root <sos> excluded)."""
        ids = []
        while node_id is not None and self.tree[node_id].parent is not None:
            ids.append(self.tree[node_id].token_id)
            node_id = self.tree[node_id].parent
        return ids[::-1]


def _take(enc: EncoderOutput, idx: Tensor) -> EncoderOutput:
    """The encoder output repeated for the hypotheses in the beam (all share one source)."""
    pick = lambda x: None if x is None else x[idx]  # noqa: E731
    return EncoderOutput(
        enc.enc_out[idx], pick(enc.keys), enc.mask[idx], enc.state0, enc.context[idx], pick(enc.keys_proj)
    )


def _take_state(state, idx: Tensor):
    return tuple(s[:, idx] for s in state) if isinstance(state, tuple) else state[:, idx]


def beam_search(model: Seq2Seq, src_ids: list[int], k: int, max_len: int, length_norm: bool = True) -> BeamResult:
    """Beam search of width k. Each step every live hypothesis proposes its k most likely next tokens; the best
    (k - finished) candidates by total log-probability are kept, and those ending in <eos> are finished. Search
    stops when k hypotheses have finished; at step max_len + 1 only <eos> is proposed, so every hypothesis ends.

    Final ranking: with length_norm the total log-probability is divided by the number of tokens (including <eos>),
    so short outputs are not favoured just for having fewer factors below 1; without it, the raw total.
    k = 1 is exactly greedy decoding."""
    if k < 1:
        raise ValueError(f"beam width must be at least 1, got {k}")
    with _eval(model):
        enc = _encode_one(model, src_ids)
        tree = [BeamNode(0, None, 0, SOS_ID, 0.0, 0.0, False, True)]
        alive = [0]  # node ids of live hypotheses
        state, finished = enc.state0, []
        for step in range(1, max_len + 2):
            idx = torch.zeros(len(alive), dtype=torch.long)
            y = torch.tensor([tree[n].token_id for n in alive])
            logits, state, _ = model.decode_step(y, _take_state(state, idx) if step == 1 else state, _take(enc, idx))
            logp = torch.log_softmax(logits, dim=-1)
            if step == max_len + 1:  # out of room: only <eos> may follow, so every hypothesis ends
                top_lp, top_id = logp[:, EOS_ID : EOS_ID + 1], torch.full((len(alive), 1), EOS_ID)
            else:
                top_lp, top_id = logp.topk(min(k, logp.shape[-1]), dim=-1)
            cands = []  # (score, row, node id)
            for row, n in enumerate(alive):
                for lp, tok in zip(top_lp[row].tolist(), top_id[row].tolist()):
                    node = BeamNode(len(tree), n, step, tok, lp, tree[n].score + lp, tok == EOS_ID, False)
                    tree.append(node)
                    cands.append((node.score, row, node.id))
            cands.sort(key=lambda c: -c[0])  # stable: ties keep proposal order
            new_alive, rows = [], []
            for score, row, nid in cands[: k - len(finished)]:
                tree[nid].kept = True
                if tree[nid].finished:
                    finished.append(nid)
                else:
                    new_alive.append(nid)
                    rows.append(row)
            alive = new_alive
            if not alive or len(finished) >= k:
                break
            state = _take_state(state, torch.tensor(rows))
        ends = finished

        def final(nid: int) -> float:
            n = tree[nid]
            return n.score / n.step if length_norm else n.score

        ranked = sorted(ends, key=lambda nid: -final(nid))
        result = BeamResult([], [], tree, length_norm)
        result.hypotheses = [([t for t in result.path(nid) if t != EOS_ID], final(nid)) for nid in ranked]
        result.best = result.hypotheses[0][0]
        return result


def translate(model: Seq2Seq, data_or_vocabs, text: str, beam: int = 1, max_len: int | None = None) -> str:
    """Decode one input text to output text.

    data_or_vocabs: anything with .src_vocab, .tgt_vocab and .tokens (a Seq2SeqData or a Checkpoint), or a tuple
    (src_vocab, tgt_vocab, tokens_mode). beam = 1 is greedy. max_len defaults to the data's max_len, if it has one,
    else 2 * input length + 10."""
    if isinstance(data_or_vocabs, tuple):
        src_vocab, tgt_vocab, mode = data_or_vocabs
    else:
        src_vocab, tgt_vocab, mode = data_or_vocabs.src_vocab, data_or_vocabs.tgt_vocab, data_or_vocabs.tokens
    src_ids = src_vocab.encode_text_tokens(tokenize(text, mode))
    if not src_ids:
        raise ValueError("the input is empty: type at least one token")
    if max_len is None:
        max_len = getattr(data_or_vocabs, "max_len", None) or 2 * len(src_ids) + 10
    ids = greedy(model, src_ids, max_len) if beam <= 1 else beam_search(model, src_ids, beam, max_len).best
    return detokenize(tgt_vocab.decode(ids), mode)
