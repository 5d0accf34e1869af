"""Figures for the inspection pages (Encoder, Hidden states & context, Decoder).

Pure functions: numpy arrays / traces in, `plotly.graph_objects.Figure` out. No Streamlit here, so every figure is
unit-testable without a browser.

Projector rules, applied everywhere:
  * fonts >= 16 px, titles 20 px;
  * colorblind-safe scales: Viridis / Cividis for magnitudes (probabilities, attention, gates in [0, 1]),
    RdBu with its middle (white) at 0 for signed activations (h_t, s_t, c_t, embeddings);
  * every colorbar has a title, every axis a label (timesteps, hidden units, tokens).

User text (tokens typed or uploaded) only ever appears as data: tick labels, hover text, table cells. Plotly renders
a few HTML-like tags (<b>, <a>, <br> ...) inside those strings, so `label()` escapes them: "<b>" shows literally.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

FONT = 18
TITLE = 20
SIGNED = "RdBu"  # diverging, white at 0 (with zmid/cmid = 0); red < 0 < blue
MAGNITUDE = "Viridis"
GATE = "Cividis"
# Okabe-Ito colors: distinguishable with every common color-vision deficiency
BLUE, ORANGE, GREEN, GREY, VERMILLION, PURPLE = "#0072B2", "#E69F00", "#009E73", "#9A9A9A", "#D55E00", "#CC79A7"

GATE_NAMES = {  # gate key in EncoderTrace.gates -> (label on screen, in [0,1]?)
    "r": ("r_t reset gate", True),
    "z": ("z_t update gate", True),
    "n": ("n_t candidate", False),
    "i": ("i_t input gate", True),
    "f": ("f_t forget gate", True),
    "g": ("g_t candidate", False),
    "o": ("o_t output gate", True),
    "pre": ("a_t pre-activation", False),
}
GATE_ORDER = {"gru": ["r", "z", "n"], "lstm": ["i", "f", "g", "o"], "rnn": ["pre"]}


def label(tok: str) -> str:
    """A token as plain text for Plotly: a space becomes a visible '␣', and HTML-like markup is escaped."""
    if tok == " ":
        tok = "␣"
    elif tok == "":
        tok = "∅"
    return tok.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cbar(title: str, **kw) -> dict:
    """A colorbar with its title and projector-size fonts (set here, because the Streamlit chart theme would
    otherwise use its own small tick fonts)."""
    return dict(title=dict(text=title, font=dict(size=16)), tickfont=dict(size=16), thickness=14, **kw)


def _ax(title: str | None = None, **kw) -> dict:
    """An axis with its title and projector-size tick labels."""
    ax = {"tickfont": {"size": 16}, **kw}
    if title is not None:
        ax["title"] = {"text": title, "font": {"size": FONT}}
    return ax


def _fig(
    data: list, title: str, height: int, xaxis: dict | None = None, yaxis: dict | None = None, **layout
) -> go.Figure:
    """Build a figure in ONE constructor call: plotly validates a complete layout dict several times faster than
    a sequence of update_layout / update_xaxes calls, which matters for a page rerun on every slider move."""
    return go.Figure(
        data=data,
        layout=dict(
            title=dict(text=title, font=dict(size=TITLE)),
            font=dict(size=FONT),
            height=height,
            margin=dict(l=10, r=10, t=60, b=10),
            hoverlabel=dict(font=dict(size=16)),
            xaxis=xaxis or _ax(),
            yaxis=yaxis or _ax(),
            **layout,
        ),
    )


def _row_box(row: int, width: int, color: str = "black") -> dict:
    """A rectangle outlining one heatmap row (the current timestep or output step)."""
    return dict(type="rect", x0=-0.5, x1=width - 0.5, y0=row - 0.5, y1=row + 0.5, line=dict(color=color, width=3))


def _style(fig: go.Figure, title: str, height: int, **layout) -> go.Figure:
    """Title, height and projector-size fonts (axis fonts explicitly, for the same reason as `_cbar`)."""
    axes = {}
    for name in ("xaxis", "yaxis", "xaxis2", "yaxis2"):
        if name.endswith("2") and name not in fig.layout:
            continue
        axes[f"{name}_title_font_size"] = FONT
        if fig.layout[name].tickfont.size is None:
            axes[f"{name}_tickfont_size"] = 16
    fig.update_layout(
        title=dict(text=title, font=dict(size=TITLE)),
        font=dict(size=FONT),
        height=height,
        margin=dict(l=10, r=10, t=60, b=10),
        hoverlabel=dict(font_size=16),
        **axes,
        **layout,
    )
    return fig


def _signed_range(*arrays: np.ndarray) -> float:
    """Symmetric color range for signed values: [-m, m], at least [-1, 1] (the tanh range) so colors stay comparable
    between steps."""
    m = 1.0
    for a in arrays:
        if a is not None and a.size and np.isfinite(a).any():
            m = max(m, float(np.nanmax(np.abs(a))))
    return m


def _tick_labels(tokens: Sequence[str], start: int = 1) -> list[str]:
    return [f"{i + start} {label(t)}" for i, t in enumerate(tokens)]


# ============================================================================================ encoder: one timestep
def vector_strip(
    v: np.ndarray,
    title: str,
    name: str,
    *,
    xlabel: str = "hidden unit",
    zrange: float | None = None,
    colorbar: str = "value",
) -> go.Figure:
    """One vector (an embedding, h_t, s_t or the context c) as a 1-row heat strip, signed colors around 0."""
    v = np.asarray(v, dtype=float).reshape(1, -1)
    m = zrange if zrange is not None else _signed_range(v)
    heat = go.Heatmap(
        z=v,
        x=np.arange(v.shape[1]),
        y=[name],
        colorscale=SIGNED,
        zmid=0,
        zmin=-m,
        zmax=m,
        colorbar=_cbar(colorbar, len=1.0, nticks=3),
        hovertemplate=f"{xlabel} %{{x}}<br>value %{{z:.3f}}<extra>{name}</extra>",
    )
    return _fig([heat], title, 260, xaxis=_ax(xlabel))


def encoder_step_rows(trace, layer: int, direction: int, t: int) -> list[tuple[str, np.ndarray, bool]]:
    """The rows shown for one encoder step, in reading order: (label, vector (H,), is_gate_in_0_1).

    The previous state of the forward direction is h_{t-1}; the backward direction reads right to left, so its
    previous state is the one at t+1. Before the first step the state is all zeros."""
    T = trace.h.shape[2]
    prev_t = t - 1 if direction == 0 else t + 1
    has_prev = 0 <= prev_t < T
    zeros = np.zeros(trace.h.shape[3])
    prev_name = "h_{t-1}" if direction == 0 else "h_{t+1}"
    rows = [(f"{prev_name} before", trace.h[layer, direction, prev_t] if has_prev else zeros, False)]
    cell = trace_cell(trace)
    for g in GATE_ORDER[cell]:
        name, is_gate = GATE_NAMES[g]
        rows.append((name, trace.gates[g][layer, direction, t], is_gate))
    if cell == "lstm" and trace.c is not None:
        prev_c = "c_{t-1}" if direction == 0 else "c_{t+1}"
        rows.append((f"{prev_c} cell before", trace.c[layer, direction, prev_t] if has_prev else zeros, False))
        rows.append(("c_t cell after", trace.c[layer, direction, t], False))
    rows.append(("h_t after", trace.h[layer, direction, t], False))
    return rows


def trace_cell(trace) -> str:
    keys = set(trace.gates)
    return "lstm" if "i" in keys else "gru" if "r" in keys else "rnn"


def encoder_step_figure(trace, layer: int, direction: int, t: int, title: str | None = None) -> go.Figure:
    """h_{t-1} -> gates -> h_t for one layer/direction at timestep t (0-based), one heat strip (row) per quantity.

    Two color scales on the same rows: gates (sigmoid outputs in [0, 1]) in Cividis; signed values (states,
    candidates, memory cell) in RdBu centred on 0. Each is one heatmap whose other rows are blank (NaN)."""
    rows = encoder_step_rows(trace, layer, direction, t)
    R, H = len(rows), len(rows[0][1])
    gate_z, signed_z = np.full((R, H), np.nan), np.full((R, H), np.nan)
    for i, (_, v, is_gate) in enumerate(rows):
        (gate_z if is_gate else signed_z)[i] = v
    m = _signed_range(signed_z)
    names = [name for name, _, _ in rows]
    custom = np.array([[n] * H for n in names], dtype=object)
    hover = "unit %{x}<br>%{customdata}: %{z:.3f}<extra></extra>"
    has_gates = any(g for _, _, g in rows)
    data = []
    if has_gates:
        data.append(
            go.Heatmap(
                z=gate_z,
                x=np.arange(H),
                y=np.arange(R),
                colorscale=GATE,
                zmin=0,
                zmax=1,
                customdata=custom,
                hovertemplate=hover,
                hoverongaps=False,
                xgap=1,
                colorbar=_cbar("gate", x=1.0, len=0.48, y=0.76, tickvals=[0, 0.5, 1]),
            )
        )
    data.append(
        go.Heatmap(
            z=signed_z,
            x=np.arange(H),
            y=np.arange(R),
            colorscale=SIGNED,
            zmid=0,
            zmin=-m,
            zmax=m,
            customdata=custom,
            hovertemplate=hover,
            hoverongaps=False,
            xgap=1,
            colorbar=_cbar(
                "value",
                x=1.0,
                len=0.48 if has_gates else 1.0,
                y=0.24 if has_gates else 0.5,
                tickvals=[-m, 0, m],
                ticktext=[f"{-m:.2g}", "0", f"{m:.2g}"],
            ),
        )
    )
    prev = "h_{t-1}" if direction == 0 else "h_{t+1}"
    layers, dirs = trace.h.shape[:2]
    where = (
        f"t={t + 1}"
        + (f", layer {layer + 1}" if layers > 1 else "")
        + (", backward" if direction == 1 else ", forward" if dirs == 2 else "")
    )
    return _fig(
        data,
        title or f"{where}: {prev} → gates → h_t",
        44 * R + 150,
        xaxis=_ax("hidden unit"),
        yaxis=_ax(tickvals=list(range(R)), ticktext=names, autorange="reversed"),
    )


def states_heatmap(
    h: np.ndarray,
    tokens: Sequence[str],
    title: str,
    *,
    zrange: float | None = None,
    highlight: int | None = None,
    xlabel: str = "hidden unit",
    divider: int | None = None,
    height: int | None = None,
    ylabel: str = "timestep t (token)",
    colorbar: str = "h value",
) -> go.Figure:
    """Encoder states as a heatmap: one row per timestep (labelled 't token'), one column per hidden unit.

    Rows may be NaN (not computed yet, when stepping): they stay blank. `highlight` outlines the current row;
    `divider` draws a vertical line between forward and backward units of a bidirectional encoder."""
    h = np.asarray(h, dtype=float)
    T, H = h.shape
    m = zrange if zrange is not None else _signed_range(h)
    heat = go.Heatmap(
        z=h,
        x=np.arange(H),
        y=np.arange(T),
        colorscale=SIGNED,
        zmid=0,
        zmin=-m,
        zmax=m,
        colorbar=_cbar(colorbar),
        customdata=np.array([[label(tok)] * H for tok in tokens], dtype=object).reshape(T, H),
        hovertemplate="token %{customdata}<br>unit %{x}<br>value %{z:.3f}<extra></extra>",
        hoverongaps=False,
    )
    shapes = []
    if highlight is not None and 0 <= highlight < T:
        shapes.append(_row_box(highlight, H))
    if divider is not None:
        shapes.append(
            dict(
                type="line",
                x0=divider - 0.5,
                x1=divider - 0.5,
                y0=0,
                y1=1,
                yref="paper",
                line=dict(color="black", width=2, dash="dash"),
            )
        )
    return _fig(
        [heat],
        title,
        height or max(280, 26 * T + 150),
        xaxis=_ax(xlabel),
        yaxis=_ax(ylabel, tickvals=list(range(T)), ticktext=_tick_labels(tokens), autorange="reversed"),
        shapes=shapes,
    )


def states_so_far(trace, layer: int, k: int) -> tuple[np.ndarray, list[int]]:
    """States after k reading steps (k = 1..T) of one layer, directions side by side: (T, D*H) with NaN where a
    direction has not reached that timestep yet. The forward direction has read x_1..x_k, the backward x_T..x_{T-k+1}.
    Also returns the timesteps (0-based) each direction is at: [k-1] or [k-1, T-k]."""
    _, D, T, H = trace.h.shape
    out = np.full((T, D * H), np.nan)
    out[:k, :H] = trace.h[layer, 0, :k]
    at = [k - 1]
    if D == 2:
        out[T - k :, H:] = trace.h[layer, 1, T - k :]
        at.append(T - k)
    return out, at


def token_strip(tokens: Sequence[str], at: Sequence[int], title: str = "Input x_1 .. x_T") -> go.Figure:
    """The source tokens in a row of boxes, each as wide as its text (word and subword tokens are never cropped);
    the token(s) being read at this step are highlighted (forward in blue, backward in orange, green when both read
    the same token). The font shrinks when a long input would not fit the row."""
    T = len(tokens)
    colors = ["#EEEEEE"] * T
    for tt, col in zip(at, (BLUE, ORANGE)):
        if 0 <= tt < T:
            colors[tt] = col if colors[tt] == "#EEEEEE" else GREEN
    text_colors = ["white" if c != "#EEEEEE" else "black" for c in colors]
    labels = [label(t) for t in tokens]
    widths = [max(1.6, 0.62 * len(str(t)) + 0.8) for t in tokens]  # in character widths of the font, plus margins
    left = np.concatenate([[0.0], np.cumsum(widths)[:-1]]) + 0.15 * np.arange(T)
    centers = left + np.array(widths) / 2
    total = float(left[-1] + widths[-1]) if T else 1.0
    font = int(min(22, max(11, 22 * 40 / max(total, 1))))  # ~40 units fit a projector-wide row at 22 px
    shapes = [
        dict(
            type="rect",
            x0=float(a),
            x1=float(a + w),
            y0=-0.45,
            y1=0.45,
            fillcolor=c,
            line=dict(color="#444", width=1),
            layer="below",
        )
        for a, w, c in zip(left, widths, colors)
    ]
    words = go.Scatter(
        x=centers,
        y=np.zeros(T),
        mode="text",
        text=labels,
        textfont=dict(size=font, color=text_colors),
        textposition="middle center",
        hovertemplate="x_%{customdata}: %{text}<extra></extra>",
        customdata=np.arange(1, T + 1),
    )
    return _fig(
        [words],
        title,
        170,
        showlegend=False,
        shapes=shapes,
        xaxis=_ax(
            "timestep t",
            tickvals=list(centers),
            ticktext=[str(i + 1) for i in range(T)],
            range=[-0.3, total + 0.3],
            showgrid=False,
            zeroline=False,
        ),
        yaxis=dict(visible=False, range=[-1, 1]),
    )


def encoder_animation(trace, layer: int, start: int = 1) -> go.Figure:
    """The whole encoder run as a Plotly animation (frames play in the browser, no server round trips):
    frame k shows h_1..h_k of `layer` filling in, directions side by side, the current row outlined."""
    _, D, T, H = trace.h.shape
    m = _signed_range(trace.h[layer])
    tokens = trace.tokens

    def frame_data(k: int):
        z, at = states_so_far(trace, layer, k)
        return z, at

    z0, at0 = frame_data(start)
    fig = states_heatmap(
        z0,
        tokens,
        "",
        zrange=m,
        xlabel="hidden unit" + (" (forward | backward)" if D == 2 else ""),
        divider=H if D == 2 else None,
    )
    fig.add_trace(
        go.Scatter(
            x=[-1] * len(at0),
            y=at0,
            mode="markers",
            marker=dict(symbol="triangle-right", size=18, color=[BLUE, ORANGE][: len(at0)]),
            hoverinfo="skip",
            showlegend=False,
        )
    )
    frames = []
    for k in range(1, T + 1):
        z, at = frame_data(k)
        reading = ", ".join(
            f"{'forward' if i == 0 else 'backward'} reads x_{a + 1} = {label(tokens[a])}" for i, a in enumerate(at)
        )
        frames.append(
            go.Frame(
                name=str(k),
                data=[go.Heatmap(z=z), go.Scatter(x=[-1] * len(at), y=at)],
                traces=[0, 1],
                layout=dict(title_text=f"After step {k} of {T}: {reading}"),
            )
        )
    fig.frames = frames
    fig.update_xaxes(range=[-1.6, D * H - 0.5])
    fig.update_layout(
        title_text=f"After step {start} of {T}",
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0,
                y=-0.08,
                xanchor="left",
                yanchor="top",
                pad=dict(t=40),
                buttons=[
                    dict(
                        label="▶ Play",
                        method="animate",
                        args=[
                            None,
                            dict(frame=dict(duration=700, redraw=True), fromcurrent=True, transition=dict(duration=0)),
                        ],
                    ),
                    dict(
                        label="❚❚ Pause",
                        method="animate",
                        args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")],
                    ),
                ],
            )
        ],
        sliders=[
            dict(
                active=start - 1,
                x=0.25,
                len=0.75,
                y=-0.08,
                yanchor="top",
                pad=dict(t=40),
                currentvalue=dict(prefix="step ", font=dict(size=FONT)),
                steps=[
                    dict(
                        label=str(k),
                        method="animate",
                        args=[[str(k)], dict(mode="immediate", frame=dict(duration=0, redraw=True))],
                    )
                    for k in range(1, T + 1)
                ],
            )
        ],
    )
    fig.update_layout(height=fig.layout.height + 130, margin=dict(b=140))
    return fig


# ================================================================================ hidden states & context page
def pca_fit(states: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of every hidden state of every input (rows of the stacked (sum T_i, H) matrix), by SVD of the centred data.
    Returns (mean (H,), components (2, H), explained variance ratio (2,))."""
    X = np.concatenate([np.asarray(s, dtype=float) for s in states], axis=0)
    mean = X.mean(axis=0)
    _, S, Vt = np.linalg.svd(X - mean, full_matrices=False)
    var = S**2
    ratio = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    comps = Vt[:2]
    if comps.shape[0] < 2:  # degenerate (a single state): pad with a zero direction
        comps = np.vstack([comps, np.zeros((2 - comps.shape[0], X.shape[1]))])
        ratio = np.pad(ratio, (0, 2 - len(ratio)))
    return mean, comps, ratio


