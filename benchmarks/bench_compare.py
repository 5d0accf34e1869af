"""Compare page benchmarks: steps per second of each model in a comparison against a single run on the same worker
pool, and the page's server-side rerun time.

    python benchmarks/bench_compare.py                 # both parts (~3 minutes on 2 cores)
    python benchmarks/bench_compare.py --part speed    # or --part rerun

(1) speed. One process pool, as the app uses it (seq2seq.trainer.get_trainer("process"), the Trainer interface
    only). Interleaved rounds: a single run of model A; a comparison of A and B (= A with additive attention); a
    comparison of A, B, C (RNN cell), D (GRU cell); the single run again. Each round starts its runs together and
    counts optimizer steps over the same wall-clock window once all of them run, so the figure is what a viewer
    sees (steps per wall second), whatever the pool's scheduling. Printed: steps/s per model and the ratio to the
    single run of the same model in the same round set. On a machine shared with other work, read the ratios.
(2) rerun. AppTest runs the real app (app.py + sidebar + Compare page) with a finished two-model comparison on the
    page (thread backend, tiny data): the time of a whole script rerun after switching the per-length chart between
    exact match and token accuracy, 20 times (target: median under 200 ms).
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
sys.path.insert(0, str(ROOT / "tests"))


def speed(window: float = 12.0) -> None:
    from seq2seq.config import ModelConfig, TrainConfig
    from seq2seq.data import build_data
    from seq2seq.tasks import generate_splits
    from seq2seq.trainer import get_trainer

    data = build_data(generate_splits("reverse", n_train=5000, n_valid=200, n_test=200, seed=0), tokens="char")
    base = dict(cell="lstm", embed=32, hidden=128, bidirectional=True, attention="none")
    models = {
        "A (LSTM, no attention)": base,
        "B (+ additive attention)": dict(base, attention="additive"),
        "C (RNN cell)": dict(base, cell="rnn"),
        "D (GRU cell)": dict(base, cell="gru"),
    }
    cfg = {k: ModelConfig(len(data.src_vocab), len(data.tgt_vocab), **v) for k, v in models.items()}
    t_cfg = TrainConfig(epochs=1000, seed=0)
    pool = get_trainer("process")
    names = list(models)

    def round_(which: list[str]) -> dict[str, float]:
        ids = {n: pool.start(data, cfg[n], t_cfg) for n in which}
        try:
            end = time.time() + 60
            while time.time() < end and not all(pool.snapshot(r)["step"] > 0 for r in ids.values()):
                time.sleep(0.2)
            s0, t0 = {n: pool.snapshot(r)["step"] for n, r in ids.items()}, time.time()
            time.sleep(window)
            s1, t1 = {n: pool.snapshot(r)["step"] for n, r in ids.items()}, time.time()
            return {n: (s1[n] - s0[n]) / (t1 - t0) for n in which}
        finally:
            for r in ids.values():
                pool.close(r)

    rounds = [
        ("single A", names[:1]),
        ("single B", names[1:2]),
        ("compare A+B", names[:2]),
        ("compare A+B+C+D", names),
        ("single A", names[:1]),
        ("single B", names[1:2]),
    ]
    singles: dict[str, list[float]] = {}
    results = []
    for label, which in rounds:
        r = round_(which)
        results.append((label, r))
        if label.startswith("single"):
            for n, v in r.items():
                singles.setdefault(n, []).append(v)
        print(f"  {label:16s} " + "   ".join(f"{n}: {v:5.1f} steps/s" for n, v in r.items()), flush=True)
    print(
        f"\nworkers in the pool: {len(pool.worker_pids)}; "
        f"machine cores: {os.cpu_count()}; window {window:g} s per round"
    )
    for label, r in results:
        if label.startswith("compare"):
            parts = []
            for n, v in r.items():
                ref = statistics.mean(singles[n]) if n in singles else None
                parts.append(f"{n}: {v:5.1f} steps/s" + (f" = {v / ref:.2f} x its single run" if ref else ""))
            print(f"  {label:16s} " + "   ".join(parts))
    total = {label: sum(r.values()) for label, r in results}
    print("  total steps/s per round: " + ", ".join(f"{k} {v:.1f}" for k, v in total.items()))


def rerun(n: int = 20) -> None:
    os.environ["SEQ2SEQ_TRAINER_BACKEND"] = "thread"
    import torch
    from streamlit.testing.v1 import AppTest

    torch.set_num_threads(1)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.slider(key="reverse.n").set_value(200).run()
    at.number_input(key="reverse.max_len").set_value(6).run()
    at.switch_page("pages/model.py").run()
    at.select_slider(key="hidden").set_value(16).run()
    at.select_slider(key="emb").set_value(8).run()
    at.switch_page("pages/compare.py").run()
    at.selectbox(key="cmp_add").set_value("with additive attention")
    at.button(key="btn_cmp_add").click().run()
    at.number_input(key="cmp_epochs").set_value(12).run()
    at.button(key="btn_cmp_start").click().run()
    end = time.time() + 180
    while time.time() < end:
        time.sleep(0.5)
        at.run()
        if len([e for e in at.get("plotly_chart")]) >= 2 and not at.button(key="btn_cmp_use_1").disabled:
            break
    assert not at.exception, at.exception
    cmp = at.session_state["cmp_run"]
    assert len(cmp.results) == 2, "the comparison did not finish and get measured in time"
    # baseline in the same run, interleaved: the Model page of another session, moving its hidden-units slider
    base = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    base.switch_page("pages/model.py").run()
    times, base_times = [], []
    for i in range(n):
        at.segmented_control(key="cmp_measure").set_value(("token accuracy", "exact match")[i % 2])
        t0 = time.perf_counter()
        at.run()
        times.append(1000 * (time.perf_counter() - t0))
        assert not at.exception, at.exception
        base.select_slider(key="hidden").set_value((64, 128)[i % 2])
        t0 = time.perf_counter()
        base.run()
        base_times.append(1000 * (time.perf_counter() - t0))
    for name, ts in (
        ("Compare page, finished 2-model comparison (switch exact match / token accuracy)", times),
        ("baseline: Model page (move the hidden-units slider)", base_times),
    ):
        print(
            f"{name}, {n} reruns: median {statistics.median(ts):6.1f} ms, p90 {sorted(ts)[int(0.9 * n) - 1]:6.1f} ms,"
            f" max {max(ts):6.1f} ms"
        )
    print(f"ratio of medians Compare / Model: {statistics.median(times) / statistics.median(base_times):.2f}")
    from seq2seq.trainer import get_trainer

    for rid in get_trainer("thread").run_ids():
        get_trainer("thread").close(rid)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["speed", "rerun"], default=None)
    args = p.parse_args()
    if args.part in (None, "rerun"):
        print("(2) server-side rerun time of the Compare page")
        rerun()
    if args.part in (None, "speed"):
        print("(1) steps/s per model: comparison against a single run on the same pool")
        speed()


if __name__ == "__main__":
    main()
