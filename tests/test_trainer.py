"""Trainer backends: control, snapshots, weights, queueing, crash handling and worker lifetime (tiny runs)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from tiny import cfgs, tiny_data  # noqa: E402

from seq2seq.model import Seq2Seq
from seq2seq.trainer import ProcessPoolBackend, ThreadBackend, get_trainer
from seq2seq.training import Run

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data():
    return tiny_data(n_valid=40)


@pytest.fixture(scope="module", params=["thread", "process"])
def trainer(request):
    t = ThreadBackend(max_runs=8) if request.param == "thread" else ProcessPoolBackend(n_workers=1, max_runs=8)
    t.warm()
    yield t
    t.shutdown()


def wait_for(trainer, rid, pred, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = trainer.snapshot(rid)
        if pred(s):
            return s
        if s["status"] in ("error", "diverged"):
            break  # it will not get better
        time.sleep(0.02)
    raise AssertionError(f"timed out; last snapshot status={s['status']} step={s['step']} message={s['message']}")


def test_start_pause_resume_stop_extend(trainer, data):
    mc, tc = cfgs(data, epochs=None, max_seconds=60)
    rid = trainer.start(data, mc, tc)
    wait_for(trainer, rid, lambda s: s["status"] == "running" and s["step"] >= 3)
    trainer.pause(rid)
    assert trainer.snapshot(rid)["status"] == "paused"  # at once, before the worker confirms
    time.sleep(0.3)
    step = trainer.snapshot(rid)["step"]
    time.sleep(0.3)
    assert trainer.snapshot(rid)["step"] == step  # paused: no progress
    trainer.resume(rid)
    wait_for(trainer, rid, lambda s: s["step"] > step + 2)
    trainer.stop(rid)
    s = wait_for(trainer, rid, lambda s: s["status"] == "stopped" and "Stopped by the user" in s["message"])
    assert 0 < s["progress"] < 1 and s["history"]["train_loss"]
    stopped_at = s["epoch"]
    trainer.extend(rid, epochs=1)
    s = wait_for(trainer, rid, lambda s: s["status"] == "finished")
    assert s["epoch"] == pytest.approx(stopped_at + 1, abs=0.05) and s["progress"] == 1.0
    trainer.close(rid)
    with pytest.raises(KeyError):
        trainer.snapshot(rid)


def test_snapshot_never_blocks(trainer, data):
    """While the worker is busy with a step that takes a while, snapshot() is a dictionary lookup."""
    mc, tc = cfgs(data, cell="lstm", hidden=256, embed=64, batch_size=256, epochs=None, max_seconds=30)
    rid = trainer.start(data, mc, tc)
    wait_for(trainer, rid, lambda s: s["step"] >= 1)
    worst = 0.0
    for _ in range(300):
        t0 = time.perf_counter()
        s = trainer.snapshot(rid)
        worst = max(worst, time.perf_counter() - t0)
        time.sleep(0.001)
    assert s["status"] == "running"
    assert worst < 0.05, f"snapshot took {worst * 1000:.1f} ms"
    trainer.close(rid)


def test_weights_round_trip_and_match_in_process_run(trainer, data):
    """A finished run's weights load into a Seq2Seq, and equal a Run with the same seed trained here."""
    mc, tc = cfgs(data, epochs=1, seed=3)
    rid = trainer.start(data, mc, tc)
    s = wait_for(trainer, rid, lambda s: s["status"] == "finished")
    sd = trainer.weights(rid)
    assert all(isinstance(v, torch.Tensor) for v in sd.values())
    model = Seq2Seq(mc)
    model.load_state_dict(sd)
    local = Run(data, mc, tc)
    while not local.done:
        local.step()
    for k, v in local.state_dict().items():
        assert torch.allclose(sd[k], v, atol=1e-6), k
    assert s["history"]["train_loss"] == pytest.approx(local.snapshot()["history"]["train_loss"], abs=1e-6)
    trainer.close(rid)


def test_divergence_and_errors_do_not_kill_the_worker(trainer, data):
    mc, tc = cfgs(data, lr=5.0, clip=0.0)
    sd = Seq2Seq(mc).state_dict()
    sd["out.bias"][:] = float("nan")
    bad = trainer.start(data, mc, tc, state_dict=sd)
    s = wait_for(trainer, bad, lambda s: s["status"] == "diverged")
    assert "NaN" in s["message"] and "learning rate 5" in s["message"]
    with pytest.raises(ValueError):
        trainer.extend(bad, epochs=1)
    wrong = trainer.start(data, mc, tc, state_dict={"out.bias": torch.zeros(3)})  # mismatched weights
    s = wait_for(trainer, wrong, lambda s: s["status"] == "error")
    assert "Could not start training" in s["message"]
    with pytest.raises(RuntimeError):
        trainer.weights(wrong)
    ok = trainer.start(data, *cfgs(data, epochs=1))  # the worker lives on
    wait_for(trainer, ok, lambda s: s["status"] == "finished")
    for rid in (bad, wrong, ok):
        trainer.close(rid)


