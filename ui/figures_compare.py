"""Figures for the Compare page: pure functions, data in, plotly Figure out. No Streamlit here.

One colour (and one dash style, for grey-scale projectors) per model, in the order the models are listed; the legend
names each model by its letter and how it differs from model A. Model labels are user-visible text made from the
model options only, but go through `plain()` all the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from seq2seq.config import ModelConfig
from ui.figures import FONT, OI, _style, plain, thin_index

MODEL_COLORS = (OI["blue"], OI["orange"], OI["green"], OI["vermillion"])
MODEL_DASHES = ("solid", "dash", "dot", "dashdot")
LETTERS = "ABCD"


def model_style(i: int) -> dict:
    """The line style of the i-th model (0-based) in every chart of the page."""
    return dict(color=MODEL_COLORS[i % len(MODEL_COLORS)], dash=MODEL_DASHES[i % len(MODEL_DASHES)], width=3)


# --------------------------------------------------------------------------------------------------- labels
OPTION_WORDS = {
    "cell": "cell",
    "hidden": "hidden units",
    "embed": "embedding",
    "layers": "layers",
    "bidirectional": "encoder",
    "attention": "attention",
    "dropout": "dropout",
}


def difference(cfg: ModelConfig, base: ModelConfig) -> str:
    """How `cfg` differs from `base`, in words: 'GRU cell', '+ additive attention', 'H=256'; '' when the same."""
    parts = []
    if cfg.cell != base.cell:
        parts.append(f"{cfg.cell.upper()} cell")
    if cfg.attention != base.attention:
        parts.append("no attention" if cfg.attention == "none" else f"+ {cfg.attention} attention")
    if cfg.bidirectional != base.bidirectional:
        parts.append("bidirectional" if cfg.bidirectional else "one-directional")
    if cfg.hidden != base.hidden:
        parts.append(f"H={cfg.hidden}")
    if cfg.embed != base.embed:
        parts.append(f"E={cfg.embed}")
    if cfg.layers != base.layers:
        parts.append(f"{cfg.layers} layers")
    if cfg.dropout != base.dropout:
        parts.append(f"dropout {cfg.dropout:g}")
    return ", ".join(parts)


def short_name(cfg: ModelConfig) -> str:
    """Model A's own label: 'LSTM, bidirectional, no attention'."""
    s = cfg.cell.upper() + (", bidirectional" if cfg.bidirectional else "")
    s += ", no attention" if cfg.attention == "none" else f", {cfg.attention} attention"
    return s + (f", {cfg.layers} layers" if cfg.layers > 1 else "")


def model_labels(cfgs: Sequence[ModelConfig]) -> list[str]:
    """'A: LSTM, no attention', 'B: + additive attention', 'C: GRU cell' ... (each model against model A)."""
    if not cfgs:
        return []
    out = [f"A: {short_name(cfgs[0])}"]
    for i, c in enumerate(cfgs[1:], 1):
        out.append(f"{LETTERS[i]}: {difference(c, cfgs[0]) or 'the same as A'}")
    return out


# --------------------------------------------------------------------------------------------------- curves
def fig_curves(
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    title: str,
    x_title: str,
    y_title: str,
    y_range: tuple[float, float] | None = None,
    log: bool = False,
    markers: bool = False,
    empty: str = "",
) -> go.Figure:
    """One line per model: `series` = [(label, x values, y values)] in model order (non-finite y values dropped,
    each line thinned to MAX_POINTS). An empty chart says `empty` in its middle."""
    fig = go.Figure()
    drawn = 0
    for i, (label, xs, ys) in enumerate(series):
        x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        keep = np.isfinite(x) & np.isfinite(y) & ((y > 0) if log else True)
        x, y = x[keep], y[keep]
        idx = thin_index(len(x))
        drawn += len(idx)
        fig.add_trace(
            go.Scatter(
                x=x[idx].tolist(),
                y=y[idx].tolist(),
                name=plain(label),
                line=model_style(i),
                mode="lines+markers" if markers else "lines",
                marker=dict(size=7),
            )
        )
    _style(fig, title, x_title, y_title, height=400)
    # the legend below the x-axis title (one model a line), never over it
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=-0.28, x=0), margin=dict(b=10))
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    if log:
        fig.update_yaxes(type="log")
    if not drawn and empty:
        fig.add_annotation(
            text=empty,
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            font=dict(size=FONT, color=OI["grey"]),
        )
    return fig


