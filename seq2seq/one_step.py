"""One example, one training step: the walk a student asks for ("does each example go through the encoder and the
decoder?"), computed with the training code on a copy of a model.

For one (source, target) pair, in order:
    1. encoder forward      h_1..h_S (top layer), the context c
    2. decoder, teacher-forced: s_1..s_T, the distributions p_t (fed the true y_{t-1} at every step), a_t
    3. the loss             -log p_t(y_t) for every target token (y_1..y_n and <eos>), and their mean: the loss
    4. backward             ||d loss / d h_t|| for each encoder timestep, ||d loss / d s_t|| for each decoder step
                            (full derivatives: through every later timestep), ||d loss / d theta|| per parameter group
    5. one optimizer step   Adam / RMSprop / SGD, with clipping as in training: how far each group moved, and the
                            loss on this example and a few others before and after the step

Steps 3-5 ARE training's step: the model's own forward pass, `training.token_loss`, `training.clip_gradients`,
`training.make_optimizer`, and the step runs with denormals flushed as in `Run.step`; tests/test_one_step.py checks
that the loss and the updated weights equal one real `Run.step()` on the same example to 1e-6. The timestep
gradients of step 4 come from a second pass that computes the same function with one tensor per state (the
encoder unrolled by `training.UnrolledRNN`, the decoder stepped with `decode_step`), because the fused kernels hide
their intermediate states; its loss equals the training pass's (tested).

Differences from a step inside a training run, stated on the page: the optimizer starts fresh (a checkpoint keeps
no optimizer state, so Adam takes its first step: every weight moves by about the learning rate, whatever the size
of its gradient), the batch is this one example, dropout is off and teacher forcing is full, all in fp32.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .data import PAD_ID, Seq2SeqData, detokenize
from .model import Seq2Seq, component_of
from .training import GROUPS, EncodedSplit, UnrolledRNN, _flush_denormals, clip_gradients, make_optimizer, token_loss


@dataclass
class StepWalk:
    pair: tuple[str, str]
    src_tokens: list[str]  # x_1..x_S as the model sees them (unknown ones as <unk>)
    dec_inputs: list[str]  # <sos> y_1 .. y_n   (what the decoder is fed)
    targets: list[str]  # y_1 .. y_n <eos>    (what it must predict)
    h: np.ndarray  # (S, D*H) top-layer encoder outputs h_t ([forward; backward] when bidirectional)
    context: np.ndarray  # (H,) c
    s: np.ndarray  # (T, H) top-layer decoder states s_t
    attention: np.ndarray | None  # (T, S) a_t
    probs: np.ndarray  # (T, V) p_t
    token_ce: np.ndarray  # (T,) -log p_t(y_t)
    loss: float  # their mean: the training loss of this example
    loss_unrolled: float  # the same loss from the instrumented pass (equal up to rounding)
    grad_h: np.ndarray  # (D, S) ||d loss / d h_t|| per direction (top layer)
    grad_s: np.ndarray  # (T,) ||d loss / d s_t|| (top layer)
    grad_groups: dict[str, float]  # ||d loss / d theta|| per parameter group, before clipping
    grad_total: float  # global gradient norm before clipping
    clip: float
    clip_factor: float  # what clipping multiplied the gradients by (1 = not clipped)
    optimizer: str
    lr: float
    moved: dict[str, float]  # ||theta_after - theta_before|| per group
    size: dict[str, float]  # ||theta_before|| per group
    n_params: dict[str, int]
    losses: list[dict] = field(default_factory=list)  # {source, target, before, after, this} per example
    prediction_before: str = ""
    prediction_after: str = ""
    new_state: dict = field(default_factory=dict)  # the copy's weights after the step ("keep this step")

    @property
    def groups(self) -> list[str]:
        return [g for g in GROUPS if g in self.grad_groups]


def _data(tokens: str, src_vocab, tgt_vocab, pairs: list[tuple[str, str]], max_len: int) -> Seq2SeqData:
    return Seq2SeqData(
        tokens=tokens, src_vocab=src_vocab, tgt_vocab=tgt_vocab, train=pairs, valid=pairs, test=pairs, max_len=max_len
    )


@torch.no_grad()
def example_losses(model: Seq2Seq, data: Seq2SeqData, pairs: list[tuple[str, str]]) -> list[float]:
    """Each pair's own training loss (mean -log p_t(y_t) over its target tokens), teacher-forced, eval mode."""
    if not pairs:
        return []
    was = model.training
    model.eval()
    try:
        enc = EncodedSplit(data, pairs)
        src, src_len, tgt_in, tgt_out = enc.batch(torch.arange(enc.n))
        logits = model(src, src_len, tgt_in, 1.0)
        ce = F.cross_entropy(logits.transpose(1, 2), tgt_out, ignore_index=PAD_ID, reduction="none")
        n = (tgt_out != PAD_ID).sum(1).clamp(min=1)
        return (ce.sum(1) / n).tolist()
    finally:
        model.train(was)


def _greedy_text(model: Seq2Seq, data: Seq2SeqData, src_ids: list[int], max_len: int) -> str:
    from .decoding import greedy

    return detokenize(data.tgt_vocab.decode(greedy(model, src_ids, max_len)), data.tokens)


