"""One training run: a model, an optimizer and a dataset, stepped one mini-batch at a time.

`Run` is a plain single-process object; every trainer backend (worker processes, a thread, a script) drives it
with `step()`. One step is the textbook loop, nothing more:

    logits = model(x, y_in)                         every decoder step t predicts p(y_t | y_<t, x)
    loss   = mean over real target tokens of  -log p(y_t)         (cross-entropy; <pad> ignored)
    grads  = d loss / d theta                       (backpropagation through time)
    clip   : if ||grads|| > clip, scale grads down to norm `clip`
    theta  <- optimizer(theta, grads)     learning rate: see the schedules below

Why the learning rate decays by default ("plateau"): with a constant rate, Adam's steps stay as large at step 3000
as at step 10, so the weights keep jumping around a good solution: the training loss spikes now and then and exact
match swings by +-0.1 between evaluations (reversal with attention, GRU, lr 3e-3: 0.93, 0.81, 0.90, 0.86 ...).
The "plateau" schedule halves the rate whenever the validation loss has not reached a new best for `lr_patience`
evaluations in a row, so it keeps the fast start as long as progress lasts, on any task, and then lets the last,
hardest examples (the carries of an addition, the middle of a long reversal) settle. "halving" decays on a fixed
clock instead (lr_k = lr * 0.5 ** (k / lr_half_life)), which suits one task length and not the others; "constant"
never decays.

What a learner wants to see is measured on the way, cheaply:
  * every step: the training loss and the gradient norm, globally and per parameter group (encoder embedding,
    encoder RNN, bridge, attention, decoder embedding, decoder RNN, output layer);
  * every `eval_every` steps: validation loss, token accuracy (teacher-forced), exact match (greedy decoding),
    a few sample predictions, and ||d loss / d h_t|| for every encoder timestep t of the top layer. The last one
    shows vanishing gradients directly: in a plain RNN it shrinks towards the start of the input.
    For word and subword data also corpus BLEU and chrF (sacrebleu, seq2seq/scores.py) of greedy outputs on the
    first BLEU_SOURCES validation sources (all of them at the end). When a source has several targets, exact match
    counts an output right if it equals any of them, and BLEU/chrF score it against all of them.

Speed: the splits are encoded into padded tensors once; a step slices a batch out of them (trimmed to the longest
sequence in the batch) and runs the fused model. The per-parameter gradient norms are computed once and reused
for clipping, so the metrics cost almost nothing. Curves are thinned to at most `CURVE_POINTS` points.

Precision (`TrainConfig.precision`, default "auto"). On a CPU that multiplies bfloat16 matrices in hardware (x86
AVX512-BF16 or AMX-BF16; this machine's AMD EPYC has the first), a training step runs its matrix products in bf16
(`Seq2Seq.lowp`): the fused LSTM (oneDNN's bf16 kernel), the attention decoder's products with its weights
(attention_decoder.py), the keys' projection and W_o. bf16 has 8 bits of mantissa against fp32's 24, at about twice
the speed (64x160 @ 160x512: 126 -> 73 us). Everything that accumulates stays fp32: the weights, their gradients,
the optimizer state, the states, the loss, the gradient norms; evaluation, decoding and introspection run in eval
mode, which is always fp32 on the same weights. Where the CPU has no bf16 units, "auto" means fp32.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import threading
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .config import ModelConfig, TrainConfig
from .model import Seq2Seq, build, component_of

PAD_ID, EOS_ID = 0, 2
GROUPS = ("encoder embedding", "encoder RNN", "bridge", "attention", "decoder embedding", "decoder RNN", "output layer")
CURVE_POINTS = 600  # most points kept per curve (thinned by 2 when full; a page draws <= 300)
BUCKET_POOL = 50  # batches' worth of shuffled examples sorted by length together (see Run._epoch_batches)
EVAL_EXAMPLES = 256  # validation examples used by the periodic evaluations (the final one uses the whole split)
PROBE_EXAMPLES = 32  # validation examples used for the per-timestep gradient probe
N_SAMPLES = 6  # sample rows (input, prediction, target) shown per evaluation
BLEU_SOURCES = 128  # validation sources decoded for BLEU/chrF in the periodic evaluations (the final one: all)
PLATEAU_FLOOR = 1 / 32  # the "plateau" schedule never takes the rate below lr / 32 (5 halvings)
PLATEAU_SPACING = 1.5  # ... and after halving it at step k, waits until step 1.5 k before it halves again
TERMINAL = ("finished", "stopped", "diverged", "error")
EXPLODED = 20.0  # a training loss above EXPLODED x ln(target vocabulary) (20x a uniform guess) counts as diverged
# A run "got worse" when its last validation loss is far above its lowest: by more than WORSE_REL x the lowest and
# more than WORSE_ABS nats per token (both: a loss of 0.004 that ends at 0.012 is noise, not a failure; one of 1.2
# that ends at 1.5 is over-fitting or a rate too high). SGD at lr 50 on reversal ends ~3x above its best.
WORSE_REL, WORSE_ABS = 0.5, 0.1
_GLOBAL_RNG = threading.Lock()  # held while a run borrows torch's process-wide generator (see Run._own_rng)


# ---------------------------------------------------------------------------------------------------------- curves
class Curves:
    """Metric series thinned to at most `cap` points.

    Each stored point summarises `stride` consecutive raw points: x-axis keys (step, epoch, seconds) keep the last
    value, metrics their mean. When a series is full, neighbouring points are merged pairwise and the stride
    doubles, so a long run keeps its whole shape in bounded memory.
    """

    X_KEYS = ("step", "epoch", "seconds")

    def __init__(self, keys: tuple[str, ...], cap: int = CURVE_POINTS):
        self.keys, self.cap, self.stride = keys, cap, 1
        self.data: dict[str, list[float]] = {k: [] for k in keys}
        self._sum: dict[str, float] = dict.fromkeys(keys, 0.0)
        self._n = 0

    def add(self, values: dict[str, float]) -> None:
        self._n += 1
        for k in self.keys:
            v = values.get(k, math.nan)
            self._sum[k] = v if k in self.X_KEYS else self._sum[k] + v
        if self._n < self.stride:
            return
        for k in self.keys:
            self.data[k].append(self._sum[k] if k in self.X_KEYS else self._sum[k] / self._n)
            self._sum[k] = 0.0
        self._n = 0
        if len(self.data[self.keys[0]]) >= self.cap:
            for k, xs in self.data.items():
                pairs = zip(xs[0::2], xs[1::2])
                self.data[k] = [b for a, b in pairs] if k in self.X_KEYS else [(a + b) / 2 for a, b in pairs]
            self.stride *= 2

    def lists(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self.data.items()}


# ------------------------------------------------------------------------------------- gradient w.r.t. each h_t
class UnrolledRNN(nn.Module):
    """The encoder RNN recomputed one timestep at a time from the fused module's own weights.

    The fused nn.RNN/GRU/LSTM hides its intermediate states inside one kernel, so d loss / d h_t cannot be read
    from it. This module computes the same function with one tensor per top-layer h_t (and per direction); the
    gradient of the loss with respect to that tensor is the full derivative through every later timestep, the
    decoder and attention. It accepts and returns what the fused module does (packed input, (out, h_n)), so it
    can stand in for `model.enc_rnn` during the probe. Eval mode only (no dropout between layers).
    """

    def __init__(self, rnn: nn.RNNBase, cell: str):
        super().__init__()
        self.__dict__["rnn"] = rnn  # a reference, not a submodule: the probe must not change the state_dict
        self.cell = cell
        self.h_top: list[list[Tensor]] = []  # per direction: h_t for t = 0..S-1, each (B, H)

    def _cell(self, xi: Tensor, h: Tensor, c: Tensor | None, W_hh: Tensor, b_hh: Tensor | None):
        gh = F.linear(h, W_hh, b_hh)
        if self.cell == "rnn":
            return torch.tanh(xi + gh), None
        if self.cell == "gru":  # r, z, n ;  h' = (1 - z) * n + z * h
            xr, xz, xn = xi.chunk(3, -1)
            hr, hz, hn = gh.chunk(3, -1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            return (1 - z) * n + z * h, None
        i, f, g, o = (xi + gh).chunk(4, -1)  # LSTM: c' = f*c + i*g ; h' = o * tanh(c')
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(self, packed, hx=None):
        rnn = self.rnn
        is_packed = not isinstance(packed, Tensor)  # the model skips packing when a batch has no padding
        if is_packed:
            x, lengths = pad_packed_sequence(packed, batch_first=True)
        else:
            x, lengths = packed, torch.full((packed.shape[0],), packed.shape[1], dtype=torch.long)
        B, S, _ = x.shape
        L, D, H = rnn.num_layers, 2 if rnn.bidirectional else 1, rnn.hidden_size
        mask = (torch.arange(S)[None, :] < lengths[:, None]).unsqueeze(-1)  # (B, S, 1)
        inp, h_n, c_n = x, [], []
        for l in range(L):
            outs = []
            for d in range(D):
                sfx = f"_l{l}" + ("_reverse" if d else "")
                xi = F.linear(inp, getattr(rnn, "weight_ih" + sfx), getattr(rnn, "bias_ih" + sfx, None))
                W_hh, b_hh = getattr(rnn, "weight_hh" + sfx), getattr(rnn, "bias_hh" + sfx, None)
                h = x.new_zeros(B, H)
                c = x.new_zeros(B, H) if self.cell == "lstm" else None
                hs: list[Tensor] = [h] * S
                for t in range(S) if d == 0 else reversed(range(S)):
                    m = mask[:, t]
                    h_new, c_new = self._cell(xi[:, t], h, c, W_hh, b_hh)
                    h = torch.where(m, h_new, h)  # padding: keep the state (forward) or stay at 0 (backward)
                    if c is not None:
                        c = torch.where(m, c_new, c)
                    hs[t] = h
                if l == L - 1:
                    self.h_top.append(hs)
                outs.append(torch.stack(hs, 1) * mask)
                h_n.append(h)
                c_n.append(c)
            inp = torch.cat(outs, -1)
        out = pack_padded_sequence(inp, lengths, batch_first=True, enforce_sorted=False) if is_packed else inp
        if self.cell == "lstm":
            return out, (torch.stack(h_n), torch.stack(c_n))
        return out, torch.stack(h_n)


def timestep_grad_norms(model: Seq2Seq, src: Tensor, src_len: Tensor, tgt_in: Tensor, tgt_out: Tensor) -> list[float]:
    """||d loss_i / d h_t|| for each encoder timestep t (top layer, both directions together), averaged over the
    examples i that have a timestep t. loss_i is example i's mean cross-entropy (teacher-forced, eval mode)."""
    was_training, fused = model.training, model.enc_rnn
    unrolled = UnrolledRNN(fused, model.cfg.cell)
    model.eval()
    try:
        model.enc_rnn = unrolled
        logits = model(src, src_len, tgt_in, 1.0)
    finally:
        model.enc_rnn = fused
        model.train(was_training)
    ce = F.cross_entropy(logits.transpose(1, 2), tgt_out, ignore_index=PAD_ID, reduction="none")  # (B, T)
    n_tok = (tgt_out != PAD_ID).sum(1).clamp(min=1)
    loss = (ce.sum(1) / n_tok).sum()
    hs = [h for direction in unrolled.h_top for h in direction]
    grads = torch.autograd.grad(loss, hs, allow_unused=True)
    S, D = src.shape[1], len(unrolled.h_top)  # noqa: F841  (D: the number of directions, as in the comments)
    sq = torch.zeros(src.shape[0], S)
    for k, g in enumerate(grads):
        if g is not None:
            sq[:, k % S] += g.square().sum(-1)
    has_t = torch.arange(S)[None, :] < src_len[:, None]
    norms = (sq.sqrt() * has_t).sum(0) / has_t.sum(0).clamp(min=1)
    return [round(v, 8) for v in norms.tolist()]


