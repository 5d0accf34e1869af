"""AppTest of the shareable setup: the URL carries the settings of every page, a link applies them on any page, and
the sidebar shows the link; plus the sidebar's live status line of the Train page run.

Streamlit 1.67 keeps only the CURRENT page's bound widgets in the URL (and the frontend clears the query string on a
page switch), so ui/state.py writes the other pages' settings itself (sync_url) and applies a link's settings on a
session's first run (seed_from_url). In AppTest, `at.query_params` after a run is the query string the app last sent:
bound widgets changed on the current page are mirrored by the browser, not sent, so the checks look at settings of
pages other than the one shown.
"""

import os
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import torch
from streamlit.testing.v1 import AppTest

os.environ["SEQ2SEQ_TRAINER_BACKEND"] = "thread"
torch.set_num_threads(1)
from ui.state import list_pretrained  # noqa: E402  (after the backend choice above)

APP = "../app.py"
LINK = {
    "task": "addition",
    "cell": "gru",
    "hidden": "64",
    "lr": "0.01",
    "attention": "additive",
    "addition.digits": "2",
}


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    return " | ".join(t.value for t in at.text)


def opened(page: str | None, params: dict[str, str]) -> AppTest:
    """A fresh session opened at /page?params (a shared link), after its first run."""
    at = AppTest.from_file(APP, default_timeout=60)
    if page:
        at.switch_page(page)
    for k, v in params.items():
        at.query_params[k] = v
    return ok(at.run())


@pytest.fixture(autouse=True)
def _close_runs():
    yield
    from seq2seq.trainer import get_trainer

    t = get_trainer("thread")
    for rid in t.run_ids():
        t.close(rid)


def go(at: AppTest, page: str) -> AppTest:
    """Switch page like the sidebar does. AppTest (unlike the browser, which sends no widget states on a page switch)
    sends the previous page's widget states along, so their URL bindings live through the new page's first run and
    block writing those settings; the run after brings the URL up to date."""
    return ok(at.switch_page(page).run().run())


def share_link(at: AppTest) -> str:
    codes = [c.value for c in at.sidebar.code]
    assert len(codes) == 1, codes
    return codes[0]


# ------------------------------------------------------------------------------------------------ a link is applied
def test_deep_link_on_train_page_applies_data_model_and_training_settings():
    at = opened("pages/train.py", LINK)
    assert at.title[0].value.startswith("Train")
    shown = texts(at)
    assert "GRU + additive attention, bidirectional, E=32, H=64" in shown, shown
    assert "task: addition" in shown
    assert at.select_slider(key="lr").value == 0.01  # this page's own widget, from the same link
    # the other pages open with the link's values
    at.switch_page("pages/model.py").run()
    assert ok(at).segmented_control(key="cell").value == "gru"
    assert at.select_slider(key="hidden").value == 64 and at.segmented_control(key="attention").value == "additive"
    at.switch_page("pages/data.py").run()
    assert ok(at).selectbox(key="task").value == "addition"
    assert at.number_input(key="addition.digits").value == 2
    assert all("+" in src and len(src.split("+")[0]) <= 2 for src, _ in at.session_state["data"].train[:50])


def test_deep_link_on_data_page_keeps_the_model_and_training_settings_in_the_url():
    at = opened(None, LINK)
    assert at.title[0].value.startswith("Data")
    assert at.selectbox(key="task").value == "addition"
    qp = at.query_params  # the settings of the pages not shown stay in the URL
    assert {k: qp.get(k) for k in ("cell", "hidden", "lr", "attention")} == {
        "cell": "GRU",
        "hidden": "64",
        "lr": "0.01",
        "attention": "additive",
    }


def test_bad_values_in_a_link_are_ignored_and_dropped_from_the_url():
    at = opened(
        "pages/train.py",
        {
            "cell": "transformer",
            "hidden": "65",
            "lr": "banana",
            "epochs": "99999",
            "budget": "epochs",
            "task": "<script>",
            "layers": "2",
        },
    )
    shown = texts(at)
    assert "LSTM + dot attention, bidirectional, 2 layers, E=32, H=128" in shown, (
        shown
    )  # defaults, except the one good value
    assert "task: reverse" in shown
    assert at.number_input(key="epochs").value == 1000  # clamped to the widget's maximum
    for k in ("cell", "hidden", "task"):
        assert k not in at.query_params
    assert at.query_params.get("layers") == "2"


def test_link_names_the_shipped_model_to_show():
    from ui import state

    shipped = [n for n, _ in state.list_pretrained()]
    if len(shipped) < 2:
        pytest.skip("needs two shipped pretrained models")
    other = shipped[1]
    at = opened("pages/train.py", {"model": other})
    assert at.session_state["current"].name.startswith(f"pretrained: {other} (")
    assert at.query_params.get("model") == other
    at = opened(None, {"model": "../../etc/passwd"})  # not a shipped model: the default opens
    assert at.session_state["current"].name.startswith(f"pretrained: {shipped[0]} (")
    assert "model" not in at.query_params