def pca_project(states: np.ndarray, mean: np.ndarray, comps: np.ndarray) -> np.ndarray:
    """(T, H) -> (T, 2) coordinates on the first two principal components."""
    return (np.asarray(states, dtype=float) - mean) @ comps.T


def pca_trajectories_figure(
    coords: Sequence[np.ndarray],
    texts: Sequence[str],
    tokens: Sequence[Sequence[str]],
    ratio: np.ndarray,
    highlight: Sequence[int] = (),
) -> go.Figure:
    """Hidden-state trajectories in 2-D: one grey line per input joining h_1 .. h_T, markers colored by timestep
    (Viridis), an x at each last state h_T. Inputs in `highlight` are drawn thick and labelled with their tokens.
    A handful of traces in all (lines separated by None), so 100 inputs stay fast to build and draw."""
    t_max = max((len(c) for c in coords), default=1)
    lx, ly, px, py, pc, ph, ex, ey = [], [], [], [], [], [], [], []
    data = []
    for i, (xy, text, toks) in enumerate(zip(coords, texts, tokens)):
        if not len(xy):
            continue
        hover = [f"input: {label(text)}<br>t={t + 1} token {label(tok)}" for t, tok in enumerate(toks)]
        if i in highlight:
            data.append(
                go.Scatter(
                    x=xy[:, 0],
                    y=xy[:, 1],
                    mode="lines+markers+text",
                    text=[label(t) for t in toks],
                    textposition="top center",
                    textfont=dict(size=18, color="black"),
                    line=dict(color="black", width=3),
                    marker=dict(
                        size=12,
                        color=np.arange(1, len(xy) + 1),
                        colorscale=MAGNITUDE,
                        cmin=1,
                        cmax=t_max,
                        line=dict(color="black", width=1),
                    ),
                    hovertext=hover,
                    hoverinfo="text",
                    showlegend=False,
                )
            )
            data.append(
                go.Scatter(
                    x=xy[-1:, 0],
                    y=xy[-1:, 1],
                    mode="markers",
                    hoverinfo="skip",
                    showlegend=False,
                    marker=dict(symbol="x", size=16, color=VERMILLION),
                )
            )
            continue
        lx += list(xy[:, 0]) + [None]
        ly += list(xy[:, 1]) + [None]
        px += list(xy[:, 0])
        py += list(xy[:, 1])
        pc += list(range(1, len(xy) + 1))
        ph += hover
        ex.append(xy[-1, 0])
        ey.append(xy[-1, 1])
    others = [
        go.Scatter(
            x=lx,
            y=ly,
            mode="lines",
            line=dict(color="rgba(120,120,120,0.35)", width=1),
            hoverinfo="skip",
            showlegend=False,
        ),
        go.Scatter(
            x=px,
            y=py,
            mode="markers",
            hovertext=ph,
            hoverinfo="text",
            showlegend=False,
            marker=dict(size=7, color=pc, colorscale=MAGNITUDE, cmin=1, cmax=t_max, colorbar=_cbar("timestep t")),
        ),
        go.Scatter(
            x=ex,
            y=ey,
            mode="markers",
            hoverinfo="skip",
            showlegend=False,
            marker=dict(symbol="x", size=8, color=VERMILLION),
        ),
    ]
    return _fig(
        others + data,
        f"Hidden-state trajectories of {len(coords)} inputs (PCA, x = last state h_T)",
        620,
        xaxis=_ax(f"principal component 1 ({ratio[0]:.0%} of variance)"),
        yaxis=_ax(f"principal component 2 ({ratio[1]:.0%} of variance)"),
    )


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (0 when either is all zeros)."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def compare_heatmaps(
    h_a: np.ndarray,
    tokens_a: Sequence[str],
    h_b: np.ndarray,
    tokens_b: Sequence[str],
    titles: tuple[str, str] = ("input A", "input B"),
) -> go.Figure:
    """Two inputs' state heatmaps side by side on ONE color scale (so equal colors mean equal values)."""
    m = _signed_range(h_a, h_b)
    T = max(len(tokens_a), len(tokens_b))
    fig = go.Figure()
    for col, (h, toks, name) in enumerate(((h_a, tokens_a, titles[0]), (h_b, tokens_b, titles[1])), start=1):
        sfx = "" if col == 1 else "2"
        fig.add_trace(
            go.Heatmap(
                z=np.asarray(h, dtype=float),
                y=np.arange(len(toks)),
                xaxis=f"x{sfx}",
                yaxis=f"y{sfx}",
                coloraxis="coloraxis",
                hovertemplate="row %{y}<br>unit %{x}<br>h %{z:.3f}<extra></extra>",
            )
        )
        fig.update_layout(
            {
                f"xaxis{sfx}": dict(
                    domain=[0, 0.44] if col == 1 else [0.56, 1],
                    title=dict(text=f"hidden unit — {label(name)}"),
                    anchor=f"y{sfx}",
                ),
                f"yaxis{sfx}": dict(
                    tickvals=list(range(len(toks))),
                    ticktext=_tick_labels(toks),
                    autorange="reversed",
                    title=dict(text="timestep t (token)" if col == 1 else ""),
                    tickfont=dict(size=16),
                    anchor=f"x{sfx}",
                ),
            }
        )
    fig.update_layout(coloraxis=dict(colorscale=SIGNED, cmid=0, cmin=-m, cmax=m, colorbar=_cbar("h value")))
    return _style(fig, "Encoder states side by side (same color scale)", max(320, 26 * T + 170))


