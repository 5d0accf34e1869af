"""Where training runs: the `Trainer` interface and its backends.

The web server must stay responsive while dozens of runs train, so by default training happens in a small pool of
worker processes (`ProcessPoolBackend`), never in the web process:

    web process                                              worker process (one per core, started at app start)
    ----------------------------------------------           ------------------------------------------------
    start/pause/resume/stop/extend/close  --outbox--> pipe -->  reads its pipe between steps, then gives the run
    weights(run_id)  ... waits for the reply  <-- pipe <--      furthest behind on its fair-share clock one slice
    listener thread: latest snapshot per run <-- pipe <--      pushes changed snapshots ~10 times a second
    snapshot(run_id): a dict lookup, never waits                exits when its pipe closes (the app is gone)

Fair sharing: every run trains at once. A new run goes to the worker with the fewest running runs; each worker
shares its core between its runs in short slices (`SLICE`, fair-share clock: see `_worker_main`), so with N runs on
W workers each gets about 1/N of the server and its curve moves within a slice or two of Start. What is bounded is
memory, not cores: at most `limits.max_runs` runs exist at once (queued in a worker, running or paused: each holds
a model, an optimizer and its data); a Start past that waits in a first-come queue whose snapshot says its position
and its expected wait (from the live runs' measured progress rates).

Why processes: measured on this 2-core machine, a training thread inside the web process fell from ~178 to ~1.4
steps/s while one pure-Python thread (a page rerun) was busy (the GIL convoy effect); a worker process kept its speed.
Workers also run at a lower CPU priority (`WORKER_NICE`): with both cores busy training, the web server and the
browser would otherwise get only their fair share of the CPU, and a click could wait seconds for its rerun.

Everything crossing the pipe is plain data (dicts, lists, numbers, strings, numpy arrays), so another backend — a
Ray cluster, say — can implement the same interface. A run that fails becomes status
"error" with the message; the worker lives on. `ThreadBackend` runs the same worker loop in a thread of this process
(for tests and debugging: breakpoints work).
"""

from __future__ import annotations

import atexit
import hashlib
import multiprocessing as mp
import os
import pickle
import queue
import signal
import threading
import time
import uuid
import weakref
from collections import OrderedDict, deque
from multiprocessing.connection import Connection, wait

import numpy as np
import torch

from .config import ModelConfig, TrainConfig
from .limits import get_limits
from .training import TERMINAL, Run, encode_splits

SLICE = 0.05  # seconds: one turn of a run on its worker's core (at least one step; see _worker_main)
DATA_CACHE = 4  # datasets (and their encoded splits) a worker keeps for the next run on the same data
RATE_WINDOW = 4.0  # seconds: a run's steps/s is measured over the last RATE_WINDOW seconds
PUSH_INTERVAL = 0.1  # seconds between snapshot pushes from a worker (~10 per second)
HISTORY_INTERVAL = 0.3  # seconds between pushes of a run's curves: the big part of a snapshot (pages poll at ~2.5 Hz)
REPLY_TIMEOUT = 60.0  # seconds weights() waits for a worker
WORKER_NICE = 10  # workers run at a lower CPU priority: a page rerun (and the browser) goes first when cores are
#                   full, training takes every cycle nobody else wants (on Linux, nice 10 ~ 1/10 the weight of nice 0)


class Trainer:
    """What the pages use. Run ids are strings; every argument and result is plain data (or tensors for weights)."""

    def start(self, data, model_cfg: ModelConfig, train_cfg: TrainConfig, state_dict=None) -> str: ...
    def pause(self, run_id: str) -> None: ...
    def resume(self, run_id: str) -> None: ...
    def stop(self, run_id: str) -> None: ...
    def extend(self, run_id: str, epochs: float | None = None, seconds: float | None = None) -> None: ...
    def snapshot(self, run_id: str) -> dict: ...
    def weights(self, run_id: str) -> dict[str, torch.Tensor]: ...
    def close(self, run_id: str) -> None: ...
    def shutdown(self) -> None: ...


