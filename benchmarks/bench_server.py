"""Sizing a classroom server: memory with 0, 1 and 8 idle sessions and with 8 training, and steps/s per session.

    python benchmarks/bench_server.py [--sessions 8] [--seconds 10]

A real `streamlit run app.py` (process trainer backend, SEQ2SEQ_MAX_RUNS = sessions) and Chromium tabs
(each tab its own session). Memory is the resident set (VmRSS from /proc) of the server process plus all its
descendants (training workers, multiprocessing's resource tracker). Training sessions each run the Train page's
default model (LSTM, E=32, H=128, batch 64) on the default task (reverse, 20,000 pairs); steps/s per session is read
from each tab's progress bar over the measuring window.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from conftest import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    STATE_HOOK,
    VIEWPORT,
    _children,
    act,
    button,
    cpu_seconds,  # noqa: E402
    load,
    nav,
    rss_bytes,
    start_server,
    stop_server,
    worker_pids,
)


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def chromium_pids() -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if b"chromium" in (d / "cmdline").read_bytes():
                    out.append(int(d.name))
            except OSError:
                pass
    return out


def mib(pids: list[int]) -> float:
    return rss_bytes(pids) / 2**20


def step_of_any(page) -> int:
    """The run's step from the Train page's progress text, or from the sidebar's run status line on other pages."""
    text = page.locator("[data-testid='stProgress']").first.inner_text()
    return int(text.split("step", 1)[1].split("·")[0].replace(",", "").strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring window for steps/s")
    args = ap.parse_args()
    n = args.sessions
    from playwright.sync_api import sync_playwright

    srv = start_server({"SEQ2SEQ_MAX_RUNS": str(n), "SEQ2SEQ_TRAINER_BACKEND": "process"})
    rows = []

    def record(label: str, note: str = "") -> None:
        time.sleep(2)  # let the server settle
        pids = tree(srv.pid)
        rows.append((label, mib([srv.pid]), mib([p for p in pids if p != srv.pid]), mib(pids), note))
        print(f"{label:32s} {rows[-1][1]:10.0f} {rows[-1][2]:11.0f} {rows[-1][3]:10.0f}  {note}", flush=True)

    try:
        record("server started, 0 sessions", "workers start with the first session")
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            pages = []
            for i in range(n):
                ctx = b.new_context(viewport=VIEWPORT)
                ctx.add_init_script(STATE_HOOK)
                pages.append(ctx.new_page())
            load(pages[0], f"{srv.url}/train")
            record("1 idle session (Train page)")
            for pg in pages[1:]:
                load(pg, f"{srv.url}/train")
            record(f"{n} idle sessions")
            for pg in pages:
                act(pg, pg.locator("[data-testid='stButtonGroup'] button", has_text="seconds").click)
                act(pg, button(pg, "Start").click)
            for pg in pages:
                pg.wait_for_selector("[data-testid='stMain'] [data-testid='stProgress']", timeout=180_000)
            time.sleep(3)

            def measure(label: str) -> None:
                groups = {"server": [srv.pid], "workers": worker_pids(srv.pid), "browser": chromium_pids()}
                s0, t0 = [step_of_any(pg) for pg in pages], time.time()
                c0 = {k: cpu_seconds(v) for k, v in groups.items()}
                time.sleep(args.seconds)
                s1, t1 = [step_of_any(pg) for pg in pages], time.time()
                cores = {k: (cpu_seconds(v) - c0[k]) / (t1 - t0) for k, v in groups.items()}
                rates = [(b1 - a) / (t1 - t0) for a, b1 in zip(s0, s1)]
                record(
                    label,
                    f"steps/s per session: median {statistics.median(rates):.1f}, min {min(rates):.1f}, "
                    f"max {max(rates):.1f}, total {sum(rates):.0f}; CPU cores used: "
                    + ", ".join(f"{k} {v:.2f}" for k, v in cores.items()),
                )

            measure(f"{n} training, Train pages live")
            model = next(
                (ln for ln in pages[0].locator("[data-testid='stMain']").inner_text().splitlines() if "H=" in ln), "?"
            )
            for pg in pages:  # the live charts cost the (co-located) browser most: look elsewhere, keep training
                nav(pg, "encoder")
                pg.wait_for_selector("[data-testid='stSidebar'] [data-testid='stProgress']", timeout=60_000)
            time.sleep(2)
            measure(f"{n} training, on the Encoder page")
            b.close()
        workers = worker_pids(srv.pid)
    finally:
        stop_server(srv.proc)

    print(
        f"bench_server: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {len(workers)} training "
        f"workers; model trained: {model}, task reverse (20,000 pairs), batch 64"
    )
    print(f"{'state':32s} {'server MiB':>10s} {'workers MiB':>11s} {'total MiB':>10s}  notes")
    for label, a, w, t, note in rows:
        print(f"{label:32s} {a:10.0f} {w:11.0f} {t:10.0f}  {note}")


if __name__ == "__main__":
    main()