# ============================================================================================== decoder page
def topk_figure(
    probs: np.ndarray,
    itos: Sequence[str],
    chosen_id: int,
    k: int = 10,
    target_id: int | None = None,
    title: str = "Output distribution p_t",
) -> go.Figure:
    """The k most probable next tokens at one decoder step as horizontal bars; the chosen token in blue, the target
    (teacher forcing) in orange, or green when they are the same token."""
    probs = np.asarray(probs, dtype=float)
    k = max(1, min(k, len(probs)))
    top = [int(i) for i in np.argsort(-probs)[:k]]
    for must in (chosen_id, target_id):  # always show the chosen and the target token
        if must is not None and must not in top:
            top.append(int(must))
    colors, notes = [], []
    for i in top:
        if i == chosen_id and i == target_id:
            colors.append(GREEN)
            notes.append("chosen = target")
        elif i == chosen_id:
            colors.append(BLUE)
            notes.append("chosen")
        elif i == target_id:
            colors.append(ORANGE)
            notes.append("target")
        else:
            colors.append(GREY)
            notes.append("")
    names = [label(itos[i]) for i in top]
    bars = go.Bar(
        x=probs[top],
        y=list(range(len(top))),
        orientation="h",
        marker_color=colors,
        text=[f"{probs[i]:.1%} {n}".strip() for i, n in zip(top, notes)],
        textposition=["inside" if probs[i] > 0.6 else "outside" for i in top],
        insidetextanchor="end",
        insidetextfont=dict(color="white", size=FONT),
        outsidetextfont=dict(size=FONT),
        cliponaxis=False,
        customdata=names,
        hovertemplate="%{customdata}: p = %{x:.4f}<extra></extra>",
    )
    return _fig(
        [bars],
        title,
        max(300, 34 * len(top) + 130),
        showlegend=False,
        xaxis=_ax("probability p_t(y)", range=[0, 1.3], tickformat=".0%", tickvals=[0, 0.25, 0.5, 0.75, 1]),
        yaxis=_ax(
            "token y", tickvals=list(range(len(top))), ticktext=names, autorange="reversed", tickfont=dict(size=18)
        ),
    )


