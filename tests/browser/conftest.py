"""Real-browser fixtures: one `streamlit run app.py` server on localhost, and Debian's Chromium driven by Playwright.

Every browser test shares ONE server (started once, ~15 s on 2 cores) and ONE Chromium; each test opens its own
browser contexts (a context = a fresh browser profile = its own Streamlit session).

Screenshots go to artifacts/screenshots/ (git-ignored) so a person can look at every page after a run; the server's
log goes to artifacts/server-<port>.log.  In CI (CI=true) a missing Chromium is a failure, not a skip: the browser
tests must run there.

Helpers used by the tests:
  load(page, url)      open a URL (a new session) and wait until the app has drawn its page
  wait_idle(page)      the app is connected and no script run is in progress
  settle(page)         after an action: wait for the rerun it caused (if any) to finish
  nav(page, slug)      click the sidebar link of a page ("" = Data, "model", "train", "encoder", "states", "decoder")
  shot(page, name)     full-page screenshot (Streamlit scrolls inside its own container, so the viewport is grown)
  assert_no_exception  no Streamlit exception box ([data-testid='stException']) on the page
  figure(line)         a measured figure: printed in pytest's terminal summary ("browser figures"), even when the
                       test passes and its output is captured
  worker_pids / cpu_seconds   the server's training worker processes and their CPU time (from /proc)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
SHOTS = ARTIFACTS / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1400, "height": 900}
# The server the browser tests use: 8 sessions train at once in test_multi_session, a 9th must queue.
SERVER_ENV = {"SEQ2SEQ_MAX_RUNS": "8", "SEQ2SEQ_TRAINER_BACKEND": "process"}

# Installed in every page before the app loads: records every change of the app's script state with a timestamp
# (performance.now(), ms), so a test can tell when the rerun caused by its action started and ended, and how long
# it took, without racing the websocket.
STATE_HOOK = """
window.__st = [];
new MutationObserver(ms => {
  for (const m of ms) {
    if (m.target.getAttribute && m.target.dataset && m.target.dataset.testid === 'stApp')
      window.__st.push({t: performance.now(), s: m.target.getAttribute('data-test-script-state')});
  }
}).observe(document, {attributes: true, subtree: true, attributeFilter: ['data-test-script-state']});
"""


# ---------------------------------------------------------------------------------------------------------- server
@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(extra_env: dict | None = None, timeout: float = 120) -> Server:
    """Start `streamlit run app.py` in its own process group; return once /_stcore/health answers."""
    ARTIFACTS.mkdir(exist_ok=True)
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    log_path = ARTIFACTS / f"server-{port}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early; see {log_path}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return Server(proc, url, log_path)
        except OSError:
            time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError(f"streamlit did not become healthy in {timeout:g} s; see {log_path}")


def stop_server(proc: subprocess.Popen) -> None:
    """Kill the server's whole process group (streamlit ignores SIGTERM for seconds; workers are its children)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def server():
    """The one app server of the browser suite (see SERVER_ENV)."""
    srv = start_server(SERVER_ENV)
    yield srv
    stop_server(srv.proc)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; .ci/run must install Debian's chromium")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


FIGURES: list[str] = []


def figure(line: str) -> None:
    """Record a measured figure (latency, seconds, counts) for the terminal summary, and print it for `-s` runs."""
    FIGURES.append(line)
    print("\n  " + line)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.write_sep("-", "browser figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when == "call":
        item.failed_call = outcome.get_result().failed


@pytest.fixture()
def new_page(browser, request):
    """Factory: a page in a fresh context (its own Streamlit session) with the script-state hook and a dialog
    recorder (page.dialogs). Every context is closed at the end of the test."""
    contexts = []

    def make(viewport: dict | None = None):
        ctx = browser.new_context(viewport=viewport or VIEWPORT)
        ctx.add_init_script(STATE_HOOK)
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        page.dialogs = []

        def on_dialog(d):
            page.dialogs.append(f"{d.type}: {d.message}")
            d.dismiss()

        page.on("dialog", on_dialog)
        return page

    yield make
    if getattr(request.node, "failed_call", False):  # what the pages looked like when the test failed
        for i, ctx in enumerate(contexts):
            for j, page in enumerate(ctx.pages):
                try:
                    shot(page, f"FAILED-{request.node.name}-{i}-{j}")
                except Exception:
                    pass
    for ctx in contexts:
        try:
            ctx.close()
        except Exception:
            pass


# --------------------------------------------------------------------------------------------------------- helpers
def wait_idle(page, timeout: float = 60_000) -> None:
    """Wait until the app is connected and the script has finished running."""
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)


def load(page, url: str, timeout: float = 120_000) -> None:
    """Open `url` in `page` (a new session) and wait until the app has drawn a page: its title and the sidebar's
    model card (before the first run the frontend shows a bare list of the files in pages/)."""
    page.goto(url)
    wait_drawn(page, timeout)


def wait_drawn(page, timeout: float = 120_000) -> None:
    """After a goto: wait for the page title, the sidebar's model card, and the end of the run."""
    page.wait_for_selector("[data-testid='stMain'] h1", timeout=timeout)
    page.wait_for_selector("[data-testid='stSidebarUserContent'] [data-testid='stTable']", timeout=timeout)
    wait_idle(page, timeout)


