"""Real text in a real browser: the Tatoeba task on the Data page (license, tokenizations compared), a short
training run whose BLEU/chrF chart is drawn next to exact match, and the Encoder page reading a French-bound English
sentence with the shipped `tatoeba` model. Screenshots: artifacts/screenshots/tatoeba-*.png (look at them)."""

from __future__ import annotations

import pytest
from conftest import act, assert_no_exception, button, load, main_text, nav, shot, wait_count

pytestmark = pytest.mark.browser


def test_tatoeba_data_train_and_encoder_pages(server, new_page):
    page = new_page()
    load(page, f"{server.url}/?task=tatoeba&model=tatoeba")
    text = main_text(page)
    assert "CC BY 2.0 FR" in text and "How each tokenization cuts this example" in text
    wait_count(page, "[data-testid='stMain'] .js-plotly-plot", 3)
    assert_no_exception(page, "Data")
    shot(page, "tatoeba-data")

    nav(page, "train")
    act(page, page.locator("[data-testid='stButtonGroup'] button", has_text="seconds").click)
    act(page, button(page, "Start").click)
    page.get_by_text("Translation scores").first.wait_for(timeout=120_000)
    page.wait_for_function(
        """() => { const c = Array.from(document.querySelectorAll(
        '[data-testid=stMain] [data-testid=stVegaLiteChart]')); return c.length >= 5 && c.every(x => x.querySelector('svg')); }""",
        timeout=120_000,
    )
    assert "BLEU" in main_text(page)
    assert_no_exception(page, "Train")
    shot(page, "tatoeba-train")
    act(page, button(page, "Stop").click)
    page.get_by_text("stopped ·").first.wait_for()

    nav(page, "encoder")
    wait_count(page, "[data-testid='stMain'] .js-plotly-plot", 3)
    assert "##" in main_text(page) or "glued" in main_text(page)
    assert_no_exception(page, "Encoder")
    shot(page, "tatoeba-encoder")
