"""The Compare page in a real browser (issue 15): a two-model comparison (attention vs none) trained live, both
curves growing in ONE chart, the per-length and gradient charts drawn at the end, "Use model B"; then the
"Why attention?" preset: both curves grow, Stop, and the per-length chart is drawn. Screenshots of every view in
artifacts/screenshots/compare-*.png (look at them)."""

from __future__ import annotations

import time

import pytest
from conftest import act, assert_no_exception, button, figure, load, main_text, nav, shot

pytestmark = pytest.mark.browser

# the number of points of each line of the first live chart (the training loss), one entry per line
LINE_POINTS = """() => {
  const c = document.querySelector('[data-testid=stMain] [data-testid=stVegaLiteChart]');
  if (!c) return [];
  return Array.from(c.querySelectorAll('.mark-line path')).map(p => (p.getAttribute('d') || '').split(/[ML]/).length - 1);
}"""
PLOT_TITLES = """() => Array.from(document.querySelectorAll('[data-testid=stMain] .js-plotly-plot .gtitle'))
  .map(t => t.textContent)"""

BY_LENGTH_LINES = """() => { const p = Array.from(document.querySelectorAll('[data-testid=stMain] .js-plotly-plot'))
  .find(e => (e.querySelector('.gtitle') || {}).textContent?.includes('by source length'));
  return p ? p.querySelectorAll('.scatterlayer .trace').length : 0; }"""
BY_LENGTH_LINES = "() => (" + BY_LENGTH_LINES + ")()"


def lines_grow(page, seconds: float = 60) -> tuple[list[int], list[int]]:
    """Wait until the loss chart has two lines, then until both have grown; returns (first, last) point counts."""
    page.wait_for_function(
        f"() => ({LINE_POINTS})().length === 2 && ({LINE_POINTS})().every(n => n >= 2)", timeout=seconds * 1000
    )
    first = page.evaluate(LINE_POINTS)
    end = time.time() + seconds
    while time.time() < end:
        page.wait_for_timeout(500)
        last = page.evaluate(LINE_POINTS)
        if len(last) == 2 and all(b > a for a, b in zip(first, last)):
            return first, last
    raise AssertionError(f"the curves did not both grow: {first} -> {page.evaluate(LINE_POINTS)}")


def pick(page, label: str, option: str) -> None:
    box = page.locator("[data-testid='stMain'] [data-testid='stSelectbox']").filter(has_text=label)
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    page.wait_for_timeout(300)


@pytest.mark.unreliable  # flaky under load (the preset's measurement can outlast the wait); not re-run since the
# merge pinned model A's attention to none (the default became dot), 2026-12-07
def test_two_model_comparison_and_why_attention_preset(server, new_page):
    page = new_page()
    load(page, f"{server.url}/compare?reverse.n=300&reverse.max_len=8&hidden=32&emb=16&attention=none")
    assert_no_exception(page, "Compare")
    assert "A: LSTM, bidirectional, no attention" in main_text(page)
    shot(page, "compare-setup")

    # ---- two models: the same, with attention
    pick(page, "Add a model", "with additive attention")
    act(page, button(page, "Add", exact=True).click)
    assert "B: + additive attention" in main_text(page)
    epochs = page.locator("[data-testid='stMain'] [data-testid='stNumberInput'] input").first
    act(page, lambda: (epochs.fill("40"), epochs.press("Enter")))
    t0 = time.time()
    act(page, button(page, "Start the comparison").click)
    first, last = lines_grow(page)
    figure(f"compare: both loss curves grew {first} -> {last} points in {time.time() - t0:.1f} s after Start")
    legend = page.locator("[data-testid='stMain'] [data-testid='stVegaLiteChart']").first.inner_text()
    assert "A: LSTM" in legend and "B: + additive attention" in legend
    shot(page, "compare-live")
    page.wait_for_function(BY_LENGTH_LINES + " === 2", timeout=180_000)  # one line per model, once both finished
    titles = page.evaluate(PLOT_TITLES)
    assert any("‖∂L/∂h_t‖" in t for t in titles), titles
    assert_no_exception(page, "Compare (two models, finished)")
    shot(page, "compare-finished")
    act(page, button(page, "Use model B").click)
    assert "model B of a comparison" in page.locator("[data-testid='stSidebar']").inner_text()
    nav(page, "decoder")
    assert_no_exception(page, "Decoder with model B")

    # ---- the preset, in one click
    nav(page, "compare")
    t0 = time.time()
    act(page, button(page, "Why attention?").click)
    assert "squeeze" in main_text(page) or "context vector" in main_text(page)
    first, last = lines_grow(page, seconds=120)
    figure(f"why attention: both loss curves grew {first} -> {last} points in {time.time() - t0:.1f} s")
    shot(page, "compare-why-attention-live")
    act(page, button(page, "Stop", exact=True).click)
    page.wait_for_function(BY_LENGTH_LINES + " === 2", timeout=120_000)
    assert_no_exception(page, "Why attention? (stopped)")
    shot(page, "compare-why-attention-stopped")
