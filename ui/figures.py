"""Figures for the Data, Model and Train pages: pure functions, data in, figure (or chart spec) out. No Streamlit here.

Projector rules for every figure: text >= 16 px, colorblind-safe colors (Okabe-Ito for categories and lines,
Viridis/Cividis for sequential scales), labelled axes and legends. User text (tokens, examples) only ever enters a figure
as data - tick labels, cell text, hover text - and goes through `plain()` first so Plotly shows it literally.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pyarrow as pa

from seq2seq.config import ModelConfig

FONT = 16
# Okabe-Ito: distinguishable with every common color-vision deficiency.
OI = {
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
    "grey": "#999999",
}
SPECIAL = ("<pad>", "<sos>", "<eos>", "<unk>")


def plain(text: str) -> str:
    """User text made literal for Plotly, which would otherwise read <b>, <br>, <a href=...> in labels as markup."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def show_token(tok: str) -> str:
    """A token as a readable, literal label: spaces and tabs made visible."""
    return plain(tok.replace(" ", "␣").replace("\t", "⇥").replace("\n", "↵") if tok else "∅")


def _style(
    fig: go.Figure, title: str | None = None, x: str | None = None, y: str | None = None, height: int = 380
) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, font=dict(size=FONT + 4)) if title else None,
        font=dict(size=FONT),
        height=height,
        margin=dict(l=10, r=10, t=60 if title else 20, b=10),
        template="plotly_white",
        legend=dict(font=dict(size=FONT)),
    )
    fig.update_xaxes(tickfont_size=FONT)  # tick labels at projector size even on an axis without a title
    fig.update_yaxes(tickfont_size=FONT)
    if x is not None:
        fig.update_xaxes(title_text=x, title_font_size=FONT + 2)
    if y is not None:
        fig.update_yaxes(title_text=y, title_font_size=FONT + 2)
    return fig


# --------------------------------------------------------------------------------------------------------- Data page
def padded_rows(
    src_tokens: list[str], src_ids: list[int], tgt_tokens: list[str], tgt_ids: list[int], width: int
) -> list[tuple[str, list[str], list[int]]]:
    """The three sequences the model sees for one example, padded to `width` timesteps:
    encoder input x_1..x_S <pad>..., decoder input <sos> y_1..y_n <pad>..., decoder target y_1..y_n <eos> <pad>...
    `tgt_ids` are the target's ids without specials; <sos>=1, <eos>=2, <pad>=0 as in every Vocab."""

    def pad(toks, ids):
        n = max(0, width - len(toks))
        return (toks + ["<pad>"] * n)[:width], (ids + [0] * n)[:width]

    return [
        ("encoder input x_t", *pad(list(src_tokens), list(src_ids))),
        ("decoder input y_{t-1}", *pad(["<sos>"] + list(tgt_tokens), [1] + list(tgt_ids))),
        ("decoder target y_t", *pad(list(tgt_tokens) + ["<eos>"], list(tgt_ids) + [2])),
    ]


