"""A class of students without browsers: sessions that speak Streamlit's own WebSocket protocol to a real server.

Each `Session` does what a browser tab does, at the protocol level (Streamlit 1.67, `streamlit/proto`):
  * opens ws://HOST/_stcore/stream (subprotocol "streamlit") and sends a BackMsg `rerun_script` whose ClientState
    names the page by its URL path (`page_name="train"`) with the link's query string, as a tab opening /train does;
  * reads the ForwardMsgs: `new_session` (the page's script hash, and a full run clears the fragment timers, as the
    frontend does), `delta` (elements: it learns the Start button's widget id and reads the step counter from the
    Train page's progress text "running · step 1,234 · ..."), `auto_rerun` (a fragment's run_every: a timer of its
    own that sends `rerun_script` with that fragment_id and is_auto_rerun, like the tab's setInterval),
    `stop_auto_rerun`, `script_finished`;
  * presses Start by sending the button's trigger (WidgetState id + trigger_value) in a `rerun_script`.
Only triggers are sent as widget states: every other widget keeps its value in the server's session state (the
defaults, or what the link set), which is what a tab that changed nothing sends too.

`class_load(url, n, ...)` runs n such sessions against one server and returns the figures the load tests print.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = Path(__file__).resolve().parents[1]
STEP_RE = re.compile(r"^(\w+) · step ([\d,]+)")


@dataclass
class Session:
    url: str  # http://host:port
    page: str = "train"
    query: str = ""
    name: str = ""
    ws: object = None
    page_hash: str = ""
    start_id: str | None = None
    status: str | None = None  # the run's status from the progress text
    steps: list[tuple[float, int]] = field(default_factory=list)  # (time, step) as the page showed them
    pressed_at: float | None = None
    errors: list[str] = field(default_factory=list)
    unfinished: int = 0  # full reruns that never reported script_finished
    full_latency: list[float] = field(default_factory=list)  # rerun_script sent -> script_finished (full runs)
    fragment_latency: list[float] = field(default_factory=list)  # ... fragment runs
    _full_sent: list[float] = field(default_factory=list)
    _frag_sent: list[float] = field(default_factory=list)
    _timers: dict = field(default_factory=dict)  # fragment_id -> task
    _finished: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task | None = None

    # ------------------------------------------------------------------------------------------------- sending
    async def _send_rerun(self, widgets=(), fragment_id: str = "", auto: bool = False) -> None:
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query
        cs.page_script_hash = self.page_hash
        if not self.page_hash:
            cs.page_name = self.page
        cs.fragment_id = fragment_id
        cs.is_auto_rerun = auto
        cs.context_info.url = f"{self.url}/{self.page}"
        for wid in widgets:
            w = cs.widget_states.widgets.add()
            w.id, w.trigger_value = wid, True
        (self._frag_sent if fragment_id else self._full_sent).append(time.perf_counter())
        del (self._frag_sent if fragment_id else self._full_sent)[:-4]  # coalesced requests: keep the latest few
        if not fragment_id:
            self._finished.clear()
        await self.ws.send(msg.SerializeToString())

    async def open(self, timeout: float = 120) -> None:
        """Connect and open the page (a tab loading /page?query); returns once its first run finished."""
        ws_url = self.url.replace("http://", "ws://") + "/_stcore/stream"
        self.ws = await websockets.connect(
            ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=timeout, ping_interval=None
        )
        self._reader = asyncio.create_task(self._read())
        await self._send_rerun()
        await asyncio.wait_for(self._finished.wait(), timeout)

    async def press_start(self, timeout: float = 120) -> None:
        if self.start_id is None:
            raise AssertionError(f"{self.name}: no Start button seen on the {self.page} page")
        self.pressed_at = time.perf_counter()
        await self._send_rerun(widgets=[self.start_id])
        await asyncio.wait_for(self._finished.wait(), timeout)

    async def rerun(self, timeout: float = 60) -> bool:
        """A full page rerun (what any widget change causes); False when none finished within `timeout` (the
        server may fold a rerun request into one already queued)."""
        await self._send_rerun()
        try:
            await asyncio.wait_for(self._finished.wait(), timeout)
            return True
        except TimeoutError:
            self.unfinished += 1
            return False

    async def close(self) -> None:
        for t in self._timers.values():
            t.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()

    # ------------------------------------------------------------------------------------------------- reading
    async def _auto(self, fragment_id: str, interval: float) -> None:
        while True:  # the tab's setInterval: fires whether or not the last run has finished
            await asyncio.sleep(interval)
            await self._send_rerun(fragment_id=fragment_id, auto=True)

    def _element(self, el) -> None:
        kind = el.WhichOneof("type")
        if kind == "button" and el.button.label in ("Start", "Start again"):
            self.start_id = el.button.id
        elif kind == "progress":
            m = STEP_RE.match(el.progress.text)
            if m:
                self.status = m.group(1)
                step = int(m.group(2).replace(",", ""))
                if not self.steps or self.steps[-1][1] != step:
                    self.steps.append((time.perf_counter(), step))
        elif kind == "exception":
            self.errors.append(f"{el.exception.type}: {el.exception.message}")

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                kind = msg.WhichOneof("type")
                now = time.perf_counter()
                if kind == "new_session":
                    self.page_hash = msg.new_session.page_script_hash
                    if not msg.metadata.run.fragment_ids:  # a full run: its fragments register their timers again
                        for t in self._timers.values():
                            t.cancel()
                        self._timers.clear()
                elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                    self._element(msg.delta.new_element)
                elif kind == "auto_rerun":
                    fid = msg.auto_rerun.fragment_id
                    if fid in self._timers:
                        self._timers[fid].cancel()
                    self._timers[fid] = asyncio.create_task(self._auto(fid, msg.auto_rerun.interval))
                elif kind == "stop_auto_rerun":
                    for fid in msg.stop_auto_rerun.fragment_ids:
                        t = self._timers.pop(fid, None)
                        if t:
                            t.cancel()
                elif kind == "script_finished":
                    if msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                        continue  # st.rerun(): the run that follows finishes the request
                    if msg.script_finished == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
                        if self._frag_sent:
                            self.fragment_latency.append(now - self._frag_sent.pop(0))
                    else:
                        if self._full_sent:
                            self.full_latency.append(now - self._full_sent.pop(0))
                        if msg.script_finished != ForwardMsg.FINISHED_SUCCESSFULLY:
                            self.errors.append(f"script finished with status {msg.script_finished}")
                        self._finished.set()
                elif kind == "page_not_found":
                    self.errors.append(f"page not found: {msg.page_not_found.page_name}")
        except (websockets.ConnectionClosed, asyncio.CancelledError):
            return

    # ------------------------------------------------------------------------------------------------- figures
    def first_step_after_start(self) -> float | None:
        """Seconds from pressing Start to the page showing a step above 0."""
        t = next((t for t, s in self.steps if s > 0 and self.pressed_at and t >= self.pressed_at), None)
        return None if t is None else t - self.pressed_at

    def rate(self, t0: float, t1: float) -> float:
        """Steps/s the page showed between t0 and t1 (the latest step shown at or before each)."""

        def at(t):
            return max((s for tt, s in self.steps if tt <= t), default=0)

        return (at(t1) - at(t0)) / (t1 - t0)


# --------------------------------------------------------------------------------------------------- a server
def _browser_helpers():
    """tests/browser/conftest.py, which starts and stops a real `streamlit run` for the browser tests: one copy."""
    spec = importlib.util.spec_from_file_location("_browser_conftest", ROOT / "tests" / "browser" / "conftest.py")
    mod = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))  # dataclasses look it up there
    spec.loader.exec_module(mod)
    return mod


_B = _browser_helpers()
worker_pids = _B.worker_pids  # the server's training workers (children started by multiprocessing's spawn)
stop_server = _B.stop_server  # kills the server's whole process group


def start_server(env: dict | None = None, timeout: float = 180) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` with the process trainer backend (log: artifacts/server-PORT.log)."""
    server = _B.start_server({"SEQ2SEQ_TRAINER_BACKEND": "process", **(env or {})}, timeout)
    return server.proc, server.url


