"""06_sequences.ipynb in a real browser (JupyterLab + headless Chromium through Playwright, as test_browser.py):
run all cells, press the sequence player's play button and see the 3D figure and the frame slider change.
Skipped where no Chromium is installed."""

from __future__ import annotations

import pytest
from test_browser import _PLOT_DATA_JS, CHROMIUM, CHROMIUM_ARGS, _plot_data, open_and_run_all, serve_notebook

pytestmark = pytest.mark.browser


@pytest.fixture
def lab06(tmp_path, tiny_data, trained_checkpoint):
    """A JupyterLab server whose root holds 06_sequences.ipynb with tiny parameters injected."""
    yield from serve_notebook(
        tmp_path,
        "06_sequences",
        {
            "data_root": str(tiny_data),
            "output_dir": str(tmp_path / "output"),
            "checkpoint": str(trained_checkpoint),
            "png_export": "matplotlib",
            "export": False,
            "temporal_sequences": 0,
        },
    )


def test_sequence_player_plays_in_jupyterlab(lab06):
    from playwright.sync_api import sync_playwright

    plot = ".jupyter-widgets .js-plotly-plot"  # the player's 3D FigureWidget comes first in the widget box
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            open_and_run_all(page, lab06, "06_sequences")
            page.wait_for_selector(".jupyter-widgets .widget-play", state="visible")
            page.wait_for_selector(f"{plot} .gl-container canvas", state="attached")
            # JupyterLab renders only the cells in view: bring the player there
            page.locator(".jupyter-widgets .widget-play").first.scroll_into_view_if_needed()
            title = page.locator(".jupyter-widgets .widget-html-content", has=page.locator("b")).first
            before_title = title.text_content()
            assert "(1 / " in before_title, before_title
            before = _plot_data(page, plot)
            before_sig = page.evaluate(f"(sel) => JSON.stringify(({_PLOT_DATA_JS})(sel))", plot)
            assert before and any(t["meta"] and t["meta"].get("source") == "pred" for t in before)

            page.locator(".jupyter-widgets .widget-play button").first.click()  # ▶
            page.wait_for_function(
                f"([sel, old]) => JSON.stringify(({_PLOT_DATA_JS})(sel)) !== old",
                arg=[plot, before_sig],
                timeout=30_000,
            )
            after = _plot_data(page, plot)
            assert [t["x"] for t in after] != [t["x"] for t in before], "the 3D figure did not change"
            assert len(after) == len(before)  # coordinates updated in place, same traces
            page.wait_for_function(
                "(old) => [...document.querySelectorAll('.jupyter-widgets .widget-html-content')]"
                ".some(e => e.querySelector('b') && e.textContent !== old)",
                arg=before_title,
                timeout=30_000,
            )  # the frame moved on
            shot = lab06["out"] / "vis" / "browser_06_sequences.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
