"""Figure functions of the inspection pages: built from real traces of small random models of every kind."""

import itertools
import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from seq2seq.config import ModelConfig
from seq2seq.data import Vocab
from seq2seq.decoding import beam_search
from seq2seq.introspect import trace_decoder, trace_encoder
from seq2seq.model import Seq2Seq
from ui import figures_inspect as F

torch.set_num_threads(1)
VOCAB = Vocab.build([list("abcdefgh<>& ")])
SRC = "ab<b>c&d"  # markup in user text must stay text
KINDS = [  # (cell, layers, bidirectional, attention): every cell, 1-3 layers, both directions, every attention
    ("lstm", 1, False, "additive"),
    ("gru", 2, True, "dot"),
    ("rnn", 3, True, "none"),
    ("lstm", 2, True, "none"),
    ("gru", 1, False, "none"),
    ("rnn", 1, False, "dot"),
]


def make(cell, layers, bi, att):
    torch.manual_seed(0)
    cfg = ModelConfig(
        len(VOCAB), len(VOCAB), cell=cell, embed=6, hidden=10, layers=layers, bidirectional=bi, attention=att
    )
    return Seq2Seq(cfg).eval()


@pytest.fixture(params=KINDS, ids=lambda k: "-".join(map(str, k)), scope="module")
def model_trace(request):
    m = make(*request.param)
    return m, trace_encoder(m, VOCAB, SRC, "char")


def spec(fig: go.Figure) -> dict:
    return json.loads(fig.to_json())


def test_encoder_step_rows_follow_the_cell(model_trace):
    m, tr = model_trace
    L, D, T, H = tr.h.shape
    expect = {"lstm": 4 + 2 + 2, "gru": 3 + 2, "rnn": 1 + 2}[m.cfg.cell]  # gates + prev/next h (+ c_{t-1}, c_t)
    for d, t in itertools.product(range(D), (0, T - 1)):
        rows = F.encoder_step_rows(tr, L - 1, d, t)
        assert len(rows) == expect and all(v.shape == (H,) for _, v, _ in rows)
        assert np.allclose(rows[-1][1], tr.h[L - 1, d, t])
        if (d == 0 and t == 0) or (d == 1 and t == T - 1):  # nothing read yet in this direction: h = 0
            assert np.allclose(rows[0][1], 0)
        else:
            assert np.allclose(rows[0][1], tr.h[L - 1, d, t - 1 if d == 0 else t + 1])
        fig = F.encoder_step_figure(tr, L - 1, d, t)
        spec(fig)  # serializes
        z = np.array(fig.data[-1].z, dtype=float)
        assert z.shape == (expect, H)
        assert ("backward" in fig.layout.title.text) == (d == 1)


def test_backward_previous_state_is_the_later_timestep(model_trace):
    m, tr = model_trace
    if tr.h.shape[1] == 1:
        pytest.skip("unidirectional")
    rows = F.encoder_step_rows(tr, 0, 1, 2)
    assert rows[0][0].startswith("h_{t+1}") and np.allclose(rows[0][1], tr.h[0, 1, 3])


def test_states_so_far_fills_each_direction_from_its_own_end(model_trace):
    _, tr = model_trace
    L, D, T, H = tr.h.shape
    z, at = F.states_so_far(tr, 0, 3)
    assert z.shape == (T, D * H)
    assert not np.isnan(z[:3, :H]).any() and np.isnan(z[3:, :H]).all()
    assert at[0] == 2
    if D == 2:
        assert at[1] == T - 3 and not np.isnan(z[T - 3 :, H:]).any() and np.isnan(z[: T - 3, H:]).all()
    fig = F.states_heatmap(z, tr.tokens, "so far", highlight=at[0], divider=H if D == 2 else None)
    s = spec(fig)
    assert s["layout"]["yaxis"]["title"]["text"].startswith("timestep")
    assert s["layout"]["xaxis"]["title"]["text"] == "hidden unit"
    assert len(s["layout"]["yaxis"]["ticktext"]) == T


def test_animation_has_one_frame_per_timestep(model_trace):
    _, tr = model_trace
    fig = F.encoder_animation(tr, tr.h.shape[0] - 1, start=2)
    assert len(fig.frames) == len(tr.tokens)
    assert fig.layout.sliders[0].active == 1
    last = np.array(fig.frames[-1].data[0].z, dtype=float)
    assert not np.isnan(last).any()  # after the last step every state is there


