"""Many users on one server: 8 browser sessions train 8 different models on 4 different tasks at the same time.

Each session is set up the way a teacher shares a setup: one link that opens the Train page with the task, its size,
the model and the time budget in the query string (`/train?task=sort&sort.n=300&cell=rnn&hidden=16...`), then Start.

What it checks (issue 4, "Many users"):
  * no leak between sessions: each Train page shows its own data and model (task, cell, E, H), its own run's curves
    grow, and its own run's sample predictions obey its own task's rule (copy, reverse, sort, addition);
  * every run advances while all 8 train at once;
  * a 9th run past SEQ2SEQ_MAX_RUNS (8 on the test server) waits in a queue whose position is shown;
  * pages stay responsive: the latency of a page rerun (Encoder step button: click -> next step drawn) while the 8
    runs train, median and worst printed;
  * closing the tabs ends every run: the training workers' CPU falls to idle within seconds (the seconds printed).
Timeouts are generous (a loaded 2-core CI machine); the conditions waited on are the app's own (script state,
progress text, table contents), never fixed sleeps.
"""

from __future__ import annotations

import statistics
import time

import pytest
from conftest import (
    act,
    assert_no_exception,
    button,
    cpu_load,
    cpu_seconds,
    figure,
    load,
    main_text,
    nav,
    shot,
    wait_drawn,
    worker_pids,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from seq2seq.config import ModelConfig
from ui import state

pytestmark = [pytest.mark.browser, pytest.mark.load]  # ~2 minutes of 8 browsers; -m "not load" skips it

# (task, cell, hidden units H, attention): 8 different models, 4 tasks
SESSIONS = [
    ("reverse", "lstm", 16, "none"),
    ("copy", "gru", 8, "none"),
    ("sort", "rnn", 16, "dot"),
    ("addition", "lstm", 32, "additive"),
    ("reverse", "gru", 32, "dot"),
    ("copy", "lstm", 8, "additive"),
    ("sort", "gru", 16, "none"),
    ("addition", "rnn", 8, "dot"),
]
RULES = {
    "reverse": lambda s: s[::-1],
    "copy": lambda s: s,
    "sort": lambda s: "".join(sorted(s)),
    "addition": lambda s: str(sum(int(x) for x in s.split("+"))),
}
N_PAIRS = 300  # training pairs per session (validation: 30): small, so the first evaluation comes quickly
RUN_SECONDS = 300  # outlives the test: closing the tab must end the run
IDLE_CORES = 0.10  # "idle": the workers together use under a tenth of a core
END_WITHIN = 10.0  # seconds from closing the tabs to idle workers
PROGRESS = "[data-testid='stMain'] [data-testid='stProgress']"
# The step number in the Train page's progress text ("running · step 1,234 · epoch ..."), or -1.
STEP_JS = f"""() => {{ const p = document.querySelector("{PROGRESS}");
  const m = p && p.innerText.match(/step ([\\d,]+)/); return m ? parseInt(m[1].replace(/,/g, '')) : -1; }}"""
# The same from the sidebar's run status line ("Train page run: running · 12% · step 1,234"), shown on every page.
SIDEBAR_STEP_JS = """() => { const m = document.querySelector('[data-testid=stSidebar]').innerText
  .match(/Train page run: \\w+ · \\d+% · step ([\\d,]+)/); return m ? parseInt(m[1].replace(/,/g, '')) : -1; }"""
# The training-loss line of the live chart as drawn (its SVG path), "" before it is drawn. Compared, not counted:
# a long run's curve is thinned to a bounded number of points, so its point count stops growing while its shape moves.
LOSS_PATH_JS = """() => { const p = document.querySelector('[data-testid=stMain] .mark-line path');
                         return p ? (p.getAttribute('d') || '') : ''; }"""


def link(server_url: str, task: str, cell: str, hidden: int, attention: str) -> str:
    return (
        f"{server_url}/train?task={task}&{task}.n={N_PAIRS}&cell={cell}&emb=8&hidden={hidden}"
        f"&attention={attention}&batch=32&budget=seconds&seconds={RUN_SECONDS}"
    )


def describe(cell: str, attention: str) -> str:
    """What the Train page shows for the model a link sets up (the other settings at the library's defaults)."""
    return state.describe(ModelConfig(5, 5, cell=cell, attention=attention))


def step(page, js: str = STEP_JS) -> int:
    return page.evaluate(js)


def wait_all_step_past(pages, steps: list[int], timeout: float = 60_000) -> None:
    """Wait until every page's sidebar run status shows a step past the one given for it."""
    for p, a in zip(pages, steps):
        p.wait_for_function(f"() => ({SIDEBAR_STEP_JS})() > {a}", timeout=timeout)


def sample_rows(page) -> list[tuple[str, str, str]]:
    """(input, prediction, target) rows of the Train page's sample table, read from the grid's accessible table
    (the grid draws its cells only while on screen: scroll to it first)."""
    page.locator("[data-testid='stMain'] [data-testid='stDataFrame']").last.scroll_into_view_if_needed()
    cells = page.evaluate("""() => Array.from(document.querySelectorAll(
        '[data-testid=stMain] [data-testid=stDataFrame] [id^=glide-cell-]')).map(c => [c.id, c.innerText])""")
    grid: dict[int, dict[int, str]] = {}
    for cid, text in cells:
        col, row = map(int, cid.split("-")[2:4])
        grid.setdefault(row, {})[col] = text
    return [(r[0], r[1], r[2]) for r in grid.values() if all(k in r for k in (0, 1, 2)) and r[0]]


def wait_samples(page, task: str, timeout: float = 120.0) -> list[tuple[str, str, str]]:
    """The sample table's rows once the run's first evaluation has filled it (polled: the table is redrawn twice a
    second while the run trains)."""
    deadline = time.time() + timeout
    while not (rows := sample_rows(page)):
        assert time.time() < deadline, (
            f"no sample predictions after {timeout:g} s in the {task} session (step {step(page)})"
        )
        page.wait_for_timeout(500)
    return rows


def loss_path(page) -> str:
    """The training-loss line of the live chart ("" before it is drawn)."""
    return page.evaluate(LOSS_PATH_JS)


RECLICKS: list[str] = []  # clicks that drew nothing within RECLICK_AFTER ms and were clicked again (at most 1 allowed)
RECLICK_AFTER = 30_000


def measure_rerun(page) -> float:
    """Milliseconds from a click on the Encoder's step button until the page shows the next step (the rerun has
    drawn it). Timed from Python: includes Playwright's round trips (~10-30 ms). Under this test's load a click was
    once never answered (one of 16 on one CI run, machine heavily loaded: the page stayed on its step for the full
    120 s wait; the rerun of the same test passed): such a click is clicked again after 30 s, counted in RECLICKS
    (more than one fails the test), and timed from the first click."""
    headings = "Array.from(document.querySelectorAll('[data-testid=stMain] h3')).map(h => h.innerText).join('|')"
    before = page.evaluate(f"() => {headings}")
    t0 = time.perf_counter()
    button(page, "▶", exact=True).click()
    try:
        page.wait_for_function(f"b => {headings} !== b", arg=before, timeout=RECLICK_AFTER)
    except PlaywrightTimeout:
        RECLICKS.append(before)
        button(page, "▶", exact=True).click()
        page.wait_for_function(f"b => {headings} !== b", arg=before, timeout=90_000)
    return 1000 * (time.perf_counter() - t0)


def test_eight_sessions_train_apart_and_stop_with_their_tabs(server, new_page):
    t0 = time.time()
    pages = [new_page() for _ in SESSIONS]

    # 1. every session opens its own shared link to the Train page, presses Start, and moves on to the Encoder page
    #    (8 Train pages redrawing live charts twice a second would load the 2-core test machine's browser, not the
    #    server; each Train page is visited below, one at a time)
    for p, s in zip(pages, SESSIONS):
        p.goto(link(server.url, *s))
    for p in pages:
        wait_drawn(p, timeout=180_000)
    t_loaded = time.time() - t0
    for p, (task, cell, hidden, attention) in zip(pages, SESSIONS):
        text = " ".join(p.locator("[data-testid='stMain'] [data-testid='stText']").all_inner_texts())
        assert f"task: {task}" in text and f"{N_PAIRS:,} training" in text, f"{task} session shows other data: {text}"
        assert f"{describe(cell, attention)}, E=8, H={hidden}:" in text, f"{task}/{cell} session shows: {text}"
    # the same page rerun with nothing training, for comparison with step 5
    nav(pages[0], "encoder")
    idle_latencies = [measure_rerun(pages[0]) for _ in range(4)]
    nav(pages[0], "train")

    for i, (p, s) in enumerate(zip(pages, SESSIONS)):  # one at a time, each then leaves its live Train page
        act(p, button(p, "Start").click, timeout=180_000)
        try:
            p.wait_for_selector(PROGRESS, timeout=120_000)
        except Exception:
            shot(p, f"load-start-{i}")
            raise AssertionError(
                f"session {i} ({s}): no run status 120 s after Start; the page says: {main_text(p)[:1500]}"
            ) from None
        nav(p, "encoder")
    for p in pages:
        p.wait_for_function(f"() => ({SIDEBAR_STEP_JS})() > 0", timeout=180_000)
    t_started = time.time() - t0

    # 2. no leaks: back on its Train page, each session finds its own run: its data and model, curves that grow,
    #    and sample predictions that follow its own task's rule
    for p, (task, cell, hidden, attention) in zip(pages, SESSIONS):
        nav(p, "train")
        text = " ".join(p.locator("[data-testid='stMain'] [data-testid='stText']").all_inner_texts())
        assert f"task: {task}" in text, f"{task} session shows other data: {text}"
        assert f"{describe(cell, attention)}, E=8, H={hidden}:" in text, f"{task}/{cell} session shows: {text}"
        assert "running" in p.locator(PROGRESS).inner_text()
        assert_no_exception(p, f"Train ({task})")
        rows = wait_samples(p, task)
        bad = [r for r in rows if RULES[task](r[0]) != r[2]]
        assert not bad, f"the {task} session shows samples of another task: {bad[:3]}"
        before = [p.evaluate(STEP_JS), loss_path(p)]  # the curve must move on from here
        p.wait_for_function(
            f"([step, path]) => ({STEP_JS})() > step && ({LOSS_PATH_JS})() !== path && ({LOSS_PATH_JS})() !== ''",
            arg=before,
            timeout=120_000,
        )
        nav(p, "encoder")

    # 3. every run advances while all train at once (the sidebar's run status line, redrawn every second)
    steps_a, t_a = [step(p, SIDEBAR_STEP_JS) for p in pages], time.time()
    wait_all_step_past(pages, steps_a)
    time.sleep(max(0.0, 3 - (time.time() - t_a)))
    steps_b, t_b = [step(p, SIDEBAR_STEP_JS) for p in pages], time.time()

    # 4. a 9th run is over the server's memory bound of 8 runs (SEQ2SEQ_MAX_RUNS): it waits, and says where it is
    extra = new_page()
    load(extra, f"{server.url}/train?budget=seconds&seconds=30", timeout=180_000)
    button(extra, "Start").click()
    extra.get_by_text("position 1 of 1").first.wait_for(timeout=60_000)
    assert "queued" in extra.locator(PROGRESS).inner_text()

    # 5. responsiveness under load: page reruns (Encoder step button) while the 8 runs train
    #    The workers' CPU is read over the whole latency loop. They run at nice 10 and yield to the browser and the
    #    server (0.32 cores over the loop here; a one-second window after it read 0.50 once on CI), so what must hold
    #    is that they kept training while the pages reran: not idle by step 6's measure, and every run's step moved on.
    workers = worker_pids(server.pid)
    cpu_a, t_lat, steps_lat = cpu_seconds(workers), time.time(), [step(p, SIDEBAR_STEP_JS) for p in pages]
    latencies = [measure_rerun(p) for _ in range(2) for p in pages]
    assert len(RECLICKS) <= 1, f"step clicks that drew nothing within {RECLICK_AFTER / 1000:g} s: {RECLICKS}"
    for p in pages:
        assert_no_exception(p, "Encoder under load")
    wait_all_step_past(pages, steps_lat)
    busy = (cpu_seconds(workers) - cpu_a) / (time.time() - t_lat)
    assert busy > IDLE_CORES, f"the training workers should be busy while the pages rerun ({busy:.2f} cores)"

    # 6. close every tab: every run must end within seconds (the workers go idle)
    for p in pages + [extra]:
        p.context.close()
    t_closed = time.time()
    loads: list[tuple[float, float]] = []  # (seconds after closing when a half-second window began, worker cores)
    while time.time() - t_closed < END_WITHIN + 5:
        loads.append((time.time() - t_closed, cpu_load(workers, 0.5)))
        if len(loads) >= 2 and loads[-1][1] < IDLE_CORES and loads[-2][1] < IDLE_CORES:
            break
    busy_windows = [t for t, x in loads if x >= IDLE_CORES]
    took = next((t for t, x in loads if t > (busy_windows[-1] if busy_windows else -1)), float("inf"))
    figure(
        f"8 sessions: links loaded in {t_loaded:.0f} s, all 8 runs stepping {t_started:.0f} s after the first "
        f"click; steps/s per run while 8 train: "
        f"{[round((b - a) / (t_b - t_a), 1) for a, b in zip(steps_a, steps_b)]}"
    )
    figure(
        f"page rerun latency (Encoder step, click to next step drawn, browser on the same 2 cores) with 8 runs "
        f"training, {len(latencies)} reruns: median {statistics.median(latencies):.0f} ms, worst "
        f"{max(latencies):.0f} ms (nothing training: median {statistics.median(idle_latencies):.0f} ms; clicked "
        f"again after {RECLICK_AFTER / 1000:g} s: {len(RECLICKS)}); "
        f"training workers {len(workers)} using {busy:.2f} cores"
    )
    figure(
        f"tabs closed -> training workers idle within {took + 0.5:.1f} s (worker cores per 0.5 s window: "
        f"{[round(x, 2) for _, x in loads]})"
    )
    assert loads[-1][1] < IDLE_CORES and took <= END_WITHIN, (
        f"training did not stop within {END_WITHIN:g} s of the tabs closing: {loads}"
    )
