"""Rerun time of the "One training step" page, against the Encoder page's slider as a baseline in the same run.

    python benchmarks/bench_one_step.py [-n 20]

Streamlit's AppTest runs the real app script (app.py + sidebar + page) in-process on the default pretrained model,
as bench_app.py does. Interleaved rounds, each timing one `.run()` (the whole script rerun, as the server does it):
  * baseline   the Encoder page's "Reading step" slider moved (bench_app.py's measurement; target 200 ms)
  * stage      the One training step page's stage control moved to the next stage (figures only)
  * pair       a new training pair picked: the whole step computed again (forward, backward, optimizer step)
  * optimizer  another optimizer picked (the step computed again)
Prints the median, p90 and max of each, and each median's ratio to the baseline's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SEQ2SEQ_TRAINER_BACKEND", "thread")


def _timed(at, times: list[float]) -> None:
    t0 = time.perf_counter()
    at.run()
    times.append(1000 * (time.perf_counter() - t0))
    assert not at.exception, [e.value for e in at.exception]


def main(n: int) -> None:
    import torch
    from streamlit.testing.v1 import AppTest

    torch.set_num_threads(1)
    enc = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    enc.run()
    enc.switch_page("pages/encoder.py")
    enc.run()
    step = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    step.run()
    step.switch_page("pages/one_step.py")
    step.run()
    assert not enc.exception and not step.exception, (enc.exception, step.exception)
    slider = enc.slider(key="enc_step")
    lo, hi = int(slider.min), int(slider.max)
    stages = list(step.segmented_control(key="step_stage").options)
    n_pairs = len(step.selectbox(key="step_pair").options)
    opts = ["rmsprop", "sgd", "adam"]
    times: dict[str, list[float]] = {"baseline": [], "stage": [], "pair": [], "optimizer": []}
    for i in range(n):
        enc.slider(key="enc_step").set_value(lo + (i + 1) % (hi - lo + 1))
        _timed(enc, times["baseline"])
        step.segmented_control(key="step_stage").set_value(stages[(i + 1) % (len(stages) - 1)])  # one stage
        _timed(step, times["stage"])
        step.selectbox(key="step_pair").set_value((i + 1) % n_pairs)
        _timed(step, times["pair"])
        step.radio(key="step_opt").set_value(opts[i % 3])
        _timed(step, times["optimizer"])
    cur = step.session_state["current"]
    base = statistics.median(times["baseline"])
    print(
        f"bench_one_step on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; model {cur.name}; "
        f"{n} interleaved rounds"
    )
    for name, ts in times.items():
        med = statistics.median(ts)
        print(
            f"  {name:10s} median {med:7.1f} ms  p90 {sorted(ts)[max(0, int(0.9 * len(ts)) - 1)]:7.1f} ms  "
            f"max {max(ts):7.1f} ms  ratio to baseline {med / base:5.2f}"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20, help="interleaved rounds")
    main(ap.parse_args().n)
