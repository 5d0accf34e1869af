"""AppTest of the Compare page (pages/compare.py, ui/compare.py): the model list and its controls, a two-model
comparison trained live to the end with its measurements and "use this model", pause / resume / stop, the
"Why attention?" preset, and the run allowance (a comparison counts as one run of the session).

Training uses the in-process ThreadBackend on a tiny dataset; every run is closed in teardown."""

import json
import os
import time

import pytest
import torch
from streamlit.testing.v1 import AppTest
from test_app_build import chart_data, find, ok, sidebar_text, small_data, wait_for

from seq2seq.model import count_parameters

os.environ["SEQ2SEQ_TRAINER_BACKEND"] = "thread"
torch.set_num_threads(1)
APP = "../app.py"


@pytest.fixture
def app():
    at = AppTest.from_file(APP, default_timeout=60).run()
    yield at
    from seq2seq.trainer import get_trainer

    t = get_trainer("thread")
    for rid in t.run_ids():
        t.close(rid)


def to_compare(at: AppTest) -> AppTest:
    small_data(at)  # reversal of 200 pairs, at most 6 letters; the Model page's LSTM with H=16, E=8
    at.switch_page("pages/model.py").run()
    at.segmented_control(key="attention").set_value("none").run()  # model A without attention (B: "with ...")
    at.switch_page("pages/compare.py").run()
    return ok(at)


def rows(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "■</span>" in m.value]


def statuses(at: AppTest) -> list[str]:
    tables = [d for d in at.dataframe if "status" in d.value.columns]
    return list(tables[0].value["status"]) if tables else []


def test_compare_model_list_controls(app):
    to_compare(app)
    assert app.title[0].value == "Compare models side by side"
    assert len(rows(app)) == 1 and "A: LSTM, bidirectional, no attention" in rows(app)[0]
    assert app.button(key="btn_cmp_start").disabled  # one model: nothing to compare yet
    choices = app.selectbox(key="cmp_add").options
    assert "with additive attention" in choices and "with an LSTM cell" not in choices  # A is an LSTM already
    app.selectbox(key="cmp_add").set_value("with additive attention")
    app.button(key="btn_cmp_add").click().run()
    assert [r.split("</span> ")[1] for r in rows(ok(app))] == [
        "A: LSTM, bidirectional, no attention",
        "B: + additive attention",
    ]
    assert not app.button(key="btn_cmp_start").disabled
    app.button(key="btn_cmp_add").click().run()  # the same again: refused in one line
    assert any("already in the list" in w.value for w in ok(app).warning) and len(rows(app)) == 2
    for v in ("with an RNN cell", "with a GRU cell"):
        app.selectbox(key="cmp_add").set_value(v)
        app.button(key="btn_cmp_add").click().run()
    assert [r.split("</span> ")[1] for r in rows(ok(app))][2:] == ["C: RNN cell", "D: GRU cell"]
    assert app.button(key="btn_cmp_add").disabled and app.selectbox(key="cmp_add").disabled  # 4 = the most
    app.button(key="btn_cmp_remove_2").click().run()
    assert [r.split("</span> ")[1] for r in rows(ok(app))][2:] == ["C: GRU cell"]
    assert "parameters" in " ".join(m.value for m in app.markdown)
    # model A follows the Model page after a reset
    app.switch_page("pages/model.py").run()
    app.segmented_control(key="cell").set_value("gru").run()
    app.switch_page("pages/compare.py").run()
    assert "A: LSTM" in rows(ok(app))[0]  # the list is kept across pages...
    app.button(key="btn_cmp_reset").click().run()
    assert len(rows(ok(app))) == 1 and "A: GRU" in rows(app)[0]  # ...until reset


