"""Mesh views: the CPU rasteriser (coverage where the mesh projects, nearer hand wins, shading), plotly mesh3d
traces in the two colour families, OBJ/PLY export."""

from __future__ import annotations

import numpy as np

from internet.vis.mesh import MESH_COLORS, mesh_figure, read_ply, render_overlay, write_obj, write_ply


def _square(z: float, half: float = 50.0):
    v = np.array([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]], dtype=np.float64)
    return v, np.array([[0, 1, 2], [0, 2, 3], [0, 0, 0]])  # with a degenerate padding face


def test_overlay_covers_the_projection_and_the_nearer_hand_wins():
    img = np.zeros((200, 300, 3), np.uint8)
    focal, princpt = (1000.0, 1000.0), (150.0, 100.0)
    far_v, f = _square(1000.0, 50.0)  # projects to +-50 px around the centre
    near_v, _ = _square(800.0, 20.0)  # projects to +-25 px
    meshes = [
        {"vertices": far_v, "faces": f, "hand": "left", "kind": "gt"},
        {"vertices": near_v, "faces": f, "hand": "right", "kind": "gt"},
    ]
    out = render_overlay(img, meshes, focal, princpt, alpha=1.0, light=(0, 0, -1))
    assert out[100, 150].tolist() == list(MESH_COLORS[("right", "gt")])  # facing the light: full colour
    assert out[100, 190].tolist() == list(MESH_COLORS[("left", "gt")])
    assert out[100, 205].sum() == 0 and out[10, 10].sum() == 0  # outside both projections
    covered = (out.sum(-1) > 0).sum()
    assert abs(covered - 100 * 100) < 300
    # Order of the meshes does not matter: the z-buffer decides.
    again = render_overlay(img, meshes[::-1], focal, princpt, alpha=1.0, light=(0, 0, -1))
    assert np.array_equal(out, again)
    # Behind the camera: nothing drawn; alpha blends.
    assert render_overlay(img, [{**meshes[0], "vertices": far_v * [1, 1, -1]}], focal, princpt).sum() == 0
    half = render_overlay(np.full_like(img, 200), meshes[1:], focal, princpt, alpha=0.5, light=(0, 0, -1))
    assert np.allclose(half[100, 150], (200 + np.array(MESH_COLORS[("right", "gt")])) / 2, atol=1)


def test_mesh_figure_and_exports(tmp_path):
    v, f = _square(500.0)
    fig = mesh_figure(
        [
            {"vertices": v, "faces": f, "hand": "right", "kind": "pred"},
            {"vertices": v + 10, "faces": f, "hand": "left"},
        ],
        skeletons=[{"joints": np.zeros((21, 3)), "hand": "right"}],
    )
    kinds = [t.type for t in fig.data]
    assert kinds == ["mesh3d", "mesh3d", "scatter3d"]
    assert len(fig.data[0].i) == 2 and "fit to the prediction" in fig.data[0].name
    assert fig.data[0].color != fig.data[1].color
    write_obj(tmp_path / "hand.obj", v, f, comment="test")
    text = (tmp_path / "hand.obj").read_text().splitlines()
    assert sum(t.startswith("v ") for t in text) == 4 and "f 1 3 4" in text and text[0] == "# test"
    write_ply(tmp_path / "hand.ply", v, f, rgb=(1, 2, 3))
    rv, rf = read_ply(tmp_path / "hand.ply")
    assert np.allclose(rv, v) and rf.tolist() == [[0, 1, 2], [0, 2, 3]]
