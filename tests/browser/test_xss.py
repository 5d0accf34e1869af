"""User text is shown as text (issue 4): a dataset and a file name full of <script>, raw HTML and markup go through
the Data page's uploader, the sample table, the walkthrough, a training run's sample table, and the Encoder and
Decoder pages of the model trained on it. The literal text must be visible, and nothing may execute: no
`window.__xss`, no dialog, no element created from the user's markup.
"""

from __future__ import annotations

import re

import pytest
from conftest import act, assert_no_exception, button, ensure_input, figure, load, main_text, nav, wait_count

from seq2seq.tokens import Tokenizer

pytestmark = pytest.mark.browser

PAYLOADS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=2;alert(2)">',
    "<b>bold</b>",
    '<svg/onload="window.__xss=4">',
    '<a href="javascript:window.__xss=5">link</a>',
    '<iframe src="javascript:alert(6)"></iframe>',
    "<style>*{display:none}</style>",
    "&lt;amp&gt;",
]
ROWS = [(f"{PAYLOADS[i % len(PAYLOADS)]} r{i}", f"{PAYLOADS[(i + 3) % len(PAYLOADS)]} t{i}") for i in range(40)]
TSV = "".join(f"{s}\t{t}\n" for s, t in ROWS).encode()
NAME = "<img src=x onerror=window.__xss=7>.tsv"  # (browsers send a quote in a file name as %22)
SOURCES = {s for s, _ in ROWS}
TARGETS = {t for _, t in ROWS}

# Everything the user's markup could have turned into.
INJECTED = """() => ({
  xss: typeof window.__xss === 'undefined' ? null : window.__xss,
  img: document.querySelectorAll('img[src="x"]').length,
  svg_onload: document.querySelectorAll('svg[onload]').length,
  iframes: document.querySelectorAll('iframe[src^="javascript"]').length,
  js_links: document.querySelectorAll('a[href^="javascript"]').length,
  styles: Array.from(document.querySelectorAll('style')).filter(s => s.textContent.includes('*{display:none}')).length,
  bold: Array.from(document.querySelectorAll('[data-testid=stMain] b')).filter(b => b.textContent === 'bold').length,
  scripts: Array.from(document.querySelectorAll('script')).filter(s => s.textContent.includes('__xss')).length})"""
CLEAN = {"xss": None, "img": 0, "svg_onload": 0, "iframes": 0, "js_links": 0, "styles": 0, "bold": 0, "scripts": 0}


def grid_cells(page) -> list[str]:
    """Texts of the cells of the main area's data grids (from the grids' accessible tables)."""
    return page.evaluate("""() => Array.from(document.querySelectorAll(
        '[data-testid=stMain] [data-testid=stDataFrame] [id^=glide-cell-]')).map(c => c.innerText)""")