# --------------------------------------------------------------------------------------- the URL keeps everything
def test_url_keeps_every_setting_across_data_model_train():
    at = ok(AppTest.from_file(APP, default_timeout=60).run())
    at.selectbox(key="task").set_value("addition").run()
    at.number_input(key="addition.digits").set_value(4).run()
    at.slider(key="max_len").set_value(20).run()
    go(at, "pages/model.py")
    assert at.query_params.get("task") == "addition" and at.query_params.get("addition.digits") == "4"
    at.segmented_control(key="cell").set_value("gru").run()
    at.select_slider(key="hidden").set_value(64).run()
    at.toggle(key="bidir").set_value(False).run()
    go(at, "pages/train.py")
    qp = ok(at).query_params
    assert {k: qp.get(k) for k in ("task", "addition.digits", "max_len", "cell", "hidden", "bidir")} == {
        "task": "addition",
        "addition.digits": "4",
        "max_len": "20",
        "cell": "GRU",
        "hidden": "64",
        "bidir": "false",
    }
    assert "GRU + dot attention, E=32, H=64" in texts(at)
    at.select_slider(key="lr").set_value(0.03).run()
    at.segmented_control(key="opt").set_value("sgd").run()
    at.selectbox(key="sched").set_value("plateau").run()
    go(at, "pages/encoder.py")  # an inspection page: the whole setup stays in the URL
    qp = ok(at).query_params
    assert qp.get("lr") == "0.03" and qp.get("opt") == "sgd" and qp.get("cell") == "GRU"
    assert qp.get("sched") == "plateau"
    # back to a default: the parameter leaves the URL
    go(at, "pages/model.py")
    at.segmented_control(key="cell").set_value("lstm").run()
    go(at, "pages/data.py")
    assert "cell" not in ok(at).query_params and at.query_params.get("hidden") == "64"


def test_sidebar_share_link_opens_the_same_setup_in_a_new_session():
    at = ok(AppTest.from_file(APP, default_timeout=60).run())
    assert share_link(at).startswith("(all settings are at their defaults")
    at.selectbox(key="task").set_value("dates").run()
    at.switch_page("pages/model.py").run()
    at.select_slider(key="emb").set_value(16).run()
    at.segmented_control(key="layers").set_value(2).run()
    at.slider(key="dropout").set_value(0.2).run()
    at.switch_page("pages/train.py").run()
    at.segmented_control(key="budget").set_value("seconds").run()
    at.number_input(key="seconds").set_value(30).run()
    at.run()
    link = share_link(at)
    query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    assert query == {
        "task": "dates",
        "emb": "16",
        "layers": "2",
        "dropout": "0.2",
        "budget": "seconds",
        "seconds": "30",
    }, link
    before = {k: at.session_state[k] for k in ("task", "emb", "layers", "dropout", "budget", "seconds")}
    other = opened("pages/train.py", query)  # a colleague opens the link
    assert {k: other.session_state[k] for k in before} == before
    assert "LSTM + dot attention, bidirectional, 2 layers, E=16, H=128" in texts(other) and "task: dates" in texts(
        other
    )
    assert share_link(other) == link


# ------------------------------------------------------------------------------------- live status in the sidebar
def test_sidebar_run_status_is_a_live_fragment_while_training(monkeypatch):
    import streamlit as st

    from ui import sidebar

    calls = []
    real = st.fragment

    def spy(func=None, *, run_every=None, **kw):
        if getattr(func, "__name__", "") == "_run_status":
            calls.append(run_every)
        return real(func, run_every=run_every, **kw)

    monkeypatch.setattr(sidebar.st, "fragment", spy)
    at = ok(AppTest.from_file(APP, default_timeout=60).run())
    assert not at.sidebar.get("progress") and calls == []  # no run: no status line, nothing polls
    at.slider(key="reverse.n").set_value(200).run()
    at.switch_page("pages/model.py").run()
    at.select_slider(key="hidden").set_value(16).run()
    at.select_slider(key="emb").set_value(8).run()
    at.switch_page("pages/train.py").run()
    at.segmented_control(key="budget").set_value("epochs").run()
    at.number_input(key="epochs").set_value(3).run()
    at.button(key="btn_start").click().run()

    def line() -> str:
        bars = ok(at).sidebar.get("progress")
        return bars[0].proto.text if bars else ""

    assert line().startswith(("Train page run: queued", "Train page run: running")), line()
    assert calls[-1] == 1.0  # polled every second while the run trains
    end = time.time() + 40
    while not line().startswith("Train page run: finished") and time.time() < end:
        time.sleep(0.3)
        at.run()
    assert line().startswith("Train page run: finished · 100%"), line()
    at.run()
    assert calls[-1] is None  # the run ended: polling stopped
    at.switch_page("pages/decoder.py").run()  # on every page
    assert line().startswith("Train page run: finished")


def test_link_is_shown_when_the_page_stops_early():
    at = opened(None, {"source": "Upload a file", "cell": "rnn"})  # no file yet: the Data page stops with a hint
    assert at.segmented_control(key="source").value == "Upload a file"
    link = share_link(at)
    assert "cell=RNN" in link and "source=Upload" in link
    assert "uploaded data file cannot travel" in " ".join(c.value for c in at.sidebar.caption)
    assert at.query_params.get("cell") == "RNN"


@pytest.mark.parametrize("name", [n for n, _ in list_pretrained()])
def test_every_shipped_model_opens_on_every_inspection_page(name):
    """A link with model=NAME makes that pretrained model current; the Encoder, Hidden states and Decoder pages draw
    it without an error (every cell, attention kind, direction and tokenization the shipped models cover)."""
    for page in ("pages/encoder.py", "pages/states.py", "pages/decoder.py"):
        at = opened(page, {"model": name})
        assert f"pretrained: {name}" in texts(at), (page, texts(at)[:300])
        assert at.get("plotly_chart"), f"{page} drew no figure for {name}"
