"""Many users on one server: 8 browser sessions train 8 different models on 4 different tasks at the same time.

What it checks (issue 4, "Many users"):
  * no leak between sessions: each Train page shows its own data and model, and its own run's sample predictions
    obey its own task's rule (copy, reverse, sort, addition), so curves and samples come from its own run;
  * a 9th run past SEQ2SEQ_MAX_CONCURRENT_RUNS (8 on the test server) waits in a queue whose position is shown;
  * pages stay responsive: the latency of a page rerun (encoder step button: click -> script idle again) while all
    runs train, median and worst printed;
  * closing the tabs ends every run: the training workers' CPU falls to ~0 within seconds of the last tab closing.
"""
from __future__ import annotations

import statistics
import time

import pytest

from conftest import act, button, assert_no_exception, cpu_load, load, wait_drawn, wait_idle, worker_pids

pytestmark = pytest.mark.browser

# (task, cell as the Cell control shows it, hidden units H, attention): 8 different models, 4 tasks
SESSIONS = [("reverse", "LSTM", 16, "none"), ("copy", "GRU", 8, "none"), ("sort", "RNN", 16, "dot"),
            ("addition", "LSTM", 32, "additive"), ("reverse", "GRU", 32, "dot"), ("copy", "LSTM", 8, "additive"),
            ("sort", "GRU", 16, "none"), ("addition", "RNN", 8, "dot")]
RULES = {"reverse": lambda s: s[::-1], "copy": lambda s: s, "sort": lambda s: "".join(sorted(s)),
         "addition": lambda s: str(sum(int(x) for x in s.split("+")))}
IDLE_CORES = 0.10  # "idle": the workers together use under a tenth of a core
END_WITHIN = 10.0  # seconds from closing the tabs to idle workers


def describe(cell: str, attention: str) -> str:
    """What the Train page shows for a model (ui.state.describe)."""
    return cell + (f" + {attention} attention" if attention != "none" else "")


def all_pages(pages, action, what: str = "", idle: bool = True) -> None:
    """Do `action(page)` on every page first, then wait for every page: the server works on all at once.
    idle=False: do not wait for the script to be idle (a training page polls its run all the time)."""
    t0 = time.time()
    before = [p.evaluate("() => window.__st.filter(e => e.s === 'running').length") for p in pages]
    for p in pages:
        action(p)
    for p, b in zip(pages, before):
        try:
            p.wait_for_function(f"() => window.__st.filter(e => e.s === 'running').length > {b}", timeout=3000)
        except Exception:
            pass
        if idle:
            wait_idle(p)
    if what:
        print(f"  {what}: {time.time() - t0:.1f} s")


def sidebar_link(page, slug: str):
    return page.locator("[data-testid='stSidebarNav'] a").first if not slug else \
        page.locator(f"[data-testid='stSidebarNav'] a[href$='/{slug}']")


def pick_task(page, task: str) -> None:
    box = page.locator("[data-testid='stSelectbox']").filter(has_text="Task")
    box.click()
    page.keyboard.type(task)
    page.keyboard.press("Enter")


def set_seconds(page, seconds: int) -> None:
    box = page.locator("[data-testid='stMain'] [data-testid='stNumberInput']").filter(has_text="Seconds").locator("input")
    box.fill(str(seconds))
    box.press("Enter")


def progress_step(page) -> int:
    text = page.locator("[data-testid='stMain'] [data-testid='stProgress']").inner_text()
    return int(text.split("step", 1)[1].split("·")[0].replace(",", "").strip())


def sample_rows(page) -> list[tuple[str, str, str]]:
    """(input, prediction, target) rows of the Train page's sample table, read from the grid's accessible table
    (the grid renders only while on screen: scroll to it)."""
    page.locator("[data-testid='stMain'] [data-testid='stDataFrame']").last.scroll_into_view_if_needed()
    cells = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid=stMain] [data-testid=stDataFrame] [id^=glide-cell-]'))
                                        .map(c => [c.id, c.innerText])""")
    grid: dict[int, dict[int, str]] = {}
    for cid, text in cells:
        col, row = map(int, cid.split("-")[2:4])
        grid.setdefault(row, {})[col] = text
    return [(r[0], r[1], r[2]) for r in grid.values() if all(k in r for k in (0, 1, 2)) and r[0]]


def measure_rerun(page) -> float:
    """Milliseconds from a click on the Encoder's step button until the page shows the next step (the rerun has
    drawn it). Timed from Python: includes Playwright's round trips (~10-30 ms)."""
    headings = "Array.from(document.querySelectorAll('[data-testid=stMain] h3')).map(h => h.innerText).join('|')"
    before = page.evaluate(f"() => {headings}")
    t0 = time.perf_counter()
    button(page, "▶", exact=True).click()
    page.wait_for_function(f"b => {headings} !== b", arg=before, timeout=60_000)
    return 1000 * (time.perf_counter() - t0)


