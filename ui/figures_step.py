"""Figures of the "One training step" page: pure functions, data in, plotly Figure out (no streamlit import).

Projector sizes and colorblind-safe colors as in figures_inspect (Viridis for magnitudes, Okabe-Ito for bars).
Tokens go in as data (tick labels, hover text), escaped by `label`, never into HTML.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ui.figures import OI
from ui.figures_inspect import MAGNITUDE, _ax, _cbar, _fig, _tick_labels, label


def distributions_figure(
    probs: np.ndarray,
    dec_inputs: Sequence[str],
    targets: Sequence[str],
    itos: Sequence[str],
    k: int = 6,
    max_cols: int = 24,
) -> go.Figure:
    """p_t at every decoder step (rows, fed the true y_{t-1}) over the tokens that matter (columns: every target
    token and each step's k most likely); a white ring marks the target y_t of each row."""
    probs = np.asarray(probs, dtype=float)
    T, V = probs.shape
    stoi = {t: i for i, t in enumerate(itos)}
    cols: list[int] = []
    for t in range(T):
        likely = [i for i in np.argsort(-probs[t])[:k] if probs[t, i] >= 0.01]  # the visible ones only
        for i in [stoi.get(targets[t], 3)] + likely:
            if int(i) not in cols:
                cols.append(int(i))
    cols = sorted(cols[:max_cols], key=lambda i: -probs[:, i].sum())
    z = probs[:, cols]
    names = [label(itos[i]) for i in cols]
    heat = go.Heatmap(
        z=z,
        x=list(range(len(cols))),
        y=list(range(T)),
        colorscale=MAGNITUDE,
        zmin=0,
        zmax=1,
        colorbar=_cbar("p_t(token)"),
        customdata=np.array([names] * T, dtype=object),
        hovertemplate="token %{customdata}<br>p = %{z:.3f}<extra></extra>",
    )
    tx = [cols.index(stoi.get(targets[t], 3)) if stoi.get(targets[t], 3) in cols else None for t in range(T)]
    ring = go.Scatter(
        x=[x for x in tx if x is not None],
        y=[t for t, x in enumerate(tx) if x is not None],
        mode="markers",
        marker=dict(symbol="square-open", size=26, color="white", line=dict(width=3)),
        name="target y_t",
        hoverinfo="skip",
    )
    rows = [f"{t + 1} fed {label(dec_inputs[t])}" for t in range(T)]
    return _fig(
        [heat, ring],
        "Decoder, teacher-forced: p_t over the likely tokens (ring: the target y_t)",
        max(300, 30 * T + 170),
        xaxis=_ax("next token", tickvals=list(range(len(cols))), ticktext=names),
        yaxis=_ax("step t (input y_{t-1})", tickvals=list(range(T)), ticktext=rows, autorange="reversed"),
        showlegend=False,
    )


def token_loss_figure(targets: Sequence[str], ce: Sequence[float], loss: float) -> go.Figure:
    """-log p_t(y_t) for every target token, and their mean (the loss) as a dashed line."""
    ce = np.asarray(ce, dtype=float)
    T = len(ce)
    bars = go.Bar(
        x=list(range(T)),
        y=ce,
        marker_color=OI["vermillion"],
        text=[f"{v:.2f}" for v in ce],
        textposition="outside",
        name="-log p_t(y_t)",
        hovertemplate="target %{customdata}<br>-log p = %{y:.4f}<extra></extra>",
        customdata=[label(t) for t in targets],
    )
    mean = go.Scatter(
        x=[-0.5, T - 0.5],
        y=[loss, loss],
        mode="lines",
        line=dict(color="black", dash="dash", width=3),
        name=f"mean = loss {loss:.4f}",
    )
    top = max(float(ce.max()) if T else 0.0, loss) * 1.25 + 0.05
    return _fig(
        [bars, mean],
        f"Cross-entropy of each target token; their mean is the loss ({loss:.4f})",
        380,
        xaxis=_ax("target y_t", tickvals=list(range(T)), ticktext=_tick_labels(targets)),
        yaxis=_ax("−log p_t(y_t)", range=[0, top]),
        legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"),
    )


def timestep_grads_figure(
    grads: np.ndarray,
    tokens: Sequence[str],
    title: str,
    xlabel: str,
    names: Sequence[str] = ("forward", "backward"),
    log: bool = False,
) -> go.Figure:
    """||d loss / d state|| at each timestep, one bar series per row of `grads` (directions)."""
    grads = np.atleast_2d(np.asarray(grads, dtype=float))
    colors = [OI["blue"], OI["orange"]]
    data = [
        go.Bar(
            x=list(range(grads.shape[1])),
            y=row,
            name=names[d] if len(grads) > 1 else "||gradient||",
            marker_color=colors[d % 2],
            hovertemplate="%{y:.3g}<extra></extra>",
        )
        for d, row in enumerate(grads)
    ]
    return _fig(
        data,
        title,
        360,
        xaxis=_ax(xlabel, tickvals=list(range(len(tokens))), ticktext=_tick_labels(tokens)),
        yaxis=_ax("gradient size", type="log" if log else "linear"),
        barmode="group",
        showlegend=len(grads) > 1,
        legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"),
    )


def group_bars_figure(
    values: dict[str, float], title: str, xlabel: str, color: str = OI["blue"], log: bool = True
) -> go.Figure:
    """One horizontal bar per parameter group (encoder first, top to bottom)."""
    names = list(values)
    v = [max(float(values[n]), 1e-12) for n in names]
    ticks = [f"{n}  {x:.3g}" for n, x in zip(names, v)]  # the value beside the name: never cut off at the edge
    bar = go.Bar(
        y=list(range(len(names))),
        x=v,
        orientation="h",
        marker_color=color,
        customdata=names,
        hovertemplate="%{customdata}: %{x:.4g}<extra></extra>",
    )
    return _fig(
        [bar],
        title,
        70 + 44 * len(names) + 60,
        xaxis=_ax(xlabel, type="log" if log else "linear"),
        yaxis=_ax(None, autorange="reversed", tickvals=list(range(len(names))), ticktext=ticks),
    )


def before_after_figure(losses: Sequence[dict]) -> go.Figure:
    """Each example's loss before and after the step (the stepped example first, marked ★)."""
    names = [("★ " if r["this"] else "") + label(r["source"])[:24] for r in losses]
    before = go.Bar(
        x=names,
        y=[r["before"] for r in losses],
        name="before the step",
        marker_color=OI["sky"],
        hovertemplate="%{x}<br>loss %{y:.4f}<extra></extra>",
    )
    after = go.Bar(
        x=names,
        y=[r["after"] for r in losses],
        name="after the step",
        marker_color=OI["blue"],
        hovertemplate="%{x}<br>loss %{y:.4f}<extra></extra>",
    )
    return _fig(
        [before, after],
        "Loss before and after this one step (★ the example the step was computed on)",
        400,
        xaxis=_ax("example (source)"),
        yaxis=_ax("loss (mean −log p)"),
        barmode="group",
        legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"),
    )