def fig_timestep_grads(series: Sequence[tuple[str, Sequence[float]]], title: str, empty: str = "") -> go.Figure:
    """||dL/dh_t|| per encoder timestep t = 1..S, one line per model, log scale: a vanilla RNN's line falls towards
    t = 1 (the gradient vanishes on its way back), an LSTM's stays up. `series` = [(label, norm per timestep)]."""
    lines = [(label, np.arange(1, len(v) + 1), v) for label, v in series]
    fig = fig_curves(lines, title, "encoder timestep t", "‖∂L/∂h_t‖ (log scale)", log=True, markers=True, empty=empty)
    fig.update_xaxes(dtick=5 if max((len(v) for _, v in series), default=0) > 15 else 1)
    return fig


def fig_accuracy_by_length(
    series: Sequence[tuple[str, Sequence[dict]]],
    measure: str = "exact_match",
    train_range: tuple[int, int] | None = None,
    empty: str = "",
) -> go.Figure:
    """Accuracy (exact match or token accuracy) per source length, one line per model; `series` = [(label, rows of
    experiments.accuracy_by_length)]. The training lengths are shaded, so 'longer than anything seen in training'
    is visible."""
    name = {"exact_match": "exact match", "token_accuracy": "token accuracy"}[measure]
    lines = [(label, [r["length"] for r in rows], [r[measure] for r in rows]) for label, rows in series]
    fig = fig_curves(
        lines,
        f"{name.capitalize()} by source length",
        "source length (tokens)",
        f"{name} (held-out examples)",
        y_range=(-0.03, 1.03),
        markers=True,
        empty=empty,
    )
    if train_range is not None:
        lo, hi = train_range
        fig.add_vrect(
            x0=lo - 0.5,
            x1=hi + 0.5,
            fillcolor=OI["grey"],
            opacity=0.15,
            line_width=0,
            annotation_text="training lengths",
            annotation_position="top left",
            annotation_font_size=FONT - 2,
        )
    fig.update_yaxes(tickformat=".0%")
    return fig


# ------------------------------------------------------------------------------------- live curves (Vega-Lite)
# The live curves are Vega-Lite specs, as on the Train page (ui/figures.py: Streamlit keeps one vega_lite_chart
# element across fragment reruns, so a curve redrawn twice a second never blanks; a plotly chart would).
VL_DASHES = ([1, 0], [8, 4], [2, 3], [8, 3, 2, 3])


def curves_table(runs: Sequence[tuple[str, dict]], x_key: str, y_key: str):
    """Long table (step, value, series) of one measure for every model: `runs` = [(label, history)] where history
    is a trainer snapshot's history (lists). Each line thinned to MAX_POINTS, non-finite points dropped."""
    import pandas as pd

    from ui.figures import curves_frame

    parts = [curves_frame(h or {}, {label: (x_key, y_key)}) for label, h in runs]
    parts = [p for p in parts if len(p)]
    if not parts:
        return curves_frame({}, {})
    return pd.concat(parts, ignore_index=True)


def compare_line_spec(
    labels: Sequence[str],
    x_title: str,
    y_title: str,
    log: bool = False,
    y_domain: tuple[float, float] | None = None,
    points: bool = False,
) -> dict:
    """ui.figures.line_spec with one colour and one dash pattern per model, in model order."""
    from ui.figures import line_spec

    spec = line_spec(
        "step",
        x_title,
        y_title,
        {lab: MODEL_COLORS[i % 4] for i, lab in enumerate(labels)},
        log=log,
        y_domain=y_domain,
        points=points,
    )
    spec["encoding"]["strokeDash"] = {
        "field": "series",
        "type": "nominal",
        "title": None,  # one legend: colour + dash
        "scale": {"domain": list(labels), "range": list(VL_DASHES[: len(labels)])},
    }
    spec["config"]["legend"] = dict(spec["config"]["legend"], labelLimit=400, columns=1)  # one model a line: no cut
    return spec