@pytest.mark.parametrize("backend", [ThreadBackend, ProcessPoolBackend])
def test_queue_with_cap_one(backend, data):
    t = backend(max_runs=1) if backend is ThreadBackend else backend(n_workers=1, max_runs=1)
    try:
        mc, tc = cfgs(data, epochs=1)
        ids = [t.start(data, mc, tc) for _ in range(3)]
        snaps = [t.snapshot(r) for r in ids]
        assert snaps[0]["status"] == "running" and snaps[0]["queue_position"] is None
        assert [s["queue_position"] for s in snaps[1:]] == [1, 2]
        assert all(s["status"] == "queued" and "SEQ2SEQ_MAX_RUNS" in s["message"] for s in snaps[1:])
        wait_for(t, ids[0], lambda s: s["status"] == "finished")
        wait_for(t, ids[2], lambda s: s["queue_position"] in (1, None))  # moved up the queue
        for r in ids:
            wait_for(t, r, lambda s: s["status"] == "finished")
        # pausing a queued run frees its place; stopping a running one starts the next
        long = cfgs(data, epochs=None, max_seconds=30)
        a, b, c = (t.start(data, *long) for _ in range(3))
        t.pause(c)
        assert t.snapshot(c)["status"] == "paused" and t.snapshot(b)["queue_position"] == 1
        t.stop(a)
        wait_for(t, b, lambda s: s["status"] == "running" and s["step"] > 0)
        t.resume(c)
        assert t.snapshot(c)["queue_position"] == 1
        t.close(b)
        wait_for(t, c, lambda s: s["status"] == "running" and s["step"] > 0)
    finally:
        t.shutdown()


def test_get_trainer_is_shared():
    t = get_trainer("thread")
    assert get_trainer("thread") is t
    with pytest.raises(ValueError):
        get_trainer("nope")


def test_worker_exits_when_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {ROOT!r})
        from seq2seq.trainer import ProcessPoolBackend
        if __name__ == "__main__":
            t = ProcessPoolBackend(n_workers=1).warm()
            print(t.worker_pids[0], flush=True)
            time.sleep(120)
    """)
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        time.sleep(0.5)
        assert _alive(pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(5)
        deadline = time.time() + 15
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), "the worker outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_n_active_counts_running_and_queued_runs(data):
    t = ThreadBackend(max_runs=1)
    try:
        m, tc = cfgs(data, epochs=None, max_seconds=30)
        assert t.n_active() == 0
        a, b = t.start(data, m, tc), t.start(data, m, tc)
        assert t.n_active() == 2  # one running, one queued
        t.close(a), t.close(b)
        assert t.n_active() == 0
    finally:
        t.shutdown()


def test_session_handle_closes_its_runs_when_the_tab_closes(data):
    """What the app's session-scoped cache calls on tab close (on_release -> close_all): this tab's runs are closed,
    another tab's run keeps training."""
    from ui.state import SessionTrainer

    shared = ThreadBackend(max_runs=4)
    try:
        m, tc = cfgs(data, epochs=None, max_seconds=30)
        mine, other = SessionTrainer(shared), SessionTrainer(shared)
        a, b = mine.start(data, m, tc), mine.start(data, m, tc)
        c = other.start(data, m, tc)
        mine.close_all()
        assert a not in shared.run_ids() and b not in shared.run_ids() and c in shared.run_ids()
    finally:
        shared.shutdown()


# ------------------------------------------------------------------------------------------------ fair sharing
class _Timed(Run):
    """A run whose every step takes at least STEP_S and is logged (when, which run: its seed): the worker's schedule,
    seen from outside. Injected into the thread backend's worker (the module-level name it constructs runs with)."""

    STEP_S = 0.02
    log: list[tuple[float, int]] = []

    def step(self):
        time.sleep(self.STEP_S)
        out = super().step()
        _Timed.log.append((time.perf_counter(), self.train_cfg.seed))
        return out


@pytest.fixture
def timed(monkeypatch):
    import seq2seq.trainer as trainer_mod

    _Timed.log = []
    monkeypatch.setattr(trainer_mod, "Run", _Timed)
    return _Timed