def attention_bar(a: np.ndarray, src_tokens: Sequence[str], title: str) -> go.Figure:
    """Attention weights a_t over the source timesteps at one decoder step (they sum to 1)."""
    a = np.asarray(a, dtype=float)
    bars = go.Bar(
        x=list(range(len(a))),
        y=a,
        marker=dict(color=a, colorscale=MAGNITUDE, cmin=0, cmax=1, colorbar=_cbar("a_tj")),
        customdata=[label(t) for t in src_tokens],
        hovertemplate="source %{customdata}: a = %{y:.3f}<extra></extra>",
    )
    return _fig(
        [bars],
        title,
        330,
        xaxis=_ax(
            "source token x_j", tickvals=list(range(len(a))), ticktext=[label(t) for t in src_tokens], tickangle=0
        ),
        yaxis=_ax("attention weight a_tj", range=[0, 1]),
    )


def attention_matrix_figure(
    A: np.ndarray,
    src_tokens: Sequence[str],
    out_tokens: Sequence[str],
    highlight: int | None = None,
    title: str = "Attention over all steps",
) -> go.Figure:
    """The attention matrix: one row per output step (labelled with the token produced), one column per source
    token; each row sums to 1."""
    A = np.asarray(A, dtype=float)
    T_out, S = A.shape
    heat = go.Heatmap(
        z=A,
        x=list(range(S)),
        y=list(range(T_out)),
        colorscale=MAGNITUDE,
        zmin=0,
        zmax=1,
        colorbar=_cbar("a_tj"),
        hovertemplate="output step %{y}<br>source position %{x}<br>a = %{z:.3f}<extra></extra>",
    )
    shapes = [_row_box(highlight, S, VERMILLION)] if highlight is not None and 0 <= highlight < T_out else []
    return _fig(
        [heat],
        title,
        max(300, 30 * T_out + 170),
        shapes=shapes,
        xaxis=_ax("source token x_j", tickvals=list(range(S)), ticktext=_tick_labels(src_tokens)),
        yaxis=_ax(
            "output step t (token)",
            tickvals=list(range(T_out)),
            ticktext=_tick_labels(out_tokens),
            autorange="reversed",
        ),
    )


