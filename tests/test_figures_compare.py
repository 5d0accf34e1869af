"""ui/figures_compare.py: labels naming each model's difference, one styled line per model, the training range shaded,
Vega-Lite specs with one colour and dash per model; no Streamlit import."""

import ast
from pathlib import Path

import numpy as np

from seq2seq.config import ModelConfig
from ui import figures_compare as fc


def cfg(**kw) -> ModelConfig:
    return ModelConfig(30, 30, **kw)


def test_labels_name_each_difference_from_model_a():
    a = cfg(cell="lstm", attention="none", bidirectional=True)
    others = [
        cfg(cell="lstm", attention="additive"),
        cfg(cell="rnn", attention="none"),
        cfg(cell="gru", hidden=256, bidirectional=False, attention="none"),
        cfg(attention="none"),
    ]
    assert fc.model_labels([a, *others[:3]]) == [
        "A: LSTM, bidirectional, no attention",
        "B: + additive attention",
        "C: RNN cell",
        "D: GRU cell, one-directional, H=256",
    ]
    assert fc.model_labels([cfg(attention="dot"), cfg(attention="none")]) == [
        "A: LSTM, bidirectional, dot attention",
        "B: no attention",
    ]
    assert fc.model_labels([a, others[3]])[1] == "B: the same as A" and fc.model_labels([]) == []


def test_curves_one_styled_line_per_model_and_empty_message():
    fig = fc.fig_curves(
        [("A: x", [1, 2, 3], [1.0, float("nan"), 0.5]), ("B: <b>y</b>", [1, 2], [2.0, 1.0])], "Loss", "step", "loss"
    )
    assert [t.name for t in fig.data] == ["A: x", "B: &lt;b&gt;y&lt;/b&gt;"]  # user-ish text stays literal
    assert list(fig.data[0].x) == [1, 3] and list(fig.data[0].y) == [1.0, 0.5]  # the NaN point dropped
    assert fig.data[0].line.color != fig.data[1].line.color and fig.data[0].line.dash != fig.data[1].line.dash
    long = fc.fig_curves([("A", np.arange(5000), np.ones(5000))], "t", "x", "y")
    assert len(long.data[0].x) <= 301 and long.data[0].x[-1] == 4999  # thinned, the newest point kept
    empty = fc.fig_curves([], "t", "x", "y", empty="nothing yet")
    assert empty.layout.annotations[0].text == "nothing yet"


def test_timestep_grads_log_scale_drops_zeros():
    fig = fc.fig_timestep_grads([("A", [1e-6, 0.0, 1e-2]), ("B", [0.1, 0.2, 0.3])], "grads")
    assert fig.layout.yaxis.type == "log" and list(fig.data[0].x) == [1, 3] and list(fig.data[1].x) == [1, 2, 3]
    assert fig.layout.xaxis.title.text == "encoder timestep t"


def test_accuracy_by_length_shades_the_training_range():
    rows = [{"length": n, "n": 5, "exact_match": 1 - n / 40, "token_accuracy": 1.0} for n in range(5, 41)]
    fig = fc.fig_accuracy_by_length([("A", rows), ("B", rows[:3])], "exact_match", train_range=(5, 30))
    assert fig.layout.title.text == "Exact match by source length" and len(fig.data) == 2
    assert list(fig.data[0].x) == list(range(5, 41)) and fig.data[0].y[0] == 1 - 5 / 40
    (band,) = fig.layout.shapes
    assert (band.x0, band.x1) == (4.5, 30.5)
    tok = fc.fig_accuracy_by_length([("A", rows)], "token_accuracy")
    assert tok.layout.title.text == "Token accuracy by source length" and not tok.layout.shapes


def test_live_tables_and_specs():
    h1 = {"step": [1, 2, 3], "train_loss": [3.0, 2.0, 1.0]}
    h2 = {"step": [1, 2], "train_loss": [3.0, float("inf")]}
    table = fc.curves_table([("A", h1), ("B", h2), ("C", {})], "step", "train_loss")
    assert list(table["series"]) == ["A"] * 3 + ["B"] and list(table["value"]) == [3.0, 2.0, 1.0, 3.0]
    assert len(fc.curves_table([("A", {})], "step", "train_loss")) == 0
    spec = fc.compare_line_spec(["A", "B"], "step", "loss")
    assert spec["encoding"]["color"]["scale"] == {"domain": ["A", "B"], "range": list(fc.MODEL_COLORS[:2])}
    assert spec["encoding"]["strokeDash"]["scale"]["domain"] == ["A", "B"]


def test_figures_compare_has_no_streamlit_import():
    tree = ast.parse(Path(fc.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not any(str(m).startswith("streamlit") for m in names)