def _instrumented(model: Seq2Seq, src, src_len, tgt_in, tgt_out):
    """The same forward pass with one tensor per state: (loss, per-direction h_t lists, s_t list, attention)."""
    fused = model.enc_rnn
    unrolled = UnrolledRNN(fused, model.cfg.cell)
    try:
        model.enc_rnn = unrolled
        enc = model.encode(src, src_len)
    finally:
        model.enc_rnn = fused
    state, logits, states, attn = enc.state0, [], [], []
    for t in range(tgt_in.shape[1]):
        step_logits, state, a = model.decode_step(tgt_in[:, t], state, enc)
        logits.append(step_logits)
        states.append(state[0] if isinstance(state, tuple) else state)  # (L, 1, H): the full s_t of every layer
        if a is not None:
            attn.append(a)
    loss = token_loss(torch.stack(logits, 1), tgt_out)
    return loss, unrolled.h_top, states, attn


def walk(
    model: Seq2Seq,
    src_vocab,
    tgt_vocab,
    tokens: str,
    pair: tuple[str, str],
    others: list[tuple[str, str]] = (),
    optimizer: str = "adam",
    lr: float = 3e-3,
    clip: float = 1.0,
    max_len: int = 100,
) -> StepWalk:
    """One training step on `pair`, on a copy of `model` (which is left unchanged). `others`: pairs whose loss is
    measured before and after the step too."""
    m = copy.deepcopy(model)
    m.lowp = None  # fp32
    m.eval()  # dropout off (the only difference between the modes once lowp is off)
    others = [p for p in others if p != pair]
    data = _data(tokens, src_vocab, tgt_vocab, [pair], max_len)
    one = EncodedSplit(data, [pair])
    src, src_len, tgt_in, tgt_out = one.batch(torch.arange(1))
    T = tgt_out.shape[1]

    # ---- 1-4, instrumented: every state its own tensor, so d loss / d state can be read --------------------------
    loss_u, h_top, s_list, attn = _instrumented(m, src, src_len, tgt_in, tgt_out)
    hs = [h for direction in h_top for h in direction]
    g = [
        torch.zeros_like(x) if gr is None else gr
        for x, gr in zip(hs + s_list, torch.autograd.grad(loss_u, hs + s_list, allow_unused=True))
    ]
    S, D = src.shape[1], len(h_top)
    grad_h = torch.stack([x[0] for x in g[: len(hs)]]).norm(dim=-1).view(D, S).numpy()
    grad_s = torch.stack([x[-1, 0] for x in g[len(hs) :]]).norm(dim=-1).numpy()

    # ---- 1-3 and 5 with the training code: forward, loss, backward, clip, one optimizer step -----------------------
    params = [p for p in m.parameters() if p.requires_grad]
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = make_optimizer(optimizer, params, lr)
    with _flush_denormals():
        enc = m.encode(src, src_len)
        dec = m.decode_teacher_forced(tgt_in, enc)
        loss = token_loss(dec.logits, tgt_out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in params]
        raw = [gr.norm().item() for gr in grads]
        total, _ = clip_gradients(grads, clip)
        opt.step()
    total_v = float(total)
    factor = min(1.0, clip / (total_v + 1e-6)) if clip > 0 else 1.0

    def per_group(values: list[float]) -> dict[str, float]:
        sq: dict[str, float] = {}
        for n, v in zip(names, values):
            sq[component_of(n)] = sq.get(component_of(n), 0.0) + v * v
        return {k: sq[k] ** 0.5 for k in GROUPS if k in sq}

    moved = per_group([(p.detach() - b).norm().item() for p, b in zip(params, before)])
    size = per_group([b.norm().item() for b in before])
    n_params: dict[str, int] = {}
    for n, p in zip(names, params):
        n_params[component_of(n)] = n_params.get(component_of(n), 0) + p.numel()

    with torch.no_grad():
        probs = torch.softmax(dec.logits[0], -1)
        token_ce = -torch.log(probs[torch.arange(T), tgt_out[0]].clamp_min(1e-45))
    m.eval()
    pairs = [pair] + list(others)
    data_all = _data(tokens, src_vocab, tgt_vocab, pairs, max_len)
    lb, la = example_losses(model, data_all, pairs), example_losses(m, data_all, pairs)
    src_ids = one.src[0, : int(one.src_len[0])].tolist()
    gen_len = max(T - 1, 1) + 10
    return StepWalk(
        pair=pair,
        src_tokens=[src_vocab.itos[i] for i in src_ids],
        dec_inputs=[tgt_vocab.itos[i] for i in tgt_in[0].tolist()],
        targets=[tgt_vocab.itos[i] for i in tgt_out[0].tolist()],
        h=enc.enc_out[0].detach().numpy(),
        context=enc.context[0].detach().numpy(),
        s=dec.s[0].detach().numpy(),
        attention=None if dec.attn is None else dec.attn[0].detach().numpy(),
        probs=probs.numpy(),
        token_ce=token_ce.numpy(),
        loss=loss.item(),
        loss_unrolled=loss_u.item(),
        grad_h=grad_h,
        grad_s=grad_s,
        grad_groups=per_group(raw),
        grad_total=total_v,
        clip=clip,
        clip_factor=factor,
        optimizer=optimizer,
        lr=lr,
        moved=moved,
        size=size,
        n_params=n_params,
        losses=[
            {"source": s, "target": t, "before": b, "after": a, "this": i == 0}
            for i, ((s, t), b, a) in enumerate(zip(pairs, lb, la))
        ],
        prediction_before=_greedy_text(model, data, src_ids, gen_len),
        prediction_after=_greedy_text(m, data, src_ids, gen_len),
        new_state={k: v.detach().clone() for k, v in m.state_dict().items()},
    )
