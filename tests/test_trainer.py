"""Trainer backends: control, snapshots, weights, queueing, crash handling and worker lifetime (tiny runs)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from seq2seq.model import Seq2Seq
from seq2seq.trainer import ProcessPoolBackend, ThreadBackend, get_trainer
from seq2seq.training import Run

from tiny import cfgs, tiny_data  # noqa: E402

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data():
    return tiny_data(n_valid=40)


@pytest.fixture(scope="module", params=["thread", "process"])
def trainer(request):
    t = ThreadBackend(max_runs=8) if request.param == "thread" else ProcessPoolBackend(n_workers=1,
                                                                                           max_runs=8)
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
        s = wait_for(t, ids[2], lambda s: s["queue_position"] in (1, None))  # moved up the queue
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
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {ROOT!r})
        from seq2seq.trainer import ProcessPoolBackend
        if __name__ == "__main__":
            t = ProcessPoolBackend(n_workers=1).warm()
            print(t.worker_pids[0], flush=True)
            time.sleep(120)
    """))
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
