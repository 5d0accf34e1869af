"""Introspection latency: trace_encoder + trace_decoder (teacher forced, 50 output steps) of one 50-token input,
hidden 256, embed 32, for every cell type, with and without attention, one bidirectional layer (the library's
default encoder), and bidirectional 2- and 3-layer worst cases.
Target (issue 2): median under 10 ms. Also prints one fused forward pass of the same input (teacher forced, no
introspection) in the same run, and the ratio total / fused, which is less sensitive to a busy machine.

    python benchmarks/bench_introspection.py [--threads 1] [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from seq2seq.config import ModelConfig
from seq2seq.data import Vocab
from seq2seq.introspect import trace_decoder, trace_encoder
from seq2seq.model import Seq2Seq

CASES = [(cell, 1, False, att) for cell in ("rnn", "gru", "lstm") for att in ("none", "additive", "dot")]
CASES += [(cell, 1, True, att) for cell in ("rnn", "gru", "lstm") for att in ("none", "dot")]  # library defaults
CASES += [(cell, 2, True, "additive") for cell in ("rnn", "gru", "lstm")]
CASES += [(cell, 3, True, "dot") for cell in ("rnn", "gru", "lstm")]


def median_ms(fn, repeats: int) -> float:
    return timings_ms(fn, repeats)[0]


def timings_ms(fn, repeats: int) -> tuple[float, float, float]:
    """(median wall, min wall, median CPU time of this process) in ms. On a shared machine the min wall time and
    the CPU time show the cost without waiting for a core (1 torch thread: CPU time ~ wall time when idle)."""
    fn()  # warm up
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return statistics.median(times), min(times), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--tokens", type=int, default=50)
    ap.add_argument("--hidden", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    letters = "abcdefghijklmnopqrstuvwxyz"
    sv, tv = Vocab.build([list(letters)]), Vocab.build([list(letters)])
    g = torch.Generator().manual_seed(0)
    src = "".join(letters[i] for i in torch.randint(0, 26, (args.tokens,), generator=g).tolist())
    tgt = src[::-1][: args.tokens - 1]  # 49 tokens + <eos> = 50 decoder steps
    print(
        f"input: {args.tokens} tokens, hidden {args.hidden}, embed 32, torch threads {args.threads}, "
        f"{args.repeats} repeats; decoder: teacher forced, {len(tgt) + 1} steps"
    )
    print(
        f"{'cell':5} {'layers':>6} {'bidir':>5} {'attention':>9} | {'encoder ms':>10} {'decoder ms':>10} "
        f"{'total ms':>9} {'(min)':>7} {'cpu ms':>7} | {'fused fwd ms':>12} | {'ratio':>5}"
    )
    for cell, layers, bidir, att in CASES:
        torch.manual_seed(0)
        m = Seq2Seq(
            ModelConfig(
                len(sv),
                len(tv),
                cell=cell,
                embed=32,
                hidden=args.hidden,
                layers=layers,
                bidirectional=bidir,
                attention=att,
            )
        ).eval()
        enc = trace_encoder(m, sv, src, "char")
        t_enc = median_ms(lambda: trace_encoder(m, sv, src, "char"), args.repeats)
        t_dec = median_ms(lambda: trace_decoder(m, enc, tv, target=tgt, teacher_forced=True), args.repeats)
        t_all, t_min, t_cpu = timings_ms(
            lambda: trace_decoder(m, trace_encoder(m, sv, src, "char"), tv, target=tgt, teacher_forced=True),
            args.repeats,
        )
        x = torch.tensor([sv.encode(list(src))])
        y = torch.tensor([[1] + tv.encode(list(tgt))])

        def fused():
            with torch.no_grad():
                m(x, torch.tensor([x.shape[1]]), y)

        t_fused = median_ms(fused, args.repeats)
        print(
            f"{cell:5} {layers:>6} {str(bidir):>5} {att:>9} | {t_enc:10.2f} {t_dec:10.2f} {t_all:9.2f} "
            f"{t_min:7.2f} {t_cpu:7.2f} | "
            f"{t_fused:12.2f} | {t_all / t_fused:5.1f}"
        )


if __name__ == "__main__":
    main()
