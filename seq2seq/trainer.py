"""Where training runs: the `Trainer` interface and its backends.

The web server must stay responsive while dozens of runs train, so by default training happens in a small pool of
worker processes (`ProcessPoolBackend`), never in the web process:

    web process                                              worker process (one per core, started at app start)
    ----------------------------------------------           ------------------------------------------------
    start/pause/resume/stop/extend/close  --outbox--> pipe -->  checks its pipe before every step,
    weights(run_id)  ... waits for the reply  <-- pipe <--      then steps its running runs in turn (round robin)
    listener thread: latest snapshot per run <-- pipe <--      pushes changed snapshots ~10 times a second
    snapshot(run_id): a dict lookup, never waits                exits when its pipe closes (the app is gone)

Why processes: measured on this 2-core machine, a training thread inside the web process fell from ~178 to ~1.4
steps/s while one pure-Python thread (a page rerun) was busy (the GIL convoy effect); a worker process kept its speed.
Workers also run at a lower CPU priority (`WORKER_NICE`): with both cores busy training, the web server and the
browser would otherwise get only their fair share of the CPU, and a click could wait seconds for its rerun.

Everything crossing the pipe is plain data (dicts, lists, numbers, strings, numpy arrays), so another backend — a
Ray cluster, say — can implement the same interface. At most `limits.max_concurrent_runs` runs execute at once;
later ones are "queued" and their snapshot carries `queue_position` (1 = next). A run that fails becomes status
"error" with the message; the worker lives on. `ThreadBackend` runs the same worker loop in a thread of this process
(for tests and debugging: breakpoints work).
"""
from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import uuid
from collections import deque
from multiprocessing.connection import Connection, wait

import numpy as np
import torch

