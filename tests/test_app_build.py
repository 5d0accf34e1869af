"""AppTest of the app shell (app.py + sidebar) and the Data, Model and Train pages.

Each test runs the whole app (app.py: navigation + sidebar) and switches pages like a user. Training uses the
in-process ThreadBackend (SEQ2SEQ_TRAINER_BACKEND=thread) on a tiny dataset; every run is closed in teardown,
because AppTest never fires the session's on_release.
"""

import io
import json
import os
import time
import zipfile

import pytest
import torch
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

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


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def find(at: AppTest, kind: str) -> list:
    """Every element of a type in the tree (vega_lite_chart, plotly_chart...), whatever block it sits in."""
    out = []

    def walk(node):
        if getattr(node, "type", None) == kind:
            out.append(node)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return out  # in page order


def chart_data(el) -> "pd.DataFrame":  # noqa: F821
    return convert_arrow_bytes_to_pandas_df(el.proto.data.data)


def sidebar_text(at: AppTest) -> str:
    return " ".join(str(getattr(e, "value", "")) for e in at.sidebar)


# ---------------------------------------------------------------------------------------------------------- shell
def test_app_opens_on_data_page_with_sidebar(app):
    ok(app)
    assert app.title[0].value.startswith("Data")
    assert "Current model" in sidebar_text(app)
    labels = [b.proto.label for b in find(app, "download_button")]
    assert labels == ["Download current model (.zip)", "Download the code behind it (.py)"]
    app.run()  # a second run keeps the app shell (the sidebar) around the page
    assert "Current model" in sidebar_text(ok(app))


def test_sidebar_code_download_names_the_task_and_refuses_unknown_tokens(app, monkeypatch):
    from seq2seq import export

    code = [b for b in find(app, "download_button") if "code" in b.proto.label]
    assert code and code[0].proto.help.count("reverse_model.py") >= 1
    # an exporter that knows no char tokenizer: the shipped char model's tokenization is then unknown to it
    monkeypatch.setattr(export, "TOKENIZERS", {k: v for k, v in export.TOKENIZERS.items() if k != "char"})
    app.run()
    assert "code" not in " ".join(b.proto.label for b in find(ok(app), "download_button"))
    assert "No code download for this model" in " ".join(c.value for c in app.sidebar.caption)


def test_sidebar_upload_rejects_bad_zip_without_traceback(app):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("config.json", json.dumps({"format_version": 1, "model": {"cell": "nope"}}))
    app.sidebar.file_uploader[0].upload("broken.zip", buf.getvalue(), "application/zip").run()
    ok(app)
    errors = [e.value for e in app.sidebar.error]
    assert errors and "not a usable checkpoint" in errors[0]
    app.sidebar.file_uploader[0].upload("junk.zip", b"PK\x03\x04 not really a zip", "application/zip").run()
    assert ok(app).sidebar.error


# ----------------------------------------------------------------------------------------------------------- Data
def test_data_task_changes_sample_table_and_tokens(app):
    first = app.dataframe[0].value
    assert list(first.columns) == ["source", "target"] and len(first) > 10
    app.selectbox(key="task").select("addition").run()
    table = ok(app).dataframe[0].value
    assert all("+" in s for s in table["source"].head(20)) and not table.equals(first)
    app.selectbox(key="task").select("translate").run()
    assert ok(app).radio(key="translate.tokens").value == "word"
    app.slider(key="max_len").set_value(6).run()
    assert any("Truncation cuts" in w.value for w in ok(app).warning)
    assert len(find(app, "plotly_chart")) == 4  # example grid, lengths, two vocabularies


def test_data_example_walkthrough_follows_the_chosen_row(app):
    fig = json.loads(find(app, "plotly_chart")[0].proto.spec)
    first = fig["data"][0]["text"]
    app.number_input(key="example").set_value(3).run()
    fig = json.loads(find(ok(app), "plotly_chart")[0].proto.spec)
    assert fig["data"][0]["text"] != first
    assert any("&lt;sos&gt;" in cell for row in fig["data"][0]["text"] for cell in row)


