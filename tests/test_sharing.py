"""The Train page's words about sharing the server (ui/sharing.py) and the lesson link's value (ui/state.py)."""

import math

from ui import sharing
from ui.state import LESSON_MIN, parse_lesson


def snap(running, workers, on_worker, sps=3.14, status="running"):
    share = 1 / (workers * on_worker) if on_worker else None
    return {
        "status": status,
        "steps_per_second": sps,
        "sharing": {"running": running, "workers": workers, "on_worker": on_worker, "share": share},
    }


def test_share_text_names_the_share_and_the_speed():
    assert sharing.share_text(snap(12, 2, 6)) == "12 runs share this server: yours gets about 1/12 · 3.1 steps/s"
    assert sharing.share_text(snap(1, 2, 1)).startswith("Yours is the only run training on this server")
    assert sharing.share_text(snap(2, 2, 1)).startswith("2 runs train on this server's 2 cores: yours has a core")
    assert "measuring its speed" in sharing.share_text(snap(3, 1, 3, sps=None))
    assert sharing.share_text(snap(3, 1, 3, status="paused")) is None


def test_load_text_for_the_teacher():
    load = {"running": 23, "paused": 4, "queued": 2, "live": 27, "workers": 2, "max_runs": 48}
    assert sharing.load_text(load) == (
        "This server: 23 runs training · 4 paused · 2 waiting for room (room for 48 at once, on 2 cores)"
    )
    assert sharing.load_text(dict(load, running=1, paused=0, queued=0)).startswith("This server: 1 run training (")


def test_parse_lesson_clamps_and_ignores_hostile_values():
    assert parse_lesson("60", 600) == 60.0 and parse_lesson(" 90.4 ", 600) == 90.0
    assert parse_lesson("1e308", 600) == 600.0 and parse_lesson("3", 600) == LESSON_MIN
    for bad in ("", "0", "off", "-5", "nan", "inf", "-inf", "abc", "60s", "1" * 13, "1e999"):
        assert parse_lesson(bad, 600) is None, bad
    assert all(
        v is None or (LESSON_MIN <= v <= 600 and math.isfinite(v))
        for v in (parse_lesson(x, 600) for x in ("7", "599.9", "600.1", "0.0001"))
    )