# ----------------------------------------------------------------------------------------------------- the run
class EncodedSplit:
    """One split as padded tensors, encoded once: src (N, S), src_len (N,), tgt_in / tgt_out (N, T), tgt_len."""

    def __init__(self, data, pairs: list[tuple[str, str]]):
        from .data import make_batch

        by_src: dict[str, list] = {}
        for p in pairs:  # the pairs of one source next to each other (a limited evaluation takes whole sources)
            by_src.setdefault(p[0], []).append(p)
        self.pairs = pairs = [p for g in by_src.values() for p in g]
        group: dict[str, int] = {}  # source -> index of its group (the pairs of one source share one output)
        self.group = torch.tensor([group.setdefault(s, len(group)) for s, _ in pairs], dtype=torch.long)
        self.first = [0] * len(group)  # row of the first pair of each group
        self.refs: list[list[str]] = [[] for _ in group]  # every target of each group's source
        for i, (s, t) in reversed(list(enumerate(pairs))):
            self.first[group[s]] = i
        for s, t in pairs:
            self.refs[group[s]].append(t)
        ids = [data.encode_pair(s, t) for s, t in pairs]
        b = make_batch([s for s, _ in ids], [t for _, t in ids])
        self.src, self.src_len, self.tgt_in, self.tgt_out = b.src, b.src_len, b.tgt_in, b.tgt_out
        self.tgt_len = (b.tgt_out != PAD_ID).sum(1)
        self.n = len(pairs)

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The examples `idx`, trimmed to the longest source and target among them."""
        src_len, tgt_len = self.src_len[idx], self.tgt_len[idx]
        S, T = max(int(src_len.max()), 1), int(tgt_len.max())
        return self.src[idx, :S], src_len, self.tgt_in[idx, :T], self.tgt_out[idx, :T]


def encode_splits(data) -> tuple[EncodedSplit, EncodedSplit]:
    """(train, valid) of `data` as padded tensors; valid is train when the data has no validation split."""
    train = EncodedSplit(data, data.train)
    return train, (EncodedSplit(data, data.valid) if data.valid else train)


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (avx512_bf16 or amx_bf16 among the Linux CPU flags); read
    once per process."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """TrainConfig.precision -> the one a run uses: "fp32" or "bf16" ("auto": bf16 where native_bf16())."""
    return ("bf16" if native_bf16() else "fp32") if precision == "auto" else precision


@contextmanager
def _flush_denormals():
    """Inside a training step, denormal floats (magnitudes below 1.2e-38) count as zero. Gradients through saturated
    gates reach them, and x86 CPUs compute on them ~100x slower: an LSTM reversal step took 7% longer without this
    (26-34 against 25-29 ms, interleaved; GRU unchanged). No result that shows can change."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """adam / rmsprop / sgd (plain SGD, no momentum: the update is exactly -lr * gradient)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, fused=True)  # one fused kernel: ~0.3 ms a step, foreach ~0.7 ms
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, foreach=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, foreach=True)
    raise ValueError(f"optimizer must be adam, rmsprop or sgd, got {name!r}")