def test_data_upload_good_and_bad_files(app):
    app.segmented_control(key="source").set_value("Upload a file").run()
    uploader = ok(app).main.file_uploader[0]
    uploader.upload("empty.tsv", b"", "text/tab-separated-values").run()
    assert ok(app).error and "empty.tsv" in app.error[0].value
    rows = "".join(
        f"{w}\t{w[::-1]}\n"
        for w in (
            "abc",
            "hello",
            "world",
            "stream",
            "seq",
            "model",
            "token",
            "state",
            "vector",
            "context",
            "decoder",
            "encoder",
        )
    )
    app.main.file_uploader[0].upload("pairs.tsv", rows.encode(), "text/tab-separated-values").run()
    ok(app)
    assert not app.error
    assert list(app.dataframe[0].value.columns) == ["1", "2"]  # the column picker's preview comes first
    assert set(app.dataframe[1].value["source"]) <= {
        "abc",
        "hello",
        "world",
        "stream",
        "seq",
        "model",
        "token",
        "state",
        "vector",
        "context",
        "decoder",
        "encoder",
    }
    app.main.file_uploader[0].upload("tiny.tsv", b"a\tb\nc\td\n", "text/tab-separated-values").run()
    assert any("too small" in e.value for e in ok(app).error)


# ---------------------------------------------------------------------------------------------------------- Model
def test_model_layers_and_attention_change_counts_and_diagram(app):
    app.switch_page("pages/model.py").run()
    total = ok(app).metric[0].value
    height = json.loads(find(app, "plotly_chart")[0].proto.spec)["layout"]["height"]
    app.segmented_control(key="layers").set_value(3).run()
    assert ok(app).metric[0].value != total
    assert json.loads(find(app, "plotly_chart")[0].proto.spec)["layout"]["height"] > height
    app.segmented_control(key="attention").set_value("none").run()
    arch = json.loads(find(ok(app), "plotly_chart")[0].proto.spec)
    assert not any("attention" in a.get("text", "") for a in arch["layout"]["annotations"])
    app.segmented_control(key="attention").set_value("dot").run()
    arch = json.loads(find(ok(app), "plotly_chart")[0].proto.spec)
    assert any("attention" in a.get("text", "") for a in arch["layout"]["annotations"])


def test_recommended_settings_fill_both_pages_and_explain_themselves(app):
    app.switch_page("pages/model.py").run()
    app.segmented_control(key="attention").set_value("none").run()
    app.select_slider(key="hidden").set_value(16).run()
    app.button(key="btn_recommend_model").click().run()
    ok(app)
    assert app.segmented_control(key="attention").value == "dot" and app.select_slider(key="hidden").value == 128
    why = next(e for e in app.main.expander if e.label.startswith("Why these settings"))
    assert why.label.startswith("Why these settings (task: reverse") and "**attention = dot**" in why.markdown[0].value
    app.switch_page("pages/train.py").run()
    app.segmented_control(key="budget").set_value("seconds").run()
    app.select_slider(key="batch").set_value(256).run()
    app.button(key="btn_recommend_train").click().run()
    ok(app)
    assert app.segmented_control(key="budget").value == "until it stops improving"
    assert app.number_input(key="patience").value == 10 and app.select_slider(key="batch").value == 64
    assert any("LSTM + dot attention" in t.value for t in app.text)


def test_model_over_parameter_limit_is_explained(app):
    app.switch_page("pages/model.py").run()
    app.select_slider(key="hidden").set_value(512).run()
    app.select_slider(key="emb").set_value(256).run()
    app.segmented_control(key="layers").set_value(3).run()
    errors = [e.value for e in ok(app).error]
    assert errors and "SEQ2SEQ_MAX_PARAMS" in errors[0]
    assert app.button(key="btn_train").disabled


def test_model_choice_survives_page_switch_and_reaches_train(app):
    app.switch_page("pages/model.py").run()
    app.segmented_control(key="cell").set_value("gru").run()
    app.select_slider(key="hidden").set_value(64).run()
    app.switch_page("pages/data.py").run()
    app.switch_page("pages/model.py").run()
    assert ok(app).segmented_control(key="cell").value == "gru"
    app.switch_page("pages/train.py").run()
    assert any("GRU" in t.value and "H=64" in t.value for t in ok(app).text)


# ---------------------------------------------------------------------------------------------------------- Train
def small_data(at: AppTest) -> None:
    at.slider(key="reverse.n").set_value(200).run()
    at.number_input(key="reverse.max_len").set_value(6).run()
    at.switch_page("pages/model.py").run()
    at.select_slider(key="hidden").set_value(16).run()
    at.select_slider(key="emb").set_value(8).run()
    at.switch_page("pages/train.py").run()


