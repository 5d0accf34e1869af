"""AppTest of the "One training step" page: every stage renders on the shipped models, the controls recompute the
step, the current model is unchanged until "Keep this step", and then it is the stepped copy."""

import os

import pytest
import torch
from streamlit.testing.v1 import AppTest

os.environ["SEQ2SEQ_TRAINER_BACKEND"] = "thread"
torch.set_num_threads(1)
APP = "../app.py"


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def page():
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/one_step.py")
    return ok(at.run())


def headers(at) -> list[str]:
    return [h.value for h in at.header]


def test_opens_on_stage_one_and_next_walks_every_stage(page):
    assert page.title[0].value == "One training step"
    assert headers(page) == ["1. Encoder forward"]
    seen = [headers(page)[0]]
    for _ in range(4):
        page.button(key="step_next").click().run()
        seen.append(headers(ok(page))[0])
    assert [s.split(":")[0] for s in seen] == [
        "1. Encoder forward",
        "2. Decoder, teacher-forced",
        "3. The loss",
        "4. Backward",
        "5. One optimizer step",
    ]
    assert "Adam" in seen[-1]
    assert [b for b in page.button if b.key == "step_next"] == []  # no "next" after the last stage


def test_all_five_stages_at_once_on_every_shipped_model(page):
    page.segmented_control(key="step_stage").set_value("All five").run()
    assert len(headers(ok(page))) == 5
    for label in page.sidebar.selectbox[0].options:
        if not label.startswith("pretrained"):
            continue
        page.sidebar.selectbox[0].set_value(label).run()
        ok(page)
        assert len(headers(page)) == 5, label
        cur = page.session_state["current"]
        charts = page.get("plotly_chart")
        assert len(charts) >= 8 + (cur.model_cfg.attention != "none"), label


def test_controls_recompute_and_the_model_stays_unchanged(page):
    cur = page.session_state["current"]
    weights = {k: v.clone() for k, v in cur.model.state_dict().items()}
    page.segmented_control(key="step_stage").set_value("3. The loss").run()
    loss_1 = ok(page).metric[0].value
    page.selectbox(key="step_pair").set_value(3).run()
    loss_2 = ok(page).metric[0].value
    assert loss_1 != loss_2
    page.segmented_control(key="step_stage").set_value("5. One optimizer step").run()
    for opt in ("sgd", "rmsprop", "adam"):
        page.radio(key="step_opt").set_value(opt).run()
        assert {"sgd": "SGD", "rmsprop": "RMSprop", "adam": "Adam"}[opt] in headers(ok(page))[0]
    page.select_slider(key="step_lr").set_value(0.1).run()
    page.select_slider(key="step_clip").set_value(0.0).run()
    assert "learning rate 0.1" in headers(ok(page))[0]
    assert all(torch.equal(v, weights[k]) for k, v in page.session_state["current"].model.state_dict().items())


def test_keep_this_step_makes_the_stepped_copy_current(page):
    page.segmented_control(key="step_stage").set_value("5. One optimizer step").run()
    cur = page.session_state["current"]
    before = {k: v.clone() for k, v in cur.model.state_dict().items()}
    w = next(iter(page.session_state["step_cache"].values()))
    page.button(key="step_keep").click().run()
    new = ok(page).session_state["current"]
    assert new.uid != cur.uid and "single-example step" in new.name
    assert all(torch.equal(v, w.new_state[k]) for k, v in new.model.state_dict().items())
    assert any(not torch.equal(v, before[k]) for k, v in new.model.state_dict().items())
    assert any("Kept the step" in s.value for s in page.success)
    assert "single-example step" in " ".join(str(getattr(e, "value", "")) for e in page.sidebar)
