"""The client-side sequence player (internet.vis.player): one plotly figure whose frames carry the image with the 2D
skeletons, the 3D hands and the error curve's cursor; and, in headless Chromium, its exported HTML playing by itself
at the sequence's frame rate and seeking when the error curve is clicked."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from internet.skeleton import INTERHAND
from internet.vis.player import player_figure, player_png, save_player_html, show_player
from internet.vis.style import HAND_COLORS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _hands(k: int) -> np.ndarray:
    """(42, 3) mm: two fans of straight fingers moving along x and spreading with k, 500 mm away."""
    out = np.zeros((42, 3))
    for hand, ox in (("right", -60.0), ("left", 60.0)):
        for j in INTERHAND.joint_type[hand]:
            f = INTERHAND.finger[j]
            if f < 0:
                out[j] = (ox + 2 * k, 40.0, 500.0)
                continue
            r = 12.0 * (int(INTERHAND.names[j][-1]) + 1)
            th = np.radians(-150 + (30 + 2 * k) * f)
            out[j] = (ox + 2 * k + np.cos(th) * r, 40.0 + np.sin(th) * r, 500.0 + f)
    return out


def _frames(n: int):
    frames = []
    for k in range(n):
        cam = _hands(k)
        uv = cam[:, :2] * 0.8 + [80.0, 40.0]
        frames.append(
            {
                "img": np.full((120, 160, 3), 20 + 5 * k, dtype=np.uint8),
                "joint_img": uv,
                "pred_img": uv + 2.0,
                "joint_cam": cam,
                "pred_cam": cam + 3.0,
                "joint_valid": np.ones(42, dtype=bool),
                "title": f"frame {k}",
                "label": str(100 + k),
            }
        )
    return frames


def _decode(uri: str) -> np.ndarray:
    raw = base64.b64decode(uri.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]


def test_player_figure_precomputes_every_frame():
    n = 6
    frames = _frames(n)
    curves = {"right": np.arange(n, dtype=float), "left": np.full(n, 3.0)}
    fig = player_figure(frames, fps=5.0, curves=curves, time_axis=np.arange(n) * 0.2)
    assert len(fig.frames) == n and [f.name for f in fig.frames] == [str(100 + k) for k in range(n)]
    assert fig.layout.meta["frames"] == n and fig.layout.meta["fps"] == 5.0
    # each frame moves the image, every 3D trace and the cursor, and nothing else
    kinds = [t.meta["part"] for t in fig.data]
    moving = list(fig.frames[0].traces)
    assert kinds[moving[0]] == "image" and kinds[moving[-1]] == "cursor"
    assert all(fig.data[i].meta["part"] == "hand" for i in moving[1:-1]) and len(moving) == 2 + 2 * 2
    assert all(len(f.data) == len(moving) for f in fig.frames)
    # the cursor sits on the frame's time, the 3D changes between frames, the images differ
    assert [f.data[-1].x[0] for f in fig.frames] == pytest.approx(np.arange(n) * 0.2)
    assert [t.x for t in fig.frames[0].data[1:-1]] != [t.x for t in fig.frames[3].data[1:-1]]
    a, b = _decode(fig.frames[0].data[0].source), _decode(fig.frames[4].data[0].source)
    assert a.shape == (120, 160, 3) and not np.array_equal(a, b)
    # the slider steps seek to the frames by name; play runs at the sequence's rate
    steps = fig.layout.sliders[0].steps
    assert [s.args[0][0] for s in steps] == [f.name for f in fig.frames]
    play = fig.layout.updatemenus[0].buttons[0]
    assert play.args[1]["frame"]["duration"] == 200
    # the error curves are clickable (customdata = frame index) in the hands' key colours
    curve = [t for t in fig.data if t.meta["part"] == "curve"]
    assert [list(t.customdata) for t in curve] == [list(range(n))] * 2
    assert curve[0].line.color == "rgb({},{},{})".format(*HAND_COLORS["right"])
    assert curve[0].line.color != curve[1].line.color


def test_player_image_draws_right_warm_and_left_cool():
    frames = _frames(1)
    frames[0]["pred_img"] = None  # GT alone: solid and opaque
    img = _decode(player_figure(frames).frames[0].data[0].source).astype(int)
    uv = frames[0]["joint_img"]
    for hand, warm in (("right", True), ("left", False)):
        j = INTERHAND.index(("r_" if hand == "right" else "l_") + "index2")
        x, y = np.round(uv[j]).astype(int)
        r, _, b = img[y, x]
        assert (r > b + 40) == warm and (b > r + 40) == (not warm), (hand, img[y, x])


def test_player_png_and_bad_input():
    frames = _frames(3)
    png = player_png(frames, 1, curves={"right": np.ones(3)})
    assert png[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="at least one frame"):
        player_figure([])
    with pytest.raises(ValueError, match="time_axis"):
        player_figure(frames, time_axis=[0.0])


def test_show_player_pairs_the_player_with_its_click_to_seek_script(monkeypatch):
    """show_player: one output with plotly's mimetype (tagged with a fresh player id) and the static PNG, then a
    script output naming that id (untrusted notebooks show its empty text instead)."""
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    fig = player_figure(_frames(3), curves={"right": np.ones(3)})
    show_player(fig, png=b"png bytes")
    show_player(fig)
    (player, raw), (script, raw2), (again, _), (script2, _) = shown
    assert raw and raw2 and player["image/png"] == base64.b64encode(b"png bytes").decode("ascii")
    spec = player["application/vnd.plotly.v1+json"]
    pid = spec["layout"]["meta"]["player_id"]
    assert len(spec["frames"]) == 3 and spec["layout"]["meta"]["frames"] == 3
    assert f"'{pid}'" in script["application/javascript"] and "plotly_click" in script["application/javascript"]
    assert script["text/plain"] == ""
    assert again["application/vnd.plotly.v1+json"]["layout"]["meta"]["player_id"] != pid  # each output its own id
    assert "player_id" not in (fig.layout.meta or {})  # the figure itself is not changed


@pytest.mark.browser
def test_exported_player_plays_by_itself_at_the_sequence_rate_and_seeks_on_click(tmp_path):
    from test_browser import CHROMIUM, CHROMIUM_ARGS, seek_on_curve_click

    if not CHROMIUM.exists():
        pytest.skip("no chromium")
    from playwright.sync_api import sync_playwright

    n, fps = 30, 5.0
    curves = {"right": 5.0 + np.arange(n, dtype=float), "left": np.full(n, 4.0)}
    path = save_player_html(player_figure(_frames(n), fps=fps, curves=curves), tmp_path / "player.html")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 800})
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri())
            page.wait_for_selector(".js-plotly-plot .gl-container canvas", state="attached")
            gd = "document.querySelector('.js-plotly-plot')"
            # what one frame costs this browser (software WebGL here): seek to frames 1..4 and time each
            render_ms = page.evaluate(
                """async () => { const gd = document.querySelector('.js-plotly-plot'); const out = [];
                for (const name of ['101', '102', '103', '104']) { const t = performance.now();
                  await Plotly.animate(gd, [name], {mode: 'immediate', frame: {duration: 0, redraw: true},
                                                    transition: {duration: 0}});
                  out.push(performance.now() - t); }
                gd.__shownFrames = []; await Plotly.animate(gd, ['100'], {mode: 'immediate',
                  frame: {duration: 0, redraw: true}, transition: {duration: 0}}); gd.__shownFrames = [];
                return out.sort((a, b) => a - b)[1]; }"""
            )
            page.locator(".updatemenu-button").first.click()  # ▶ play
            page.wait_for_function(f"({gd}.__shownFrames || []).length >= 12", timeout=60_000)
            shown = page.evaluate(f"{gd}.__shownFrames")
            page.locator(".updatemenu-button").nth(1).click()  # pause
            times = [t for t, _ in shown[1:12]]
            rate = (len(times) - 1) / ((times[-1] - times[0]) / 1000.0)
            print(f"player: {rate:.2f} frames/s shown at {fps} fps; one frame renders in {render_ms:.0f} ms here")
            # at the sequence's rate, unless this browser cannot draw a frame that fast: then as fast as it draws
            # (nothing else waits: no kernel, no server)
            capable = 1000.0 / render_ms
            # (one frame's render time only estimates the page's pace: no cliff where it crosses the sequence's rate)
            assert rate >= 0.75 * min(fps, capable), (rate, render_ms)
            names = [int(name) for _, name in shown[:12]]
            assert names == list(range(names[0], names[0] + 12))  # in order, none skipped
            assert all(u.startswith("file:") or u.startswith("data:") for u in requests)  # nothing but the file
            # click the right-hand curve's 25th point: the player seeks there (frame '125')
            assert seek_on_curve_click(page, ".js-plotly-plot", 25, timeout_ms=10_000) == 25
            page.screenshot(path=str(tmp_path / "player.png"))
        finally:
            browser.close()


PLAYER_CELL = """
import numpy as np
from internet.skeleton import INTERHAND
from internet.vis.player import player_figure, show_player