def wait_for(at: AppTest, cond, timeout: float = 20.0) -> AppTest:
    end = time.time() + timeout
    while time.time() < end:
        time.sleep(0.3)
        at.run()
        if cond(at):
            return at
    raise AssertionError("condition not reached in time")


def progress_text(at: AppTest) -> str:
    return at.get("progress")[0].proto.text if at.get("progress") else ""


def test_train_start_shows_live_curves_then_use_the_model(app):
    small_data(app)
    app.segmented_control(key="budget").set_value("epochs").run()
    app.number_input(key="epochs").set_value(40).run()
    app.button(key="btn_start").click().run()
    ok(app)
    # the accuracy and per-timestep charts replace their "appears after the first evaluation" captions
    wait_for(
        app, lambda a: len(find(a, "vega_lite_chart")) == 4 and len(chart_data(find(a, "vega_lite_chart")[0])) >= 2
    )
    assert progress_text(app).split(" · ")[0] in ("running", "finished")
    charts = find(app, "vega_lite_chart")
    assert len(charts) == 4  # loss, accuracy, grad norms per group, per timestep
    assert set(chart_data(charts[0])["series"]) >= {"training loss"}
    # leave the page and come back: same run, curves intact
    run_id = app.session_state["run_id"]
    app.switch_page("pages/data.py").run()
    app.switch_page("pages/train.py").run()
    assert app.session_state["run_id"] == run_id and len(chart_data(find(ok(app), "vega_lite_chart")[0])) >= 2
    wait_for(app, lambda a: progress_text(a).startswith("finished"), timeout=40)
    assert not app.button(key="btn_use").disabled and not app.button(key="btn_continue").disabled
    wait_for(app, lambda a: len(a.dataframe) and len(a.dataframe[-1].value) > 0)  # sample predictions
    app.button(key="btn_use").click().run()
    assert app.session_state["current"].name.startswith("trained in this session #1")
    assert "trained in this session" in sidebar_text(ok(app))


def test_train_pause_resume_stop(app):
    small_data(app)
    app.segmented_control(key="budget").set_value("seconds").run()
    app.number_input(key="seconds").set_value(60).run()
    app.button(key="btn_start").click().run()
    wait_for(ok(app), lambda a: progress_text(a).startswith("running"))
    app.button(key="btn_pause").click().run()
    assert progress_text(ok(app)).startswith("paused") and not app.button(key="btn_resume").disabled
    app.button(key="btn_resume").click().run()
    wait_for(app, lambda a: progress_text(a).startswith("running"))
    app.button(key="btn_stop").click().run()
    assert progress_text(ok(app)).startswith("stopped")

    def step() -> int:
        return int(progress_text(app).split("step ")[1].split(" ")[0].replace(",", ""))

    time.sleep(0.5)  # let a snapshot already on its way from the worker arrive
    app.run()
    before = step()
    time.sleep(1.0)
    app.run()
    assert step() == before and progress_text(app).startswith("stopped")  # really stopped
    assert app.button(key="btn_pause").disabled and app.button(key="btn_stop").disabled


def test_train_diverged_and_queued_runs_are_explained(app):
    """The run's snapshot is set to what the trainer reports for a NaN loss (the preset test below diverges for
    real, by loss explosion), and the page must explain it; likewise a queued run shows its queue position."""
    from seq2seq.trainer import get_trainer

    small_data(app)
    app.button(key="btn_start").click().run()
    rid = app.session_state["run_id"]
    app.button(key="btn_stop").click().run()
    wait_for(app, lambda a: progress_text(a).startswith("stopped"))
    time.sleep(0.5)  # the worker's last push for this run has landed: nothing overwrites the planted snapshot
    shared = get_trainer("thread")
    with shared._lock:
        shared._snaps[rid] = dict(shared._snaps[rid], status="diverged", message="The loss became nan at step 3.")
    app.run()
    errors = [e.value for e in ok(app).error]
    assert any("NaN or infinite" in e and "lower the learning rate" in e for e in errors)
    assert app.button(key="btn_use").disabled and app.button(key="btn_continue").disabled
    with shared._lock:
        shared._pending.append(rid)  # as if every execution slot were busy
        shared._snaps[rid] = dict(shared._snaps[rid], status="queued")
    try:
        app.run()
        assert any("position 1 of 1" in i.value and "SEQ2SEQ_MAX_RUNS" in i.value for i in ok(app).info)
    finally:
        with shared._lock:
            shared._pending.remove(rid)