def test_compare_two_models_live_measured_and_used(app):
    to_compare(app)
    app.selectbox(key="cmp_add").set_value("with additive attention")
    app.button(key="btn_cmp_add").click().run()
    app.number_input(key="cmp_epochs").set_value(12).run()
    app.button(key="btn_cmp_start").click().run()
    ok(app)
    assert len(app.session_state["cmp_run"].run_ids) == 2
    # both models' curves appear on one chart per measure
    wait_for(
        app,
        lambda a: (
            len(find(a, "vega_lite_chart")) == 4
            and set(chart_data(find(a, "vega_lite_chart")[0])["series"])
            == {"A: LSTM, bidirectional, no attention", "B: + additive attention"}
        ),
        timeout=40,
    )
    wait_for(app, lambda a: statuses(a) == ["finished", "finished"], timeout=90)
    loss = chart_data(find(app, "vega_lite_chart")[0])
    assert all((loss["series"] == s).sum() >= 2 for s in set(loss["series"]))  # curves, not single points
    table = [d for d in app.dataframe if "status" in d.value.columns][0].value
    assert list(table["parameters"]) == [count_parameters(c)["total"] for c in app.session_state["cmp_run"].cfgs]
    assert (table["steps/s"] > 0).all() and (table["step"] == table["step"][0]).all()  # same budget, same steps
    samples = [d for d in app.dataframe if "input" in d.value.columns][0].value
    assert list(samples.columns) == ["input", "target", "A", "B"] and len(samples) > 0
    assert all(p[:2] in ("✓ ", "✗ ") for p in samples["A"])
    # measured at the end: a gradient chart and an accuracy-by-length chart, one line per model
    figs = find(app, "plotly_chart")
    specs = [json.loads(f.proto.spec) for f in figs]
    grads = [s for s in specs if "‖∂L/∂h_t‖" in s["layout"]["title"]["text"]][0]
    by_len = [s for s in specs if "by source length" in s["layout"]["title"]["text"]][0]
    assert [t["name"] for t in grads["data"]] == ["A: LSTM, bidirectional, no attention", "B: + additive attention"]
    assert len(by_len["data"]) == 2 and max(by_len["data"][0]["x"]) > 6  # lengths past the training range (<= 6)
    assert all(0 <= y <= 1 for t in by_len["data"] for y in t["y"])
    app.segmented_control(key="cmp_measure").set_value("token accuracy").run()
    title = [json.loads(f.proto.spec)["layout"]["title"]["text"] for f in find(ok(app), "plotly_chart")]
    assert "Token accuracy by source length" in title
    # use model B on the inspection pages
    app.button(key="btn_cmp_use_1").click().run()
    cur = app.session_state["current"]
    assert "model B of a comparison" in cur.name and cur.model_cfg.attention == "additive"
    assert "model B of a comparison" in sidebar_text(ok(app))
    assert any(s.value.startswith("Now showing") for s in app.success)
    app.switch_page("pages/decoder.py").run()
    ok(app)


def test_compare_pause_resume_stop_and_measure_now(app):
    to_compare(app)
    app.selectbox(key="cmp_add").set_value("with a GRU cell")
    app.button(key="btn_cmp_add").click().run()
    app.number_input(key="cmp_epochs").set_value(500).run()
    app.button(key="btn_cmp_start").click().run()
    wait_for(ok(app), lambda a: statuses(a) == ["running", "running"] and not a.button(key="btn_cmp_pause").disabled)
    assert app.button(key="btn_cmp_use_0").disabled  # not while it trains
    app.button(key="btn_cmp_pause").click().run()
    wait_for(app, lambda a: statuses(a) == ["paused", "paused"])
    assert not app.button(key="btn_cmp_resume").disabled and app.button(key="btn_cmp_pause").disabled
    app.button(key="btn_cmp_resume").click().run()
    wait_for(app, lambda a: statuses(a) == ["running", "running"])
    wait_for(app, lambda a: all(s > 0 for s in [d for d in a.dataframe if "step" in d.value.columns][0].value["step"]))
    app.button(key="btn_cmp_measure").click().run()  # measure while training
    assert len(find(ok(app), "plotly_chart")) == 2
    app.button(key="btn_cmp_stop").click().run()
    wait_for(app, lambda a: statuses(a) == ["stopped", "stopped"])
    assert app.button(key="btn_cmp_stop").disabled and not app.button(key="btn_cmp_use_1").disabled
    time.sleep(0.5)
    app.run()
    steps = list([d for d in app.dataframe if "step" in d.value.columns][0].value["step"])
    time.sleep(1.0)
    app.run()
    assert list([d for d in app.dataframe if "step" in d.value.columns][0].value["step"]) == steps  # really stopped


