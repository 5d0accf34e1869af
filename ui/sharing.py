"""What the Train page says about sharing the server: pure functions of a run's snapshot and the trainer's load.

A slow curve must be explained: with fair sharing (seq2seq/trainer.py) every run trains at once and N runs each get
about 1/N of the server, so the page says how many share it, what this run gets, and the steps/s it measures.
"""

from __future__ import annotations


def share_text(snap: dict) -> str | None:
    """One line for a running run: "12 runs share this server: yours gets about 1/12 · 3.1 steps/s"."""
    if snap.get("status") != "running":
        return None
    sh = snap.get("sharing") or {}
    n, workers, share = sh.get("running") or 0, sh.get("workers") or 1, sh.get("share")
    sps = snap.get("steps_per_second")
    rate = "measuring its speed…" if sps is None else f"{sps:.1f} steps/s"
    if n <= 1:
        line = "Yours is the only run training on this server: it has a core to itself"
    elif share is None or share >= 1 / workers - 1e-9:
        line = f"{n} runs train on this server's {workers} cores: yours has a core to itself"
    else:
        line = f"{n} runs share this server: yours gets about 1/{round(1 / share)}"
    return f"{line} · {rate}"


def queue_text(snap: dict) -> str:
    """For a run waiting for room: its position and expected wait (the trainer's message says why it waits)."""
    return snap.get("message") or f"Waiting in the queue: position {snap.get('queue_position')}."


def load_text(load: dict) -> str:
    """The whole server, for the teacher: "This server: 23 runs training · 2 paused · 1 waiting (room for 48)"."""
    parts = [f"{load['running']} run{'s' if load['running'] != 1 else ''} training"]
    if load.get("paused"):
        parts.append(f"{load['paused']} paused")
    if load.get("queued"):
        parts.append(f"{load['queued']} waiting for room")
    return (
        f"This server: {' · '.join(parts)} (room for {load['max_runs']} at once, "
        f"on {load['workers']} core{'s' if load['workers'] != 1 else ''})"
    )


def lesson_text(seconds: float, from_link: bool) -> str:
    where = "the lesson link" if from_link else "this server (SEQ2SEQ_LESSON_SECONDS)"
    return (
        f"Lesson setting: every run trains for {seconds:g} s, whatever is chosen above (set by {where}), so "
        f"the whole class finishes together."
    )