def captions(at: AppTest) -> str:
    return " | ".join(c.value for c in at.caption)


def test_train_page_says_how_the_server_is_shared(app):
    """A running run's page says how many runs share the server, what this one gets and its steps/s; the server's
    load (what a teacher checks) is on the page too."""
    small_data(app)
    app.segmented_control(key="budget").set_value("seconds").run()
    app.number_input(key="seconds").set_value(60).run()
    assert "This server: 0 runs training" in captions(ok(app))
    app.button(key="btn_start").click().run()
    wait_for(ok(app), lambda a: "steps/s" in captions(a))
    text = captions(app)
    assert "Yours is the only run training on this server" in text and "This server: 1 run training" in text
    app.button(key="btn_stop").click().run()
    assert "steps/s" not in captions(ok(app))


@pytest.mark.parametrize(
    "raw,want",
    [("45", 45.0), ("1e9", 600.0), ("-3", None), ("2", 5.0), ("nan", None), ("<script>", None), ("9" * 400, None)],
)
def test_lesson_link_sets_every_runs_budget(raw, want):
    """?lesson=N (a teacher's link): every run started on the Train page trains N seconds, whatever the widgets say;
    hostile values are clamped to [5, SEQ2SEQ_MAX_TRAIN_SECONDS] or ignored, never a traceback."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/train.py")
    at.query_params["lesson"] = raw
    try:
        ok(at.run())
        text = captions(at)
        if want is None:
            assert "Lesson setting" not in text and not at.segmented_control(key="budget").disabled
            return
        assert f"every run trains for {want:g} s" in text and "lesson link" in text
        assert at.segmented_control(key="budget").disabled
        at.button(key="btn_start").click().run()
        rid = ok(at).session_state["run_id"]
        assert rid, [w.value for w in at.warning] + [e.value for e in at.error]
        from seq2seq.trainer import get_trainer

        cfg = get_trainer("thread").snapshot(rid)["train_cfg"]  # what the run trains with
        cfg = cfg if isinstance(cfg, dict) else cfg.to_dict()
        assert cfg["max_seconds"] == want and cfg["epochs"] is None and cfg["stop_patience"] == 0 and rid
        assert at.query_params.get("lesson") in ([f"{want:g}"], f"{want:g}")  # the link stays a lesson link
    finally:
        from seq2seq.trainer import get_trainer

        t = get_trainer("thread")
        for rid in t.run_ids():
            t.close(rid)


def test_operator_lesson_seconds_applies_without_a_link(monkeypatch):
    monkeypatch.setenv("SEQ2SEQ_LESSON_SECONDS", "30")
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/train.py")
    assert "every run trains for 30 s" in captions(ok(at.run())) and "SEQ2SEQ_LESSON_SECONDS" in captions(at)


def test_train_this_model_button_with_a_non_default_model(app):
    app.switch_page("pages/model.py").run()
    app.segmented_control(key="cell").set_value("gru").run()
    app.button(key="btn_train").click().run()  # switch_page while the model's widgets are bound to the URL
    assert ok(app).title[0].value.startswith("Train")


# ------------------------------------------------------------------------------------------------ pretrained + zip
@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """Two tiny 'pretrained' checkpoints in a temporary pretrained/ folder (the real ones take long to train)."""
    from seq2seq import checkpoint
    from seq2seq.config import ModelConfig
    from seq2seq.data import build_data
    from seq2seq.model import Seq2Seq
    from seq2seq.tasks import generate_splits
    from ui import state

    for task, cell in (("reverse", "lstm"), ("copy", "gru")):
        data = build_data(dict(generate_splits(task, n_train=60, n_valid=10, n_test=10)), tokens="char")
        cfg = ModelConfig(len(data.src_vocab), len(data.tgt_vocab), cell=cell, embed=8, hidden=16, attention="dot")
        checkpoint.save(
            checkpoint.Checkpoint(
                model=Seq2Seq(cfg),
                model_cfg=cfg,
                train_cfg=None,
                tokens="char",
                src_vocab=data.src_vocab,
                tgt_vocab=data.tgt_vocab,
                metrics={"exact_match": 0.5},
                task=task,
            ),
            tmp_path / task,
        )
    monkeypatch.setattr(state, "PRETRAINED_DIR", tmp_path)
    return tmp_path


def test_sidebar_pretrained_default_switch_and_upload(shipped):
    from seq2seq import checkpoint

    at = ok(AppTest.from_file(APP, default_timeout=60).run())
    cur = at.session_state["current"]
    assert cur.name.startswith("pretrained: reverse") and cur.examples  # the preferred model opens the app
    assert "50.0%" in sidebar_text(at)  # best exact match from metrics.json
    pick = at.sidebar.selectbox(key="sb_model")
    assert pick.value == "pretrained: reverse" and "pretrained: copy" in pick.options
    pick.select("pretrained: copy").run()
    assert ok(at).session_state["current"].name.startswith("pretrained: copy")
    assert at.session_state["current"].model_cfg.cell == "gru"
    zipped = checkpoint.to_zip_bytes(checkpoint.load(shipped / "reverse"))
    at.sidebar.file_uploader[0].upload("mine.zip", zipped, "application/zip").run()
    assert ok(at).session_state["current"].name == "uploaded: mine.zip"
    assert at.session_state["current"].model_cfg.cell == "lstm"


def test_train_from_current_weights_needs_a_matching_vocabulary(app):
    """Continuing the current (pretrained) model on data whose tokens it has never seen is refused with a clear
    message; on data it knows (its own task), the run starts from its weights."""
    cur = app.session_state["current"]
    app.switch_page("pages/data.py").run()
    app.selectbox(key="task").set_value("translate").run()  # word tokens: never the default model's vocabulary
    app.switch_page("pages/train.py").run()
    app.radio(key="init").set_value("the current model's weights").run()
    assert any("Can't continue from the current model" in w.value for w in ok(app).warning)
    app.button(key="btn_start").click().run()
    assert "run_id" not in app.session_state or app.session_state["run_id"] is None
    assert any("could not start" in w.value and "tokens" in w.value for w in ok(app).warning)
    if cur.tokens == "char":  # same kind of tokens, but digits the (letters) model has never seen
        app.switch_page("pages/data.py").run()
        app.selectbox(key="task").set_value("addition").run()
        app.switch_page("pages/train.py").run()
        assert any("vocabulary" in w.value and "unknown to the model" in w.value for w in ok(app).warning)
    if cur.task:  # the model's own task: same tokens, so the data is re-encoded with the model's vocabularies
        app.switch_page("pages/data.py").run()
        app.selectbox(key="task").set_value(cur.task).run()
        app.switch_page("pages/train.py").run()
        assert not any("Can't continue" in w.value for w in ok(app).warning)
        app.button(key="btn_start").click().run()
        assert app.session_state["run_id"]
        wait_for(app, lambda a: progress_text(a).split(" · ")[0] in ("running", "finished"))
        app.button(key="btn_stop").click().run()


def test_train_diverging_preset_really_diverges_and_is_explained(app):
    """The "Show a diverging run" preset (SGD, lr 1000, no clipping) makes a real run blow up; the page says so
    in an error message instead of crashing, and the broken model cannot be used."""
    small_data(app)
    app.button(key="btn_diverge").click().run()
    assert app.session_state["opt"] == "sgd" and app.session_state["lr"] == 1000.0 and app.session_state["clip"] == 0
    assert any("diverges" in w.value for w in ok(app).warning)
    app.button(key="btn_start").click().run()
    wait_for(ok(app), lambda a: progress_text(a).startswith("diverged"), timeout=30)
    errors = " ".join(e.value for e in ok(app).error)
    assert "lower the learning rate" in errors
    assert app.button(key="btn_use").disabled


def test_inspection_input_survives_page_switches(app):
    """The source text is shared by Encoder, Hidden states and Decoder, and kept when the user visits other pages
    (Streamlit drops a widget's own state when its page is left)."""
    app.switch_page("pages/encoder.py").run()
    first = app.text_input(key="inspect_src").value
    assert first
    for page in ("pages/states.py", "pages/decoder.py", "pages/data.py", "pages/encoder.py"):
        app.switch_page(page).run()
        if page != "pages/data.py":
            assert ok(app).text_input(key="inspect_src").value == first, page
    app.text_input(key="inspect_src").set_value("abcdef").run()
    app.switch_page("pages/train.py").run()
    app.switch_page("pages/decoder.py").run()
    assert ok(app).text_input(key="inspect_src").value == "abcdef" and not app.error