def fig_padded_example(rows: Sequence[tuple[str, list[str], list[int]]]) -> go.Figure:
    """One example as the model sees it: a grid of timesteps (columns) x sequences (rows), each cell 'token / id',
    colored by kind: a real token, a special token (<sos>, <eos>, <unk>) or padding (<pad>)."""
    width = max((len(toks) for _, toks, _ in rows), default=0)
    kinds = {"token": 0, "special": 1, "pad": 2}
    z, text, hover = [], [], []
    for label, toks, ids in reversed(rows):  # first row on top
        zr, tr, hr = [], [], []
        for t in range(width):
            if t >= len(toks):  # past this sequence's own length (the encoder and decoder run different lengths)
                zr.append(None), tr.append(""), hr.append(f"{plain(label)}: no timestep t={t + 1}")
                continue
            tok, i = toks[t], ids[t]
            kind = "pad" if tok == "<pad>" else "special" if tok in SPECIAL else "token"
            zr.append(kinds[kind])
            tr.append(f"{show_token(tok)}<br>{i}")
            hr.append(f"{plain(label)}, t={t + 1}: {show_token(tok)} (id {i}, {kind})")
        z.append(zr), text.append(tr), hover.append(hr)
    colors = [OI["sky"], OI["orange"], "#DDDDDD"]
    scale = []
    for k, c in enumerate(colors):  # discrete bands for 0, 1, 2
        scale += [[k / 3, c], [(k + 1) / 3, c]]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"t={t + 1}" for t in range(width)],
            y=[plain(r[0]) for r in reversed(rows)],
            text=text,
            texttemplate="%{text}",
            textfont=dict(size=FONT),
            hovertext=hover,
            hoverinfo="text",
            colorscale=scale,
            zmin=-0.5,
            zmax=2.5,
            xgap=3,
            ygap=3,
            hoverongaps=False,
            colorbar=dict(
                tickvals=[0, 1, 2],
                ticktext=["token", "special", "&lt;pad&gt;"],
                title=dict(text="kind"),
                tickfont=dict(size=FONT),
                len=0.9,
            ),
        )
    )
    return _style(fig, None, "timestep t (one column per token)", None, height=300)


def fig_length_hist(src_lens: Sequence[int], tgt_lens: Sequence[int], max_len: int) -> go.Figure:
    """How many pairs have each source and target length (in tokens): grouped bars, source blue and target orange
    (Okabe-Ito), with the max-length cut drawn as a dashed line. The x axis spans the data; when the cut lies far
    beyond it (a max length of 50 for lengths 5-15), the line would squeeze the bars into a corner, so the cut is
    written at the right edge instead ("max length 50 →")."""
    src, tgt = [int(n) for n in src_lens], [int(n) for n in tgt_lens]
    lo, hi = min(src + tgt, default=0), max(src + tgt, default=1)
    lengths = list(range(lo, hi + 1))
    fig = go.Figure()
    for name, lens, color in (("source x", src, OI["blue"]), ("target y", tgt, OI["orange"])):
        counts = [0] * len(lengths)
        for n in lens:
            counts[n - lo] += 1
        fig.add_bar(
            x=lengths,
            y=counts,
            name=name,
            marker_color=color,
            hovertemplate=f"{name}: %{{y:,}} pairs of length %{{x}}<extra></extra>",
        )
    cut = max_len + 0.5  # between the last length kept and the first one cut
    near = cut <= hi + max(3, 0.3 * (hi - lo + 1))
    x_max = max(hi, max_len) + 0.9 if near else hi + 0.9
    red = dict(size=FONT, color=OI["vermillion"])
    if near:
        fig.add_vline(x=cut, line=dict(color=OI["vermillion"], width=3, dash="dash"))
        fig.add_annotation(
            x=cut,
            y=1,
            yref="paper",
            text=f"max length = {max_len}",
            showarrow=False,
            xanchor="right" if cut > (lo + x_max) / 2 else "left",
            yanchor="bottom",
            font=red,
        )
    else:
        fig.add_annotation(
            x=1,
            xref="paper",
            y=1,
            yref="paper",
            text=f"max length {max_len} →",
            showarrow=False,
            xanchor="right",
            yanchor="bottom",
            font=red,
        )
    fig.update_layout(
        barmode="group",
        bargap=0.15,
        bargroupgap=0.05,
        legend=dict(orientation="h", x=0, y=1.02, xanchor="left", yanchor="bottom"),
    )
    fig = _style(fig, None, "length in tokens (without &lt;sos&gt;/&lt;eos&gt;)", "number of pairs", height=400)
    fig.update_layout(margin=dict(t=70))
    fig.update_xaxes(range=[lo - 0.9, x_max], dtick=1 if x_max - lo <= 20 else None)
    return fig


def fig_top_tokens(common: Sequence[tuple[str, int]], title: str, color: str = OI["blue"]) -> go.Figure:
    """Horizontal bars of the most frequent tokens, most frequent on top."""
    common = list(common)[::-1]
    fig = go.Figure(
        go.Bar(
            x=[c for _, c in common],
            y=[show_token(t) for t, _ in common],
            orientation="h",
            marker_color=color,
            hovertemplate="%{y}: %{x}<extra></extra>",
        )
    )
    fig.update_yaxes(type="category")
    return _style(fig, title, "count in training data", "token", height=max(300, 28 * len(common) + 100))