def test_eight_sessions_train_apart_and_stop_with_their_tabs(server, new_page):
    t_start = time.time()
    pages = [new_page() for _ in SESSIONS]

    # 1. each session opens the Model page configured through the URL (a shareable link), then picks its task on
    #    the Data page (reverse is the default), then on the Train page "train for 60 seconds" and Start
    for p, (task, cell, hidden, attention) in zip(pages, SESSIONS):
        p.goto(f"{server.url}/model?cell={cell}&hidden={hidden}&emb=8&attention={attention}")
    for p in pages:
        wait_drawn(p)
    print(f"\n  8 Model pages loaded: {time.time() - t_start:.1f} s")
    all_pages(pages, lambda p: sidebar_link(p, "").click(), "to Data page")
    all_pages([p for p, s in zip(pages, SESSIONS) if s[0] != "reverse"],
              lambda p: pick_task(p, SESSIONS[pages.index(p)][0]), "pick task")
    for p, (task, *_) in zip(pages, SESSIONS):
        assert task == "reverse" or f"task={task}" in p.url, (task, p.url)  # the Task box is bound to the URL
    all_pages(pages, lambda p: sidebar_link(p, "train").click(), "to Train page")
    all_pages(pages, lambda p: p.locator("[data-testid='stButtonGroup'] button", has_text="seconds").click(), "train for seconds")
    all_pages(pages, lambda p: set_seconds(p, 300), "300 seconds")  # outlives the test: tab closing must end it
    all_pages(pages, lambda p: button(p, "Start").click(), "Start", idle=False)
    for p in pages:
        p.wait_for_selector("[data-testid='stMain'] [data-testid='stProgress']")
    print(f"\n8 sessions configured and started in {time.time() - t_start:.1f} s")

    # 3. no leaks: own data + model text, and sample predictions of the session's own task
    for p, (task, cell, hidden, attention) in zip(pages, SESSIONS):
        text = " ".join(p.locator("[data-testid='stMain'] [data-testid='stText']").all_inner_texts())
        assert f"task: {task}:" in text, text
        assert f"{describe(cell, attention)}, E=8, H={hidden}:" in text, text
        assert_no_exception(p, f"Train ({task})")
    deadline = time.time() + 90
    for p, (task, *_) in zip(pages, SESSIONS):
        while not (rows := sample_rows(p)) and time.time() < deadline:
            p.wait_for_timeout(500)
        assert rows, f"no sample predictions after 90 s in the {task} session (steps {progress_step(p)})"
        bad = [r for r in rows if RULES[task](r[0]) != r[2]]
        assert not bad, f"{task} session shows samples of another task: {bad[:3]}"
    steps_a = [progress_step(p) for p in pages]
    time.sleep(2)
    steps_b = [progress_step(p) for p in pages]
    status = [p.locator("[data-testid='stMain'] [data-testid='stProgress']").inner_text().split("·")[0] for p in pages]
    assert all(b > a for a, b in zip(steps_a, steps_b)), f"not every run advances: {steps_a} -> {steps_b} {status}"
    print("steps per run over 2 s:", [b - a for a, b in zip(steps_a, steps_b)])

    # 4. a 9th run is over the server's cap of 8 concurrent runs: it waits, and says where it is in the queue
    extra = new_page()
    load(extra, f"{server.url}/train")
    button(extra, "Start").click()
    extra.get_by_text("position 1 in the queue").first.wait_for(timeout=15_000)

    # 5. responsiveness under load: page reruns (encoder step button) while the 8 runs train
    all_pages(pages, lambda p: sidebar_link(p, "encoder").click(), "to Encoder page", idle=False)
    for p in pages:
        p.wait_for_selector("[data-testid='stMain'] h3")
    latencies = []
    for _ in range(3):
        for p in pages:
            latencies.append(measure_rerun(p))
    for p in pages:
        assert_no_exception(p, "Encoder under load")
    workers = worker_pids(server.pid)
    busy = cpu_load(workers)
    print(f"page rerun latency with 8 runs training ({len(latencies)} reruns): median "
          f"{statistics.median(latencies):.0f} ms, worst {max(latencies):.0f} ms; workers {workers} use "
          f"{busy:.2f} cores")
    assert busy > 0.5, f"the training workers should be busy now ({busy:.2f} cores)"

    # 6. close every tab: every run must end within seconds (the workers go idle)
    for p in pages + [extra]:
        p.context.close()
    t_closed = time.time()
    loads = []
    while time.time() - t_closed < END_WITHIN + 5:
        loads.append(cpu_load(workers, 1.0))
        if len(loads) >= 2 and loads[-1] < IDLE_CORES and loads[-2] < IDLE_CORES:
            break
    took = time.time() - t_closed
    print(f"after closing the 9 tabs, worker load per second: {[round(x, 2) for x in loads]} (idle after "
          f"{took:.1f} s)")
    assert loads[-1] < IDLE_CORES and took <= END_WITHIN + 2, \
        f"training did not stop within {END_WITHIN} s of the tabs closing: {loads}"