def _cpu_seconds(pids: list[int]) -> float:
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def wait_workers_settled(server_pid: int, timeout: float = 180, idle_cores: float = 0.05) -> float:
    """Wait until the training workers exist and are idle (imported torch, encoded the Train page's dataset): a
    server that is up and settled, as it is when a teacher has opened the app before the lesson. Returns the wait."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        pids = worker_pids(server_pid)
        if pids:
            a = _cpu_seconds(pids)
            time.sleep(1.0)
            if (_cpu_seconds(pids) - a) < idle_cores:
                return time.perf_counter() - t0
        else:
            time.sleep(0.5)
    return time.perf_counter() - t0


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (the server, its training workers), MiB."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                kids.setdefault(int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]), []).append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total / 2**20


# ------------------------------------------------------------------------------------------------ a class
async def _class(
    url: str, n: int, start_within: float, window: float, query: str, server_pid: int | None, open_timeout: float
) -> dict:
    sessions = [Session(url, query=query, name=f"student-{i + 1}") for i in range(n)]
    t_open = time.perf_counter()
    for k in range(0, n, 10):  # students open the page (ten at a time, as a class does over a few seconds)
        await asyncio.gather(*(s.open(timeout=open_timeout) for s in sessions[k : k + 10]))
    opened_s = time.perf_counter() - t_open
    settled_s = await asyncio.to_thread(wait_workers_settled, server_pid) if server_pid else 0.0
    mem_idle = tree_rss_mib(server_pid) if server_pid else None
    t0 = time.perf_counter()

    async def press(i: int, s: Session) -> None:  # "now press Start": spread over start_within seconds
        await asyncio.sleep(start_within * i / max(1, n - 1))
        await s.press_start(timeout=open_timeout)

    await asyncio.gather(*(press(i, s) for i, s in enumerate(sessions)))
    pressed_s = time.perf_counter() - t0
    # every run has shown a step (or 60 s more have passed), then the window over which steps/s is read
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline and not all(s.first_step_after_start() is not None for s in sessions):
        await asyncio.sleep(0.2)
    # full page reruns while the class trains (a student clicks something): one per session, spread out
    w0 = time.perf_counter()

    async def click(i: int, s: Session) -> None:
        await asyncio.sleep(window * 0.8 * i / max(1, n - 1))
        await s.rerun(timeout=60)

    await asyncio.gather(*(click(i, s) for i, s in enumerate(sessions)), asyncio.sleep(window))
    w1 = time.perf_counter()
    mem_training = tree_rss_mib(server_pid) if server_pid else None
    for s in sessions:
        await s.close()
    first = [s.first_step_after_start() for s in sessions]
    rates = sorted(s.rate(w0, w1) for s in sessions)
    full = [x for s in sessions for x in s.full_latency[2:]]  # the reruns while training (not open, not Start)
    frag = [x for s in sessions for x in s.fragment_latency]
    return {
        "n": n,
        "opened_s": opened_s,
        "settled_s": settled_s,
        "pressed_s": pressed_s,
        "first_step": first,
        "first_step_median": statistics.median([f for f in first if f is not None] or [float("nan")]),
        "first_step_worst": max((f for f in first if f is not None), default=float("nan")),
        "missing": [s.name for s, f in zip(sessions, first) if f is None],
        "rates": rates,
        "rate_min": rates[0],
        "rate_median": statistics.median(rates),
        "rate_max": rates[-1],
        "aggregate": sum(rates),
        "full_rerun_median": statistics.median(full) if full else float("nan"),
        "full_rerun_worst": max(full, default=0),
        "fragment_median": statistics.median(frag) if frag else float("nan"),
        "fragment_worst": max(frag, default=0),
        "n_fragment_runs": len(frag),
        "errors": [f"{s.name}: {e}" for s in sessions for e in s.errors],
        "unfinished_reruns": sum(s.unfinished for s in sessions),
        "mem_idle_mib": mem_idle,
        "mem_training_mib": mem_training,
        "load_average": os.getloadavg()[0],
    }


def class_load(
    url: str,
    n: int,
    start_within: float = 10.0,
    window: float = 20.0,
    query: str = "",
    server_pid: int | None = None,
    open_timeout: float = 180,
) -> dict:
    """n protocol sessions open the Train page, press Start within `start_within` seconds, and train; figures over
    a `window` of seconds once every run has shown a step."""
    return asyncio.run(_class(url, n, start_within, window, query, server_pid, open_timeout))


def report(r: dict) -> str:
    mem = (
        f"; server memory {r['mem_idle_mib']:.0f} MiB with {r['n']} idle sessions, {r['mem_training_mib']:.0f} MiB "
        f"training"
        if r.get("mem_idle_mib")
        else ""
    )
    return (
        f"{r['n']} sessions: opened in {r['opened_s']:.1f} s (workers settled {r['settled_s']:.1f} s later), "
        f"Start pressed within {r['pressed_s']:.1f} s; "
        f"Start-to-first-step median {r['first_step_median']:.1f} s, worst {r['first_step_worst']:.1f} s; "
        f"steps/s per run min {r['rate_min']:.2f} / median {r['rate_median']:.2f} / max {r['rate_max']:.2f} "
        f"(sum {r['aggregate']:.1f}); full page rerun median {1000 * r['full_rerun_median']:.0f} ms, worst "
        f"{1000 * r['full_rerun_worst']:.0f} ms; live-fragment rerun median {1000 * r['fragment_median']:.0f} ms, "
        f"worst {1000 * r['fragment_worst']:.0f} ms ({r['n_fragment_runs']} runs){mem}; "
        f"load average {r['load_average']:.1f}; errors {len(r['errors'])}; full reruns without a reply "
        f"{r['unfinished_reruns']}"
    )
