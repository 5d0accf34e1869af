"""ui/figures.py: pure functions, checked without a browser (shapes, labels, projector rules, literal user text)."""

import math

import pandas as pd
import pytest

from seq2seq.config import ModelConfig
from seq2seq.model import count_parameters
from ui import figures as F


def texts(fig) -> str:
    """Every piece of text a figure draws (annotations, titles, ticks, cell texts)."""
    parts = [a.text or "" for a in fig.layout.annotations]
    parts += [str(fig.layout.title.text or "")]
    for tr in fig.data:
        for attr in ("text", "y", "x"):
            v = getattr(tr, attr, None)
            if v is not None:
                parts.append(str(list(v) if not isinstance(v, str) else v))
    return " ".join(parts)


def test_plain_makes_markup_literal():
    assert F.plain("<b>x</b> & <script>") == "&lt;b&gt;x&lt;/b&gt; &amp; &lt;script&gt;"
    assert F.show_token(" ") == "␣" and F.show_token("<pad>") == "&lt;pad&gt;"


def test_padded_example_grid():
    rows = F.padded_rows(["a", "b"], [5, 6], ["b", "a"], [6, 5], width=4)
    assert [r[1] for r in rows] == [
        ["a", "b", "<pad>", "<pad>"],
        ["<sos>", "b", "a", "<pad>"],
        ["b", "a", "<eos>", "<pad>"],
    ]
    assert rows[1][2] == [1, 6, 5, 0] and rows[2][2] == [6, 5, 2, 0]
    fig = F.fig_padded_example(rows)
    hm = fig.data[0]
    assert list(hm.x) == ["t=1", "t=2", "t=3", "t=4"]
    z = [list(r) for r in hm.z]  # rows bottom-up: target, decoder input, encoder input
    assert z[2] == [0, 0, 2, 2]  # a b <pad> <pad>: token, token, pad, pad
    assert z[1] == [1, 0, 0, 2]  # <sos> is special
    assert "&lt;sos&gt;" in hm.text[1][0]  # specials shown literally, never as markup


def test_padded_example_hostile_tokens_are_literal():
    rows = [("encoder input x_t", ["<b>", "<script>alert(1)</script>"], [3, 3])]
    fig = F.fig_padded_example(rows)
    cells = " ".join(" ".join(r) for r in fig.data[0].text)
    assert "<b>" not in cells.replace("<br>", "") and "<script>" not in cells
    assert "&lt;script&gt;" in cells


def test_length_hist_has_max_line_and_labels():
    fig = F.fig_length_hist([3, 4, 5, 9], [3, 4, 5, 6], max_len=6)
    assert len(fig.data) == 2 and {t.name for t in fig.data} == {"source x", "target y"}
    assert [t.marker.color for t in fig.data] == [F.OI["blue"], F.OI["orange"]]  # two Okabe-Ito colors, a legend
    assert fig.layout.barmode == "group" and fig.layout.showlegend is not False
    src = fig.data[0]
    assert dict(zip(src.x, src.y))[9] == 1 and dict(zip(src.x, src.y))[7] == 0  # counts per length, gaps as 0
    assert any(s.type == "line" and s.x0 == 6.5 for s in fig.layout.shapes)  # the cut, inside the data range
    assert "max length = 6" in texts(fig)
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text == "number of pairs"
    assert fig.layout.font.size >= 16


def test_length_hist_far_max_length_keeps_the_data_readable():
    """Lengths 5-15 with a max length of 50: the axis spans the data, the cut is named at the edge."""
    fig = F.fig_length_hist(list(range(5, 16)), list(range(5, 16)), max_len=50)
    lo, hi = fig.layout.xaxis.range
    assert lo < 5 and 15 < hi < 17
    assert not [s for s in fig.layout.shapes if s.type == "line"]
    assert "max length 50 →" in texts(fig)


def test_top_tokens_order_and_literal():
    fig = F.fig_top_tokens([("a", 10), (" ", 5), ("<x>", 1)], "source tokens")
    bar = fig.data[0]
    assert list(bar.y) == ["&lt;x&gt;", "␣", "a"]  # most frequent on top (Plotly draws bottom-up)
    assert list(bar.x) == [1, 5, 10]


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("attention", ["none", "additive", "dot"])
def test_architecture_follows_config(layers, bidirectional, attention):
    cfg = ModelConfig(20, 20, cell="gru", layers=layers, bidirectional=bidirectional, attention=attention)
    fig = F.fig_architecture(cfg)
    t = texts(fig)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    n_src, n_tgt = 4, 3
    enc_boxes = n_src * layers * (2 if bidirectional else 1)
    assert len(rects) == enc_boxes + 1 + n_tgt * layers + n_tgt  # encoder, c, decoder states, p_t
    assert ("h→" in t) == bidirectional and ("bridge" in t) == bidirectional
    assert ("attention: a" in t) == (attention != "none")
    arcs = [s for s in fig.layout.shapes if s.type == "path" and s.line.color == F.OI["vermillion"]]
    assert len(arcs) == (n_src if attention != "none" else 0)
    assert f"{layers} layer" in t and "GRU" in t