# -------------------------------------------------------------------------------------------------------- Model page
def fig_architecture(cfg: ModelConfig, n_src: int = 4, n_tgt: int = 3) -> go.Figure:
    """Diagram of encoder -> context c -> decoder that follows the configuration: one box per layer and timestep,
    two directions when bidirectional (h→ left to right, h← right to left, joined by the bridge), and attention lines
    from the decoder state s_t back to every encoder state when attention is on."""
    L, bi, att = cfg.layers, cfg.bidirectional, cfg.attention != "none"
    shapes: list[dict] = []  # collected as dicts and set once: Plotly's add_shape/add_annotation are slow one by one
    notes: list[dict] = []
    dx, bw, bh = 1.25, 0.9, 0.62  # column spacing, box width, box height
    enc_x = [i * dx for i in range(n_src)]
    c_x = enc_x[-1] + 1.9
    dec_x = [c_x + 1.9 + i * dx for i in range(n_tgt)]
    row_y = [1.2 + l * 1.05 for l in range(L)]  # layer l (0 = bottom)
    top_y = row_y[-1] + 1.1
    cell = cfg.cell.upper()

    def box(x, y, text, color, w=bw, h=bh, dash=None, font_color="black"):
        shapes.append(
            dict(
                type="rect",
                x0=x - w / 2,
                x1=x + w / 2,
                y0=y - h / 2,
                y1=y + h / 2,
                line=dict(color=color, width=3, dash=dash),
                fillcolor=color,
                opacity=0.9,
                layer="below",
            )
        )
        notes.append(dict(x=x, y=y, text=text, showarrow=False, font=dict(size=FONT, color=font_color)))

    def arrow(x0, y0, x1, y1, color="#444444", dash=False, width=2):
        notes.append(
            dict(
                x=x1,
                y=y1,
                ax=x0,
                ay=y0,
                xref="x",
                yref="y",
                axref="x",
                ayref="y",
                text="",
                showarrow=True,
                arrowhead=2,
                arrowsize=1.2,
                arrowwidth=width,
                arrowcolor=color,
                opacity=0.6 if dash else 1.0,
            )
        )

    # encoder: inputs x_t -> embedding -> layers of h_t
    src_names = [f"x<sub>{i + 1}</sub>" for i in range(n_src - 1)] + ["x<sub>T</sub>"]
    for i, x in enumerate(enc_x):
        notes.append(dict(x=x, y=0.15, text=src_names[i], showarrow=False, font=dict(size=FONT + 2)))
        arrow(x, 0.4, x, row_y[0] - bh / 2 - 0.02)
        for l, y in enumerate(row_y):
            t = "T" if i == n_src - 1 else str(i + 1)
            if bi:
                box(x, y + 0.17, f"h→<sub>{t}</sub>", OI["sky"], h=bh / 2 + 0.02)
                box(x, y - 0.17, f"h←<sub>{t}</sub>", OI["green"], h=bh / 2 + 0.02, font_color="white")
            else:
                box(x, y, f"h<sub>{t}</sub>" + (f"<sup>({l + 1})</sup>" if L > 1 else ""), OI["sky"])
            if l > 0:
                arrow(x, row_y[l - 1] + bh / 2, x, y - bh / 2)
            if i > 0:
                arrow(enc_x[i - 1] + bw / 2, y + (0.17 if bi else 0), x - bw / 2, y + (0.17 if bi else 0))
                if bi:
                    arrow(x - bw / 2, y - 0.17, enc_x[i - 1] + bw / 2, y - 0.17, color=OI["green"])

    # context c (through the bridge when bidirectional)
    c_y = row_y[-1]
    box(c_x, c_y, "c", OI["orange"], w=0.8, h=0.8)
    arrow(enc_x[-1] + bw / 2, c_y + (0.17 if bi else 0), c_x - 0.4, c_y + (0.12 if bi else 0), width=3)
    if bi:  # the backward direction ends at t=1: its final state travels to the bridge too
        shapes.append(
            dict(
                type="path",
                path=f"M {enc_x[0]},{c_y - 0.17 - bh / 4} Q {(enc_x[0] + c_x) / 2},{c_y - 1.0} "
                f"{c_x - 0.35},{c_y - 0.25}",
                line=dict(color=OI["green"], width=2, dash="dot"),
            )
        )
        notes.append(
            dict(
                x=c_x,
                y=c_y + 0.62,
                text="bridge: tanh(W[h→;h←])",
                showarrow=False,
                font=dict(size=FONT - 2, color="#333333"),
            )
        )
    # decoder: inputs y_{t-1} -> layers of s_t -> softmax p_t -> y_t
    tgt_in = ["&lt;sos&gt;"] + [f"y<sub>{i}</sub>" for i in range(1, n_tgt)]
    for i, x in enumerate(dec_x):
        notes.append(dict(x=x, y=0.15, text=tgt_in[i], showarrow=False, font=dict(size=FONT + 2)))
        arrow(x, 0.4, x, row_y[0] - bh / 2 - 0.02)
        for l, y in enumerate(row_y):
            box(x, y, f"s<sub>{i + 1}</sub>" + (f"<sup>({l + 1})</sup>" if L > 1 else ""), OI["purple"])
            if l > 0:
                arrow(x, row_y[l - 1] + bh / 2, x, y - bh / 2)
            prev = (c_x + 0.4) if i == 0 else dec_x[i - 1] + bw / 2
            arrow(prev, y, x - bw / 2, y, width=3 if i == 0 else 2)
        box(x, top_y, f"p<sub>{i + 1}</sub>", OI["yellow"], h=0.5)
        arrow(x, row_y[-1] + bh / 2, x, top_y - 0.25)
        notes.append(dict(x=x, y=top_y + 0.55, text=f"y<sub>{i + 1}</sub>", showarrow=False, font=dict(size=FONT + 2)))
        # c is also fed to every decoder step (input [embed(y_{t-1}); c]; with attention c_t takes its place)
        shapes.append(
            dict(
                type="line",
                x0=c_x,
                y0=c_y - 0.4,
                x1=x - bw / 2,
                y1=row_y[0] - bh / 2 + 0.05,
                line=dict(color=OI["orange"], width=1.5, dash="dot"),
            )
        )
    if att:  # a_t: decoder step 1 looks back at every encoder state (arcs stay below the p_t boxes)
        x_d, y_top = dec_x[0] - bw / 4, row_y[-1] + bh / 2
        for x in enc_x:
            shapes.append(
                dict(
                    type="path",
                    path=f"M {x_d},{y_top} Q {(x + x_d) / 2},{y_top + 0.95} {x},{y_top}",
                    line=dict(color=OI["vermillion"], width=2, dash="dash"),
                )
            )
        notes.append(
            dict(
                x=(enc_x[0] + enc_x[-1]) / 2,
                y=top_y + 0.2,
                showarrow=False,
                text=f"{cfg.attention} attention: a<sub>t</sub> from s<sub>t-1</sub> weighs every h<sub>j</sub>"
                f"<br>c<sub>t</sub> = Σ<sub>j</sub> a<sub>tj</sub>h<sub>j</sub> is fed into s<sub>t</sub>",
                font=dict(size=FONT, color=OI["vermillion"]),
            )
        )
    # titles
    notes.append(
        dict(
            x=(enc_x[0] + enc_x[-1]) / 2,
            y=-0.45,
            showarrow=False,
            font=dict(size=FONT + 2),
            text=f"<b>encoder</b> ({cell}{', bidirectional' if bi else ''}, {L} layer{'s' if L > 1 else ''})",
        )
    )
    notes.append(dict(x=c_x, y=-0.45, showarrow=False, text="<b>context</b>", font=dict(size=FONT + 2)))
    notes.append(
        dict(
            x=(dec_x[0] + dec_x[-1]) / 2,
            y=-0.45,
            showarrow=False,
            font=dict(size=FONT + 2),
            text=f"<b>decoder</b> ({cell}, {L} layer{'s' if L > 1 else ''})",
        )
    )
    fig = go.Figure(layout=dict(shapes=shapes, annotations=notes))
    fig.update_xaxes(visible=False, range=[-0.8, dec_x[-1] + 0.8])
    fig.update_yaxes(visible=False, range=[-0.8, top_y + 0.9], scaleanchor=None)
    fig.update_layout(
        showlegend=False,
        plot_bgcolor="white",
        height=int(330 + 95 * L),
        margin=dict(l=5, r=5, t=10, b=5),
        font=dict(size=FONT),
        dragmode=False,
    )
    return fig