# ------------------------------------------------------------------------------------------------ the worker
def _worker_main(conn: Connection, threads: int | None, slice_seconds: float = SLICE) -> None:
    """A worker's whole life: handle commands, share its core between its running runs, push snapshots, exit on EOF.

    Messages in:  (command, run_id, seq, args)  with command in start | pause | resume | stop | extend | weights |
                  close | exit.  `seq` numbers the commands of one run; every snapshot echoes the last one handled,
                  so the web process can tell a snapshot taken before its latest command from one taken after.
    Messages out: ("snap", {run_id: snapshot}) and ("reply", request_id, ok, payload).

    Fair sharing (the fair-share clock `used`): each running run has the worker seconds it was given; the run with the
    fewest goes next and steps for one slice (`slice_seconds`, at least one step). A run that starts or resumes joins
    at the lowest clock among the running ones (it goes next, but cannot claim the time it was away), so with k runs
    each gets 1/k of the core whatever its step costs. Commands are read between the steps of a slice too: a run
    paused, stopped or closed mid-slice ends its slice there, and the rest of the slice goes to the next run.
    """
    if threads is not None:  # a process of our own: take the thread settings, ignore Ctrl-C (the parent handles it)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            os.nice(WORKER_NICE)
        except OSError:
            pass
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
    own_threads = threads is not None
    if own_threads:
        _warm_up()
    runs: dict[str, Run] = {}
    failed: dict[str, dict] = {}  # runs whose construction failed: their error snapshot
    seq: dict[str, int] = {}
    pushed: dict[str, int] = {}  # run_id -> Run.version last pushed
    history_at: dict[str, float] = {}  # run_id -> when its curves were last pushed
    used: dict[str, float] = {}  # the fair-share clock (see above)
    given: dict[str, float] = {}  # worker seconds each run has had (its snapshot's worker_seconds)
    datasets: OrderedDict[str, tuple] = OrderedDict()  # data key -> (Seq2SeqData, encoded splits), most recent last
    last_push = 0.0

    def snap(rid: str) -> dict:
        s = failed[rid] if rid in failed else runs[rid].snapshot()
        s["_seq"] = seq.get(rid, 0)
        s["worker_seconds"] = given.get(rid, 0.0)
        return s

    def join(rid: str) -> None:
        """rid becomes running: it joins the fair-share clock at the front (see above)."""
        others = [used[r] for r, run in runs.items() if r != rid and run.status == "running" and r in used]
        used[rid] = (min(others) if others else 0.0) - 1e-9

    def dataset(args: dict):
        key = args.get("data_key")
        if key is not None and key in datasets:
            datasets.move_to_end(key)
            return datasets[key]
        data = _data_from_plain(args["data"])
        entry = (data, encode_splits(data))
        if key is not None:
            datasets[key] = entry
            while len(datasets) > DATA_CACHE:
                datasets.popitem(last=False)  # runs still using it keep their own reference
        return entry

    def handle(msg) -> bool:
        cmd, rid, n, args = msg
        if cmd == "exit":
            return False
        seq[rid] = n
        run = runs.get(rid)
        try:
            if cmd == "start":
                try:
                    data, encoded = dataset(args)
                    runs[rid] = run = Run(
                        data,
                        ModelConfig.from_dict(args["model_cfg"]),
                        TrainConfig.from_dict(args["train_cfg"]),
                        args.get("state_dict"),
                        time_cap=args.get("time_cap"),
                        encoded=encoded,
                    )
                    join(rid)
                except Exception as e:  # noqa: BLE001
                    failed[rid] = _error_snapshot(f"Could not start training: {type(e).__name__}: {e}")
            elif cmd == "prepare":  # a dataset the next Starts will use: decode and encode it now, not at Start
                dataset(args)
                return True
            elif cmd == "weights":
                if run is None:
                    conn.send(("reply", args["request"], False, "this run has no model (it failed to start)"))
                else:
                    sd = {k: v.detach().numpy().copy() for k, v in run.model.state_dict().items()}
                    conn.send(("reply", args["request"], True, sd))
                return True
            elif cmd == "close":
                for d in (runs, failed, seq, pushed, history_at, used, given):
                    d.pop(rid, None)
                return True
            elif run is not None:
                if cmd == "pause":
                    run.pause()
                elif cmd == "resume":
                    was = run.status
                    run.resume()
                    if was != "running" and run.status == "running":
                        join(rid)
                elif cmd == "stop":
                    run.stop()
                elif cmd == "extend":
                    run.extend(args.get("epochs"), args.get("seconds"))
        except Exception as e:  # noqa: BLE001 - a bad command must not kill the worker
            if run is not None:
                run.status, run.message = "error", f"{cmd} failed: {type(e).__name__}: {e}"
                run.version += 1
        if rid in runs or rid in failed:
            conn.send(("snap", {rid: snap(rid)}))  # show the effect of a command at once
            if rid in runs:
                pushed[rid] = runs[rid].version
        return True

    def push() -> None:
        nonlocal last_push
        now = time.perf_counter()
        if now - last_push < PUSH_INTERVAL:
            return
        changed = {r: snap(r) for r, run in runs.items() if pushed.get(r) != run.version}
        for r, sn in changed.items():  # curves at most every HISTORY_INTERVAL, and always at the end:
            # with many runs, unpickling whole curves 10x/s per run would starve the web process
            if sn["status"] == "running" and now - history_at.get(r, 0.0) < HISTORY_INTERVAL:
                del sn["history"]
            else:
                history_at[r] = now
        if changed:
            conn.send(("snap", changed))
            pushed.update({r: runs[r].version for r in changed})
        last_push = now

    def running() -> list[str]:
        return [r for r, run in runs.items() if run.status == "running"]

    try:
        while True:
            while conn.poll(0 if running() else PUSH_INTERVAL):  # control first, before every slice
                if not handle(conn.recv()):
                    return
            ready = running()
            if ready:
                rid = min(ready, key=lambda r: used.get(r, 0.0))  # the run furthest behind on the clock
                run = runs[rid]
                if own_threads and torch.get_num_threads() != run.train_cfg.threads:
                    torch.set_num_threads(run.train_cfg.threads)
                t0 = time.perf_counter()
                while True:  # one slice
                    run.step()
                    if run.status != "running" or time.perf_counter() - t0 >= slice_seconds:
                        break
                    left = False
                    while conn.poll(0):  # a command mid-slice: handle it now; the run may have left
                        if not handle(conn.recv()):
                            return
                        left = runs.get(rid) is not run or run.status != "running"
                    if left:
                        break
                    push()
                if rid in used:
                    spent = time.perf_counter() - t0
                    used[rid] += spent
                    given[rid] = given.get(rid, 0.0) + spent
            push()
    except (EOFError, OSError):  # the web process is gone (or closed our pipe): so are we
        return