def test_every_run_trains_at_once_with_equal_shares(data):
    """Four runs on one worker: all move within a second or two of Start, each gets ~1/4 of the worker's time, and
    each snapshot says so (4 running, share 1/4)."""
    t = ThreadBackend(max_runs=8)
    try:
        mc, tc = cfgs(data, epochs=None, max_seconds=60)
        t0 = time.perf_counter()
        ids = [t.start(data, mc, tc) for _ in range(4)]
        for r in ids:
            wait_for(t, r, lambda s: s["step"] >= 1, timeout=20)
        first_steps = time.perf_counter() - t0
        time.sleep(3.0)
        snaps = [t.snapshot(r) for r in ids]
        given = sorted(s["worker_seconds"] for s in snaps)
        assert given[0] >= 0.5 * given[len(given) // 2], given  # equal time, whatever the steps cost
        for s in snaps:
            assert s["status"] == "running" and s["sharing"]["running"] == 4 and s["sharing"]["share"] == 0.25
            assert s["steps_per_second"] and s["steps_per_second"] > 0
        assert t.load() == {"running": 4, "paused": 0, "queued": 0, "live": 4, "workers": 1, "max_runs": 8}
        print(
            f"4 runs on one worker: all stepping {first_steps:.2f} s after the first Start; "
            f"worker seconds each {[round(g, 2) for g in given]}"
        )
    finally:
        t.shutdown()


def test_time_is_shared_fairly_between_cheap_and_costly_steps(data):
    """A run whose steps cost ~20x more gets the same worker time as a cheap one, not 20x more (slices, not steps)."""
    t = ThreadBackend(max_runs=8)
    try:
        cheap = cfgs(data, epochs=None, max_seconds=60)
        costly = cfgs(data, cell="lstm", hidden=256, embed=64, batch_size=256, epochs=None, max_seconds=60)
        a, b = t.start(data, *cheap), t.start(data, *costly)
        wait_for(t, b, lambda s: s["step"] >= 3, timeout=30)
        time.sleep(3.0)
        sa, sb = t.snapshot(a), t.snapshot(b)
        assert sa["step"] > 3 * sb["step"]  # the cheap one does many more steps ...
        ratio = sa["worker_seconds"] / sb["worker_seconds"]
        assert 0.5 < ratio < 2.0, (sa["worker_seconds"], sb["worker_seconds"])  # ... in about the same time
    finally:
        t.shutdown()


@pytest.mark.parametrize("action", ["pause", "stop", "close"])
def test_a_run_that_leaves_mid_slice_loses_no_time(timed, data, action):
    """Slices of 1 s, steps of ~30 ms: run A is told to pause / stop / close in the middle of its slice. The next
    step of another run comes one step later (the rest of A's slice is not lost), A steps no more, and the others'
    snapshots show the larger share at once."""
    t = ThreadBackend(max_runs=8, slice_seconds=1.0)
    try:
        ids = [t.start(data, *cfgs(data, epochs=None, max_seconds=60, seed=i, eval_every=10_000)) for i in range(3)]
        for r in ids:
            wait_for(t, r, lambda s: s["step"] >= 1, timeout=20)
        # wait until one run is in the middle of its slice (3 steps of it in a row), then make it leave
        deadline = time.time() + 20
        while time.time() < deadline:
            tail = timed.log[-3:]
            if len(tail) == 3 and len({w for _, w in tail}) == 1 and time.perf_counter() - tail[-1][0] < 0.015:
                break
            time.sleep(0.002)
        else:
            raise AssertionError("no slice was seen")
        leaver = timed.log[-1][1]  # its seed: its index in ids
        rid = ids[leaver]
        told = time.perf_counter()
        getattr(t, action)(rid)
        if action != "close":
            others = [r for r in ids if r != rid]
            for r in others:  # the share is freed at once, before the worker confirms
                assert t.snapshot(r)["sharing"]["running"] == 2 and t.snapshot(r)["sharing"]["share"] == 0.5
        time.sleep(1.5)
        after = [(tt, w) for tt, w in timed.log if tt > told]
        assert after, "nothing stepped after the run left"
        leaver_after = [tt for tt, w in after if w == leaver]
        assert len(leaver_after) <= 1  # at most the step that was under way
        first_other = next(tt for tt, w in after if w != leaver)
        # a lost slice would leave the worker idle (or on the leaver) for the rest of it: ~0.9 s
        assert first_other - told < 0.35, f"the next run stepped {first_other - told:.3f} s after the leave"
        gaps = [b - a for (a, _), (b, _) in zip(after, after[1:])]
        assert max(gaps) < 0.35, max(gaps)  # the worker never idled while runs were waiting
    finally:
        t.shutdown()


def test_a_resumed_run_goes_next_without_a_burst(timed, data):
    """A run resumed after a pause steps within one slice, then takes its 1/3 share: no catching up on the time it
    was away."""
    t = ThreadBackend(max_runs=8, slice_seconds=0.1)
    try:
        ids = [t.start(data, *cfgs(data, epochs=None, max_seconds=60, seed=i, eval_every=10_000)) for i in range(3)]
        for r in ids:
            wait_for(t, r, lambda s: s["step"] >= 1, timeout=20)
        t.pause(ids[0])
        time.sleep(2.0)
        told = time.perf_counter()
        t.resume(ids[0])
        time.sleep(3.0)
        after = [w for tt, w in timed.log if tt > told]
        first = next(tt for tt, w in timed.log if tt > told and w == 0)
        assert first - told < 0.5  # it went (almost) next
        counts = sorted(after.count(i) for i in range(3))
        assert counts[-1] < 1.6 * counts[0], counts  # shares stay equal: no burst for the resumed run
    finally:
        t.shutdown()


def test_memory_bound_queue_says_position_and_expected_wait(data):
    """Past max_runs a Start waits: its snapshot gives its position and an expected wait measured from the live
    run's progress; it starts by itself when that run ends."""
    t = ThreadBackend(max_runs=1)
    try:
        a = t.start(data, *cfgs(data, epochs=None, max_seconds=6))
        b = t.start(data, *cfgs(data, epochs=1))
        wait_for(t, a, lambda s: s["step"] >= 1)
        time.sleep(2.0)
        s = t.snapshot(b)
        assert s["status"] == "queued" and s["queue_position"] == 1
        assert s["expected_wait"] is not None and 0.5 < s["expected_wait"] < 8, s["expected_wait"]
        assert "position 1 of 1" in s["message"] and "SEQ2SEQ_MAX_RUNS" in s["message"] and "in about" in s["message"]
        assert t.snapshot(a)["sharing"] == {"running": 1, "workers": 1, "on_worker": 1, "share": 1.0}
        wait_for(t, b, lambda s: s["step"] >= 1, timeout=30)
        assert t.snapshot(a)["status"] == "finished"
    finally:
        t.shutdown()


def test_runs_are_placed_on_the_least_loaded_worker(data):
    """Two worker processes, four runs: two on each (every snapshot says 2 on its worker, share 1/4)."""
    t = ProcessPoolBackend(n_workers=2, max_runs=8).warm()
    try:
        mc, tc = cfgs(data, epochs=None, max_seconds=60)
        ids = [t.start(data, mc, tc) for _ in range(4)]
        for r in ids:
            wait_for(t, r, lambda s: s["step"] >= 1, timeout=60)
        assert sorted(t._where[r].index for r in ids) == [0, 0, 1, 1]
        assert all(
            t.snapshot(r)["sharing"]["on_worker"] == 2 and t.snapshot(r)["sharing"]["share"] == 0.25 for r in ids
        )
        t.stop(ids[0])  # the next run goes where the share is largest: the worker that now has one
        e = t.start(data, mc, tc)
        assert t._where[e] is t._where[ids[0]]
    finally:
        t.shutdown()


def test_prepared_and_evicted_datasets_both_start(data):
    """prepare(data) makes the worker encode a dataset before its first Start (which then sends only its key); a
    dataset pushed out of the worker's small cache by newer ones is sent again, and its run trains as well."""
    from seq2seq.trainer import DATA_CACHE

    t = ThreadBackend(max_runs=8).warm()
    try:
        t.prepare(data)
        (w,) = t._workers
        key = t._data_payload(data)[0]
        assert list(w.data_keys) == [key]
        others = [tiny_data(n_valid=10 + i) for i in range(DATA_CACHE)]  # different datasets: data pushed out
        for d in others:
            t.prepare(d)
        assert key not in w.data_keys
        a = t.start(data, *cfgs(data, epochs=1))
        b = t.start(others[-1], *cfgs(others[-1], epochs=1))  # this one sends only its key
        for r in (a, b):
            s = wait_for(t, r, lambda s: s["status"] == "finished", timeout=60)
            assert s["step"] > 0 and s["last_eval"]
    finally:
        t.shutdown()


def test_worker_count_follows_the_setting_and_the_usable_cpus():
    from seq2seq.trainer import usable_cpus, worker_count

    assert worker_count({"SEQ2SEQ_WORKERS": "3"}) == 3
    assert worker_count({}) == usable_cpus() <= (os.cpu_count() or 1)
    assert usable_cpus() <= len(os.sched_getaffinity(0))
    for bad in ("0", "-1", "two", "1e3", "257"):
        with pytest.raises(ValueError, match="SEQ2SEQ_WORKERS"):
            worker_count({"SEQ2SEQ_WORKERS": bad})