def cross_entropy_figure(
    ce: Sequence[float], target_tokens: Sequence[str], chosen_tokens: Sequence[str], highlight: int | None = None
) -> go.Figure:
    """Per-token cross-entropy -log p_t(y_t) under teacher forcing; steps where the model's own top choice differs
    from the target are orange, the current step vermillion; the dashed line is the mean (the loss)."""
    ce = np.asarray(ce, dtype=float)
    colors = [ORANGE if a != b else BLUE for a, b in zip(target_tokens, chosen_tokens)]
    if highlight is not None and 0 <= highlight < len(colors):
        colors[highlight] = VERMILLION
    custom = np.array(
        [[label(a), label(b), f"{np.exp(-v):.3f}"] for a, b, v in zip(target_tokens, chosen_tokens, ce)], dtype=object
    ).reshape(len(ce), 3)
    bars = go.Bar(
        x=list(range(len(ce))),
        y=ce,
        marker_color=colors,
        customdata=custom,
        hovertemplate="target %{customdata[0]}, model's top choice %{customdata[1]}<br>"
        "p(target) = %{customdata[2]}, -log p = %{y:.3f}<extra></extra>",
    )
    mean = float(ce.mean()) if len(ce) else 0.0
    return _fig(
        [bars],
        "Per-token cross-entropy (orange: model's top choice ≠ target)",
        380,
        xaxis=_ax(
            "output step t (target token y_t)", tickvals=list(range(len(ce))), ticktext=_tick_labels(target_tokens)
        ),
        yaxis=_ax("cross-entropy −log p_t(y_t)", rangemode="tozero"),
        shapes=[dict(type="line", x0=0, x1=1, xref="paper", y0=mean, y1=mean, line=dict(color="black", dash="dash"))],
        annotations=[
            dict(
                x=1,
                xref="paper",
                y=mean,
                text=f"mean (the loss) = {mean:.3f}",
                showarrow=False,
                xanchor="right",
                yanchor="bottom",
                font=dict(size=16),
            )
        ],
    )