def _warm_up() -> None:
    """Pay a fresh process's one-time costs before the first Start, not after it: the first torch optimizer imports
    torch._dynamo (4 s on an idle core here, 14 s on a busy one), and the first LSTM step sets up its kernels."""
    try:
        from .model import Seq2Seq

        model = Seq2Seq(ModelConfig(8, 8, embed=4, hidden=8))
        opt = torch.optim.Adam(model.parameters())
        src, tgt = torch.randint(4, 8, (2, 3)), torch.randint(4, 8, (2, 3))
        model(src, torch.tensor([3, 3]), tgt).sum().backward()
        opt.step()
    except Exception:  # noqa: BLE001 - only a warm-up: a real run reports its own errors
        pass


def _error_snapshot(message: str) -> dict:
    return {
        "status": "error",
        "message": message,
        "progress": 0.0,
        "step": 0,
        "epoch": 0.0,
        "seconds": 0.0,
        "history": {},
        "samples": [],
        "grad_norms": {},
        "timestep_grad_norms": [],
        "last_eval": {},
        "best_exact_match": None,
        "train_loss": None,
        "grad_norm": None,
        "queue_position": None,
        "worker_seconds": 0.0,
    }


def _data_to_plain(data) -> dict:
    return data.to_dict()


def _data_from_plain(d: dict):
    from .data import Seq2SeqData

    return Seq2SeqData.from_dict(d)