def test_why_attention_preset_sets_up_the_classic_experiment(app):
    from ui.compare import probe_pairs

    app.switch_page("pages/compare.py").run()
    app.button(key="btn_why").click().run()
    cmp = ok(app).session_state["cmp_run"]
    try:
        assert [c.attention for c in cmp.cfgs] == ["none", "additive"]
        assert len({(c.cell, c.hidden, c.embed, c.bidirectional) for c in cmp.cfgs}) == 1  # only attention differs
        assert cmp.train_range == (5, 30) and cmp.train_cfg.epochs == 6 and cmp.task == "reverse"
        assert app.number_input(key="cmp_epochs").value == 6
        assert any("squeeze" in i.value or "context vector" in i.value for i in app.info)
        assert any("B: + additive attention" in r for r in rows(app))
        pairs = probe_pairs(cmp)
        lens = {len(s) for s, _ in pairs}
        assert lens == set(range(5, 41)) and not {s for s, _ in pairs} & {s for s, _ in cmp.data.train}
        wait_for(app, lambda a: statuses(a)[:1] in (["running"], ["queued"]))
    finally:
        app.button(key="btn_cmp_stop").click().run()
    ok(app)


def test_compare_problems_get_one_line_answers(app, monkeypatch):
    to_compare(app)
    app.selectbox(key="cmp_add").set_value("with twice the hidden units")
    app.button(key="btn_cmp_add").click().run()
    monkeypatch.setenv("SEQ2SEQ_MAX_PARAMS", "5000")
    app.run()
    assert "over the limit" in " ".join(m.value for m in ok(app).markdown)
    app.button(key="btn_cmp_start").click().run()
    warnings = [w.value for w in ok(app).warning]
    assert any("could not start" in w and "SEQ2SEQ_MAX_PARAMS" in w for w in warnings)
    assert app.session_state["cmp_run"] is None if "cmp_run" in app.session_state else True
    from seq2seq.trainer import get_trainer

    assert get_trainer("thread").run_ids() == []  # nothing left half-started


def test_a_comparison_counts_as_one_run_of_the_session(monkeypatch):
    """SessionTrainer: a comparison's runs count once against SEQ2SEQ_MAX_RUNS_PER_SESSION, and their number against
    SEQ2SEQ_MAX_COMPARE_MODELS."""
    from tiny import cfgs, tiny_data

    from seq2seq.limits import LimitError
    from seq2seq.trainer import get_trainer
    from ui.state import SessionTrainer

    monkeypatch.setenv("SEQ2SEQ_MAX_RUNS_PER_SESSION", "2")
    data = tiny_data(20)
    m, t = cfgs(data, epochs=200)
    st = SessionTrainer(get_trainer("thread"))
    try:
        for _ in range(4):
            st.start(data, m, t, group="g1")  # 4 models: one unit of the session's 2
        with pytest.raises(LimitError, match="SEQ2SEQ_MAX_COMPARE_MODELS"):
            st.start(data, m, t, group="g1")
        st.start(data, m, t)  # the Train page's run: the second unit
        with pytest.raises(LimitError, match="SEQ2SEQ_MAX_RUNS_PER_SESSION"):
            st.start(data, m, t, group="g2")
        with pytest.raises(LimitError, match="SEQ2SEQ_MAX_RUNS_PER_SESSION"):
            st.start(data, m, t)
        for rid in st.run_ids[:4]:
            st.close(rid)
        st.start(data, m, t, group="g2")  # the comparison's runs are gone: room again
    finally:
        st.close_all()
