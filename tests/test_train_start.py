"""Start means one run, always visible and stoppable (issue 19).

Streamlit (fastReruns) ran several Start callbacks of one session side by side: 20 fast clicks started 4 runs, the
page showed none of them ("4 is over this server's limit of 3") and three trained out of the student's reach.
SessionTrainer.start is now one locked step (close the page's run, start the new one, record it), idempotent while a
start is in flight (`generation`, START_DEBOUNCE), and the Train page lists every other run the session owns with a
Stop. The real-browser version of the fast clicks is tests/browser/test_fast_start.py.
"""

import os
import threading

import pytest
import torch
from streamlit.testing.v1 import AppTest

os.environ["SEQ2SEQ_TRAINER_BACKEND"] = "thread"
torch.set_num_threads(1)

from seq2seq.config import ModelConfig, TrainConfig  # noqa: E402
from seq2seq.data import build_data  # noqa: E402
from seq2seq.tasks import generate_splits  # noqa: E402
from seq2seq.trainer import get_trainer  # noqa: E402
from ui import state  # noqa: E402

APP = "../app.py"


@pytest.fixture(autouse=True)
def _close_runs():
    yield
    t = get_trainer("thread")
    for rid in t.run_ids():
        t.close(rid)


def tiny():
    data = build_data(generate_splits("reverse", n_train=60, n_valid=10, n_test=10, seed=0), tokens="char", max_len=6)
    return data, ModelConfig(len(data.src_vocab), len(data.tgt_vocab), embed=4, hidden=4), TrainConfig(max_seconds=30)


def test_twenty_concurrent_starts_of_one_session_start_one_run():
    session = state.SessionTrainer(get_trainer("thread"))
    data, m, t = tiny()
    go = threading.Barrier(20)
    results, errors = [], []

    def click():
        go.wait()
        try:
            results.append(session.start(data, m, t, generation=0, page_info=("info",)))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=click, name=f"click-{i}") for i in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors, errors
    started = [r for r in results if r is not None]
    assert len(started) == 1 and session.run_ids == started and session.page_run == started[0]
    assert session.generation == 1


def test_start_again_replaces_the_page_run_and_a_stale_button_does_nothing(monkeypatch):
    monkeypatch.setattr(state.SessionTrainer, "START_DEBOUNCE", 0.0)
    session = state.SessionTrainer(get_trainer("thread"))
    data, m, t = tiny()
    a = session.start(data, m, t, generation=0, page_info=1)
    assert session.start(data, m, t, generation=0, page_info=1) is None  # drawn before `a` started: same request
    b = session.start(data, m, t, generation=1, page_info=2)
    assert b and session.run_ids == [b] and session.page_run == b and session.page_info == 2
    assert a not in get_trainer("thread").run_ids()


def test_a_start_within_the_debounce_is_the_same_click():
    session = state.SessionTrainer(get_trainer("thread"))
    data, m, t = tiny()
    a = session.start(data, m, t, generation=0, page_info=1)
    assert session.start(data, m, t, generation=1, page_info=1) is None
    assert session.run_ids == [a]


# ------------------------------------------------------------------------------------------------------ AppTest
def small(at: AppTest) -> AppTest:
    at.slider(key="reverse.n").set_value(200).run()
    at.number_input(key="reverse.max_len").set_value(6).run()
    at.switch_page("pages/model.py").run()
    at.select_slider(key="hidden").set_value(16).run()
    at.select_slider(key="emb").set_value(8).run()
    at.switch_page("pages/train.py").run()
    at.segmented_control(key="budget").set_value("seconds").run()
    at.number_input(key="seconds").set_value(60).run()
    return at


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def sessions(monkeypatch):
    """Every SessionTrainer that starts a run in this test (AppTest runs the app in this process)."""
    made = []
    start = state.SessionTrainer.start

    def record(self, *args, **kwargs):
        if self not in made:
            made.append(self)
        return start(self, *args, **kwargs)

    monkeypatch.setattr(state.SessionTrainer, "start", record)
    return made


def test_start_clicked_twenty_times_in_a_row_trains_one_run(sessions):
    at = small(AppTest.from_file(APP, default_timeout=60).run())
    for _ in range(20):
        at.button(key="btn_start").click().run()
    ok(at)
    (session,) = sessions
    assert len(session.run_ids) == 1 and session.page_run == at.session_state["run_id"]
    assert not [w.value for w in at.warning if "limit" in w.value]
    assert "Your other runs" not in " ".join(m.value for m in at.markdown)


def test_every_run_of_the_session_is_listed_with_a_stop(sessions):
    at = small(AppTest.from_file(APP, default_timeout=60).run())
    at.button(key="btn_start").click().run()
    (session,) = sessions
    page_run = session.page_run
    data, m, t = tiny()
    other = session.start(data, m, t)  # a run the page does not show (what the race used to leave behind)
    ok(at.run())
    assert any(md.value == "**Your other runs on this server** (1)" for md in at.markdown)
    assert at.button(key=f"btn_stop_{other}").disabled is False
    assert at.button(key=f"btn_remove_{other}").disabled is True  # stop it first
    at.button(key=f"btn_stop_{other}").click().run()
    assert get_trainer("thread").snapshot(other)["status"] == "stopped"
    assert get_trainer("thread").snapshot(page_run)["status"] in ("queued", "running")  # the page's run goes on
    ok(at)
    at.button(key=f"btn_remove_{other}").click().run()
    assert session.run_ids == [page_run]
    assert not any("Your other runs" in md.value for md in ok(at).markdown)
