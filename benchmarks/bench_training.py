"""Training benchmarks: trainer overhead, seconds to 99% exact match, and torch threads.

    python benchmarks/bench_training.py            # everything (~5 minutes on 2 cores)
    python benchmarks/bench_training.py --quick    # shorter timings, fewer configs (~2 minutes)
    python benchmarks/bench_training.py --part throughput|converge|threads|breakdown

Numbers depend on what else the machine is doing (this one is shared): compare the ratios printed within one run,
not absolute figures across runs. Parts (1) and (2) run with torch threads = 1 and time with BOTH the process CPU
time (time.process_time: on one thread this approximates the wall time the same work takes on an idle core, and is
what the targets are judged on) and the wall time (inflated when other processes compete for the 2 cores).

(1) throughput: a `Run` (the trainer's inner loop, with its metrics and periodic evaluations) against a minimal
    plain-PyTorch loop of the same model on the same batches, interleaved A/B/A/B; target tokens per second.
    Also the whole ProcessPoolBackend (worker process, pipe, 10 Hz snapshots), for the same model.
(2) converge: seconds until the held-out exact match reaches 99%, with the library's default settings
    (TrainConfig(), ModelConfig() apart from the task's vocabularies and the attention named).
(3) threads: Run throughput with 1 and 2 torch threads.
(4) breakdown: where a reversal training step's time goes (encoder, attention decoder, optimizer), and how long the
    decoder's matrix products take when run alone: the floor that no change of the Python around them can cross.
    The decoder and the whole step are timed with the library's hand-written decoder backward
    (seq2seq/attention_decoder.py) and with autograd's (Seq2Seq.fast_decoder = False), interleaved.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from seq2seq.config import ModelConfig, TrainConfig  # noqa: E402
from seq2seq.data import build_data  # noqa: E402
from seq2seq.model import N_GATES, Seq2Seq  # noqa: E402
from seq2seq.tasks import generate_splits  # noqa: E402
from seq2seq.training import PAD_ID, Run, resolve_precision  # noqa: E402


def task_data(task: str, **params):
    return build_data(dict(generate_splits(task, seed=0, **params)), tokens="char")


def describe(mc: ModelConfig, tc: TrainConfig) -> str:
    return (
        f"cell={mc.cell} E={mc.embed} H={mc.hidden} layers={mc.layers} bi={mc.bidirectional} "
        f"attention={mc.attention} | {tc.optimizer} lr={tc.lr:g} {tc.lr_schedule}"
        f"{f'/{tc.lr_half_life}' if tc.lr_schedule == 'halving' else ''} batch={tc.batch_size} clip={tc.clip:g} "
        f"tf={tc.teacher_forcing:g} eval_every={tc.eval_every} threads={torch.get_num_threads()} "
        f"precision={resolve_precision(tc.precision)}"
    )


# ---------------------------------------------------------------------------------------------- (1) throughput
def loss_of(logits, tgt_out):
    """Mean cross-entropy over the real target tokens (padding ignored)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=PAD_ID)


def plain_step(model, opt, batch, clip: float) -> None:
    """One step of the minimal loop: forward, cross-entropy, backward, clip, optimizer."""
    src, src_len, tgt_in, tgt_out = batch
    loss = loss_of(model(src, src_len, tgt_in), tgt_out)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()


def plain_loop(mc: ModelConfig, tc: TrainConfig, batches, seconds: float) -> tuple[float, float]:
    """The minimal loop: forward, cross-entropy, backward, clip, Adam, in the precision a Run would use (bf16 products
    where the CPU has them). Returns target tokens per (CPU, wall) second; runs for `seconds` of CPU time."""
    torch.manual_seed(tc.seed)
    model = Seq2Seq(mc).train()
    model.lowp = torch.bfloat16 if resolve_precision(tc.precision) == "bf16" else None  # the Run's precision
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
    tokens, i, c0, t0 = 0, 0, time.process_time(), time.perf_counter()
    while time.process_time() - c0 < seconds:
        batch = batches[i % len(batches)]
        plain_step(model, opt, batch, tc.clip)
        tokens += int((batch[3] != PAD_ID).sum())
        i += 1
    return tokens / (time.process_time() - c0), tokens / (time.perf_counter() - t0)