def svg_text(page) -> str:
    return page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid=stMain] .js-plotly-plot text'))
                                  .map(t => t.textContent).join(' ')""")


def check_clean(page, where: str) -> None:
    assert page.evaluate(INJECTED) == CLEAN, f"user markup became live HTML on {where}: {page.evaluate(INJECTED)}"
    assert not page.dialogs, f"a dialog fired on {where}: {page.dialogs}"
    assert_no_exception(page, where)


def test_hostile_text_is_shown_literally_and_never_runs(server, new_page):
    page = new_page()
    defects: list[str] = []
    load(page, server.url + "/")
    act(page, page.locator("[data-testid='stButtonGroup'] button", has_text="Upload a file").click)
    act(
        page, page.locator("[data-testid='stMain'] [data-testid='stRadio'] label", has_text=re.compile(r"^word$")).click
    )
    uploader = page.locator("[data-testid='stMain'] [data-testid='stFileUploaderDropzoneInput']")

    # 1. a broken file with a hostile name: the error message names the file literally
    act(
        page,
        lambda: uploader.set_input_files(
            files=[{"name": NAME, "mimeType": "text/plain", "buffer": b"only one column\n"}]
        ),
    )
    page.locator("[data-testid='stMain'] [data-testid='stAlert']").first.wait_for()
    assert NAME in main_text(page), "the file name is not shown literally in the error"
    check_clean(page, "Data (upload error)")

    # 2. the hostile dataset: table cells, the walkthrough's text and token figure show it literally
    act(
        page,
        lambda: uploader.set_input_files(
            files=[{"name": NAME, "mimeType": "text/tab-separated-values", "buffer": TSV}]
        ),
    )
    wait_count(page, "[data-testid='stMain'] [id^=glide-cell-]", 6)
    cells = [c for c in grid_cells(page) if "<" in c or "&" in c]
    word = Tokenizer("word")
    tokens = {tok for s in SOURCES | TARGETS for tok in s.split() + word.tokenize(s) + list(s)}
    # the tokenization comparison shows each source cut into tokens, joined by " · ": literal text too
    joined = lambda c: re.sub(r"\s|·|##", "", c)  # noqa: E731
    whole = {joined(s) for s in SOURCES | TARGETS}
    assert cells and all(c in SOURCES | TARGETS | tokens or joined(c) in whole for c in cells), cells
    codes = page.locator("[data-testid='stMain'] [data-testid='stCode']").all_inner_texts()
    assert any(c.strip() in SOURCES for c in codes) and any(c.strip() in TARGETS for c in codes), codes
    src = next(c.strip() for c in codes if c.strip() in SOURCES)
    wait_count(page, "[data-testid='stMain'] .js-plotly-plot", 1)
    figure_text = svg_text(page)
    missing = [tok for tok in word.tokenize(src) if tok not in figure_text]
    assert not missing, f"tokens not shown literally in the padded-example figure: {missing}"
    figure(f"data page shows literally: {len(cells)} hostile table cells, walkthrough {src!r}")
    check_clean(page, "Data")

    # 3. train on it briefly; the sample table shows hostile validation inputs literally; use the trained model
    nav(page, "train")
    assert f"uploaded file: {NAME}" in main_text(page)
    act(page, button(page, "Start").click)
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll(
        '[data-testid=stMain] [data-testid=stDataFrame] [id^=glide-cell-0-]')).some(c => c.innerText.includes('<'))""",
        timeout=90_000,
    )
    inputs = [c for c in grid_cells(page) if c in SOURCES]
    assert inputs, "the sample table does not show the validation inputs literally"
    check_clean(page, "Train")
    if button(page, "Stop").is_enabled():  # (32 pairs: the run may well have finished already)
        act(page, button(page, "Stop").click)
    page.wait_for_function("""() => Array.from(document.querySelectorAll('[data-testid=stMain] button'))
                                    .some(b => b.innerText.includes('Use the trained model') && !b.disabled)""")
    act(page, button(page, "Use the trained model").click)
    assert "custom data" in page.locator("[data-testid='stSidebar']").inner_text()

    # 4. the Encoder and Decoder pages of that model: its example inputs are the hostile sources
    nav(page, "encoder")
    text = main_text(page)
    first_token = page.locator(
        "[data-testid='stMain'] [data-testid='stTextInputRootElement'] input"
    ).first.input_value()
    first_token = word.tokenize(first_token)[0]  # word tokens: punctuation marks are tokens of their own
    assert first_token in " ".join(PAYLOADS), first_token
    assert f"x_1 = {first_token!r}" in text, f"the token {first_token!r} is not shown literally in the step heading"
    assert first_token in svg_text(page), "the token strip does not show the token literally"
    check_clean(page, "Encoder")
    nav(page, "decoder")
    ensure_input(page, defects, "Decoder (from Encoder)")
    assert "Output y" in main_text(page)
    check_clean(page, "Decoder")
    nav(page, "states")
    ensure_input(page, defects, "Hidden states & context (from Decoder)")
    check_clean(page, "Hidden states & context")
    assert not defects, defects