def test_user_text_is_escaped_not_markup(model_trace):
    _, tr = model_trace
    fig = F.token_strip(tr.tokens, [1])
    texts = list(fig.data[0].text)
    assert "&lt;" in texts and "&amp;" in texts and "<" not in "".join(texts)
    assert F.label(" ") == "␣" and F.label("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"


def test_decoder_figures(model_trace):
    m, tr = model_trace
    itos = VOCAB.itos
    dt = trace_decoder(m, tr, VOCAB, target="dc&b", teacher_forced=True)
    assert len(dt.steps) == 5  # 4 target tokens + <eos>
    ce = [s.cross_entropy for s in dt.steps]
    fig = F.cross_entropy_figure(ce, [s.target_token for s in dt.steps], [s.chosen_token for s in dt.steps], 1)
    assert np.allclose(fig.data[0].y, ce) and "cross-entropy" in fig.layout.yaxis.title.text
    st = dt.steps[0]
    fig = F.topk_figure(st.probs, itos, st.chosen_id, k=4, target_id=st.target_id)
    assert 4 <= len(fig.data[0].x) <= 5 and fig.data[0].x[0] == pytest.approx(st.probs.max())
    A = dt.attention_matrix()
    assert (A is None) == (m.cfg.attention == "none")
    if A is not None:
        fig = F.attention_matrix_figure(A, tr.tokens, [s.target_token for s in dt.steps], highlight=0)
        assert np.array(fig.data[0].z).shape == (5, len(tr.tokens))
        assert fig.data[0].zmin == 0 and fig.data[0].zmax == 1 and fig.data[0].colorbar.title.text == "a_tj"
        fig = F.attention_bar(A[0], tr.tokens, "a_1")
        assert np.isclose(sum(fig.data[0].y), 1)
    fig = F.decoder_states_figure(np.stack([s.s[-1] for s in dt.steps]), [s.chosen_token for s in dt.steps])
    assert np.array(fig.data[0].z).shape == (5, m.cfg.hidden)


def test_beam_tree_marks_kept_pruned_and_best(model_trace):
    m, tr = model_trace
    res = beam_search(m, tr.ids, 3, max_len=6)
    best = F.beam_best_path(res.tree, res.best)
    assert [res.tree[i].token_id for i in best if res.tree[i].token_id != 2] == res.best
    fig = F.beam_tree_figure(res.tree, VOCAB.itos, best_ids=best, max_pruned_per_step=3)
    names = {tr.name for tr in fig.data if tr.name}
    assert {"kept", "pruned"} <= names
    kept = next(t for t in fig.data if t.name == "kept")
    assert len(kept.x) == sum(n.kept and not n.finished for n in res.tree)  # root included (kept, step 0)
    assert "hover" not in json.dumps(fig.layout.title.text)


def test_beam_tree_eos_nodes_carry_no_colliding_labels(model_trace):
    """<eos> nodes are diamonds named by the legend; their text labels used to run into each other."""
    m, tr = model_trace
    res = beam_search(m, tr.ids, 3, max_len=6)
    fig = F.beam_tree_figure(res.tree, VOCAB.itos, best_ids=F.beam_best_path(res.tree, res.best), max_pruned_per_step=3)
    texts = [t for trace in fig.data if trace.text is not None for t in trace.text]
    assert "&lt;eos&gt;" not in texts
    hovers = [c[0] for trace in fig.data if trace.customdata is not None for c in trace.customdata]
    assert "&lt;eos&gt;" in hovers or not any(n.token_id == 2 for n in res.tree)  # still named in hover
    for trace in fig.data:
        if trace.name and trace.name.startswith("finished"):
            assert trace.marker.symbol == "diamond"


def test_encoder_step_titles_fit_a_half_width_column():
    m = make("lstm", 2, True, "none")
    tr = trace_encoder(m, VOCAB, "abcdefghijklmnop", "char")
    for d in (0, 1):
        title = F.encoder_step_figure(tr, 1, d, 14).layout.title.text
        assert len(title) <= 48, title  # ~20 px characters in a ~560 px column


def test_pca_and_compare():
    m = make("gru", 1, True, "none")
    traces = [trace_encoder(m, VOCAB, s, "char") for s in ("abc", "hgfedcba", "aaaa", "cab")]
    mean, comps, ratio = F.pca_fit([t.outputs for t in traces])
    assert comps.shape == (2, 20) and np.allclose(np.linalg.norm(comps, axis=1), 1)
    assert 0 < ratio.sum() <= 1 + 1e-9 and ratio[0] >= ratio[1]
    coords = [F.pca_project(t.outputs, mean, comps) for t in traces]
    assert [c.shape for c in coords] == [(3, 2), (8, 2), (4, 2), (3, 2)]
    fig = F.pca_trajectories_figure(coords, ["abc", "hgfedcba", "aaaa", "cab"], [t.tokens for t in traces], ratio, [1])
    assert "variance" in fig.layout.xaxis.title.text
    assert F.cosine(traces[0].context, traces[0].context) == pytest.approx(1)
    assert F.cosine(np.zeros(3), np.ones(3)) == 0
    fig = F.compare_heatmaps(traces[0].outputs, traces[0].tokens, traces[1].outputs, traces[1].tokens)
    assert fig.data[0].coloraxis == fig.data[1].coloraxis == "coloraxis"  # one shared color scale


def test_force_compare_marks_forced_and_changed():
    fig = F.force_compare_figure(["a", "b", "c"], ["a", "x", "c", "d"], 1)
    fills = fig.data[0].cells.fill.color
    assert fills[2][1] == F.ORANGE  # step 2 (column 2 after the row label) forced
    assert fills[3][1] == "white" and fills[4][1] != "white"  # unchanged vs changed later


def test_projector_style():
    fig = F.vector_strip(np.linspace(-2, 3, 7), "c", "c")
    assert fig.layout.font.size >= 16 and fig.data[0].colorscale[0][1] and fig.data[0].zmid == 0
    assert fig.data[0].zmin == -3 and fig.data[0].zmax == 3 and fig.data[0].colorbar.title.text


def test_token_strip_fits_word_and_subword_tokens():
    toks = ["Stand", "##ing", "here", "##!", "a", "extraordinarily"]
    fig = F.token_strip(toks, [0, 5])
    boxes = [(s.x0, s.x1) for s in fig.layout.shapes]
    assert list(fig.data[0].text) == [F.label(t) for t in toks]  # whole tokens, never cropped
    widths = [b - a for a, b in boxes]
    assert widths[5] > widths[0] > widths[4] and all(w >= 0.62 * len(t) for w, t in zip(widths, toks))
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(boxes, boxes[1:]))  # boxes side by side, no overlap
    assert fig.layout.shapes[0].fillcolor != "#EEEEEE" and fig.layout.shapes[1].fillcolor == "#EEEEEE"