def run_loop(data, mc: ModelConfig, tc: TrainConfig, seconds: float, cpu: bool = True) -> tuple[float, float]:
    """A Run (with its periodic evaluations) for `seconds` of CPU time (wall time if not cpu): tokens per (CPU, wall)
    second."""
    run = Run(data, mc, tc)
    c0, t0 = time.process_time(), time.perf_counter()
    clock, start = (time.process_time, c0) if cpu else (time.perf_counter, t0)
    while clock() - start < seconds and not run.done:
        run.step()
    return run.tokens_seen / (time.process_time() - c0), run.tokens_seen / (time.perf_counter() - t0)


def same_batches(data, mc, tc, n=200):
    run = Run(data, mc, tc)  # the batches a Run would draw, in its order
    return [run.train_split.batch(run._next_indices()) for _ in range(n)]


def bench_throughput(quick: bool) -> None:
    print("\n== (1) trainer vs plain PyTorch loop: target tokens/s (3-digit addition, library defaults) ==")
    data = task_data("addition", digits=3)
    seconds, rounds = (2.0, 3) if quick else (4.0, 5)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    for cell in ("rnn", "gru", "lstm"):
        mc = ModelConfig(len(data.src_vocab), len(data.tgt_vocab), cell=cell)
        tc = TrainConfig(epochs=None, max_seconds=600)
        batches = same_batches(data, mc, tc)
        plain, ours = [], []
        for _ in range(rounds):  # interleaved, so both see the same machine load
            plain.append(plain_loop(mc, tc, batches, seconds))
            ours.append(run_loop(data, mc, tc, seconds))
        pc, oc = med([c for c, _ in plain]), med([c for c, _ in ours])
        pw, ow = med([w for _, w in plain]), med([w for _, w in ours])
        print(
            f"  {cell:4s}  CPU: plain {pc:7,.0f} tok/s  Run {oc:7,.0f} tok/s  ratio {oc / pc:.2f} | wall: plain "
            f"{pw:7,.0f}  Run {ow:7,.0f}  ratio {ow / pw:.2f}   (median of {rounds} interleaved rounds of "
            f"{seconds:g} CPU-s) [{describe(mc, tc)}]"
        )
    bench_pool(data, seconds * 2)


def bench_pool(data, seconds: float) -> None:
    from seq2seq.trainer import ProcessPoolBackend

    mc = ModelConfig(len(data.src_vocab), len(data.tgt_vocab), cell="lstm")
    tc = TrainConfig(epochs=None, max_seconds=seconds)
    batches = same_batches(data, mc, tc)
    pool = ProcessPoolBackend(n_workers=1).warm()
    try:
        rid = pool.start(data, mc, tc)
        while pool.snapshot(rid)["status"] not in ("finished", "error", "diverged"):
            time.sleep(0.1)
        s = pool.snapshot(rid)
    finally:
        pool.shutdown()
    p = plain_loop(mc, tc, batches, seconds)[1]
    print(
        f"  lstm  plain (wall) {p:9,.0f} tok/s   ProcessPoolBackend {s['tokens_per_second']:9,.0f} tok/s   ratio "
        f"{s['tokens_per_second'] / p:.2f}   (worker process, 1 thread, snapshots pushed 10x/s) "
        f"[{describe(mc, tc)}]"
    )


# ------------------------------------------------------------------------------------------------ (2) converge
def seconds_to(data, mc: ModelConfig, tc: TrainConfig, target: float, budget: float):
    """Train with `tc` for at most `budget` CPU seconds; after each periodic evaluation that reaches `target` on the
    validation set, confirm on the full held-out test split (not timed). Returns (CPU seconds, wall seconds) of
    training including the periodic evaluations, or None, the steps taken, and the last test result."""
    run = Run(data, mc, tc)
    last_eval_step, test, cpu, wall = -1, {}, 0.0, 0.0
    while not run.done and cpu < budget:
        c0, t0 = time.process_time(), time.perf_counter()
        run.step()
        cpu, wall = cpu + time.process_time() - c0, wall + time.perf_counter() - t0
        e = run.last_eval
        if e and e["step"] != last_eval_step:
            last_eval_step = e["step"]
            if e["exact_match"] >= target:
                test = run.evaluate("test")
                if test["exact_match"] >= target:
                    return (cpu, wall), run.step_count, test
    return None, run.step_count, test or run.evaluate("test")


