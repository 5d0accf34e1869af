"""The guided lesson in a real browser, driven by the keyboard only: Alt+P (presenter mode), PageDown / PageUp (next /
previous step), Right (next timestep on the Encoder and Decoder pages). Each step must open its page with its
model, and a full-page screenshot of every step in presenter mode goes to artifacts/screenshots/lesson-*.png."""

from __future__ import annotations

import re

import pytest
from conftest import act, assert_no_exception, load, shot

pytestmark = pytest.mark.browser

PAGES = ["Data", "Encoder", "Hidden states", "Decoder", "Decoder", "One training step", "One training step"]
MODELS = ["reverse", "reverse", "dates", "reverse", "translate", "reverse", "copy"]


def bar_text(page) -> str:
    loc = page.locator("[data-testid='stMain'] .st-key-lesson_bar")
    return loc.first.inner_text() if loc.count() else ""


def press(page, key: str) -> None:
    page.locator("[data-testid='stMain'] h1").first.click()  # focus the page itself, not an input box
    act(page, lambda: page.keyboard.press(key))


def slider_value(page) -> int:
    return int(page.locator("[data-testid='stMain'] [data-testid='stSliderThumbValue']").first.inner_text())


def test_walk_the_whole_lesson_with_the_keyboard(server, new_page):
    page = new_page({"width": 1400, "height": 1000})
    load(page, f"{server.url}/lesson")
    body_px = lambda: page.evaluate(  # noqa: E731
        "() => parseFloat(getComputedStyle(document.querySelector('[data-testid=stMain] p')).fontSize)"
    )
    small = body_px()
    press(page, "Alt+P")
    assert body_px() > 1.3 * small, (small, body_px())  # presenter mode: larger text
    press(page, "PageDown")  # "Start the lesson"
    for k, (title, model) in enumerate(zip(PAGES, MODELS)):
        page.wait_for_function(
            "(k) => { const b = document.querySelector('[data-testid=stMain] .st-key-lesson_bar');"
            " return b && b.innerText.includes(`step ${k} of`); }",
            arg=k + 1,
            timeout=120_000,
        )
        page.wait_for_selector("[data-testid='stMain'] h1")
        assert_no_exception(page, f"lesson step {k + 1}")
        h1 = page.locator("[data-testid='stMain'] h1").first.inner_text()
        assert h1.startswith(title), (k + 1, h1)
        sidebar = page.locator("[data-testid='stSidebarUserContent']").inner_text()
        assert f"pretrained: {model}" in sidebar, (k + 1, model)
        if title in ("Encoder", "Decoder") and k != 4:  # a timestep slider (beam search at step 5 has none)
            before = slider_value(page)
            press(page, "ArrowRight")
            page.wait_for_function(
                "(v) => +document.querySelector('[data-testid=stMain] [data-testid=stSliderThumbValue]').innerText > v",
                arg=before,
                timeout=60_000,
            )
        page.wait_for_timeout(1500)  # charts drawn
        shot(page, f"lesson-{k + 1}-{re.sub(r'[^a-z]+', '-', PAGES[k].lower()).strip('-')}-presenter")
        if k + 1 < len(PAGES):
            press(page, "PageDown")
    assert body_px() > 1.3 * small  # still in presenter mode at the end
    press(page, "PageUp")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=stMain] .st-key-lesson_bar').innerText.includes('step 6 of')",
        timeout=120_000,
    )
    assert "copy" not in page.locator("[data-testid='stSidebarUserContent']").inner_text().split("Switch model")[0]
