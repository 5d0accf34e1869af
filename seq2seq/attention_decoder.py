"""The teacher-forced attention decoder with its backward pass written out: a training-speed path.

With attention the decoder cannot run as one fused call (a_t depends on s_{t-1}), so a teacher-forced pass steps
T timesteps. Under autograd each step records ~25 small operations and replays ~25 more backward, and every weight
gradient is T small matrix products. Here the same math runs with autograd off, and the backward pass is written by
hand, reading top to bottom like the forward pass read backwards:
  * everything that does not depend on the recurrence is done for all T steps at once: the embeddings' share of the
    gate pre-activations (one product), the gate derivatives, and at the end every weight gradient
    (dW_ih = sum_t dG_t^T x_t is ONE product over all T*B rows), the embeddings' gradient and the keys' gradient;
  * a step of the backward loop is then ~14 operations: the cell's gate gradients, one product for d s_{t-1} and
    d c_t, and the attention's softmax backward.
tanh is computed as 2 sigmoid(2x) - 1: the same function, and on this CPU PyTorch's tanh of 64 x 512 numbers takes
~120 us against ~20 us for sigmoid.

The math (one layer; `Seq2Seq` in model.py explains why this decoder, and uses this path for it):
    a_t = softmax_j(score(s_{t-1}, k_j))  over real source positions          c_t = sum_j a_tj k_j
          dot: score = s_{t-1} . k_j / sqrt(H);   additive: score = v . tanh(W_s s_{t-1} + kp_j), kp_j = W_k k_j + b_k
    G_t = W_ih [e_t; c_t] + b_ih + W_hh s_{t-1} + b_hh                       (e_t = embed(y_{t-1}))
    LSTM  i, f, g, o = sigma, sigma, tanh, sigma of G_t's 4 blocks;  m_t = f m_{t-1} + i g;  s_t = o tanh(m_t)
    GRU   r, z = sigma(Gx + Gh) blocks 1-2;  n = tanh(Gx_n + r Gh_n);  s_t = (1 - z) n + z s_{t-1}
    RNN   s_t = tanh(G_t)
(m_t is the LSTM's memory cell. PyTorch's gate orders and biases, so the weights are `dec_rnn`'s own.)
`decode` returns the same values as stepping `torch.lstm_cell` & co. under autograd, and its gradients are checked
against autograd's (tests/test_attention_decoder.py, every cell, in float64 with `gradcheck` too).

Mixed precision (`lowp=torch.bfloat16`, what a training run on a CPU with native bf16 asks for; see training.py):
the matrix products with the weights, forward and backward, take bf16 inputs (the weights are cast once per pass),
and everything else stays fp32: the gate pre-activations they are added into, the states, the attention, the
gradients. The results are within bf16's rounding of the fp32 ones (tested: ~0.5% relative).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _tanh(x: Tensor) -> Tensor:
    return torch.sigmoid(2 * x).mul_(2).sub_(1)


def _addmm_(acc: Tensor, x: Tensor, W: Tensor) -> Tensor:
    """acc += x @ W in place, the product in W's dtype (bf16 weights: a bf16 product, added into fp32 acc)."""
    return acc.addmm_(x, W) if W.dtype == acc.dtype else acc.add_(x.to(W.dtype) @ W)


def _mm(x: Tensor, W: Tensor) -> Tensor:
    """x @ W in W's dtype, returned in x's (fp32)."""
    return x @ W if W.dtype == x.dtype else (x.to(W.dtype) @ W).to(x.dtype)