# ---------------------------------------------------------------------------------------------- the web side
class _Worker:
    def __init__(self, conn: Connection, handle, index: int):
        self.conn, self.handle, self.index = conn, handle, index
        self.n_runs = 0  # runs that live in this worker (any status): its memory
        self.alive = True
        self.data_keys: OrderedDict[str, None] = OrderedDict()  # the worker's dataset cache, mirrored: the same
        #   least-recently-used rule applied to the same starts in the same order, so we know what it holds


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota (a container's `--cpus`)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def worker_count(environ=None) -> int:
    """Training worker processes: SEQ2SEQ_WORKERS (1-256) if set, else usable_cpus(). A bad value is a ValueError
    that names the variable."""
    raw = (os.environ if environ is None else environ).get("SEQ2SEQ_WORKERS", "").strip()
    if not raw:
        return usable_cpus()
    if not raw.isdigit() or not 1 <= int(raw) <= 256:
        raise ValueError(f"SEQ2SEQ_WORKERS must be a whole number from 1 to 256, got {raw!r}")
    return int(raw)


class PoolTrainer(Trainer):
    """A pool of workers (processes or threads) running the `_worker_main` loop; every run trains, sharing the cores.

    Fair sharing: a new run goes to the worker with the fewest running runs, and each worker shares its core
    equally between its running runs (`_worker_main`), so N runs on W workers each get about W/N of a core: 1/N of
    the server. `max_runs` bounds the runs that exist at once (queued-in-a-worker, running or paused: each holds its
    model, optimizer and data in memory); a Start past it waits here, first in first out, and its snapshot carries
    `queue_position` and `expected_wait` (seconds, from the measured progress rates of the live runs, or None).
    All outgoing messages go through one outbox and a sender thread, so no caller ever blocks on a pipe and the
    order of one run's commands is kept. One listener thread receives every worker's snapshots and replies.
    """

    def __init__(
        self,
        kind: str = "process",
        n_workers: int | None = None,
        max_runs: int | None = None,
        threads: int = 1,
        slice_seconds: float = SLICE,
    ):
        if kind not in ("process", "thread"):
            raise ValueError(f"kind must be 'process' or 'thread', got {kind!r}")
        limits = get_limits()
        self.kind, self.threads, self.slice_seconds = kind, threads, slice_seconds
        self.n_workers = n_workers or (worker_count() if kind == "process" else 1)
        self.max_runs = max_runs or limits.max_runs
        self.time_cap = limits.max_train_seconds
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._snaps: dict[str, dict] = {}  # every run this trainer knows, by id
        self._where: dict[str, _Worker] = {}  # runs that live in a worker
        self._seq: dict[str, int] = {}
        self._live: set[str] = set()  # runs that count against max_runs: in a worker and not ended
        self._pending: list[str] = []  # runs waiting for room, first in first out
        self._payload: dict[str, dict] = {}  # start payloads of runs not (yet) in a worker
        self._rate: dict[str, deque] = {}  # run -> (time, step, progress) of its latest pushes: steps/s, wait
        self._plain: dict[int, tuple] = {}  # id(data) -> (weakref to data, key, plain dict): each dataset sent once
        self._replies: dict[str, list] = {}  # request id -> [Event, ok, payload]
        self._outbox: queue.Queue = queue.Queue()
        self._closed = False
        self._threads_started = False

    # -- pool life
    def warm(self) -> PoolTrainer:
        """Start the workers now (spawned processes take ~2 s to import torch), not at the first start()."""
        with self._lock:
            self._ensure_workers()
        return self

    def _ensure_workers(self) -> None:
        if self._closed:
            raise RuntimeError("this trainer has been shut down")
        if not self._threads_started:
            threading.Thread(target=self._listen, name="seq2seq-trainer-listener", daemon=True).start()
            threading.Thread(target=self._send_loop, name="seq2seq-trainer-sender", daemon=True).start()
            self._threads_started = True
        for i in range(self.n_workers):
            if i >= len(self._workers) or not self._workers[i].alive:
                w = self._spawn(i)
                if i < len(self._workers):
                    self._workers[i] = w
                else:
                    self._workers.append(w)

    def _spawn(self, index: int) -> _Worker:
        if self.kind == "process":
            ctx = mp.get_context("spawn")
            ours, theirs = ctx.Pipe(duplex=True)
            p = ctx.Process(
                target=_worker_main,
                args=(theirs, self.threads, self.slice_seconds),
                daemon=True,
                name=f"seq2seq-trainer-{index}",
            )
            p.start()
            theirs.close()  # only the worker holds its end: when we die, it reads EOF
        else:
            ours, theirs = mp.Pipe(duplex=True)
            p = threading.Thread(
                target=_worker_main,
                args=(theirs, None, self.slice_seconds),
                daemon=True,
                name=f"seq2seq-trainer-thread-{index}",
            )
            p.start()
        return _Worker(ours, p, index)

    @property
    def worker_pids(self) -> list[int]:
        return [w.handle.pid for w in self._workers if self.kind == "process"]

    def shutdown(self) -> None:
        """Close every pipe (workers exit on EOF) and wait briefly for them."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._workers)
        self._outbox.put(None)
        for w in workers:
            try:
                w.conn.close()
            except OSError:
                pass
        for w in workers:
            w.handle.join(timeout=5)
            if self.kind == "process" and w.handle.is_alive():
                w.handle.terminate()

    # -- message plumbing
    def _post(self, w: _Worker, cmd: str, rid: str, args: dict | None = None) -> None:
        """Queue a command for a worker (call with self._lock held, so commands keep their order)."""
        self._seq[rid] = self._seq.get(rid, 0) + 1
        self._outbox.put((w, (cmd, rid, self._seq[rid], args or {})))

    def _send_loop(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            w, msg = item
            try:
                w.conn.send(msg)
            except (OSError, ValueError):  # worker gone: the listener notices and marks its runs
                pass

    def _listen(self) -> None:
        while not self._closed:
            conns = {w.conn: w for w in self._workers if w.alive}
            if not conns:
                time.sleep(0.05)
                continue
            try:
                ready = wait(list(conns), timeout=0.2)
            except (OSError, ValueError):
                continue
            for conn in ready:
                w = conns[conn]
                try:
                    msg = conn.recv()
                except (EOFError, OSError, ValueError):
                    self._worker_died(w)
                    continue
                if msg[0] == "snap":
                    self._store(msg[1])
                elif msg[0] == "reply":
                    slot = self._replies.get(msg[1])
                    if slot is not None:
                        slot[1], slot[2] = msg[2], msg[3]
                        slot[0].set()

    def _store(self, snaps: dict[str, dict]) -> None:
        now = time.monotonic()
        with self._lock:
            for rid, s in snaps.items():
                if rid not in self._where or s.get("_seq", 0) < self._seq.get(rid, 0):
                    continue  # closed, or taken before our latest command: a newer one is on its way
                if "history" not in s:  # a light push: keep the curves of the last full one
                    s["history"] = self._snaps.get(rid, {}).get("history", {})
                self._snaps[rid] = s
                rate = self._rate.setdefault(rid, deque(maxlen=64))
                if s["status"] == "running":
                    rate.append((now, s["step"], s.get("progress") or 0.0))
                    while len(rate) > 2 and rate[1][0] < now - RATE_WINDOW:
                        rate.popleft()
                else:
                    rate.clear()
                if s["status"] in TERMINAL:
                    self._release(rid)

    def _worker_died(self, w: _Worker) -> None:
        with self._lock:
            if not w.alive:
                return
            w.alive = False
            for rid, where in self._where.items():
                if where is w and self._snaps[rid]["status"] not in TERMINAL:
                    self._snaps[rid] = dict(
                        self._snaps[rid],
                        status="error",
                        message="The training process stopped unexpectedly (out of memory?). Start a new run.",
                    )
                    self._release(rid)
            # a replacement is spawned by the next start(), not here: no respawn loop if workers cannot start

    # -- scheduling (all with self._lock held)
    def _running_on(self, w: _Worker) -> int:
        return sum(1 for r in self._live if self._where.get(r) is w and self._snaps[r]["status"] == "running")

    def _pick_worker(self) -> _Worker:
        """The worker with the fewest running runs (then the fewest runs in memory): new work goes where the share
        is largest."""
        self._ensure_workers()
        return min((w for w in self._workers if w.alive), key=lambda w: (self._running_on(w), w.n_runs, w.index))

    def _release(self, rid: str) -> None:
        """rid no longer counts against max_runs (it ended, paused before it was placed, or left): admit the next."""
        self._live.discard(rid)
        if rid in self._pending:
            self._pending.remove(rid)
        while self._pending and len(self._live) < self.max_runs:
            self._admit(self._pending.pop(0))

    def _request_room(self, rid: str) -> None:
        """Train rid now if there is room under max_runs, else queue it."""
        if rid in self._live or rid in self._pending:
            return
        if len(self._live) < self.max_runs:
            self._admit(rid)
        else:
            self._pending.append(rid)
            self._snaps[rid] = dict(self._snaps[rid], status="queued")

    def _admit(self, rid: str) -> None:
        """Start rid in the least-loaded worker (a new run), or resume it in its own (a continued one)."""
        self._live.add(rid)
        if rid in self._payload:  # not in a worker yet
            payload = self._payload.pop(rid)
            w = self._pick_worker()
            if self._cache_on(w, payload["data_key"]):  # it has this dataset, encoded: send only the key
                payload = dict(payload, data=None)
            w.n_runs += 1
            self._where[rid] = w
            self._post(w, "start", rid, payload)
            self._snaps[rid] = dict(self._snaps[rid], status="running", message="Starting…")
        else:
            self._post(self._where[rid], "resume", rid)
            self._snaps[rid] = dict(self._snaps[rid], status="running", message="")

    @staticmethod
    def _cache_on(w: _Worker, key: str) -> bool:
        """Whether worker w already holds dataset `key`; either way it will after the next message that names it
        (the worker applies the same least-recently-used rule, in the same order)."""
        hit = key in w.data_keys
        if hit:
            w.data_keys.move_to_end(key)
        else:
            w.data_keys[key] = None
            while len(w.data_keys) > DATA_CACHE:
                w.data_keys.popitem(last=False)
        return hit

    def _get(self, rid: str) -> dict:
        if rid not in self._snaps:
            raise KeyError(f"unknown run {rid!r} (closed, or never started)")
        return self._snaps[rid]

    def _data_payload(self, data) -> tuple[str, dict]:
        """(key, plain dict) of a dataset, computed once per data object: the app's sessions share their datasets
        (st.cache_resource), and a worker encodes each dataset once for all the runs on it."""
        hit = self._plain.get(id(data))
        if hit is not None and hit[0]() is data:
            return hit[1], hit[2]
        plain = _data_to_plain(data)
        key = hashlib.blake2b(pickle.dumps(plain, protocol=4), digest_size=16).hexdigest()
        for k in [k for k, v in self._plain.items() if v[0]() is None]:
            del self._plain[k]  # datasets that are gone
        try:
            self._plain[id(data)] = (weakref.ref(data), key, plain)
        except TypeError:  # not weak-referenceable: no memo
            pass
        return key, plain

    def _remaining(self, rid: str, now: float) -> float | None:
        """Seconds until a live run ends, from its measured progress rate (None: paused, or not measured yet)."""
        rate = self._rate.get(rid)
        if self._snaps[rid]["status"] != "running" or not rate or len(rate) < 2:
            return None
        (t0, _, p0), (t1, _, p1) = rate[0], rate[-1]
        if p1 <= p0 or t1 <= t0:
            return None
        return (1.0 - p1) * (t1 - t0) / (p1 - p0) - (now - t1)

    def _expected_wait(self, position: int) -> float | None:
        """Seconds until the run at queue `position` (1 = next) gets room: the position-th live run to end."""
        now = time.monotonic()
        ends = sorted(max(0.0, r) for r in (self._remaining(x, now) for x in self._live) if r is not None)
        free = self.max_runs - len(self._live)  # room already free (a start on its way)
        k = position - free
        if k <= 0:
            return 0.0
        return ends[k - 1] if k <= len(ends) else None

    def _steps_per_second(self, rid: str) -> float | None:
        rate = self._rate.get(rid)
        if not rate or len(rate) < 2:
            return None
        (t0, s0, _), (_t1, s1, _) = rate[0], rate[-1]
        now = time.monotonic()
        return (s1 - s0) / (now - t0) if now > t0 else None

    # -- the Trainer interface
    def start(self, data, model_cfg: ModelConfig, train_cfg: TrainConfig, state_dict=None) -> str:
        model_cfg.validate(), train_cfg.validate()
        key, plain = self._data_payload(data)
        payload = {
            "data": plain,
            "data_key": key,
            "model_cfg": model_cfg.to_dict(),
            "train_cfg": train_cfg.to_dict(),
            "time_cap": self.time_cap,
            "state_dict": None
            if state_dict is None
            else {
                k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
                for k, v in state_dict.items()
            },
        }
        rid = uuid.uuid4().hex[:12]
        with self._lock:
            self._ensure_workers()
            self._snaps[rid] = dict(
                _error_snapshot(""),
                status="queued",
                message="Starting…",
                model_cfg=model_cfg.to_dict(),
                train_cfg=train_cfg.to_dict(),
            )
            self._payload[rid] = payload
            self._request_room(rid)
        return rid

    def prepare(self, data) -> None:
        """Have every worker decode and encode `data` now (the Train page calls this when it shows its data), so
        that a Start on it trains at once instead of after ~1 s (much more on a busy server) of encoding."""
        key, plain = self._data_payload(data)
        with self._lock:
            for w in self._workers:
                if w.alive and key not in w.data_keys:
                    self._cache_on(w, key)
                    self._post(w, "prepare", "", {"data": plain, "data_key": key})

    def pause(self, run_id: str) -> None:
        with self._lock:
            if self._get(run_id)["status"] in ("running", "queued"):
                if run_id in self._where:
                    self._post(self._where[run_id], "pause", run_id)
                self._snaps[run_id] = dict(self._snaps[run_id], status="paused", message="Paused.")
                self._rate.pop(run_id, None)
                if run_id in self._pending or run_id not in self._where:
                    self._release(run_id)  # a run waiting for room gives up its place; one in a worker keeps it

    def resume(self, run_id: str) -> None:
        with self._lock:
            if self._get(run_id)["status"] == "paused":
                if run_id in self._live:
                    self._post(self._where[run_id], "resume", run_id)
                    self._snaps[run_id] = dict(self._snaps[run_id], status="running", message="")
                else:
                    self._request_room(run_id)

    def stop(self, run_id: str) -> None:
        with self._lock:
            if self._get(run_id)["status"] not in TERMINAL:
                if run_id in self._where:
                    self._post(self._where[run_id], "stop", run_id)
                msg = "Stopped." if run_id in self._where else "Stopped before it started."
                self._snaps[run_id] = dict(self._snaps[run_id], status="stopped", message=msg)
                self._rate.pop(run_id, None)
                self._release(run_id)  # its share goes to the others at once

    def extend(self, run_id: str, epochs: float | None = None, seconds: float | None = None) -> None:
        """Continue a finished or stopped run ("continue"): `epochs` more epochs and/or `seconds` more seconds."""
        if (epochs is not None and not epochs > 0) or (seconds is not None and not seconds > 0):
            raise ValueError("extend by a positive number of epochs or seconds")
        with self._lock:
            status = self._get(run_id)["status"]
            if status in ("diverged", "error"):
                raise ValueError(f"a {status} run cannot continue; start a new run")
            if run_id not in self._where:  # stopped before it started: it starts with the new budget
                p = self._payload[run_id]
                if epochs is not None or seconds is not None:
                    p["train_cfg"] = dict(p["train_cfg"], epochs=epochs, max_seconds=seconds)
            else:
                self._post(self._where[run_id], "extend", run_id, {"epochs": epochs, "seconds": seconds})
            if status in TERMINAL or status == "paused":
                self._snaps[run_id] = dict(self._snaps[run_id], status="queued", message="Continuing…")
                if run_id in self._live:
                    self._admit(run_id)  # paused, already counted: resume at once
                else:
                    self._request_room(run_id)

    def snapshot(self, run_id: str) -> dict:
        """The latest pushed metrics (never waits on a worker), plus how the run shares the server: `sharing`
        {running, workers, on_worker, share}, `steps_per_second` (measured over the last few seconds), and for a run
        waiting for room its `queue_position` (1 = next) and `expected_wait` (seconds, or None)."""
        with self._lock:
            s = dict(self._get(run_id))
            s["queue_position"] = s["expected_wait"] = None
            w = self._where.get(run_id)
            workers = max(1, sum(x.alive for x in self._workers))
            running = sum(1 for r in self._live if self._snaps[r]["status"] == "running")
            on_worker = self._running_on(w) if w is not None and run_id in self._live else 0
            s["sharing"] = {
                "running": running,
                "workers": workers,
                "on_worker": on_worker,
                "share": 1.0 / (workers * on_worker) if on_worker and s["status"] == "running" else None,
            }
            s["steps_per_second"] = self._steps_per_second(run_id) if s["status"] == "running" else None
            if run_id in self._pending:
                pos = self._pending.index(run_id) + 1
                s["status"], s["queue_position"] = "queued", pos
                s["expected_wait"] = wait_s = self._expected_wait(pos)
                when = "when a run ends" if wait_s is None else f"in about {_fmt_wait(wait_s)}"
                s["message"] = (
                    f"Waiting in the queue: position {pos} of {len(self._pending)}. This server holds at "
                    f"most {self.max_runs} training runs at once (SEQ2SEQ_MAX_RUNS, for its memory); "
                    f"yours starts by itself {when}."
                )
        s.pop("_seq", None)
        return s

    def load(self) -> dict:
        """The whole server's training load: runs running / paused / queued, the live ones, workers, max_runs."""
        with self._lock:
            live = [self._snaps[r]["status"] for r in self._live]
            return {
                "running": live.count("running"),
                "paused": live.count("paused"),
                "queued": len(self._pending),
                "live": len(self._live),
                "workers": max(1, sum(x.alive for x in self._workers)),
                "max_runs": self.max_runs,
            }

    def weights(self, run_id: str) -> dict[str, torch.Tensor]:
        """The run's current weights (state_dict), fetched from its worker."""
        request = uuid.uuid4().hex
        slot = [threading.Event(), False, None]
        with self._lock:
            self._get(run_id)
            if run_id not in self._where:
                raise RuntimeError("this run has not started training yet (it is waiting in the queue)")
            self._replies[request] = slot
            self._post(self._where[run_id], "weights", run_id, {"request": request})
        try:
            if not slot[0].wait(REPLY_TIMEOUT):
                raise TimeoutError(f"the training process did not send the weights within {REPLY_TIMEOUT:g} s")
        finally:
            self._replies.pop(request, None)
        if not slot[1]:
            raise RuntimeError(slot[2])
        return {k: torch.from_numpy(v) for k, v in slot[2].items()}

    def close(self, run_id: str) -> None:
        """Stop the run and forget it, here and in its worker."""
        with self._lock:
            if run_id not in self._snaps:
                return
            w = self._where.pop(run_id, None)
            if w is not None:
                w.n_runs -= 1
                self._post(w, "close", run_id)
            self._release(run_id)
            for d in (self._snaps, self._seq, self._payload, self._rate):
                d.pop(run_id, None)

    def run_ids(self) -> list[str]:
        with self._lock:
            return list(self._snaps)

    def n_active(self) -> int:
        """Runs running, paused in a worker or waiting for room (what a polling page can scale its rate by)."""
        with self._lock:
            return len(self._live) + len(self._pending)


def _fmt_wait(seconds: float) -> str:
    if seconds < 90:
        return f"{max(5, round(seconds / 5) * 5):.0f} s"
    return f"{seconds / 60:.0f} min"


class ProcessPoolBackend(PoolTrainer):
    """The default: spawned worker processes, about one per core."""

    def __init__(
        self, n_workers: int | None = None, max_runs: int | None = None, threads: int = 1, slice_seconds: float = SLICE
    ):
        super().__init__("process", n_workers, max_runs, threads, slice_seconds)


class ThreadBackend(PoolTrainer):
    """The same worker loop in a thread of this process: for tests and debugging."""

    def __init__(self, n_workers: int = 1, max_runs: int | None = None, slice_seconds: float = SLICE):
        super().__init__("thread", n_workers, max_runs, slice_seconds=slice_seconds)


_shared: dict[str, PoolTrainer] = {}
_shared_lock = threading.Lock()


def get_trainer(backend: str = "process") -> Trainer:
    """The process-wide trainer for a backend ("process" or "thread"), created and warmed on first call."""
    with _shared_lock:
        if backend not in _shared or _shared[backend]._closed:
            if backend == "process":
                _shared[backend] = ProcessPoolBackend().warm()
            elif backend == "thread":
                _shared[backend] = ThreadBackend().warm()
            else:
                raise ValueError(f"unknown trainer backend {backend!r}; use 'process' or 'thread'")
        return _shared[backend]


@atexit.register
def _shutdown_shared() -> None:
    for t in list(_shared.values()):
        t.shutdown()