def decoder_states_figure(S: np.ndarray, out_tokens: Sequence[str], highlight: int | None = None) -> go.Figure:
    """Decoder states s_1..s_T (top layer) as a heatmap, rows labelled with the token produced at that step."""
    return states_heatmap(
        S,
        out_tokens,
        "Decoder states s_t (top layer)",
        highlight=highlight,
        ylabel="output step t (token)",
        colorbar="s value",
    )


def beam_tree_figure(
    nodes: Sequence, itos: Sequence[str], best_ids: Sequence[int] = (), max_pruned_per_step: int | None = None
) -> go.Figure:
    """The beam search tree: steps on x, one labelled node per hypothesis extension. Kept nodes (survived the
    top-k cut) are filled blue circles joined by solid lines; pruned ones hollow grey; finished (<eos>) hypotheses
    orange diamonds; the best final hypothesis is traced in thick black. Hover: token, log p, cumulative score.

    `nodes` are BeamNode-like (id, parent, step, token_id, logprob, score, finished, kept). At most
    `max_pruned_per_step` pruned nodes per step are drawn (the best-scoring), to keep the figure readable."""
    by_step: dict[int, list] = {}
    for n in nodes:
        by_step.setdefault(n.step, []).append(n)
    shown = []
    for step, ns in sorted(by_step.items()):
        kept = sorted([n for n in ns if n.kept], key=lambda n: -n.score)
        pruned = sorted([n for n in ns if not n.kept], key=lambda n: -n.score)
        if max_pruned_per_step is not None:
            pruned = pruned[:max_pruned_per_step]
        shown.extend((n, y) for y, n in enumerate(kept + pruned))
    pos = {n.id: (n.step, -y) for n, y in shown}
    best = set(best_ids)
    fig = go.Figure()
    # edges: one trace per style, None-separated segments
    for style, pred in (("kept", lambda n: n.kept), ("pruned", lambda n: not n.kept)):
        xs, ys = [], []
        for n, _ in shown:
            if pred(n) and n.parent is not None and n.parent in pos:
                (x0, y0), (x1, y1) = pos[n.parent], pos[n.id]
                xs += [x0, x1, None]
                ys += [y0, y1, None]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                hoverinfo="skip",
                showlegend=False,
                line=dict(
                    color=BLUE if style == "kept" else "rgba(150,150,150,0.6)",
                    width=2 if style == "kept" else 1,
                    dash="solid" if style == "kept" else "dot",
                ),
            )
        )
    xs, ys = [], []
    for n, _ in shown:
        if n.id in best and n.parent is not None and n.parent in pos:
            (x0, y0), (x1, y1) = pos[n.parent], pos[n.id]
            xs += [x0, x1, None]
            ys += [y0, y1, None]
    if xs:
        fig.add_trace(
            go.Scatter(
                x=xs, y=ys, mode="lines", line=dict(color="black", width=5), name="best hypothesis", hoverinfo="skip"
            )
        )
    # <eos> nodes are diamonds WITHOUT a text label (the legend names them, hover says <eos>): five-character
    # "<eos>" labels on neighbouring steps ran into each other. Long word tokens are shortened on the figure for the
    # same reason (full text in hover).
    eos = {i for i, t in enumerate(itos) if t == "<eos>"}
    short = 3 if len(by_step) > 10 else 6

    def tok(n) -> str:
        return itos[n.token_id] if 0 <= n.token_id < len(itos) else "?"

    def text(n) -> str:
        t = tok(n)
        if n.token_id in eos:
            return ""
        return label(t if len(t) <= short + 1 or (t.startswith("<") and t.endswith(">")) else t[:short] + "…")

    groups = (
        (
            "kept",
            lambda n: n.kept and not n.finished and n.token_id not in eos,
            dict(symbol="circle", color=BLUE, size=26),
        ),
        (
            "finished (<eos>)",
            lambda n: n.kept and (n.finished or n.token_id in eos),
            dict(symbol="diamond", color=ORANGE, size=28),
        ),
        ("pruned", lambda n: not n.kept and n.token_id not in eos, dict(symbol="circle-open", color=GREY, size=22)),
        ("pruned <eos>", lambda n: not n.kept and n.token_id in eos, dict(symbol="diamond-open", color=GREY, size=22)),
    )
    for name, pred, marker in groups:
        sel = [n for n, _ in shown if pred(n)]
        if not sel and name == "pruned <eos>":
            continue
        fig.add_trace(
            go.Scatter(
                x=[pos[n.id][0] for n in sel],
                y=[pos[n.id][1] for n in sel],
                mode="markers+text",
                name=label(name),
                text=[text(n) for n in sel],
                textposition="top center",
                textfont=dict(size=18, color="#555" if name.startswith("pruned") else "black"),
                marker=dict(line=dict(width=2, color=marker["color"]), **marker),
                customdata=[
                    [
                        label(tok(n)),
                        n.logprob,
                        n.score,
                        "kept" if n.kept and not n.finished else "finished" if n.kept else "pruned",
                    ]
                    for n in sel
                ],
                hovertemplate="%{customdata[0]}<br>log p(token) = %{customdata[1]:.3f}<br>"
                "score (sum of log p) = %{customdata[2]:.3f}<br>%{customdata[3]}<extra></extra>",
            )
        )
    n_rows = max((y for _, y in shown), default=0) + 1
    last = max((pos[n.id][0] for n, _ in shown), default=0)
    fig.update_xaxes(title_text="decoder step t", dtick=1, range=[-0.6, last + 0.6])
    fig.update_yaxes(visible=False, range=[-n_rows + 0.3, 0.8])
    fig = _style(
        fig,
        "Beam search tree (node = token added; thick black = best hypothesis)",
        max(380, 52 * n_rows + 210),
        legend=dict(orientation="h", x=0, y=1.0, xanchor="left", yanchor="bottom", font=dict(size=16)),
    )
    fig.update_layout(margin=dict(t=100))
    return fig


