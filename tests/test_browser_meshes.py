"""A mesh figure in a real browser (JupyterLab + headless Chromium through Playwright, as test_browser.py): the output
shows its static picture, and once the pointer enters it plotly draws the hands as WebGL meshes, the right hand in
its warm colour family and the left in its cool one. Skipped where no Chromium is installed."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

MESH_CELL = """
import numpy as np
from internet.app.meshes import display_mesh_figure
from internet.vis.mesh import mesh_figure

# two closed boxes, 80 x 90 x 30 mm, side by side 500 mm in front of the camera
corners = np.array([[x, y, z] for x in (0, 80) for y in (0, 90) for z in (0, 30)], dtype=float)
faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
meshes = [dict(vertices=corners + [-120, -45, 500], faces=faces, hand="right", kind="gt"),
          dict(vertices=corners + [40, -45, 500], faces=faces, hand="left", kind="gt")]
display_mesh_figure(mesh_figure(meshes, title="two boxes"), meshes)
"""


@pytest.fixture
def lab_meshes(tmp_path):
    """A JupyterLab server whose root holds a one-cell notebook that shows a two-hand mesh figure."""
    from test_browser import serve_cell

    yield from serve_cell(tmp_path, "meshes", MESH_CELL)


def test_mesh_figure_draws_both_hands_as_webgl_meshes_in_jupyterlab(lab_meshes):
    from test_browser import lab_page, open_and_run_all

    from internet.vis.mesh import mesh_color

    with lab_page() as page:
        open_and_run_all(page, lab_meshes, "meshes")
        # before the pointer enters: the static picture (the rasteriser's), not an empty box
        picture = page.locator(".jp-RenderedPlotly img.plot-img").first
        assert picture.get_attribute("src").startswith("data:image/png;base64,")
        # plotly's renderer makes the live figure when the pointer enters the picture; its own event is sent here,
        # because Playwright's pointer hover did not return within 120 s once the WebGL meshes appeared under the
        # pointer (software WebGL; plotly's 3D picking reads pixels back on pointer moves)
        picture.dispatch_event("mouseenter")
        plot = ".jp-RenderedPlotly.js-plotly-plot"
        page.wait_for_selector(f"{plot} .gl-container canvas", state="attached")
        traces = page.evaluate(f"document.querySelector('{plot}')._fullData.map(t => [t.type, t.color, t.visible])")
        assert [t[0] for t in traces] == ["mesh3d", "mesh3d"], traces
        want = ["rgb({},{},{})".format(*mesh_color(hand, "gt")) for hand in ("right", "left")]
        assert [t[1].replace(" ", "") for t in traces] == want and all(t[2] is True for t in traces)
        r, _, b = mesh_color("right", "gt")
        assert r > b  # right warm
        r, _, b = mesh_color("left", "gt")
        assert b > r  # left cool
        page.screenshot(path=str(lab_meshes["out"] / "meshes.png"))