def token_loss(logits: Tensor, tgt_out: Tensor) -> Tensor:
    """The training loss: the mean over the real target tokens of -log p_t(y_t) (<pad> positions ignored)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=PAD_ID)


def clip_gradients(grads: list[Tensor], clip: float) -> tuple[Tensor, Tensor]:
    """Scale `grads` in place to a global norm of at most `clip` (0 = off); returns (the global norm before
    clipping, the squared norm of each tensor). The same as clip_grad_norm_, keeping the norms for the metrics."""
    norms = torch.stack(torch._foreach_norm(grads))  # one norm per parameter tensor
    sq = norms.square()
    total = sq.sum().sqrt()
    if clip > 0:
        torch._foreach_mul_(grads, torch.clamp(clip / (total + 1e-6), max=1.0))
    return total, sq


class Run:
    """One training run. Create it, call `step()` until `done`, read `snapshot()` at any time.

    status: "queued" | "running" | "paused" | "finished" | "stopped" | "diverged" | "error"; `message` explains it.
    The budget is `train_cfg.epochs`, `train_cfg.max_seconds` (wall-clock seconds while running) and/or
    `train_cfg.stop_patience` (evaluations in a row without a new best validation exact match or loss: "until it
    stops improving", the default), whichever comes first, and never more than `time_cap` seconds per start or
    `extend()` (the server's limit).
    `encoded`: the (train, valid) `EncodedSplit`s of `data`, when the caller already has them (a worker shares them
    between the runs of one dataset: read-only, and encoding 20,000 pairs takes ~1 s).
    """

    def __init__(
        self,
        data,
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        state_dict: dict | None = None,
        time_cap: float | None = None,
        encoded: tuple | None = None,
    ):
        self.model_cfg, self.train_cfg = model_cfg.validate(), train_cfg.validate()
        self.data, self.time_cap = data, time_cap
        # The seed fixes the initial weights, the batch order and any sampling, each drawn from this run's own
        # generators, never from torch's process-wide one: runs created at once in threads equal runs created one
        # by one (tests/test_training.py).
        init = torch.Generator().manual_seed(train_cfg.seed)
        self.model = build(model_cfg, init)
        if state_dict is not None:
            self.model.load_state_dict({k: torch.as_tensor(v) for k, v in state_dict.items()})
        self.model.train()
        self._rng = init.get_state()  # this run's own random stream (dropout, teacher forcing), see _own_rng
        self._needs_rng = model_cfg.dropout > 0 or train_cfg.teacher_forcing < 1.0
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        self._group_of = torch.tensor([GROUPS.index(component_of(n)) for n in names])
        self.groups = [g for g in GROUPS if GROUPS.index(g) in set(self._group_of.tolist())]
        self.optimizer = make_optimizer(train_cfg.optimizer, self.params, train_cfg.lr)
        self._exploded = EXPLODED * math.log(model_cfg.tgt_vocab_size)
        self.precision = resolve_precision(train_cfg.precision)  # "fp32" | "bf16" (see the top of this file)
        self.model.lowp = torch.bfloat16 if self.precision == "bf16" else None

        self.train_split, self.valid_split = encoded or encode_splits(data)
        self.batch_size = min(train_cfg.batch_size, self.train_split.n)
        self.steps_per_epoch = math.ceil(self.train_split.n / self.batch_size)
        self._gen = torch.Generator().manual_seed(train_cfg.seed)
        self._batches: list[Tensor] = []  # this epoch's batches (index tensors), drawn in turn
        self._pos = 0

        self.status, self.message = "running", ""
        self.step_count, self.seconds, self.tokens_seen = 0, 0.0, 0
        self.max_epochs: float | None = train_cfg.epochs
        self.max_seconds: float | None = train_cfg.max_seconds
        self._segment_start = 0.0  # self.seconds when the current start/extend began (progress, time cap)
        self._segment_epoch = 0.0  # self.epoch when it began
        self._t_last: float | None = None
        self.last: dict = {}  # metrics of the latest step
        self.last_eval: dict = {}
        self.best_exact_match: float | None = None
        # The best evaluation (highest exact match, then lowest loss) and a copy of its weights: what a checkpoint
        # saves (best_state_dict), rather than the last step's weights. `lowest` is the lowest validation loss.
        self.best: dict | None = None  # {"step", "epoch", "exact_match", "loss"}
        self._best_weights: dict[str, Tensor] | None = None
        self.lowest: dict | None = None  # {"step", "loss"}
        self.lr_now = train_cfg.lr  # the learning rate in use (the schedules below change it)
        self._best_valid_loss, self._evals_since_best = math.inf, 0
        self._last_halving = 0  # step of the plateau schedule's latest halving
        self._stop_best = (-1.0, math.inf)  # early stopping: best validation (exact match, loss) so far
        self._evals_without_progress = 0
        self.samples: list[tuple[str, str, str]] = []
        self.timestep_grads: list[float] = []
        self.curves = Curves(
            ("step", "epoch", "seconds", "train_loss", "grad_norm") + tuple("grad_norm:" + g for g in self.groups)
        )
        self.scored = data.tokens != "char"  # BLEU / chrF for word and subword data
        self.eval_curves = Curves(
            ("step", "epoch", "seconds", "valid_loss", "token_accuracy", "exact_match")
            + (("bleu", "chrf") if self.scored else ())
        )
        self._timestep_steps: list[int] = []  # one row of ||d loss / d h_t|| per evaluation (at most 200 rows)
        self._timestep_rows: list[list[float]] = []
        self.version = 0  # bumped by every change a snapshot would show

    # -------------------------------------------------------------------------------------------- budget & state
    @property
    def epoch(self) -> float:
        return self.step_count / self.steps_per_epoch

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def progress(self) -> float:
        """0..1: how much of the epoch or time budget (whichever is further along) of the current start or
        extend() is used; with neither (train until it stops improving), how much of the stop patience."""
        fractions = []
        if self.max_epochs:
            fractions.append((self.epoch - self._segment_epoch) / max(self.max_epochs - self._segment_epoch, 1e-9))
        if self.max_seconds:
            fractions.append((self.seconds - self._segment_start) / max(self.max_seconds - self._segment_start, 1e-9))
        if self.time_cap:
            fractions.append((self.seconds - self._segment_start) / self.time_cap)
        if self.status == "finished":
            return 1.0
        if not fractions and self.train_cfg.stop_patience:  # only "until it stops improving": the patience used
            fractions.append(self._evals_without_progress / self.train_cfg.stop_patience)
        return max(0.0, min(1.0, max(fractions, default=0.0)))

    def _budget_reason(self) -> str | None:
        if self.max_epochs is not None and self.epoch >= self.max_epochs - 1e-9:
            return f"{self.max_epochs:g} epochs"
        if self.max_seconds is not None and self.seconds >= self.max_seconds:
            return f"the time budget of {self.max_seconds:g} s"
        patience = self.train_cfg.stop_patience
        if patience and self._evals_without_progress >= patience:
            return (
                f"{patience} evaluations ({patience * self.train_cfg.eval_every:,} steps) without a new best "
                f"validation exact match or loss (it stopped improving)"
            )
        if self.time_cap is not None and self.seconds - self._segment_start >= self.time_cap:
            return (
                f"this server's limit of {self.time_cap:g} s of training per run "
                f"(SEQ2SEQ_MAX_TRAIN_SECONDS); press continue to train longer"
            )
        return None

    def pause(self) -> None:
        if self.status in ("running", "queued"):
            self._tick()
            self.status, self.message, self._t_last = "paused", "Paused.", None
            self.version += 1

    def resume(self) -> None:
        """Start (from queued) or resume (from paused)."""
        if self.status in ("paused", "queued"):
            self.status, self.message, self._t_last = "running", "", time.perf_counter()
            self.version += 1

    def stop(self) -> None:
        if not self.done:
            self._tick()
            self.status, self._t_last = "stopped", None
            self.message = f"Stopped by the user at step {self.step_count} (epoch {self.epoch:.2f})."
            self.version += 1

    def extend(self, epochs: float | None = None, seconds: float | None = None) -> None:
        """Continue a finished or stopped run for `epochs` more epochs and/or `seconds` more seconds (default: the
        original budget again). The optimizer keeps its state. The run becomes "paused"; call resume()."""
        if self.status in ("diverged", "error"):
            raise ValueError(f"a {self.status} run cannot continue; start a new run")
        if epochs is None and seconds is None:
            epochs, seconds = self.train_cfg.epochs, self.train_cfg.max_seconds
        self.max_epochs = None if epochs is None else self.epoch + epochs
        self.max_seconds = None if seconds is None else self.seconds + seconds
        self._segment_start, self._segment_epoch = self.seconds, self.epoch
        self._evals_without_progress = 0  # early stopping counts again from here
        if self.done:
            self.status, self.message = "paused", "Ready to continue."
        self.version += 1

    def _tick(self) -> None:
        """Add the wall-clock time since the last step to `seconds` (only time spent running counts)."""
        now = time.perf_counter()
        if self._t_last is not None and self.status == "running":
            self.seconds += now - self._t_last
        self._t_last = now

    @contextmanager
    def _own_rng(self):
        """Dropout (PyTorch's fused RNNs draw their masks inside the kernel, from the process-wide generator) and
        teacher forcing draw from this run's own stream: it is put into torch's generator for the forward pass and
        taken back after, under a process-wide lock, so runs stepped in turn in one worker, or at once in threads,
        never draw from each other's streams."""
        if not self._needs_rng:
            yield
            return
        with _GLOBAL_RNG:
            outer = torch.get_rng_state()
            torch.set_rng_state(self._rng)
            try:
                yield
            finally:
                self._rng = torch.get_rng_state()
                torch.set_rng_state(outer)

    # --------------------------------------------------------------------------------------------------- a step
    def _next_indices(self) -> Tensor:
        if self._pos >= len(self._batches):
            self._batches, self._pos = self._epoch_batches(), 0
        self._pos += 1
        return self._batches[self._pos - 1]

    def _epoch_batches(self) -> list[Tensor]:
        """One epoch: every training example once, in batches of `batch_size`, in a random order.

        With `bucket_by_length` (the default), each run of BUCKET_POOL batches of the shuffled examples is sorted by
        source and target length before it is cut into batches, and the batches are shuffled again. A batch then
        holds examples of (nearly) one length: little padding to compute on, and when every source in it has the
        same length the encoder skips packing and runs PyTorch's fastest fused kernel. Measured here (reversal of
        5-15 letters, dot attention, batch 64): a step took 28.5 ms with a mixed batch padded to 15 letters and
        17.1 ms with a batch of 10-letter sources, the average length. Each example is still seen once per epoch."""
        order = torch.randperm(self.train_split.n, generator=self._gen)
        if not self.train_cfg.bucket_by_length:
            return list(order.split(self.batch_size))
        batches: list[Tensor] = []
        for chunk in order.split(self.batch_size * BUCKET_POOL):
            key = self.train_split.src_len[chunk] * 10_000 + self.train_split.tgt_len[chunk]
            batches.extend(chunk[torch.sort(key, stable=True).indices].split(self.batch_size))
        return [batches[i] for i in torch.randperm(len(batches), generator=self._gen).tolist()]

    def step(self) -> dict:
        """One optimizer step (and an evaluation every `eval_every` steps). Never raises: a failure becomes
        status "diverged" (NaN, infinite or exploded loss) or "error", with a message."""
        if self.status != "running":
            return {}
        if self.best is None and self.step_count == 0:
            self._evaluate_untrained()
        if self._t_last is None:
            self._t_last = time.perf_counter()
        try:
            with _flush_denormals():
                out = self._step()
        except Exception as e:  # noqa: BLE001 - a run must never take its host down
            self.status, self.message = (
                "error",
                f"Training failed at step {self.step_count + 1}: {type(e).__name__}: {e}",
            )
            self.version += 1
            return {}
        return out

    def _diverge(self, what: str) -> dict:
        cfg = self.train_cfg
        advice = (
            f"lower it (gradient clipping is already on at {cfg.clip:g})"
            if cfg.clip > 0
            else "lower it or turn on gradient clipping"
        )
        self.status = "diverged"
        self.message = (
            f"{what} at step {self.step_count + 1} — the learning rate {cfg.lr:g} is probably too "
            f"high; {advice}, then start a new run."
        )
        self._tick()
        self.version += 1
        return {}

    def _step(self) -> dict:
        cfg = self.train_cfg
        src, src_len, tgt_in, tgt_out = self.train_split.batch(self._next_indices())
        with self._own_rng():
            logits = self.model(src, src_len, tgt_in, cfg.teacher_forcing)
        loss = token_loss(logits, tgt_out)
        loss_v = loss.item()
        if not math.isfinite(loss_v):
            return self._diverge(f"Loss became {'NaN' if math.isnan(loss_v) else 'infinite'}")
        if loss_v > self._exploded:  # saturating cells rarely overflow to inf: a loss far past chance is divergence
            return self._diverge(
                f"Loss exploded to {loss_v:.4g} (more than {EXPLODED:g} times the "
                f"{self._exploded / EXPLODED:.2f} of a uniform guess)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.params if p.grad is not None]
        grads = [p.grad for p in params]
        total, sq = clip_gradients(grads, cfg.clip)
        group_of = (
            self._group_of
            if len(params) == len(self.params)
            else torch.tensor(
                [GROUPS.index(component_of(n)) for n, p in self.model.named_parameters() if p.grad is not None]
            )
        )
        group_sq = torch.zeros(len(GROUPS)).index_add_(0, group_of, sq)
        total_v, *group_v = torch.cat([total[None], group_sq.sqrt()]).tolist()
        if not math.isfinite(total_v):
            return self._diverge("The gradients became " + ("NaN" if math.isnan(total_v) else "infinite"))
        if cfg.lr_schedule == "halving":
            self._set_lr(cfg.lr * 0.5 ** (self.step_count / cfg.lr_half_life))
        self.optimizer.step()

        self.step_count += 1
        self.tokens_seen += int((tgt_out != PAD_ID).sum())  # real target tokens (y_1..y_n and <eos>)
        self._tick()
        grad_norms = {g: group_v[GROUPS.index(g)] for g in self.groups}
        self.last = {
            "step": self.step_count,
            "epoch": self.epoch,
            "seconds": self.seconds,
            "train_loss": loss_v,
            "grad_norm": total_v,
            "grad_norms": grad_norms,
            "lr": self.lr_now,
        }
        point = {
            "step": self.step_count,
            "epoch": self.epoch,
            "seconds": self.seconds,
            "train_loss": loss_v,
            "grad_norm": total_v,
        }
        for g, v in grad_norms.items():
            point["grad_norm:" + g] = v
        self.curves.add(point)
        self.version += 1

        reason = self._budget_reason()
        if reason is not None:
            self._finish(reason)
        elif self.step_count % cfg.eval_every == 0:
            self.evaluate_and_record(limit=EVAL_EXAMPLES)
        return self.last

    def _set_lr(self, rate: float) -> None:
        self.lr_now = rate
        for group in self.optimizer.param_groups:
            group["lr"] = rate

    def _plateau(self, valid_loss: float) -> None:
        """ "plateau" schedule: halve the rate after `lr_patience` evaluations in a row without a new best validation
        loss, at most once per PLATEAU_SPACING x more steps (after a halving at step k, none before step 1.5 k), and
        never below lr * PLATEAU_FLOOR.

        Why each rule (measured with `benchmarks/bench_training.py --part converge` and single runs of seeds 1, 2):
        reversal wants the first halving early, at the first evaluation that brings no progress (patience 1: GRU
        400-450 and LSTM 450-750 steps to 99%, against 500-750 and 750 with patience 2), and sometimes a second one
        soon after. A long run needs the other two: 3-digit addition has long stretches where the validation loss
        wobbles, and with patience 1 alone a GRU run halved its rate 90 times, to 2e-30, and stopped learning at
        97.7%; with the floor alone it reached the floor by step 2,650 and needed 105 s; with the spacing it takes
        about 50 s (3,150 steps), as with patience 2. Spacing by doubling (2 k) was as good on addition but held
        LSTM reversal at 98% for 300 steps waiting for its second halving."""
        if valid_loss < self._best_valid_loss:
            self._best_valid_loss, self._evals_since_best = valid_loss, 0
            return
        self._evals_since_best += 1
        spaced = self.step_count >= PLATEAU_SPACING * self._last_halving
        if self._evals_since_best >= self.train_cfg.lr_patience and spaced:
            self._set_lr(max(self.lr_now * 0.5, self.train_cfg.lr * PLATEAU_FLOOR))
            self._evals_since_best, self._last_halving = 0, self.step_count

    def _track_progress(self, r: dict) -> None:
        """Early stopping ("train until it stops improving", TrainConfig.stop_patience): an evaluation makes progress
        if it brings a new best validation exact match or a new best validation loss; after `stop_patience`
        evaluations in a row without progress, the run finishes (at the next step). Both scores count, so a run
        whose exact match is stuck while its loss still falls (a hard task on its way) keeps going, and so does one
        whose loss wobbles on noisy labels while its exact match climbs."""
        best_em, best_loss = self._stop_best
        if r["exact_match"] > best_em or r["loss"] < best_loss:
            self._evals_without_progress = 0
        else:
            self._evals_without_progress += 1
        self._stop_best = (max(best_em, r["exact_match"]), min(best_loss, r["loss"]))

    def _finish(self, reason: str) -> None:
        self.evaluate_and_record(limit=None)
        self.status, self._t_last = "finished", None
        em = self.last_eval.get("exact_match", float("nan"))
        self.message = (
            f"Finished after {reason}: {self.step_count} steps, {self.epoch:.2f} epochs in "
            f"{self.seconds:.1f} s; validation exact match {em:.1%}"
            + (
                f", BLEU {self.last_eval['bleu']:.1f}, chrF {self.last_eval['chrf']:.1f}."
                if "bleu" in self.last_eval
                else "."
            )
        )
        worse = self.worse_than_best()
        if worse is not None:
            self.message += " " + worse["message"]
        self.version += 1

    def _evaluate_untrained(self) -> None:
        """Before the first step: the untrained model is the first candidate for the best evaluation (step 0), so
        a run that only ever gets worse than where it started (SGD at lr 50) keeps its initial weights and says so.
        Not a point of the curves; not counted in the run's seconds."""
        try:
            r = self.evaluate("valid", EVAL_EXAMPLES)
        except Exception:  # noqa: BLE001 - step() reports the failure, if it repeats
            return
        self.best = {"step": 0, "epoch": 0.0, "exact_match": r["exact_match"], "loss": r["loss"]}
        self._best_weights = self.state_dict()
        self.lowest = {"step": 0, "loss": r["loss"]}
        self.samples = []

    def worse_than_best(self) -> dict | None:
        """When the latest validation loss is far above the lowest (see WORSE_REL, WORSE_ABS): {"loss",
        "lowest_loss", "lowest_step", "best_step", "message"}; else None."""
        if not self.last_eval or self.lowest is None:
            return None
        loss, low = self.last_eval["loss"], self.lowest["loss"]
        if not (math.isfinite(loss) and loss - low > max(WORSE_REL * low, WORSE_ABS)):
            return None
        best = self.best or self.lowest
        at = lambda step: "before training (step 0)" if step == 0 else f"at step {step}"  # noqa: E731
        hint = (
            f"the learning rate {self.train_cfg.lr:g} is probably too high"
            if self.train_cfg.lr_schedule == "constant" or self.train_cfg.optimizer == "sgd"
            else "over-fitting or a learning rate too high"
        )
        return {
            "loss": loss,
            "lowest_loss": low,
            "lowest_step": self.lowest["step"],
            "best_step": best["step"],
            "message": (
                f"It got worse: the validation loss ended at {loss:.3f}, far above its lowest {low:.3f} "
                f"{at(self.lowest['step'])} ({hint}). The weights kept are those of its best "
                f"evaluation, {at(best['step'])}."
            ),
        }

    def best_state_dict(self) -> dict[str, Tensor]:
        """The weights of the best evaluation so far (the current weights before the first evaluation)."""
        return {k: v.clone() for k, v in (self._best_weights or self.state_dict()).items()}

    # --------------------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, split: str = "valid", limit: int | None = None, bleu_limit: int | None = None) -> dict:
        """Teacher-forced loss and token accuracy, greedy exact match, on the first `limit` examples of a split
        (rounded up to whole sources); for word/subword data also BLEU and chrF (0..100) on the first `bleu_limit`
        of those sources (None: all; 0: no BLEU).

        Exact match: the greedy output up to <eos> equals a target exactly; with several targets for one source, the
        source counts as right if the output equals any of them (exact_match is over sources, n counts pairs). It is
        read off the teacher-forced pass, without decoding: greedy decoding reproduces a target exactly if and only
        if the teacher-forced argmax is right at every position (<eos> included). If every argmax is right, greedy
        decoding is fed the true previous tokens at every step, so it computes the very same distributions; if
        greedy decoding writes the target, it was fed the true tokens and its argmax was right at every step. Only
        the sample rows (and the BLEU sources) are decoded greedily. This halves the cost of an evaluation
        (reversal, LSTM, 256 examples: 177 -> 103 ms), and `tests/test_training.py` checks it against greedy
        decoding."""
        enc = {"valid": self.valid_split, "train": self.train_split}.get(split)
        if enc is None:
            enc = EncodedSplit(self.data, getattr(self.data, split))
        n = enc.n if limit is None else min(limit, enc.n)
        while 0 < n < enc.n and enc.group[n] == enc.group[n - 1]:  # whole sources only
            n += 1
        n_groups = int(enc.group[n - 1]) + 1 if n else 0
        was_training = self.model.training
        self.model.eval()
        loss_sum = correct = tokens = 0.0
        exact = torch.zeros(max(n_groups, 1))
        try:
            for a in range(0, n, 512):
                idx = torch.arange(a, min(a + 512, n))
                src, src_len, tgt_in, tgt_out = enc.batch(idx)
                logits = self.model(src, src_len, tgt_in, 1.0)
                real = tgt_out != PAD_ID
                loss_sum += F.cross_entropy(
                    logits.transpose(1, 2), tgt_out, ignore_index=PAD_ID, reduction="sum"
                ).item()
                right = (logits.argmax(-1) == tgt_out) | ~real
                correct += (right & real).sum().item()
                tokens += real.sum().item()
                exact.index_add_(0, enc.group[idx], right.all(1).float())  # any target of the source
            n_dec = n_groups if bleu_limit is None else min(bleu_limit, n_groups)
            n_dec = n_dec if self.scored else 0
            n_dec = max(n_dec, min(N_SAMPLES, n_groups))  # the sample rows are always decoded
            outputs = self._decode_groups(enc, n_dec)
        finally:
            self.model.train(was_training)
        result = {
            "loss": loss_sum / max(tokens, 1),
            "token_accuracy": correct / max(tokens, 1),
            "exact_match": (exact[:n_groups] > 0).float().mean().item() if n_groups else 0.0,
            "n": n,
            "n_sources": n_groups,
        }
        n_scored = n_groups if bleu_limit is None else min(bleu_limit, n_groups)
        if self.scored and n_scored:
            from .scores import corpus_scores

            tok = self.data.tokenizer
            refs = [[tok.detokenize(tok.tokenize(t)) for t in enc.refs[g]] for g in range(n_scored)]
            result.update(corpus_scores(outputs[:n_scored], refs), n_scored=n_scored)
        if split == "valid":
            self.samples = [
                (
                    enc.pairs[enc.first[g]][0],
                    outputs[g],
                    " | ".join(enc.refs[g][:3])
                    + (f" | (+{len(enc.refs[g]) - 3} more)" if len(enc.refs[g]) > 3 else ""),
                )
                for g in range(min(N_SAMPLES, len(outputs)))
            ]
        return result

    def _decode_groups(self, enc: EncodedSplit, k: int) -> list[str]:
        """Greedy outputs (text) for the first k sources of a split, in batches."""
        from .decoding import greedy_batch

        out: list[str] = []
        for a in range(0, k, 256):
            rows = torch.tensor(enc.first[a : min(a + 256, k)], dtype=torch.long)
            src_len = enc.src_len[rows]
            src = enc.src[rows, : max(int(src_len.max()), 1)]
            T = int(enc.tgt_len[rows].max())  # the longest reference of these rows, <eos> included ...
            max_len = min(self.data.max_len, max(2 * T, T + 10))  # ... with room to say more than it
            ids = _as_ids(greedy_batch(self.model, src, src_len, max_len), max_len + 1).tolist()
            out.extend(self._detok(p) for p in ids)
        return out

    def _detok(self, ids: list[int]) -> str:
        from .data import detokenize

        return detokenize(self.data.tgt_vocab.decode(ids, strip_special=True), self.data.tokenizer)

    def evaluate_and_record(self, limit: int | None = EVAL_EXAMPLES) -> dict:
        r = self.evaluate("valid", limit, None if limit is None else BLEU_SOURCES)
        self.last_eval = dict(r, step=self.step_count, epoch=self.epoch, seconds=self.seconds)
        if self.train_cfg.lr_schedule == "plateau" and limit == EVAL_EXAMPLES:  # same examples every time
            self._plateau(r["loss"])
        if limit == EVAL_EXAMPLES:
            self._track_progress(r)
        if self.best_exact_match is None or r["exact_match"] > self.best_exact_match:
            self.best_exact_match = r["exact_match"]
        if self.best is None or (r["exact_match"], -r["loss"]) > (self.best["exact_match"], -self.best["loss"]):
            self.best = {
                "step": self.step_count,
                "epoch": self.epoch,
                "exact_match": r["exact_match"],
                "loss": r["loss"],
                **{k: r[k] for k in ("bleu", "chrf") if k in r},
            }
            self._best_weights = self.state_dict()
        if self.lowest is None or r["loss"] < self.lowest["loss"]:
            self.lowest = {"step": self.step_count, "loss": r["loss"]}
        self.eval_curves.add(
            {
                "step": self.step_count,
                "epoch": self.epoch,
                "seconds": self.seconds,
                "valid_loss": r["loss"],
                "token_accuracy": r["token_accuracy"],
                "exact_match": r["exact_match"],
                **({"bleu": r.get("bleu", 0.0), "chrf": r.get("chrf", 0.0)} if self.scored else {}),
            }
        )
        k = min(PROBE_EXAMPLES, self.valid_split.n)
        self.timestep_grads = timestep_grad_norms(self.model, *self.valid_split.batch(torch.arange(k)))
        self._record_timestep_row()
        self.version += 1
        return r

    def _record_timestep_row(self) -> None:
        self._timestep_steps.append(self.step_count)
        self._timestep_rows.append(self.timestep_grads)
        if len(self._timestep_rows) > 200:  # thin: keep every other row, always the latest
            self._timestep_steps = self._timestep_steps[-1::-2][::-1]
            self._timestep_rows = self._timestep_rows[-1::-2][::-1]

    # ---------------------------------------------------------------------------------------------- snapshot
    def snapshot(self) -> dict:
        """Everything a page shows, as plain Python data (JSON-able)."""
        history = self.curves.lists()
        for k, v in self.eval_curves.lists().items():
            history[k if k in ("valid_loss", "token_accuracy", "exact_match", "bleu", "chrf") else "eval_" + k] = v
        history["timestep_grad_step"] = list(self._timestep_steps)
        history["timestep_grad_norms"] = [list(r) for r in self._timestep_rows]
        return {
            "status": self.status,
            "message": self.message,
            "progress": self.progress(),
            "step": self.step_count,
            "epoch": self.epoch,
            "seconds": self.seconds,
            "steps_per_epoch": self.steps_per_epoch,
            "max_epochs": self.max_epochs,
            "max_seconds": self.max_seconds,
            "train_loss": self.last.get("train_loss"),
            "grad_norm": self.last.get("grad_norm"),
            "grad_norms": dict(self.last.get("grad_norms", {})),
            "last_eval": dict(self.last_eval),
            "best_exact_match": self.best_exact_match,
            "timestep_grad_norms": list(self.timestep_grads),
            "best": None if self.best is None else dict(self.best),
            "worse": self.worse_than_best(),
            "samples": [list(s) for s in self.samples],
            "history": history,
            "tokens_per_second": self.tokens_seen / self.seconds if self.seconds > 0 else 0.0,
            "model_cfg": self.model_cfg.to_dict(),
            "train_cfg": self.train_cfg.to_dict(),
            "precision": self.precision,
            "queue_position": None,
        }

    def state_dict(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    # ------------------------------------------------------------------------------------------ save and resume
    def data_fingerprint(self) -> str:
        """sha256 of the training and validation pairs: a resumed run must train on the very same data."""
        h = hashlib.sha256()
        for split in (self.train_split.pairs, self.valid_split.pairs):
            h.update(json.dumps(split, ensure_ascii=False).encode())
            h.update(b"\x00")
        return h.hexdigest()

    def training_state(self) -> dict:
        """What continues this run exactly (checkpoint.py saves it as training.safetensors + training.json):
        {"state": JSON-able counters, schedule, curves; "tensors": the current weights ("weights.NAME"), the
        optimizer state ("optim.I.KEY", I = the parameter's position), both random streams, this epoch's batches}.
        The best evaluation's weights are the checkpoint's model.safetensors (see load_training_state)."""
        tensors = {f"weights.{k}": v for k, v in self.state_dict().items()}
        opt = self.optimizer.state_dict()
        for i, st_ in opt["state"].items():
            for k, v in st_.items():
                if isinstance(v, Tensor):
                    tensors[f"optim.{i}.{k}"] = v.detach().clone().reshape(v.shape)
        tensors["rng.dropout"] = self._rng.clone()
        tensors["rng.batches"] = self._gen.get_state()
        tensors["batches.order"] = torch.cat(self._batches) if self._batches else torch.zeros(0, dtype=torch.long)
        tensors["batches.sizes"] = torch.tensor([len(b) for b in self._batches], dtype=torch.long)

        def curves(c: Curves) -> dict:
            return {"data": c.lists(), "stride": c.stride, "sum": dict(c._sum), "n": c._n}

        state = {
            "format": 1,
            "data_sha256": self.data_fingerprint(),
            "status": self.status,
            "message": self.message,
            "step_count": self.step_count,
            "seconds": self.seconds,
            "tokens_seen": self.tokens_seen,
            "lr_now": self.lr_now,
            "group_lr": [g["lr"] for g in self.optimizer.param_groups],
            "max_epochs": self.max_epochs,
            "max_seconds": self.max_seconds,
            "segment_start": self._segment_start,
            "segment_epoch": self._segment_epoch,
            "pos": self._pos,
            "best_valid_loss": self._best_valid_loss,
            "evals_since_best": self._evals_since_best,
            "last_halving": self._last_halving,
            "last": self.last,
            "last_eval": self.last_eval,
            "best_exact_match": self.best_exact_match,
            "best": self.best,
            "lowest": self.lowest,
            "samples": self.samples,
            "timestep_grads": self.timestep_grads,
            "timestep_steps": self._timestep_steps,
            "timestep_rows": self._timestep_rows,
            "curves": curves(self.curves),
            "eval_curves": curves(self.eval_curves),
        }
        return {"state": state, "tensors": tensors}

    def load_training_state(self, training: dict, best_weights: dict[str, Tensor] | None = None) -> None:
        """Continue where `training_state()` left off (on a Run built with the same data and configs). Raises
        ValueError, saying what does not fit, for a state saved by another run or damaged."""
        try:
            self._load_training_state(training["state"], training["tensors"], best_weights)
        except (KeyError, TypeError, IndexError, AttributeError, RuntimeError) as e:
            raise ValueError(
                f"the training state is damaged or belongs to another run ({type(e).__name__}: {str(e)[:200]})"
            ) from None

    def _load_training_state(self, st_: dict, tensors: dict, best_weights) -> None:
        if st_.get("format") != 1:
            raise ValueError("the training state was written by another version")
        if st_["data_sha256"] != self.data_fingerprint():
            raise ValueError("the training data differ from those the run was trained on")
        nan = lambda v: math.nan if v is None else float(v)  # noqa: E731  (JSON null = a non-finite float)
        weights = {k[len("weights.") :]: v for k, v in tensors.items() if k.startswith("weights.")}
        own = self.model.state_dict()
        if set(weights) != set(own) or any(weights[k].shape != own[k].shape for k in own):
            raise ValueError("the training state's weights do not fit the model")
        self.model.load_state_dict(weights)
        opt = self.optimizer.state_dict()
        state: dict[int, dict] = {}
        for name, t in tensors.items():
            if name.startswith("optim."):
                _, i, key = name.split(".", 2)
                i = int(i)
                if not 0 <= i < len(self.params) or (t.dim() > 0 and t.shape != self.params[i].shape):
                    raise ValueError(f"the optimizer state {name} does not fit the model")
                state.setdefault(i, {})[key] = t.clone()
        opt["state"] = state
        if len(st_["group_lr"]) != len(opt["param_groups"]):
            raise ValueError("the optimizer state does not fit the model")
        for g, lr in zip(opt["param_groups"], st_["group_lr"]):
            g["lr"] = float(lr)
        self.optimizer.load_state_dict(opt)
        self._rng = tensors["rng.dropout"].clone()
        self._gen.set_state(tensors["rng.batches"].clone())
        order, sizes = tensors["batches.order"], tensors["batches.sizes"].tolist()
        if sum(sizes) != len(order) or (len(order) and int(order.max()) >= self.train_split.n):
            raise ValueError("the training state's batches do not fit the data")
        self._batches = list(order.split(sizes)) if sizes else []
        self._pos = int(st_["pos"])
        self.status, self.message = str(st_["status"]), str(st_["message"])
        self.step_count, self.seconds, self.tokens_seen = (
            int(st_["step_count"]),
            nan(st_["seconds"]),
            int(st_["tokens_seen"]),
        )
        self.lr_now = nan(st_["lr_now"])
        self.max_epochs = None if st_["max_epochs"] is None else float(st_["max_epochs"])
        self.max_seconds = None if st_["max_seconds"] is None else float(st_["max_seconds"])
        self._segment_start, self._segment_epoch = float(st_["segment_start"]), float(st_["segment_epoch"])
        self._best_valid_loss = math.inf if st_["best_valid_loss"] is None else float(st_["best_valid_loss"])
        self._evals_since_best, self._last_halving = int(st_["evals_since_best"]), int(st_["last_halving"])
        self.last, self.last_eval = dict(st_["last"]), dict(st_["last_eval"])
        self.best_exact_match, self.best, self.lowest = st_["best_exact_match"], st_["best"], st_["lowest"]
        self._best_weights = (
            None
            if best_weights is None or self.best is None
            else {k: v.detach().clone() for k, v in best_weights.items()}
        )
        self.samples = [tuple(r) for r in st_["samples"]]
        self.timestep_grads = list(st_["timestep_grads"])
        self._timestep_steps, self._timestep_rows = list(st_["timestep_steps"]), list(st_["timestep_rows"])
        for c, saved in ((self.curves, st_["curves"]), (self.eval_curves, st_["eval_curves"])):
            if set(saved["data"]) != set(c.keys):
                raise ValueError("the training state's curves do not fit the model")
            c.data = {k: [nan(v) for v in saved["data"][k]] for k in c.keys}
            c.stride, c._n = int(saved["stride"]), int(saved["n"])
            c._sum = {k: nan(saved["sum"][k]) for k in c.keys}
        self._t_last = None
        self.version += 1


def _as_ids(out, T: int) -> Tensor:
    """Greedy output (B, T') -> (B, T): cut or padded to T, and everything after the first <eos> set to <pad>."""
    if isinstance(out, (list, tuple)):
        out = torch.nn.utils.rnn.pad_sequence(
            [torch.as_tensor(o, dtype=torch.long) for o in out], batch_first=True, padding_value=PAD_ID
        )
    out = out[:, :T]
    if out.shape[1] < T:
        out = F.pad(out, (0, T - out.shape[1]), value=PAD_ID)
    after_eos = (out == EOS_ID).long().cumsum(1) - (out == EOS_ID).long() > 0
    return out.masked_fill(after_eos, PAD_ID)
