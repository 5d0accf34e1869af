"""AppTest of lesson mode: the Lesson page starts it; Next / Back walk every step, each opening its page with its
model and presets; the timestep buttons move the page's slider; presenter mode and End lesson."""

import os

import pytest
import torch
from streamlit.testing.v1 import AppTest

from ui import lesson

os.environ["SEQ2SEQ_TRAINER_BACKEND"] = "thread"
torch.set_num_threads(1)
APP = "../app.py"
TITLES = {
    "pages/data.py": "Data",
    "pages/encoder.py": "Encoder",
    "pages/states.py": "Hidden states",
    "pages/decoder.py": "Decoder",
    "pages/one_step.py": "One training step",
}


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def lesson_page():
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/lesson.py")
    return ok(at.run())


def btn(at, key):
    found = [b for b in at.button if b.key == key]
    return found[0] if found else None


def test_next_walks_every_step_with_its_page_model_and_presets(lesson_page):
    at = lesson_page
    assert at.title[0].value.startswith("Lesson") and btn(at, "lesson_next") is None  # no bar before it starts
    btn(at, "lesson_start").click().run()
    for k, step in enumerate(lesson.STEPS):
        ok(at)
        assert at.session_state[lesson.K_STEP] == k
        assert at.title[0].value.startswith(TITLES[step.page]), (k, at.title[0].value)
        assert f"step {k + 1} of {len(lesson.STEPS)}" in at.markdown[0].value
        assert at.session_state["current"].name.startswith(f"pretrained: {step.model} (")
        for key, value in step.preset.items():
            assert at.session_state[key] == value or key in ("enc_step", "dec_step"), (k, key)
        if step.input is not None:
            assert at.session_state["inspect_text"] == step.input
        nxt = btn(at, "lesson_next")
        assert nxt.proto.shortcut == lesson.NEXT_KEY.lower()
        if k + 1 < len(lesson.STEPS):
            nxt.click().run()
    assert btn(at, "lesson_next").disabled
    btn(at, "lesson_back").click().run()
    assert ok(at).session_state[lesson.K_STEP] == len(lesson.STEPS) - 2
    btn(at, "lesson_end").click().run()
    assert btn(ok(at), "lesson_next") is None and not at.session_state[lesson.K_ON]


def test_timestep_buttons_move_the_encoder_slider(lesson_page):
    at = lesson_page
    at.button(key="lesson_open_1").click().run()  # "The encoder reads: h_t"
    at.switch_page("pages/encoder.py").run()  # AppTest's own idea of the page follows the script's switch_page
    assert ok(at).title[0].value.startswith("Encoder") and at.slider(key="enc_step").value == 1
    btn(at, "lesson_ts_next").click().run()
    btn(ok(at), "lesson_ts_next").click().run()
    assert ok(at).slider(key="enc_step").value == 3
    for _ in range(10):  # past the end: the page keeps it inside the input
        btn(at, "lesson_ts_next").click().run()
    assert ok(at).slider(key="enc_step").value == len("hello")
    btn(at, "lesson_ts_back").click().run()
    assert ok(at).slider(key="enc_step").value == len("hello") - 1


def test_presenter_mode_survives_pages_and_lesson_end(lesson_page):
    at = lesson_page
    at.sidebar.button(key="lesson_presenter_btn").click().run()
    assert ok(at).session_state[lesson.K_PRESENTER]
    at.button(key="lesson_open_0").click().run()
    btn(ok(at), "lesson_next").click().run()
    assert ok(at).session_state[lesson.K_PRESENTER]
    btn(at, "lesson_end").click().run()
    at.switch_page("pages/decoder.py").run()
    assert ok(at).session_state[lesson.K_PRESENTER]
    at.sidebar.button(key="lesson_presenter_btn").click().run()
    assert not ok(at).session_state[lesson.K_PRESENTER]