def force_compare_figure(before: Sequence[str], after: Sequence[str], t_forced: int) -> go.Figure:
    """Output tokens before and after forcing a token at step t_forced (0-based): a two-row table, the forced cell
    orange, later cells that changed blue."""
    n = max(len(before), len(after))
    b = list(before) + [""] * (n - len(before))
    a = list(after) + [""] * (n - len(after))
    fill_b = ["white"] * n
    fill_a = []
    for t in range(n):
        if t == t_forced:
            fill_a.append(ORANGE)
        elif t > t_forced and a[t] != b[t]:
            fill_a.append("#9ECAE9")
        else:
            fill_a.append("white")
    header = ["step"] + [str(t + 1) for t in range(n)]
    cells = [["before", "after"]] + [[label(b[t]), label(a[t])] for t in range(n)]
    fills = [["#EEEEEE", "#EEEEEE"]] + [[fill_b[t], fill_a[t]] for t in range(n)]
    fig = go.Figure(
        go.Table(
            header=dict(values=header, font=dict(size=18), fill_color="#DDDDDD", height=34),
            cells=dict(values=cells, fill_color=fills, font=dict(size=20), height=36),
            columnwidth=[2] + [1] * n,
        )
    )
    return _style(fig, f"Forcing step {t_forced + 1}: before and after (orange = forced, blue = changed later)", 230)


def beam_best_path(tree: Sequence, best: Sequence[int], eos_id: int = 2) -> list[int]:
    """Node ids (root excluded) of the kept path whose tokens (without <eos>) are `best`: the best hypothesis."""
    best = list(best)
    by_id = {n.id: n for n in tree}

    def path(n) -> list:
        nodes = []
        while n is not None and n.parent is not None:
            nodes.append(n)
            n = by_id.get(n.parent)
        return nodes[::-1]

    has_kept_child = {n.parent for n in tree if n.kept}
    ends = [n for n in tree if n.kept and (n.finished or n.id not in has_kept_child)]
    for n in sorted(ends, key=lambda n: (not n.finished, -n.score)):
        nodes = path(n)
        if [m.token_id for m in nodes if m.token_id != eos_id] == best:
            return [m.id for m in nodes]
    return []
