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
import math
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .config import ModelConfig, TrainConfig
from .model import Seq2Seq, component_of

PAD_ID, EOS_ID = 0, 2
GROUPS = ("encoder embedding", "encoder RNN", "bridge", "attention", "decoder embedding", "decoder RNN",
          "output layer")
CURVE_POINTS = 600  # most points kept per curve (thinned by 2 when full; a page draws <= 300)
BUCKET_POOL = 50  # batches' worth of shuffled examples sorted by length together (see Run._epoch_batches)
EVAL_EXAMPLES = 256  # validation examples used by the periodic evaluations (the final one uses the whole split)
PROBE_EXAMPLES = 32  # validation examples used for the per-timestep gradient probe
N_SAMPLES = 6  # sample rows (input, prediction, target) shown per evaluation
PLATEAU_FLOOR = 1 / 32  # the "plateau" schedule never takes the rate below lr / 32 (5 halvings)
PLATEAU_SPACING = 1.5  # ... and after halving it at step k, waits until step 1.5 k before it halves again
TERMINAL = ("finished", "stopped", "diverged", "error")
EXPLODED = 20.0  # a training loss above EXPLODED x ln(target vocabulary) (20x a uniform guess) counts as diverged


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
                for t in (range(S) if d == 0 else reversed(range(S))):
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
    S, D = src.shape[1], len(unrolled.h_top)
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

        self.pairs = pairs
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
    The budget is `train_cfg.epochs` and/or `train_cfg.max_seconds` (wall-clock seconds while running), whichever
    comes first, and never more than `time_cap` seconds per start or `extend()` (the server's limit).
    """

    def __init__(self, data, model_cfg: ModelConfig, train_cfg: TrainConfig, state_dict: dict | None = None,
                 time_cap: float | None = None):
        self.model_cfg, self.train_cfg = model_cfg.validate(), train_cfg.validate()
        self.data, self.time_cap = data, time_cap
        torch.manual_seed(train_cfg.seed)  # the seed fixes the initial weights, the batch order and any sampling
        self.model = Seq2Seq(model_cfg)
        if state_dict is not None:
            self.model.load_state_dict({k: torch.as_tensor(v) for k, v in state_dict.items()})
        self.model.train()
        self._rng = torch.get_rng_state()  # this run's own random stream (dropout, teacher forcing)
        self._needs_rng = model_cfg.dropout > 0 or train_cfg.teacher_forcing < 1.0
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        self._group_of = torch.tensor([GROUPS.index(component_of(n)) for n in names])
        self.groups = [g for g in GROUPS if GROUPS.index(g) in set(self._group_of.tolist())]
        self.optimizer = make_optimizer(train_cfg.optimizer, self.params, train_cfg.lr)
        self._exploded = EXPLODED * math.log(model_cfg.tgt_vocab_size)
        self.precision = resolve_precision(train_cfg.precision)  # "fp32" | "bf16" (see the top of this file)
        self.model.lowp = torch.bfloat16 if self.precision == "bf16" else None

        self.train_split = EncodedSplit(data, data.train)
        self.valid_split = EncodedSplit(data, data.valid) if data.valid else self.train_split
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
        self.lr_now = train_cfg.lr  # the learning rate in use (the schedules below change it)
        self._best_valid_loss, self._evals_since_best = math.inf, 0
        self._last_halving = 0  # step of the plateau schedule's latest halving
        self.samples: list[tuple[str, str, str]] = []
        self.timestep_grads: list[float] = []
        self.curves = Curves(("step", "epoch", "seconds", "train_loss", "grad_norm") + tuple(
            "grad_norm:" + g for g in self.groups))
        self.eval_curves = Curves(("step", "epoch", "seconds", "valid_loss", "token_accuracy", "exact_match"))
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
        extend() is used."""
        fractions = []
        if self.max_epochs:
            fractions.append((self.epoch - self._segment_epoch) / max(self.max_epochs - self._segment_epoch, 1e-9))
        if self.max_seconds:
            fractions.append((self.seconds - self._segment_start) / max(self.max_seconds - self._segment_start, 1e-9))
        if self.time_cap:
            fractions.append((self.seconds - self._segment_start) / self.time_cap)
        if self.status == "finished":
            return 1.0
        return max(0.0, min(1.0, max(fractions, default=0.0)))

    def _budget_reason(self) -> str | None:
        if self.max_epochs is not None and self.epoch >= self.max_epochs - 1e-9:
            return f"{self.max_epochs:g} epochs"
        if self.max_seconds is not None and self.seconds >= self.max_seconds:
            return f"the time budget of {self.max_seconds:g} s"
        if self.time_cap is not None and self.seconds - self._segment_start >= self.time_cap:
            return (f"this server's limit of {self.time_cap:g} s of training per run "
                    f"(SEQ2SEQ_MAX_TRAIN_SECONDS); press continue to train longer")
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
        """Steps of several runs interleave in one worker: give each run its own global random stream."""
        if not self._needs_rng:
            yield
            return
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
        if self._t_last is None:
            self._t_last = time.perf_counter()
        try:
            with _flush_denormals():
                out = self._step()
        except Exception as e:  # noqa: BLE001 - a run must never take its host down
            self.status, self.message = "error", f"Training failed at step {self.step_count + 1}: " \
                                                 f"{type(e).__name__}: {e}"
            self.version += 1
            return {}
        return out

    def _diverge(self, what: str) -> dict:
        cfg = self.train_cfg
        advice = (f"lower it (gradient clipping is already on at {cfg.clip:g})" if cfg.clip > 0
                  else "lower it or turn on gradient clipping")
        self.status = "diverged"
        self.message = (f"{what} at step {self.step_count + 1} — the learning rate {cfg.lr:g} is probably too "
                        f"high; {advice}, then start a new run.")
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
            return self._diverge(f"Loss exploded to {loss_v:.4g} (more than {EXPLODED:g} times the "
                                 f"{self._exploded / EXPLODED:.2f} of a uniform guess)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.params if p.grad is not None]
        grads = [p.grad for p in params]
        total, sq = clip_gradients(grads, cfg.clip)
        group_of = self._group_of if len(params) == len(self.params) else torch.tensor(
            [GROUPS.index(component_of(n)) for n, p in self.model.named_parameters() if p.grad is not None])
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
        self.last = {"step": self.step_count, "epoch": self.epoch, "seconds": self.seconds, "train_loss": loss_v,
                     "grad_norm": total_v, "grad_norms": grad_norms, "lr": self.lr_now}
        point = {"step": self.step_count, "epoch": self.epoch, "seconds": self.seconds, "train_loss": loss_v,
                 "grad_norm": total_v}
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
        """"plateau" schedule: halve the rate after `lr_patience` evaluations in a row without a new best validation
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

    def _finish(self, reason: str) -> None:
        self.evaluate_and_record(limit=None)
        self.status, self._t_last = "finished", None
        em = self.last_eval.get("exact_match", float("nan"))
        self.message = (f"Finished after {reason}: {self.step_count} steps, {self.epoch:.2f} epochs in "
                        f"{self.seconds:.1f} s; validation exact match {em:.1%}.")
        self.version += 1

    # --------------------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, split: str = "valid", limit: int | None = None) -> dict:
        """Teacher-forced loss and token accuracy, greedy exact match, on the first `limit` examples of a split.

        Exact match: the greedy output up to <eos> equals the target exactly. It is read off the teacher-forced
        pass, without decoding: greedy decoding reproduces the target exactly if and only if the teacher-forced
        argmax is right at every position (<eos> included). If every argmax is right, greedy decoding is fed the
        true previous tokens at every step, so it computes the very same distributions; if greedy decoding writes
        the target, it was fed the true tokens and its argmax was right at every step. Only the sample rows are
        decoded greedily. This halves the cost of an evaluation (reversal, LSTM, 256 examples: 177 -> 103 ms), and
        `tests/test_training.py` checks it against greedy decoding."""
        from .decoding import greedy_batch

        enc = {"valid": self.valid_split, "train": self.train_split}.get(split)
        if enc is None:
            enc = EncodedSplit(self.data, getattr(self.data, split))
        n = enc.n if limit is None else min(limit, enc.n)
        was_training = self.model.training
        self.model.eval()
        loss_sum = correct = tokens = exact = 0.0
        preds: list[list[int]] = []
        try:
            for a in range(0, n, 512):
                src, src_len, tgt_in, tgt_out = enc.batch(torch.arange(a, min(a + 512, n)))
                logits = self.model(src, src_len, tgt_in, 1.0)
                real = tgt_out != PAD_ID
                loss_sum += F.cross_entropy(logits.transpose(1, 2), tgt_out, ignore_index=PAD_ID,
                                            reduction="sum").item()
                right = (logits.argmax(-1) == tgt_out) | ~real
                correct += (right & real).sum().item()
                tokens += real.sum().item()
                exact += right.all(1).sum().item()
                if a == 0:
                    k = min(N_SAMPLES, src.shape[0])
                    preds = _as_ids(greedy_batch(self.model, src[:k], src_len[:k], max(tgt_out.shape[1] - 1, 1)),
                                    tgt_out.shape[1]).tolist()
        finally:
            self.model.train(was_training)
        result = {"loss": loss_sum / max(tokens, 1), "token_accuracy": correct / max(tokens, 1),
                  "exact_match": exact / max(n, 1), "n": n}
        if split == "valid":
            self.samples = [(s, self._detok(p), t) for (s, t), p in zip(enc.pairs[:N_SAMPLES], preds)]
        return result

    def _detok(self, ids: list[int]) -> str:
        from .data import detokenize

        return detokenize(self.data.tgt_vocab.decode(ids, strip_special=True), self.data.tokens)

    def evaluate_and_record(self, limit: int | None = EVAL_EXAMPLES) -> dict:
        r = self.evaluate("valid", limit)
        self.last_eval = dict(r, step=self.step_count, epoch=self.epoch, seconds=self.seconds)
        if self.train_cfg.lr_schedule == "plateau" and limit == EVAL_EXAMPLES:  # same examples every time
            self._plateau(r["loss"])
        if self.best_exact_match is None or r["exact_match"] > self.best_exact_match:
            self.best_exact_match = r["exact_match"]
        self.eval_curves.add({"step": self.step_count, "epoch": self.epoch, "seconds": self.seconds,
                              "valid_loss": r["loss"], "token_accuracy": r["token_accuracy"],
                              "exact_match": r["exact_match"]})
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
            history[k if k in ("valid_loss", "token_accuracy", "exact_match") else "eval_" + k] = v
        history["timestep_grad_step"] = list(self._timestep_steps)
        history["timestep_grad_norms"] = [list(r) for r in self._timestep_rows]
        return {
            "status": self.status, "message": self.message, "progress": self.progress(),
            "step": self.step_count, "epoch": self.epoch, "seconds": self.seconds,
            "steps_per_epoch": self.steps_per_epoch, "max_epochs": self.max_epochs, "max_seconds": self.max_seconds,
            "train_loss": self.last.get("train_loss"), "grad_norm": self.last.get("grad_norm"),
            "grad_norms": dict(self.last.get("grad_norms", {})), "last_eval": dict(self.last_eval),
            "best_exact_match": self.best_exact_match, "timestep_grad_norms": list(self.timestep_grads),
            "samples": [list(s) for s in self.samples], "history": history,
            "tokens_per_second": self.tokens_seen / self.seconds if self.seconds > 0 else 0.0,
            "model_cfg": self.model_cfg.to_dict(), "train_cfg": self.train_cfg.to_dict(), "precision": self.precision,
            "queue_position": None,
        }

    def state_dict(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}


def _as_ids(out, T: int) -> Tensor:
    """Greedy output (B, T') -> (B, T): cut or padded to T, and everything after the first <eos> set to <pad>."""
    if isinstance(out, (list, tuple)):
        out = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(o, dtype=torch.long) for o in out],
                                              batch_first=True, padding_value=PAD_ID)
    out = out[:, :T]
    if out.shape[1] < T:
        out = F.pad(out, (0, T - out.shape[1]), value=PAD_ID)
    after_eos = (out == EOS_ID).long().cumsum(1) - (out == EOS_ID).long() > 0
    return out.masked_fill(after_eos, PAD_ID)
