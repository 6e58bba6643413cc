"""06_sequences.ipynb in a real browser (JupyterLab + headless Chromium through Playwright, as test_browser.py):
run all cells, press the sequence player's play button and see the frames advance in the page, with no message to
the kernel while it plays; then click the error curve and see the player seek to that frame.
Skipped where no Chromium is installed."""

from __future__ import annotations

import pytest
from test_browser import _plot_data, lab_page, open_and_run_all, seek_on_curve_click, serve_notebook

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


def test_sequence_player_plays_in_jupyterlab_without_the_kernel(lab06):
    play_the_player(lab06, "06_sequences")


def play_the_player(lab: dict, name: str) -> None:
    """Run notebook ``name`` in the JupyterLab of ``lab``, enter its first plotly output (the player), press play and
    see the frames advance in the page with no message sent to the kernel meanwhile."""
    with lab_page() as page:
        sent = []  # messages the page sends to the kernel (websocket frames)
        page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
        open_and_run_all(page, lab, name)
        # the player is one plotly output: its static PNG until the pointer enters, then the live figure
        player = page.locator(".jp-RenderedPlotly").first
        player.scroll_into_view_if_needed()
        player.hover()
        # plotly's JupyterLab renderer draws into its own node: the output element is the plotly graph div
        page.wait_for_selector(".jp-RenderedPlotly .gl-container canvas", state="attached")
        plot = ".jp-RenderedPlotly.js-plotly-plot"
        meta = page.evaluate(f"document.querySelector('{plot}').layout.meta")
        assert meta["kind"] == "sequence_player" and meta["frames"] >= 3, meta
        page.evaluate(
            f"""() => {{ const gd = document.querySelector('{plot}'); gd.__shown = [];
            gd.on('plotly_animatingframe', (ev) => gd.__shown.push([performance.now(), ev.name])); }}"""
        )
        before = _plot_data(page, plot)
        n_sent = len(sent)
        page.locator(".jp-RenderedPlotly .updatemenu-button").first.click()  # ▶ play
        want = min(meta["frames"] - 1, 6)
        page.wait_for_function(f"document.querySelector('{plot}').__shown.length >= {want}", timeout=60_000)
        shown = page.evaluate(f"document.querySelector('{plot}').__shown")
        assert len(sent) == n_sent, "playing sent messages to the kernel"
        after = _plot_data(page, plot)
        assert [t["x"] for t in after] != [t["x"] for t in before], "the 3D figure did not change"
        times = [t for t, _ in shown]
        rate = (len(times) - 1) / ((times[-1] - times[0]) / 1000.0) if len(times) > 1 else 0.0
        print(f"{name} player in JupyterLab: {rate:.2f} frames/s shown, the sequence has {meta['fps']} fps")
        assert rate > 0.5  # it plays by itself; the rate against the sequence's: tests/test_player.py
        page.locator(".jp-RenderedPlotly .updatemenu-button").nth(1).click()  # pause
        seek_on_curve_click(page, plot, meta["frames"] - 2)
        shot = lab["out"] / "vis" / f"browser_{name}.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