def test_architecture_grows_with_layers():
    h = [F.fig_architecture(ModelConfig(20, 20, layers=n)).layout.height for n in (1, 2, 3)]
    assert h[0] < h[1] < h[2]


def test_param_counts_figure():
    counts = count_parameters(ModelConfig(30, 30, attention="dot"))
    total = counts.pop("total")
    fig = F.fig_param_counts(counts, 5_000_000)
    assert f"{total:,}" in fig.layout.title.text and "5,000,000" in fig.layout.title.text
    assert sum(fig.data[0].x) == total


def test_thin_keeps_last_point():
    df = pd.DataFrame({"step": range(2000), "value": range(2000)})
    out = F.thin(df, 500)
    assert len(out) <= 501 and out["step"].iloc[-1] == 1999 and out["step"].iloc[0] == 0
    assert F.thin(df.head(10), 500).equals(df.head(10))


def test_curves_frame_aligns_series_and_drops_non_finite():
    history = {
        "step": [1, 2, 3, 4],
        "train_loss": [3.0, 2.5, float("nan"), 2.0],
        "eval_step": [2, 4],
        "valid_loss": [2.8, None],
    }
    df = F.curves_frame(
        history, {"training loss": ("step", "train_loss"), "validation loss": ("eval_step", "valid_loss")}
    )
    train = df[df.series == "training loss"]
    assert list(train.step) == [1, 2, 4] and list(train.value) == [3.0, 2.5, 2.0]
    assert list(df[df.series == "validation loss"].value) == [2.8]
    empty = F.curves_frame({}, {"training loss": ("step", "train_loss")})
    assert len(empty) == 0 and list(empty.columns) == ["step", "value", "series"]


def test_curves_frame_thins_long_runs_and_tolerates_odd_values():
    history = {"step": list(range(1, 2001)), "train_loss": [1.0] * 1999 + ["x"]}
    df = F.curves_frame(history, {"training loss": ("step", "train_loss")})
    assert len(df) <= F.MAX_POINTS + 1 and df["step"].iloc[-1] == 1999 and df["step"].iloc[0] == 1


def test_arrow_table_round_trips_what_the_chart_shows():
    from streamlit.dataframe_util import convert_anything_to_arrow_bytes, convert_arrow_bytes_to_pandas_df

    df = F.curves_frame({"step": [1, 2], "train_loss": [3.0, 2.5]}, {"training loss": ("step", "train_loss")})
    back = convert_arrow_bytes_to_pandas_df(convert_anything_to_arrow_bytes(F.arrow(df)))
    assert list(back.columns) == ["step", "value", "series"]
    assert list(back["value"]) == [3.0, 2.5] and list(back["series"]) == ["training loss"] * 2
    assert F.arrow(F.bars_frame([])).num_rows == 0


def test_specs_are_readable_and_colorblind_safe():
    spec = F.line_spec(
        "step", "optimizer step", "loss", {"training loss": F.OI["blue"], "validation loss": F.OI["orange"]}
    )
    assert spec["config"]["axis"]["labelFontSize"] >= 16 and spec["config"]["legend"]["labelFontSize"] >= 16
    assert spec["encoding"]["x"]["title"] == "optimizer step" and spec["encoding"]["y"]["title"] == "loss"
    assert spec["encoding"]["color"]["scale"]["range"] == [F.OI["blue"], F.OI["orange"]]
    bar = F.bar_spec("encoder timestep", "norm")
    assert bar["encoding"]["y"]["scale"] == {"type": "log"}


def test_bars_frame_drops_values_a_log_axis_cannot_show():
    df = F.bars_frame({"encoder RNN": 0.5, "bridge": 0.0, "output layer": float("inf")})
    assert list(df.name) == ["encoder RNN"]
    df = F.bars_frame([1e-8, 0.1, float("nan")], prefix="t=")
    assert list(df.name) == ["t=1", "t=2"] and math.isclose(df.value.iloc[0], 1e-8)