def fig_param_counts(counts: dict[str, int], limit: int | None = None) -> go.Figure:
    """Parameter count of each component (horizontal bars), the total and the server's limit in the title."""
    names = list(counts)[::-1]
    total = sum(counts.values())
    fig = go.Figure(
        go.Bar(
            x=[counts[n] for n in names],
            y=names,
            orientation="h",
            marker_color=OI["blue"],
            text=[f"{counts[n]:,}" for n in names],
            textposition="auto",
            hovertemplate="%{y}: %{x:,}<extra></extra>",
        )
    )
    title = f"total {total:,} parameters" + (f" (limit {limit:,})" if limit else "")
    return _style(fig, title, "parameters", None, height=max(280, 40 * len(names) + 110))


# -------------------------------------------------------------------------------------------------------- Train page
# The live Train charts are Vega-Lite specs drawn with st.vega_lite_chart: unlike st.plotly_chart, Streamlit keeps one
# chart element across fragment reruns, so a curve redrawn twice a second never blanks.
MAX_POINTS = 300  # per curve: plenty for a 600 px wide chart, and cheap to send to the browser twice a second


def thin_index(n: int, cap: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most about `cap` of n points, evenly spaced, always keeping the last one (the newest point)."""
    if n <= cap:
        return np.arange(n)
    step = math.ceil(n / cap)
    return np.append(np.arange(0, n - 1, step), n - 1)


def thin(df: pd.DataFrame, n: int = MAX_POINTS) -> pd.DataFrame:
    """At most about n rows, evenly spaced, always keeping the last one (the newest point)."""
    return df if len(df) <= n else df.iloc[thin_index(len(df), n)]


def _floats(values: Sequence) -> np.ndarray:
    """A history list as float64, None and non-numbers as NaN (fast path: one numpy call)."""
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(dtype=float)


def curves_frame(history: dict, series: dict[str, tuple[str, str]], x: str = "step") -> pd.DataFrame:
    """Long-format table (x, value, series) for a line chart. `series` maps a legend label to the (x key, y key) of
    two history lists, e.g. {"training loss": ("step", "train_loss"), "validation loss": ("eval_step", "valid_loss")}.
    Points without a finite value are dropped; each series is thinned to MAX_POINTS.

    Built with numpy and ONE DataFrame constructor: the Train page rebuilds it on every poll (2-3 times a second),
    where the pandas-per-series version cost ~10 ms."""
    xs_out, ys_out, names = [], [], []
    for label, (xk, yk) in series.items():
        xs, ys = _floats(history.get(xk) or []), _floats(history.get(yk) or [])
        n = min(len(xs), len(ys))
        xs, ys = xs[:n], ys[:n]
        ok = np.isfinite(xs) & np.isfinite(ys)
        xs, ys = xs[ok], ys[ok]
        idx = thin_index(len(xs))
        xs_out.append(xs[idx]), ys_out.append(ys[idx]), names.append(np.full(len(idx), label, dtype=object))
    if not xs_out:
        return pd.DataFrame(
            {x: pd.Series(dtype=float), "value": pd.Series(dtype=float), "series": pd.Series(dtype=str)}
        )
    return pd.DataFrame({x: np.concatenate(xs_out), "value": np.concatenate(ys_out), "series": np.concatenate(names)})


def arrow(df: pd.DataFrame) -> pa.Table:
    """The same table as a pyarrow Table, built column by column (no index). Streamlit sends a chart's data as Arrow:
    converting a 600-row DataFrame costs ~3-6 ms here (pandas 3 -> Arrow, through pandas metadata), this ~0.2 ms,
    which matters for charts redrawn a few times a second."""
    return pa.table({str(c): pa.array(df[c].to_numpy()) for c in df.columns})


def _vl_config() -> dict:
    return {
        "axis": {"labelFontSize": FONT, "titleFontSize": FONT + 2},
        "legend": {"labelFontSize": FONT, "titleFontSize": FONT, "orient": "bottom"},
        "title": {"fontSize": FONT + 2},
    }


def line_spec(
    x: str,
    x_title: str,
    y_title: str,
    colors: dict[str, str],
    log: bool = False,
    y_domain: tuple[float, float] | None = None,
    points: bool = False,
) -> dict:
    """Vega-Lite line chart of a curves_frame table: one colored line per series (colors: {label: color})."""
    y_scale: dict = {"type": "log"} if log else {"zero": False}
    if y_domain:
        y_scale["domain"] = list(y_domain)
    return {
        "mark": {"type": "line", "point": {"filled": True, "size": 80} if points else False, "strokeWidth": 3},
        "encoding": {
            "x": {
                "field": x,
                "type": "quantitative",
                "title": x_title,
                "axis": {"format": "~s", "tickMinStep": 1},
                "scale": {"domainMin": 0},
            },  # from the start of the run: one early point is not the whole axis
            "y": {"field": "value", "type": "quantitative", "title": y_title, "scale": y_scale},
            "color": {
                "field": "series",
                "type": "nominal",
                "title": None,
                "scale": {"domain": list(colors), "range": list(colors.values())},
            },
            "tooltip": [
                {"field": x, "type": "quantitative"},
                {"field": "series", "type": "nominal"},
                {"field": "value", "type": "quantitative", "format": ".4f"},
            ],
        },
        "config": _vl_config(),
        "height": 300,
    }


def bar_spec(x_title: str, y_title: str, color: str = OI["blue"], log: bool = True, horizontal: bool = False) -> dict:
    """Vega-Lite bar chart of a bars_frame table (name, value, base); log scale by default (gradient norms span
    decades). Bars run from `base`, not 0, because a log axis has no 0."""
    cat = {"field": "name", "type": "nominal", "title": x_title, "sort": None}
    val = {"field": "value", "type": "quantitative", "title": y_title, "scale": {"type": "log"} if log else {}}
    base = {"field": "base"}
    enc = {"y": cat, "x": val, "x2": base} if horizontal else {"x": cat, "y": val, "y2": base}
    enc["tooltip"] = [{"field": "name", "type": "nominal"}, {"field": "value", "type": "quantitative", "format": ".3g"}]
    # horizontal: long group names; vertical: upright timestep labels, every other one dropped when they'd collide
    cat["axis"] = {"labelLimit": 220} if horizontal else {"labelAngle": 0, "labelOverlap": "greedy"}
    return {"mark": {"type": "bar", "color": color}, "encoding": enc, "config": _vl_config(), "height": 280}


def bars_frame(values: dict[str, float] | Sequence[float], prefix: str = "") -> pd.DataFrame:
    """(name, value) table from {name: value} or a list (named prefix+1, prefix+2, ...); non-positive and
    non-finite values dropped (they have no place on a log axis)."""
    items = values.items() if isinstance(values, dict) else ((f"{prefix}{i + 1}", v) for i, v in enumerate(values))
    rows = [(str(k), float(v)) for k, v in items if v is not None and math.isfinite(float(v)) and float(v) > 0]
    vals = [v for _, v in rows]
    base = min(vals) / 10 if vals else 1.0  # where bars start on a log axis: a decade below the least
    return pd.DataFrame(
        {
            "name": np.array([k for k, _ in rows], dtype=object),
            "value": np.array(vals, dtype=float),
            "base": np.full(len(rows), base),
        }
    )
