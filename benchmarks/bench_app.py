"""App responsiveness: server-side rerun time after a slider move, and the live-curve update rate while training.

    python benchmarks/bench_app.py            # both parts (the second needs /usr/bin/chromium)
    python benchmarks/bench_app.py --no-browser

1. Rerun time (target: median under 200 ms). Streamlit's AppTest runs the real app script (app.py + sidebar + page)
   in-process on the default pretrained model; we move the Encoder page's "Reading step" slider and the Decoder page's
   "Output step t" slider and time `.run()` (the whole script rerun, as the server does it), over ~20 moves each.
2. Live-curve update rate. A real `streamlit run app.py` and Chromium: start a training run on the Train page and
   count, over 5 s, how often the loss line's SVG path changes in the page (what a viewer sees) and how many
   fragment reruns the page received (the polling rate).
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
sys.path.insert(0, str(ROOT / "tests" / "browser"))
os.environ.setdefault("SEQ2SEQ_TRAINER_BACKEND", "thread")  # part 1 trains nothing: no worker processes needed


def rerun_times(n: int = 20) -> None:
    import torch
    from streamlit.testing.v1 import AppTest

    torch.set_num_threads(1)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    for page, key in (("pages/encoder.py", "enc_step"), ("pages/decoder.py", "dec_step")):
        at.switch_page(page)
        at.run()
        assert not at.exception, at.exception
        if not at.text_input(key="inspect_src").value:  # (the shared input may not survive the page switch)
            print(f"note: the input box of {page} arrived empty after the page switch; typing an example")
            at.text_input(key="inspect_src").set_value(at.session_state["current"].examples[0]).run()
        slider = at.slider(key=key)
        lo, hi = int(slider.min), int(slider.max)
        values = [lo + (i % (hi - lo + 1)) for i in range(1, n + 1)]
        times = []
        for v in values:
            at.slider(key=key).set_value(v)
            t0 = time.perf_counter()
            at.run()
            times.append(1000 * (time.perf_counter() - t0))
            assert not at.exception, at.exception
        cur = at.session_state["current"]
        cfg = cur.model_cfg
        print(
            f"{page:18s} slider {key!r} over {lo}..{hi}, {n} moves: median {statistics.median(times):6.1f} ms, "
            f"p90 {sorted(times)[int(0.9 * n) - 1]:6.1f} ms, max {max(times):6.1f} ms   "
            f"[model {cur.name}; {cfg.cell} H={cfg.hidden} E={cfg.embed} L={cfg.layers} "
            f"bidirectional={cfg.bidirectional} attention={cfg.attention}]"
        )


def live_curve_rate(seconds: float = 5.0) -> None:
    from conftest import (
        CHROMIUM,
        CHROMIUM_ARGS,
        SERVER_ENV,
        STATE_HOOK,
        VIEWPORT,
        act,
        button,
        load,
        start_server,
        stop_server,
    )
    from playwright.sync_api import sync_playwright
    from test_pages import CHART_PROBE

    env = {**SERVER_ENV, "SEQ2SEQ_TRAINER_BACKEND": "process"}
    srv = start_server(env)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            ctx = b.new_context(viewport=VIEWPORT)
            ctx.add_init_script(STATE_HOOK)
            page = ctx.new_page()
            load(page, f"{srv.url}/train?hidden=64&emb=32")
            act(page, page.locator("[data-testid='stButtonGroup'] button", has_text="seconds").click)
            act(page, button(page, "Start").click)
            page.wait_for_function(
                "() => document.querySelector('[data-testid=stMain] .mark-line path')", timeout=120_000
            )
            runs0 = page.evaluate("() => window.__st.filter(e => e.s === 'running').length")
            probe = page.evaluate(CHART_PROBE, int(seconds * 1000))
            runs = page.evaluate("() => window.__st.filter(e => e.s === 'running').length") - runs0
            text = page.locator("[data-testid='stMain']").inner_text()
            model = next((ln for ln in text.splitlines() if "H=" in ln), "?")
            s = probe["samples"]
            print(
                f"live curves while training [{model}; process backend, 1 session, Chromium]: "
                f"{probe['distinct'] - 1} loss-line redraws in {seconds:g} s = {(probe['distinct'] - 1) / seconds:.1f}/s"
                f", {runs} fragment reruns = {runs / seconds:.1f}/s, chart elements {probe['first']} "
                f"(removed {probe['removed']}, blank frames "
                f"{sum(x['svg'] < probe['first'] for x in s)}/{len(s)}), loss points {s[0]['points']} -> "
                f"{s[-1]['points']}"
            )
            b.close()
    finally:
        stop_server(srv.proc)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-browser", action="store_true", help="skip the live-curve part (needs Chromium)")
    ap.add_argument("-n", type=int, default=20, help="slider moves per page")
    args = ap.parse_args()
    print(f"bench_app on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    rerun_times(args.n)
    if not args.no_browser:
        live_curve_rate()