class _AttentionDecoder(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cell: str, lowp, e, k, neg, s0, m0, W_ih, W_hh, b_ih, b_hh, kp, W_s, v):
        """e (B, T, E) embedded inputs; k (B, S, H) keys; neg (B, S) 0 at real source positions, -inf at padding;
        s0, m0 (B, H) initial state (m0 only for an LSTM). Additive attention: kp (B, S, H) = W_k k_j + b_k, W_s
        (H, H), v (1, H); all three None for dot attention. Returns s (B, T, H), c (B, T, H), a (B, T, S) and the
        final state s_T, m_T."""
        B, T, E = e.shape
        H = W_hh.shape[1]
        scale = H**-0.5
        additive = kp is not None
        ks = None if additive else k * scale  # dot: scores = s . k_j / sqrt(H) = s . ks_j
        U = e.new_empty(T, B, k.shape[1], H) if additive else None  # additive: u_tj = tanh(W_s s_{t-1} + kp_j)
        v_col = v.reshape(H, 1) if additive else None
        W_ie, W_ic = W_ih[:, :E], W_ih[:, E:]
        W_icT, W_hhT = (W_ic.t(), W_hh.t()) if lowp is None else (W_ic.t().to(lowp), W_hh.t().to(lowp))
        # the embeddings' share of G_t for every step at once, (T, B, G*H); RNN and LSTM fold b_hh in too
        bias = b_ih if cell == "gru" else b_ih + b_hh
        xe = torch.addmm(bias, e.transpose(0, 1).reshape(T * B, E), W_ie.t()).view(T, B, -1)
        # every step writes into these (no stacking afterwards): s_0..s_T, m_0..m_T, a_t, c_t, gate values
        S, M = e.new_empty(T + 1, B, H), (e.new_empty(T + 1, B, H) if cell == "lstm" else None)
        A, C = e.new_empty(T, B, k.shape[1]), e.new_empty(T, B, H)
        ACT = None if cell == "rnn" else e.new_empty(T, B, 4 * H)
        # LSTM: i, f, g, o; GRU: r, z, n and W_hn s_{t-1} + b_hn
        S[0] = s0
        if M is not None:
            M[0] = m0
        s, m = S[0], m0
        for t in range(T):
            if additive:  # scores_j = v . tanh(W_s s_{t-1} + kp_j)
                u = torch.sigmoid(torch.add(kp, (s @ W_s.t()).unsqueeze(1)).mul_(2), out=U[t]).mul_(2).sub_(1)
                scores = (u.view(-1, H) @ v_col).view(B, -1)
            else:
                scores = (ks * s.unsqueeze(1)).sum(-1)
            a = torch._softmax(scores.add_(neg), -1, False, out=A[t])
            c = torch.bmm(a.unsqueeze(1), k, out=C[t].unsqueeze(1)).squeeze(1)
            if cell == "lstm":
                G = _addmm_(_addmm_(xe[t], c, W_icT), s, W_hhT)
                G[:, 2 * H : 3 * H].mul_(2)
                act = torch.sigmoid(G, out=ACT[t])
                g = act[:, 2 * H : 3 * H].mul_(2).sub_(1)  # tanh(x) = 2 sigma(2x) - 1
                m = torch.mul(act[:, H : 2 * H], m, out=M[t + 1]).addcmul_(act[:, :H], g)  # f m_{t-1} + i g
                s = torch.mul(act[:, 3 * H :], _tanh(m), out=S[t + 1])  # o tanh(m_t)
            elif cell == "gru":
                Gx = _addmm_(xe[t], c, W_icT)
                Gh = (
                    torch.addmm(b_hh, s, W_hhT, out=ACT[t, :, H:])
                    if lowp is None
                    else _addmm_(ACT[t, :, H:].copy_(b_hh), s, W_hhT)
                )  # r and z blocks overwritten next
                rz = torch.sigmoid(Gx[:, : 2 * H].add_(Gh[:, : 2 * H]), out=ACT[t, :, : 2 * H])
                n = (
                    torch.sigmoid(
                        torch.addcmul(Gx[:, 2 * H :], rz[:, :H], Gh[:, 2 * H :]).mul_(2), out=ACT[t, :, 2 * H : 3 * H]
                    )
                    .mul_(2)
                    .sub_(1)
                )
                s = torch.lerp(n, s, rz[:, H:], out=S[t + 1])  # (1 - z) n + z s_{t-1}
            else:
                s = torch.sigmoid(_addmm_(_addmm_(xe[t], c, W_icT), s, W_hhT).mul_(2), out=S[t + 1])
                s.mul_(2).sub_(1)
        ctx.cell, ctx.scale, ctx.lowp = cell, scale, lowp
        ctx.save_for_backward(e, k, ks, W_ih, W_hh, A, C, ACT, S, M, U, W_s, v)
        ctx.set_materialize_grads(False)
        return S[1:].transpose(0, 1), C.transpose(0, 1), A.transpose(0, 1), s.clone(), None if m is None else m.clone()

    @staticmethod
    def backward(ctx, gS, gC, gA, gs_T, gm_T):
        cell, scale, lowp = ctx.cell, ctx.scale, ctx.lowp
        e, k, ks, W_ih, W_hh, A, C, ACT, S, M, U, W_s, v = ctx.saved_tensors
        additive = U is not None
        Q, S = S[:-1], S[1:]  # s_{t-1} and s_t, (T, B, H)
        T, B, H = Q.shape
        E = e.shape[2]
        W_ic = W_ih[:, E:]
        W_ch = torch.cat([W_ic, W_hh], dim=1)  # d[c_t; s_{t-1}] = dG_t W_ch  (LSTM, RNN)
        if lowp is not None:
            W_ch, W_ic, W_hh = W_ch.to(lowp), W_ic.to(lowp), W_hh.to(lowp)
        zeros = Q.new_zeros(B, H)
        gS = gS.transpose(0, 1) if gS is not None else None  # (T, B, H)
        gC = gC.transpose(0, 1) if gC is not None else None
        gA = gA.transpose(0, 1) if gA is not None else None
        ds = gs_T if gs_T is not None else zeros
        dm = gm_T if gm_T is not None else zeros
        # gate derivatives for every step at once: sigma' = x - x*x for x = sigma(.), tanh' = 1 - x*x for x = tanh(.)
        one = Q.new_ones(())
        if cell == "lstm":
            I, F, Gg, O = ACT[..., :H], ACT[..., H : 2 * H], ACT[..., 2 * H : 3 * H], ACT[..., 3 * H :]
            tm = _tanh(M[1:])
            dO_ = torch.addcmul(one, tm, tm, value=-1).mul_(O)  # d s_t / d m_t = o tanh'
            # dG_t = [dm g i', dm m_{t-1} f', dm i g', ds tanh(m_t) o'] with x' the activation's derivative
            FACT = torch.empty_like(ACT)
            torch.addcmul(I, I, I, value=-1, out=FACT[..., :H]).mul_(Gg)
            torch.addcmul(F, F, F, value=-1, out=FACT[..., H : 2 * H]).mul_(M[:-1])
            torch.addcmul(one, Gg, Gg, value=-1, out=FACT[..., 2 * H : 3 * H]).mul_(I)
            torch.addcmul(O, O, O, value=-1, out=FACT[..., 3 * H :]).mul_(tm)
        elif cell == "gru":
            R, Z, N, Ghn = ACT[..., :H], ACT[..., H : 2 * H], ACT[..., 2 * H : 3 * H], ACT[..., 3 * H :]
            dN_ = torch.addcmul(one, N, N, value=-1)
            dN_ = torch.addcmul(dN_, Z, dN_, value=-1)  # d s_t / d (pre-activation of n) = (1 - z) tanh'
            dZ_ = torch.addcmul(Z, Z, Z, value=-1).mul_(Q - N)  # d s_t / d (pre-activation of z)
            dR_ = torch.addcmul(R, R, R, value=-1).mul_(Ghn)  # d (pre-activation of n) / d (pre-activation of r)
            DGh = Q.new_empty(T, B, 3 * H)
        else:
            dA_ = torch.addcmul(one, S, S, value=-1)
        DGx, DC, DSC = Q.new_empty(T, B, W_ih.shape[0]), Q.new_empty(T, B, H), Q.new_empty(A.shape)
        if additive:
            dU_ = torch.addcmul(one, U, U, value=-1).mul_(v.view(H))  # d scores_tj / d (W_s s + kp_j) = v tanh'
            dkp = torch.zeros_like(U[0])  # sum over t of d loss / d kp
            DQ = Q.new_empty(T, B, H)  # d loss / d (W_s s_{t-1}), for W_s's gradient
        for t in range(T - 1, -1, -1):
            if gS is not None:
                ds = ds + gS[t]
            if cell == "lstm":
                dm = torch.addcmul(dm, ds, dO_[t])
                dG = torch.mul(torch.cat([dm, dm, dm, ds], dim=1), FACT[t], out=DGx[t])
                dm = dm * F[t]
                dcs = _mm(dG, W_ch)
                dc, ds = dcs[:, :H], dcs[:, H:]
            elif cell == "gru":
                dGx, dGh = DGx[t], DGh[t]
                dn = torch.mul(ds, dN_[t], out=dGx[:, 2 * H :])
                torch.mul(dn, dR_[t], out=dGx[:, :H])
                torch.mul(ds, dZ_[t], out=dGx[:, H : 2 * H])
                dGh[:, : 2 * H] = dGx[:, : 2 * H]
                torch.mul(dn, R[t], out=dGh[:, 2 * H :])
                dc = _mm(dGx, W_ic)
                ds = _addmm_(ds * Z[t], dGh, W_hh)
            else:
                dG = torch.mul(ds, dA_[t], out=DGx[t])
                dcs = _mm(dG, W_ch)
                dc, ds = dcs[:, :H], dcs[:, H:]
            dc = torch.add(dc, gC[t], out=DC[t]) if gC is not None else DC[t].copy_(dc)
            da = (k * dc.unsqueeze(1)).sum(-1)  # c_t = sum_j a_tj k_j
            if gA is not None:
                da = da + gA[t]
            dsc = torch._softmax_backward_data(da, A[t], -1, da.dtype, grad_input=DSC[t])
            if additive:
                dpre = dsc.unsqueeze(2) * dU_[t]  # (B, S, H)
                dkp += dpre
                ds = torch.addmm(ds, torch.sum(dpre, 1, out=DQ[t]), W_s)
            else:
                ds = ds + torch.bmm(dsc.unsqueeze(1), ks).squeeze(1)  # scores = s_{t-1} . ks_j
        if cell != "gru":
            DGh = DGx
        X = torch.cat([e.transpose(0, 1), C], dim=-1).reshape(T * B, -1)  # x_t = [e_t; c_t]
        dW_ih = _mm(DGx.reshape(T * B, -1).t(), X.to(lowp or X.dtype))
        dW_hh = _mm(DGh.reshape(T * B, -1).t(), Q.reshape(T * B, H).to(lowp or Q.dtype))
        db_ih, db_hh = DGx.sum((0, 1)), DGh.sum((0, 1))
        de = _mm(DGx.reshape(T * B, -1), W_ih[:, :E].to(lowp or W_ih.dtype)).view(T, B, E).transpose(0, 1)
        dk = torch.bmm(A.permute(1, 2, 0), DC.transpose(0, 1))  # k_j enters through the context c_t ...
        dm0 = dm if cell == "lstm" else None
        if not additive:  # ... and, with dot attention, through the scores (times scale)
            dk += torch.bmm(DSC.permute(1, 2, 0), Q.transpose(0, 1)).mul_(scale)
            return None, None, de, dk, None, ds, dm0, dW_ih, dW_hh, db_ih, db_hh, None, None, None
        dW_s = DQ.reshape(T * B, H).t() @ Q.reshape(T * B, H)
        dv = (DSC.reshape(1, -1) @ U.reshape(-1, H)).view_as(v)
        return None, None, de, dk, None, ds, dm0, dW_ih, dW_hh, db_ih, db_hh, dkp, dW_s, dv


def decode(
    cell: str,
    e: Tensor,
    k: Tensor,
    mask: Tensor,
    s0: Tensor,
    m0: Tensor | None,
    W_ih: Tensor,
    W_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    kp: Tensor | None = None,
    W_s: Tensor | None = None,
    v: Tensor | None = None,
    lowp: torch.dtype | None = None,
):
    """Teacher-forced one-layer decoder with attention: dot, or additive when kp (B, S, H) = W_k k_j + b_k, W_s
    (H, H) and v (1, H) are given. e (B, T, E), k (B, S, H), mask (B, S) True at real source positions, s0 (and m0
    for an LSTM) (B, H). lowp: the dtype of the products with the weights (None: the inputs' own; bf16: mixed
    precision, above). Returns s (B, T, H), c (B, T, H), a (B, T, S), s_T, m_T."""
    neg = torch.zeros(mask.shape, dtype=k.dtype, device=k.device).masked_fill_(~mask, float("-inf"))
    return _AttentionDecoder.apply(cell, lowp, e, k, neg, s0, m0, W_ih, W_hh, b_ih, b_hh, kp, W_s, v)