def bench_converge(quick: bool, attention: str = "dot", only: str = "", seed: int = 0) -> None:
    print(
        "\n== (2) seconds to 99% held-out exact match (library defaults; test split confirms) ==\n"
        "  judged on process CPU time with 1 torch thread (~ idle-machine wall time on one core); wall time in ()"
    )
    reverse = task_data("reverse", min_len=5, max_len=15)
    addition = task_data("addition", digits=3)
    cases = [("reverse 5-15", reverse, cell, attention, 15) for cell in ("rnn", "gru", "lstm")]
    cases += [("addition 3-digit", addition, "lstm", "none", 45), ("addition 3-digit", addition, "gru", "none", 90)]
    if quick:
        cases = [cases[2], cases[3]]
    cases = [c for c in cases if only in f"{c[0]} {c[2]}"]
    for name, data, cell, att, target_s in cases:
        mc = ModelConfig(len(data.src_vocab), len(data.tgt_vocab), cell=cell, attention=att)
        tc = TrainConfig(epochs=None, max_seconds=10_000, seed=seed)
        budget = target_s * (1.5 if quick else 2.5)
        secs, steps, test = seconds_to(data, mc, tc, 0.99, budget)
        got = (
            f"CPU {secs[0]:5.1f} s (wall {secs[1]:5.1f} s, {secs[0] / steps * 1000:4.1f} ms/step)"
            if secs is not None
            else f"not reached in {budget:.0f} CPU-s"
        )
        verdict = "ok" if secs is not None and secs[0] < target_s else "MISSED"
        print(
            f"  {name:17s} {cell:4s} att={att:8s} {got} at step {steps}  (target < {target_s} s CPU: {verdict}; "
            f"test exact match "
            f"{test.get('exact_match', float('nan')):.3f} on n={test.get('n')}) "
            f"[{describe(mc, tc)}; seed={tc.seed}; train n={len(data.train)}]"
        )


# ------------------------------------------------------------------------------------------------- (3) threads
def bench_threads(quick: bool) -> None:
    print("\n== (3) torch threads: Run throughput, target tokens per WALL second (3-digit addition) ==")
    data = task_data("addition", digits=3)
    seconds = 2.0 if quick else 4.0
    for cell in ("lstm", "gru"):
        mc = ModelConfig(len(data.src_vocab), len(data.tgt_vocab), cell=cell)
        tc = TrainConfig(epochs=None, max_seconds=600)
        rates = {}
        for n in (1, 2, 1, 2):
            torch.set_num_threads(n)
            rates.setdefault(n, []).append(run_loop(data, mc, tc, seconds, cpu=False)[1])  # wall: 2 threads use 2 CPUs
        torch.set_num_threads(1)
        r1, r2 = max(rates[1]), max(rates[2])
        print(
            f"  {cell:4s}  1 thread {r1:9,.0f} tok/s   2 threads {r2:9,.0f} tok/s   speed-up {r2 / r1:.2f}x   "
            f"[{describe(mc, tc).replace('threads=1', 'threads=1|2')}]"
        )
    print(
        "  recommended default: TrainConfig.threads = 1 (the web server and the browser need the other core;\n"
        "  with a busy second core, 2-thread training collapsed on this machine — see shared notes)"
    )


# ----------------------------------------------------------------------------------------------- (4) breakdown
def _cpu_ms(fn, items, rounds: int = 3) -> float:
    """Best of `rounds` passes over `items`: CPU milliseconds per item of fn(item) (NaN when there are none)."""
    if not items:
        return float("nan")
    fn(items[0])
    best = float("inf")
    for _ in range(rounds):
        c0 = time.process_time()
        for it in items:
            fn(it)
        best = min(best, (time.process_time() - c0) / len(items) * 1000)
    return best


