"""Fair sharing: the whole pool's training throughput with 4 runs and with 12 runs sharing it, and how evenly it
is shared.

    python benchmarks/bench_sharing.py [--seconds 12] [--rounds 2] [--counts 4,12]

The trainer the app uses (ProcessPoolBackend: one worker process per core, SEQ2SEQ fair-share slices) trains N
copies of the Train page's default run (LSTM E=32 H=128 bidirectional, batch 64, on the default task: reverse,
20,000 pairs) at once. For each N: all runs start together, the window opens once every run has stepped, and the
steps of every run over the window give the aggregate steps/s (the sum) and each run's steps/s (min, median, max).
Rounds are interleaved (4, 12, 4, 12, ...) so that the load of this shared machine falls on both alike; the ratio
printed is aggregate(12) / aggregate(4) of the same round, and its median over rounds. The issue's target: >= 0.90.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from seq2seq.config import ModelConfig, TrainConfig  # noqa: E402
from seq2seq.data import build_data  # noqa: E402
from seq2seq.tasks import TASKS, generate_splits  # noqa: E402
from seq2seq.trainer import ProcessPoolBackend  # noqa: E402


def default_data():
    spec = TASKS["reverse"]
    n_eval = max(20, spec.n_train // 10)
    return build_data(
        dict(generate_splits("reverse", n_train=spec.n_train, n_valid=n_eval, n_test=n_eval, seed=0)),
        tokens=spec.tokens,
        max_len=50,
        seed=0,
    )


def measure(trainer, data, n: int, seconds: float) -> dict:
    mc = ModelConfig(len(data.src_vocab), len(data.tgt_vocab))
    tc = TrainConfig(epochs=None, max_seconds=600)
    t_start = time.perf_counter()
    ids = [trainer.start(data, mc, tc) for _ in range(n)]
    first = {}
    while len(first) < n:  # every run has stepped: the window opens
        for r in ids:
            if r not in first and trainer.snapshot(r)["step"] > 0:
                first[r] = time.perf_counter() - t_start
        time.sleep(0.02)
    time.sleep(1.0)
    s0, t0 = {r: trainer.snapshot(r)["step"] for r in ids}, time.perf_counter()
    time.sleep(seconds)
    s1, t1 = {r: trainer.snapshot(r)["step"] for r in ids}, time.perf_counter()
    for r in ids:
        trainer.close(r)
    time.sleep(0.5)  # the workers drop the closed runs
    per_run = sorted((s1[r] - s0[r]) / (t1 - t0) for r in ids)
    return {
        "n": n,
        "aggregate": sum(per_run),
        "min": per_run[0],
        "median": statistics.median(per_run),
        "max": per_run[-1],
        "first_step_worst": max(first.values()),
        "first_step_median": statistics.median(first.values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=12.0, help="measuring window per count (default 12)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--counts", default="4,12", help="run counts, the first is the baseline (default 4,12)")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    data = default_data()
    trainer = ProcessPoolBackend(max_runs=max(counts)).warm()
    print(f"{trainer.n_workers} workers, load average before: {os.getloadavg()[0]:.2f}")
    ratios = {c: [] for c in counts[1:]}
    try:
        measure(trainer, data, 2, 2.0)  # warm-up: the workers import, encode the dataset once, JIT paths
        for k in range(args.rounds):
            res = {}
            for c in counts:
                res[c] = m = measure(trainer, data, c, args.seconds)
                print(
                    f"round {k + 1}  {c:3d} runs: aggregate {m['aggregate']:6.1f} steps/s; per run min "
                    f"{m['min']:.2f} / median {m['median']:.2f} / max {m['max']:.2f} (min/median "
                    f"{m['min'] / m['median']:.2f}); Start-to-first-step median {m['first_step_median']:.2f} s, "
                    f"worst {m['first_step_worst']:.2f} s; load average {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            for c in counts[1:]:
                ratios[c].append(res[c]["aggregate"] / res[counts[0]]["aggregate"])
                print(f"round {k + 1}  aggregate({c}) / aggregate({counts[0]}) = {ratios[c][-1]:.3f}", flush=True)
    finally:
        trainer.shutdown()
    for c, r in ratios.items():
        print(
            f"aggregate throughput {c} runs / {counts[0]} runs: median {statistics.median(r):.3f} over "
            f"{len(r)} interleaved rounds ({', '.join(f'{x:.3f}' for x in r)}); target >= 0.90"
        )


if __name__ == "__main__":
    main()