frames = []
for k in range(12):
    cam = np.zeros((42, 3))
    cam[:, 0] = np.linspace(-80.0, 80.0, 42) + 3 * k
    cam[:, 1] = np.sin(np.arange(42) + k) * 30.0
    cam[:, 2] = 500.0
    uv = cam[:, :2] * 0.5 + [80.0, 60.0]
    frames.append(dict(img=np.full((120, 160, 3), 30 + 10 * k, np.uint8), joint_img=uv, pred_img=uv + 2.0,
                       joint_cam=cam, pred_cam=cam + 3.0, joint_valid=np.ones(42, bool), label=str(200 + k)))
show_player(player_figure(frames, fps=5.0, curves={"right": np.arange(12.0), "left": np.full(12, 4.0)}))
"""


@pytest.fixture
def lab_player(tmp_path):
    """A JupyterLab server whose root holds a one-cell notebook that shows a 12-frame player (show_player)."""
    from test_browser import serve_cell

    yield from serve_cell(tmp_path, "player", PLAYER_CELL)


@pytest.mark.browser
def test_player_in_jupyterlab_seeks_when_the_error_curve_is_clicked(lab_player):
    """show_player's script output gives JupyterLab's live player click-to-seek (plotly's renderer alone has none)."""
    from test_browser import lab_page, open_and_run_all, seek_on_curve_click

    with lab_page() as page:
        open_and_run_all(page, lab_player, "player")
        player = page.locator(".jp-RenderedPlotly").first
        player.hover()  # plotly's renderer shows the PNG fallback (none here) or the graph once entered
        plot = ".jp-RenderedPlotly.js-plotly-plot"
        page.wait_for_selector(f"{plot} .gl-container canvas", state="attached")
        for k in (9, 3):
            seek_on_curve_click(page, plot, k)