def decoder_matmul_floor_ms(mc: ModelConfig, B: int, T: int) -> float:
    """The attention decoder's per-timestep matrix products alone, T timesteps, forward and backward: gates
    x_t W_ih^T and s_{t-1} W_hh^T (x_t = [embed(y_{t-1}); c_t]), their input gradients and weight gradients."""
    G = N_GATES[mc.cell]
    n_in, H = mc.embed + mc.hidden, mc.hidden
    x, h, g = torch.randn(B, n_in), torch.randn(B, H), torch.randn(B, G * H)
    W_ih, W_hh, b = torch.randn(G * H, n_in), torch.randn(G * H, H), torch.randn(G * H)

    def one_pass(_):
        for _t in range(T):
            torch.addmm(b, x, W_ih.t()), torch.addmm(b, h, W_hh.t())  # forward
            g.mm(W_ih), g.mm(W_hh), g.t().mm(x), g.t().mm(h)  # backward: d input, d state, d W_ih, d W_hh

    return _cpu_ms(one_pass, [None] * 20)


def bench_breakdown(quick: bool, attention: str = "dot") -> None:
    print(
        f"\n== (4) where a training step goes: reverse 5-15, {attention} attention, library defaults, 1 thread, "
        f"CPU ms =="
    )
    data = task_data("reverse", min_len=5, max_len=15)
    for cell in ("rnn", "gru", "lstm"):
        mc = ModelConfig(len(data.src_vocab), len(data.tgt_vocab), cell=cell, attention=attention)
        tc = TrainConfig(epochs=None, max_seconds=600)
        run = Run(data, mc, tc)
        model, opt = run.model, run.optimizer
        pool = [run.train_split.batch(run._next_indices()) for _ in range(60 if quick else 120)]
        one_length = [bool((b[1] == b[1][0]).all()) for b in pool]  # every source in the batch has one length
        one_len = [b for b, u in zip(pool, one_length) if u]
        mixed = [b for b, u in zip(pool, one_length) if not u]

        def enc(b):
            e = model.encode(b[0], b[1])
            s0 = e.state0[0] if isinstance(e.state0, tuple) else e.state0
            (e.enc_out.sum() + s0.sum()).backward()

        def dec(item):
            b, e = item
            loss_of(model.decode_teacher_forced(b[2], e).logits, b[3]).backward()

        with torch.no_grad():
            encoded = [(b, model.encode(b[0], b[1])) for b in one_len]
        T = sum(b[2].shape[1] for b in one_len) / len(one_len)
        floor = decoder_matmul_floor_ms(mc, tc.batch_size, round(T))
        step = lambda b: plain_step(model, opt, b, tc.clip)  # noqa: E731

        def both(fn, items):  # the hand-written decoder backward (the library's) and autograd's, interleaved
            ms = {True: [], False: []}
            for _ in range(2):
                for fast in (True, False):
                    model.fast_decoder = fast
                    ms[fast].append(_cpu_ms(fn, items, rounds=2))
            model.fast_decoder = True
            return f"{min(ms[True]):5.1f} ms (autograd's backward: {min(ms[False]):5.1f})"

        print(
            f"  {cell:4s}  whole step {both(step, one_len)} (one source length per batch; "
            f"{_cpu_ms(step, mixed):5.1f} ms when a batch mixes source lengths, {len(mixed)}/{len(pool)} batches) "
            f"= encoder fwd+bwd {_cpu_ms(enc, one_len):5.1f} ms ({_cpu_ms(enc, mixed):5.1f} mixed) + "
            f"attention decoder fwd+bwd {both(dec, encoded)} (its matrix products alone: {floor:5.1f} ms "
            f"for {round(T)} timesteps) + clipping and Adam [batch {tc.batch_size}, mean target length {T:.1f}]"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter timings, fewer configurations")
    ap.add_argument("--part", choices=["all", "throughput", "converge", "threads", "breakdown"], default="all")
    ap.add_argument(
        "--attention",
        choices=["dot", "additive"],
        default="dot",
        help="converge: the attention of the reversal runs (both count as 'with attention')",
    )
    ap.add_argument("--only", default="", help="converge: only the cases whose 'task cell' contains this text")
    ap.add_argument("--seed", type=int, default=0, help="converge: the runs' seed (TrainConfig.seed)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
        f"(shared machine: numbers are noisy)"
    )
    if args.part in ("all", "throughput"):
        bench_throughput(args.quick)
    if args.part in ("all", "converge"):
        bench_converge(args.quick, args.attention, args.only, args.seed)
    if args.part in ("all", "threads"):
        bench_threads(args.quick)
    if args.part in ("all", "breakdown"):
        bench_breakdown(args.quick, args.attention)


if __name__ == "__main__":
    main()