def n_runs(page) -> int:
    """How many script runs (full or fragment) this page has seen start so far."""
    return page.evaluate("() => (window.__st || []).filter(e => e.s === 'running').length")


def settle(page, before: int | None = None, start_within: float = 2.0, timeout: float = 60_000) -> None:
    """After an action: wait (up to `start_within` s) for a run to start (`before` = n_runs() taken before the
    action), then for the app to be idle. Actions that trigger no rerun just cost `start_within`."""
    if before is not None:
        try:
            page.wait_for_function(
                f"() => (window.__st || []).filter(e => e.s === 'running').length > {before}",
                timeout=start_within * 1000,
            )
        except Exception:
            pass
    else:
        page.wait_for_timeout(300)
    wait_idle(page, timeout)


def act(page, action, timeout: float = 60_000) -> None:
    """Run `action()` (a click, a fill...) and wait for the rerun it causes."""
    before = n_runs(page)
    action()
    settle(page, before, timeout=timeout)


def sidebar_link(page, slug: str):
    """The sidebar navigation's link to a page; slug '' is the default page (Data)."""
    return (
        page.locator("[data-testid='stSidebarNav'] a").first
        if not slug
        else page.locator(f"[data-testid='stSidebarNav'] a[href$='/{slug}']")
    )


def nav(page, slug: str, timeout: float = 60_000) -> None:
    """Go to another page through the sidebar navigation (same session); slug '' is the default page (Data).
    Waits until the new page's title has replaced the old one (under load the old page lingers for a while)."""
    h1 = "[data-testid='stMain'] h1"
    old = page.locator(h1).first.inner_text() if page.locator(h1).count() else ""
    path = page.url.split("?")[0].split("#")[0].rstrip("/").rsplit("/", 1)[-1]
    same = path == slug or (not slug and ":" in path)  # already there (the default page's path is host:port)
    act(page, sidebar_link(page, slug).click, timeout=timeout)
    if not same:
        page.wait_for_function(
            "([s, old]) => { const e = document.querySelector(s); return e && e.innerText !== old; }",
            arg=[h1, old],
            timeout=timeout,
        )
    wait_idle(page, timeout)


def wait_count(page, selector: str, n: int, timeout: float = 30_000) -> int:
    """Wait until at least n elements match (charts and tables load their code lazily, after the run ends)."""
    page.wait_for_function("([s, n]) => document.querySelectorAll(s).length >= n", arg=[selector, n], timeout=timeout)
    return page.locator(selector).count()


def button(page, name: str, exact: bool = False):
    """A button of the main area by its label (the header's status widget has its own "Stop")."""
    return page.locator("[data-testid='stMain'] [data-testid='stButton']").get_by_role("button", name=name, exact=exact)


def input_text(page) -> str:
    """The inspection pages' source text box."""
    return page.locator("[data-testid='stMain'] [data-testid='stTextInputRootElement'] input").first.input_value()


def ensure_input(page, defects: list[str], where: str) -> None:
    """The inspection pages share one source text. If it arrived empty, note the defect and pick the first example,
    so the rest of the page can still be checked (the test fails at its end with every defect listed)."""
    if input_text(page).strip():
        return
    defects.append(f"{where}: the input box arrived empty (the text of the previous inspection page was lost)")
    act(
        page,
        lambda: (
            page.locator("[data-testid='stMain'] [data-testid='stSelectbox']")
            .filter(has_text="pick an example")
            .click(),
            page.keyboard.press("Enter"),
        ),
    )
    page.wait_for_selector("[data-testid='stMain'] h1")


def main_text(page) -> str:
    """All visible text of the main area."""
    return page.locator("[data-testid='stMain']").inner_text()


def assert_no_exception(page, where: str) -> None:
    boxes = page.locator("[data-testid='stException']")
    if boxes.count():
        raise AssertionError(f"Streamlit exception on {where}: {boxes.first.inner_text()[:1500]}")


def shot(page, name: str) -> Path:
    """Full-page screenshot to artifacts/screenshots/<name>.png. Streamlit scrolls inside its main container, so
    Playwright's full_page sees only the viewport: grow the viewport to the content's height first."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    size = page.viewport_size or VIEWPORT
    height = page.evaluate("""() => Math.max(...['stMain', 'stAppViewContainer', 'stMainBlockContainer']
        .map(id => document.querySelector(`[data-testid=${id}]`)).filter(e => e).map(e => e.scrollHeight))""")
    page.set_viewport_size({"width": size["width"], "height": int(min(max(height + 40, size["height"]), 12_000))})
    page.wait_for_timeout(800)  # charts re-layout to the new size
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path


# ------------------------------------------------------------------------------------------------ server processes
def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def worker_pids(server_pid: int) -> list[int]:
    """The training workers: the server's child processes started by multiprocessing's spawn (not its resource
    tracker)."""
    pids = []
    for pid in _children(server_pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "spawn_main" in cmd:
            pids.append(pid)
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """Total user+system CPU seconds used so far by these processes (gone ones count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def cpu_load(pids: list[int], window: float = 1.0) -> float:
    """CPU cores these processes used over the next `window` seconds (1.0 = one core busy)."""
    a = cpu_seconds(pids)
    time.sleep(window)
    return (cpu_seconds(pids) - a) / window


def rss_bytes(pids: list[int]) -> int:
    """Sum of resident memory of these processes."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total