from .config import ModelConfig, TrainConfig
from .limits import get_limits
from .training import TERMINAL, Run

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
def _worker_main(conn: Connection, threads: int | None) -> None:
    """A worker's whole life: handle commands, step running runs in turn, push snapshots, exit on EOF.

    Messages in:  (command, run_id, seq, args)  with command in start | pause | resume | stop | extend | weights |
                  close | exit.  `seq` numbers the commands of one run; every snapshot echoes the last one handled,
                  so the web process can tell a snapshot taken before its latest command from one taken after.
    Messages out: ("snap", {run_id: snapshot}) and ("reply", request_id, ok, payload).
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
    runs: dict[str, Run] = {}
    failed: dict[str, dict] = {}  # runs whose construction failed: their error snapshot
    seq: dict[str, int] = {}
    pushed: dict[str, int] = {}  # run_id -> Run.version last pushed
    history_at: dict[str, float] = {}  # run_id -> when its curves were last pushed
    turn: deque[str] = deque()  # round-robin order
    last_push = 0.0

    def snap(rid: str) -> dict:
        s = failed[rid] if rid in failed else runs[rid].snapshot()
        s["_seq"] = seq.get(rid, 0)
        return s

    def handle(msg) -> bool:
        cmd, rid, n, args = msg
        if cmd == "exit":
            return False
        seq[rid] = n
        run = runs.get(rid)
        try:
            if cmd == "start":
                try:
                    runs[rid] = run = Run(_data_from_plain(args["data"]), ModelConfig.from_dict(args["model_cfg"]),
                                          TrainConfig.from_dict(args["train_cfg"]), args.get("state_dict"),
                                          time_cap=args.get("time_cap"))
                    run.status, run.message = "queued", "Waiting for a free training slot."
                    turn.append(rid)
                except Exception as e:  # noqa: BLE001
                    failed[rid] = _error_snapshot(f"Could not start training: {type(e).__name__}: {e}")
            elif cmd == "weights":
                if run is None:
                    conn.send(("reply", args["request"], False, "this run has no model (it failed to start)"))
                else:
                    sd = {k: v.detach().numpy().copy() for k, v in run.model.state_dict().items()}
                    conn.send(("reply", args["request"], True, sd))
                return True
            elif cmd == "close":
                runs.pop(rid, None), failed.pop(rid, None), seq.pop(rid, None), pushed.pop(rid, None)
                history_at.pop(rid, None)
                if rid in turn:
                    turn.remove(rid)
                return True
            elif run is not None:
                if cmd == "pause":
                    run.pause()
                elif cmd == "resume":
                    run.resume()
                elif cmd == "stop":
                    run.stop()
                elif cmd == "extend":
                    run.extend(args.get("epochs"), args.get("seconds"))
                    run.status = "queued" if run.status == "paused" else run.status
        except Exception as e:  # noqa: BLE001 - a bad command must not kill the worker
            if run is not None:
                run.status, run.message = "error", f"{cmd} failed: {type(e).__name__}: {e}"
                run.version += 1
        if rid in runs or rid in failed:
            conn.send(("snap", {rid: snap(rid)}))  # show the effect of a command at once
            if rid in runs:
                pushed[rid] = runs[rid].version
        return True

    try:
        while True:
            busy = any(runs[r].status == "running" for r in turn)
            while conn.poll(0 if busy else PUSH_INTERVAL):  # control first, before every step
                if not handle(conn.recv()):
                    return
                busy = any(runs[r].status == "running" for r in turn)
            for _ in range(len(turn)):  # next running run, round robin
                rid = turn[0]
                turn.rotate(-1)
                run = runs[rid]
                if run.status == "running":
                    if own_threads and torch.get_num_threads() != run.train_cfg.threads:
                        torch.set_num_threads(run.train_cfg.threads)
                    run.step()
                    break
            now = time.perf_counter()
            if now - last_push >= PUSH_INTERVAL:
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
    except (EOFError, OSError):  # the web process is gone (or closed our pipe): so are we
        return


def _error_snapshot(message: str) -> dict:
    return {"status": "error", "message": message, "progress": 0.0, "step": 0, "epoch": 0.0, "seconds": 0.0,
            "history": {}, "samples": [], "grad_norms": {}, "timestep_grad_norms": [], "last_eval": {},
            "best_exact_match": None, "train_loss": None, "grad_norm": None, "queue_position": None}


def _data_to_plain(data) -> dict:
    return data.to_dict()


def _data_from_plain(d: dict):
    from .data import Seq2SeqData

    return Seq2SeqData.from_dict(d)


# ---------------------------------------------------------------------------------------------- the web side
class _Worker:
    def __init__(self, conn: Connection, handle, index: int):
        self.conn, self.handle, self.index = conn, handle, index
        self.n_runs = 0
        self.alive = True


class PoolTrainer(Trainer):
    """A pool of workers (processes or threads) running the `_worker_main` loop, with a global cap on executing runs.

    All outgoing messages go through one outbox and a sender thread, so no caller ever blocks on a pipe and the
    order of one run's commands is kept. One listener thread receives every worker's snapshots and replies.
    """

    def __init__(self, kind: str = "process", n_workers: int | None = None, max_concurrent: int | None = None,
                 threads: int = 1):
        if kind not in ("process", "thread"):
            raise ValueError(f"kind must be 'process' or 'thread', got {kind!r}")
        limits = get_limits()
        self.kind, self.threads = kind, threads
        self.n_workers = n_workers or (max(1, os.cpu_count() or 1) if kind == "process" else 1)
        self.max_concurrent = max_concurrent or limits.max_concurrent_runs
        self.time_cap = limits.max_train_seconds
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._snaps: dict[str, dict] = {}
        self._where: dict[str, _Worker] = {}
        self._seq: dict[str, int] = {}
        self._active: set[str] = set()  # runs holding an execution slot
        self._pending: list[str] = []  # runs waiting for a slot, first in first out
        self._replies: dict[str, list] = {}  # request id -> [Event, ok, payload]
        self._outbox: queue.Queue = queue.Queue()
        self._closed = False
        self._threads_started = False

    # -- pool life
    def warm(self) -> "PoolTrainer":
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
            p = ctx.Process(target=_worker_main, args=(theirs, self.threads), daemon=True,
                            name=f"seq2seq-trainer-{index}")
            p.start()
            theirs.close()  # only the worker holds its end: when we die, it reads EOF
        else:
            ours, theirs = mp.Pipe(duplex=True)
            p = threading.Thread(target=_worker_main, args=(theirs, None), daemon=True,
                                 name=f"seq2seq-trainer-thread-{index}")
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
        with self._lock:
            for rid, s in snaps.items():
                if rid not in self._where or s.get("_seq", 0) < self._seq.get(rid, 0):
                    continue  # closed, or taken before our latest command: a newer one is on its way
                if "history" not in s:  # a light push: keep the curves of the last full one
                    s["history"] = self._snaps.get(rid, {}).get("history", {})
                self._snaps[rid] = s
                if s["status"] in TERMINAL:
                    self._release(rid)

    def _worker_died(self, w: _Worker) -> None:
        with self._lock:
            if not w.alive:
                return
            w.alive = False
            for rid, where in self._where.items():
                if where is w and self._snaps[rid]["status"] not in TERMINAL:
                    self._snaps[rid] = dict(self._snaps[rid], status="error",
                                            message="The training process stopped unexpectedly (out of memory?). "
                                                    "Start a new run.")
                    self._release(rid)
            # a replacement is spawned by the next start(), not here: no respawn loop if workers cannot start

    # -- scheduling (all with self._lock held)
    def _release(self, rid: str) -> None:
        """Free rid's execution slot (if it held one) or its place in the queue, and start the next waiting run."""
        self._active.discard(rid)
        if rid in self._pending:
            self._pending.remove(rid)
        while self._pending and len(self._active) < self.max_concurrent:
            self._run_now(self._pending.pop(0))

    def _request_slot(self, rid: str) -> None:
        if rid in self._active or rid in self._pending:
            return
        if len(self._active) < self.max_concurrent:
            self._run_now(rid)
        else:
            self._pending.append(rid)
            self._snaps[rid] = dict(self._snaps[rid], status="queued")

    def _run_now(self, rid: str) -> None:
        self._active.add(rid)
        self._post(self._where[rid], "resume", rid)
        self._snaps[rid] = dict(self._snaps[rid], status="running", message="")

    def _get(self, rid: str) -> dict:
        if rid not in self._where:
            raise KeyError(f"unknown run {rid!r} (closed, or never started)")
        return self._snaps[rid]

    # -- the Trainer interface
    def start(self, data, model_cfg: ModelConfig, train_cfg: TrainConfig, state_dict=None) -> str:
        model_cfg.validate(), train_cfg.validate()
        payload = {"data": _data_to_plain(data), "model_cfg": model_cfg.to_dict(), "train_cfg": train_cfg.to_dict(),
                   "time_cap": self.time_cap,
                   "state_dict": None if state_dict is None else {
                       k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
                       for k, v in state_dict.items()}}
        rid = uuid.uuid4().hex[:12]
        with self._lock:
            self._ensure_workers()
            w = min((w for w in self._workers if w.alive), key=lambda w: w.n_runs)
            w.n_runs += 1
            self._where[rid] = w
            self._snaps[rid] = dict(_error_snapshot(""), status="queued", message="Starting…",
                                    model_cfg=model_cfg.to_dict(), train_cfg=train_cfg.to_dict())
            self._post(w, "start", rid, payload)
            self._request_slot(rid)
        return rid

    def pause(self, run_id: str) -> None:
        with self._lock:
            if self._get(run_id)["status"] in ("running", "queued"):
                self._post(self._where[run_id], "pause", run_id)
                self._snaps[run_id] = dict(self._snaps[run_id], status="paused", message="Paused.")
                self._release(run_id)

    def resume(self, run_id: str) -> None:
        with self._lock:
            if self._get(run_id)["status"] == "paused":
                self._request_slot(run_id)

    def stop(self, run_id: str) -> None:
        with self._lock:
            if self._get(run_id)["status"] not in TERMINAL:
                self._post(self._where[run_id], "stop", run_id)
                self._snaps[run_id] = dict(self._snaps[run_id], status="stopped", message="Stopped.")
                self._release(run_id)

    def extend(self, run_id: str, epochs: float | None = None, seconds: float | None = None) -> None:
        """Continue a finished or stopped run ("continue"): `epochs` more epochs and/or `seconds` more seconds."""
        if (epochs is not None and not epochs > 0) or (seconds is not None and not seconds > 0):
            raise ValueError("extend by a positive number of epochs or seconds")
        with self._lock:
            status = self._get(run_id)["status"]
            if status in ("diverged", "error"):
                raise ValueError(f"a {status} run cannot continue; start a new run")
            self._post(self._where[run_id], "extend", run_id, {"epochs": epochs, "seconds": seconds})
            if status in TERMINAL or status == "paused":
                self._snaps[run_id] = dict(self._snaps[run_id], status="queued", message="Continuing…")
                self._request_slot(run_id)

    def snapshot(self, run_id: str) -> dict:
        """The latest pushed metrics (never waits on a worker), plus the queue position of a waiting run."""
        with self._lock:
            s = dict(self._get(run_id))
            if run_id in self._pending:
                pos = self._pending.index(run_id) + 1
                s["status"], s["queue_position"] = "queued", pos
                s["message"] = (f"Waiting in the queue: position {pos} of {len(self._pending)}. This server trains "
                                f"at most {self.max_concurrent} run(s) at once (SEQ2SEQ_MAX_CONCURRENT_RUNS); "
                                f"training starts by itself when a slot frees up.")
            else:
                s["queue_position"] = None
        s.pop("_seq", None)
        return s

    def weights(self, run_id: str) -> dict[str, torch.Tensor]:
        """The run's current weights (state_dict), fetched from its worker."""
        request = uuid.uuid4().hex
        slot = [threading.Event(), False, None]
        with self._lock:
            self._get(run_id)
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
            if run_id not in self._where:
                return
            w = self._where.pop(run_id)
            w.n_runs -= 1
            self._post(w, "close", run_id)
            self._release(run_id)
            self._snaps.pop(run_id, None)
            self._seq.pop(run_id, None)

    def run_ids(self) -> list[str]:
        with self._lock:
            return list(self._where)

    def n_active(self) -> int:
        """Runs holding an execution slot or waiting for one (what a polling page can scale its rate by)."""
        with self._lock:
            return len(self._active) + len(self._pending)


class ProcessPoolBackend(PoolTrainer):
    """The default: spawned worker processes, about one per core."""

    def __init__(self, n_workers: int | None = None, max_concurrent: int | None = None, threads: int = 1):
        super().__init__("process", n_workers, max_concurrent, threads)


class ThreadBackend(PoolTrainer):
    """The same worker loop in a thread of this process: for tests and debugging."""

    def __init__(self, n_workers: int = 1, max_concurrent: int | None = None):
        super().__init__("thread", n_workers, max_concurrent)


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

