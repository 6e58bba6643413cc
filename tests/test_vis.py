"""internet.vis: 2D overlay pixels, plotly trace structure, root alignment, camera rig, static rendering, export and
the sample browser, on small synthetic straight-finger hands."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
from matplotlib.figure import Figure

from internet.skeleton import INTERHAND, RHD, STB, Skeleton
from internet.vis import (
    SampleBrowser,
    camera_rig_figure,
    draw_bbox,
    draw_skeleton_2d,
    find_browser,
    hands_figure,
    overlay_figure,
    save_figure,
    show,
    static_fallback,
)
from internet.vis import export as export_mod
from internet.vis.plot3d import CAMERA_VIEW
from internet.vis.style import HAND_FINGER_COLORS, bone_colour

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BACKGROUND = 30


def straight_hands(sk: Skeleton, seg: float = 12.0, right_x: float = -60.0, left_x: float = 60.0) -> np.ndarray:
    """(42, 3) mm: each hand a wrist with five straight fingers fanned upwards (-y), joint k of a finger at
    (k + 1) * seg from the wrist; the right hand around ``right_x``, the left around ``left_x``, depth ~500 mm."""
    joints = np.zeros((sk.joint_num, 3))
    for hand, ox in (("right", right_x), ("left", left_x)):
        for j in sk.joint_type[hand]:
            f = sk.finger[j]
            if f < 0:
                joints[j] = (ox, 40.0, 500.0)
                continue
            k = int(sk.names[j][-1])  # 1 = MCP ... 4 = tip, in every skeleton's names
            th = np.radians(-150 + 30 * f)
            joints[j] = (ox + np.cos(th) * seg * (k + 1), 40.0 + np.sin(th) * seg * (k + 1), 500.0 + 3 * k)
    return joints


def image_points(sk: Skeleton) -> np.ndarray:
    """The same hands in pixels of a 240x400 image (right hand in the left half)."""
    return straight_hands(sk)[:, :2] * 1.5 + np.array([200.0, 100.0])


def blank(h: int = 240, w: int = 400) -> np.ndarray:
    return np.full((h, w, 3), BACKGROUND, np.uint8)


def midpoint_pixel(img: np.ndarray, pts: np.ndarray, child: int, parent: int) -> tuple:
    mid = (pts[child] + pts[parent]) / 2.0
    return tuple(int(v) for v in img[int(round(mid[1])), int(round(mid[0]))])


# ------------------------------------------------------------------------------------------------- 2D overlay
@pytest.mark.parametrize("sk", [INTERHAND, RHD, STB], ids=lambda s: s.name)
def test_bones_are_drawn_in_finger_colours_rgb(sk):
    img = blank()
    pts = image_points(sk)
    out = draw_skeleton_2d(img, pts, np.ones(42), sk, thickness=3, radius=2)
    assert out.dtype == np.uint8 and out.shape == img.shape
    for child, parent in sk.bones:
        assert midpoint_pixel(out, pts, child, parent) == bone_colour(sk, int(child)), sk.names[child]
    # RGB stays RGB (the official demo swaps R and B): the right index is red, the left index blue.
    for hand, warm in (("right", True), ("left", False)):
        tip = [c for c, p in sk.bones if sk.finger[c] == 1 and sk.hand_of(int(c)) == hand][0]
        bone = sk.bones[list(sk.bones[:, 0]).index(tip)]
        r, _, b = midpoint_pixel(out, pts, *bone)
        assert (r > b) == warm, (hand, r, b)
    # every finger of the right hand is warm (red > blue), every finger of the left cool: two colour families
    for child, parent in sk.bones:
        r, _, b = midpoint_pixel(out, pts, child, parent)
        assert (r > b) == (sk.hand_of(int(child)) == "right"), sk.names[child]


def test_input_image_is_not_mutated():
    img = blank()
    before = img.copy()
    out = draw_skeleton_2d(img, image_points(INTERHAND), None, INTERHAND)
    assert np.array_equal(img, before)
    assert out is not img and not np.shares_memory(out, img)
    assert (out != before).any()
    boxed = draw_bbox(img, [50, 60, 100, 80], color=(0, 255, 0), thickness=1)
    assert np.array_equal(img, before)
    assert tuple(boxed[100, 50]) == (0, 255, 0) and tuple(boxed[100, 100]) == (BACKGROUND,) * 3


def test_invalid_and_unselected_joints_are_skipped():
    sk = INTERHAND
    pts = image_points(sk)
    valid = np.ones(42)
    tip = sk.index("r_index4")
    parent = int(sk.parents[tip])
    valid[parent] = 0  # both bones touching r_index3 disappear
    pts_nan = pts.copy()
    pts_nan[sk.index("l_ring4")] = np.nan  # a non-finite joint counts as invalid
    out = draw_skeleton_2d(blank(), pts_nan, valid, sk, thickness=3, radius=2)
    grandparent = int(sk.parents[parent])
    assert midpoint_pixel(out, pts, tip, parent) == (BACKGROUND,) * 3
    assert midpoint_pixel(out, pts, parent, grandparent) == (BACKGROUND,) * 3
    x, y = np.round(pts[parent]).astype(int)
    assert tuple(out[y, x]) == (BACKGROUND,) * 3  # no joint circle either
    ring4 = sk.index("l_ring4")
    assert midpoint_pixel(out, pts, ring4, int(sk.parents[ring4])) == (BACKGROUND,) * 3
    # the other bones are still there
    other = sk.index("r_middle4")
    assert midpoint_pixel(out, pts, other, int(sk.parents[other])) == bone_colour(sk, other)

    left_only = draw_skeleton_2d(blank(), pts, None, sk, hands=("left",))
    right_cols = pts[sk.joint_type["right"]]
    x0, y0 = np.floor(right_cols.min(axis=0)).astype(int) - 3
    x1, y1 = np.ceil(right_cols.max(axis=0)).astype(int) + 3
    assert (left_only[y0:y1, x0 : min(x1, 199)] == BACKGROUND).all()  # right half untouched (hands do not overlap)
    assert (left_only[:, 200:] != BACKGROUND).any()


def test_alpha_blends_and_bad_inputs_are_named():
    sk = INTERHAND
    pts = image_points(sk)
    half = draw_skeleton_2d(blank(), pts, None, sk, thickness=3, alpha=0.5)
    c = int(sk.index("r_middle4"))
    expected = tuple(int(round((v + BACKGROUND) / 2)) for v in bone_colour(sk, c))
    assert np.allclose(midpoint_pixel(half, pts, c, int(sk.parents[c])), expected, atol=1)
    with pytest.raises(ValueError, match="joint_img"):
        draw_skeleton_2d(blank(), pts[:21], None, sk)
    with pytest.raises(ValueError, match="uint8"):
        draw_skeleton_2d(blank().astype(np.float32), pts, None, sk)
    with pytest.raises(ValueError, match="joint_valid"):
        draw_skeleton_2d(blank(), pts, np.ones(10), sk)
    with pytest.raises(ValueError, match="hands"):
        draw_skeleton_2d(blank(), pts, None, sk, hands=("both",))
    with pytest.raises(ValueError, match="bbox"):
        draw_bbox(blank(), [0, 0, -1, 5])


def test_overlay_figure_side_and_overlay():
    pts = image_points(INTERHAND)
    side = overlay_figure(blank(), pts, pts + 3, None, INTERHAND, mode="side", title="t")
    assert isinstance(side, Figure) and len(side.axes) == 2
    assert [a.get_title() for a in side.axes] == ["ground truth", "prediction"]
    over = overlay_figure(blank(), pts, pts + 3, None, INTERHAND, mode="overlay")
    assert len(over.axes) == 1
    shown = over.axes[0].images[0].get_array()
    assert (np.asarray(shown) != BACKGROUND).any()
    with pytest.raises(ValueError, match="mode"):
        overlay_figure(blank(), pts, None, mode="stacked")


# ------------------------------------------------------------------------------------------------- 3D figures
def traces_of(fig, **want):
    return [t for t in fig.data if all(t.meta.get(k) == v for k, v in want.items())]


def test_hands_figure_traces_per_hand_and_source():
    gt = straight_hands(INTERHAND)
    pred = gt + 2.0
    fig = hands_figure(pred, gt, np.ones(42), INTERHAND, title="x")
    for source in ("pred", "gt"):
        for hand in ("right", "left"):
            bones = traces_of(fig, source=source, hand=hand, part="bones")
            joints = traces_of(fig, source=source, hand=hand, part="joints")
            assert sorted(t.meta["finger"] for t in bones) == [0, 1, 2, 3, 4]
            assert len(joints) == 1 and len(joints[0].x) == 21
            group = {t.legendgroup for t in bones + joints}
            assert len(group) == 1  # one legend entry toggles the whole hand
            assert sum(bool(t.showlegend) for t in bones + joints) == 1
            dash = {t.line.dash for t in bones}
            assert dash == ({"dash"} if source == "pred" else {"solid"})  # GT solid, prediction dashed
            assert all((t.opacity < 1) == (source == "gt") for t in bones)
            # the legend entry is the hand's key colour (its index finger) and the source's dash
            entry = [t for t in bones + joints if t.showlegend][0]
            assert entry.line.color == "rgb({},{},{})".format(*HAND_FINGER_COLORS[hand]["index"])
            assert entry.name == ("pred " if source == "pred" else "GT ") + hand
    # the right-hand pred thumb trace holds the right thumb's coordinates
    thumb = traces_of(fig, source="pred", hand="right", part="bones", finger=0)[0]
    xs = {round(v, 6) for v in thumb.x if v is not None}
    want = {round(v, 6) for v in pred[[j for j in INTERHAND.joint_type["right"] if INTERHAND.finger[j] == 0], 0]}
    assert want <= xs
    assert thumb.line.color == "rgb({},{},{})".format(*HAND_FINGER_COLORS["right"]["thumb"])
    # right and left bones never share a colour
    colours = {h: {t.line.color for t in traces_of(fig, hand=h, part="bones")} for h in ("right", "left")}
    assert len(colours["right"]) == 5 and not colours["right"] & colours["left"]
    # oblique view that shows depth: the eye behind the camera (-z), above (-y) and to the side, -y up
    cam = fig.layout.scene.camera
    assert (cam.up.x, cam.up.y, cam.up.z) == (0, -1, 0)
    assert cam.eye.z < 0 and cam.eye.y < 0 and abs(cam.eye.x) > 0.3
    assert (cam.center.x, cam.center.y, cam.center.z) == (0, 0, 0)
    # full width (no fixed width) and the rotation kept on redraws
    assert fig.layout.width is None and fig.layout.autosize and fig.layout.uirevision

    left_only = hands_figure(pred, gt, None, INTERHAND, show=("left",))
    assert len(left_only.data) == len(fig.data) // 2
    assert not traces_of(left_only, hand="right")
    gt_only = hands_figure(None, gt, None, INTERHAND)
    assert {t.meta["source"] for t in gt_only.data} == {"gt"}
    invalid = np.ones(42)
    invalid[INTERHAND.joint_type["left"]] = 0
    masked = hands_figure(pred, gt, invalid, INTERHAND)
    assert all(len([v for v in t.x if v is not None]) == 0 for t in traces_of(masked, hand="left"))
    with pytest.raises(ValueError, match="pred"):
        hands_figure(pred[:, :2], gt)
    with pytest.raises(ValueError, match="needs"):
        hands_figure(None, None)


def joint_position(fig, source: str, hand: str, name: str) -> np.ndarray:
    t = traces_of(fig, source=source, hand=hand, part="joints")[0]
    k = list(t.text).index(name)
    return np.array([t.x[k], t.y[k], t.z[k]])


@pytest.mark.parametrize("sk", [INTERHAND, STB], ids=lambda s: s.name)
def test_root_space_puts_roots_at_origin_or_side_by_side(sk):
    gt = straight_hands(sk)
    pred = gt + np.array([5.0, -3.0, 7.0])
    root_name = {h: sk.names[sk.root_idx[h]] for h in ("right", "left")}
    fig = hands_figure(pred, gt, None, sk, space="root", root_layout="overlay")
    for source in ("pred", "gt"):
        for hand in ("right", "left"):
            assert np.allclose(joint_position(fig, source, hand, root_name[hand]), 0.0)
    # shapes are kept: a fingertip relative to its root
    tip = sk.names[sk.joint_type["right"][[sk.finger[j] == 2 for j in sk.joint_type["right"]]][0]]
    rel = gt[sk.names.index(tip)] - gt[sk.root_idx["right"]]
    assert np.allclose(joint_position(fig, "gt", "right", tip), rel)

    side = hands_figure(pred, gt, None, sk, space="root", root_layout="side", hand_gap_mm=200)
    assert np.allclose(joint_position(side, "gt", "right", root_name["right"]), [-100, 0, 0])  # right is at -x
    assert np.allclose(joint_position(side, "pred", "left", root_name["left"]), [100, 0, 0])
    # hands swapped in the scene: the side order follows the data, not the names (issue #9)
    swapped = straight_hands(sk, right_x=60.0, left_x=-60.0)
    side2 = hands_figure(None, swapped, None, sk, space="root", hand_gap_mm=200)
    assert np.allclose(joint_position(side2, "gt", "right", root_name["right"]), [100, 0, 0])
    # a hand without a valid root cannot be aligned: it is left out
    valid = np.ones(42)
    valid[sk.root_idx["left"]] = 0
    dropped = hands_figure(None, gt, valid, sk, space="root")
    assert all(not [v for v in t.x if v is not None] for t in traces_of(dropped, hand="left"))


def look_at(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    z = target - pos
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])  # rows: camera x (right), y (down), z (forward) in world


def test_camera_rig_figure_one_marker_per_camera():
    ang = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    pos = np.stack([1000 * np.cos(ang), 1000 * np.sin(ang), np.full(6, 300.0)], axis=1)
    rot = np.stack([look_at(p, np.zeros(3)) for p in pos])
    names = [f"cam{i}" for i in range(6)]
    hands = straight_hands(INTERHAND) - [0, 0, 500]
    fig = camera_rig_figure(pos, rot, names, hands)
    cams = [t for t in fig.data if t.meta.get("part") == "cameras"]
    assert len(cams) == 1 and len(cams[0].x) == 6 and list(cams[0].text) == names
    assert np.allclose(np.stack([cams[0].x, cams[0].y, cams[0].z], 1), pos)
    frustums = [t for t in fig.data if t.meta.get("part") == "frustums"][0]
    pts = np.array(
        [[np.nan if v is None else v for v in (x, y, z)] for x, y, z in zip(frustums.x, frustums.y, frustums.z)]
    )
    # 9 segments per camera (4 edges to the corners, 4 around the image plane, the optical axis)
    assert np.isnan(pts[:, 0]).sum() == 9 * 6
    # the optical axis of camera 0 points at the rig centre
    seg = pts[~np.isnan(pts[:, 0])].reshape(-1, 2, 3)
    axis0 = [s for s in seg if np.allclose(s[0], pos[0]) and np.allclose(np.cross(s[1] - s[0], -pos[0]), 0, atol=1e-6)]
    assert axis0
    assert traces_of(fig, source="hands", hand="right")
    assert np.isclose(fig.layout.scene.camera.up.z, 1.0)
    bad = rot.copy()
    bad[2] *= 2
    with pytest.raises(ValueError, match=r"camrot\[2\]"):
        camera_rig_figure(pos, bad)
    with pytest.raises(ValueError, match="names"):
        camera_rig_figure(pos, rot, names[:3])


def test_static_fallback_renders_the_same_data_like_the_image():
    gt = straight_hands(INTERHAND)
    fig = hands_figure(gt + 1.0, gt, None, INTERHAND, title="hands", camera=CAMERA_VIEW)  # the image's view
    png = static_fallback(fig, as_png=True)
    assert png[:8] == PNG_MAGIC
    mfig = static_fallback(fig)
    ax = mfig.axes[0]
    n_lines = sum("lines" in t.mode for t in fig.data)
    assert len(ax.lines) == n_lines
    # the view looks like the image: plot X = x (right), plot Z = -y (up), plot Y = z (depth)
    thumb = traces_of(fig, source="pred", hand="right", part="bones", finger=0)[0]
    k = next(i for i, v in enumerate(thumb.x) if v is not None)
    line = ax.lines[[t for t in fig.data if "lines" in t.mode].index(thumb)]
    X, Y, Z = (np.asarray(a) for a in line.get_data_3d())
    assert np.allclose([X[k], Y[k], Z[k]], [thumb.x[k], thumb.z[k], -thumb.y[k]])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["GT right", "GT left", "pred right", "pred left"]
    # a trace hidden from the legend is not drawn either
    fig.data[0].visible = "legendonly"
    assert len(static_fallback(fig).axes[0].lines) == n_lines - 1
    with pytest.raises(TypeError):
        static_fallback(mfig)


# ------------------------------------------------------------------------------------------------- export
def test_save_figure_html_and_png(tmp_path, monkeypatch):
    fig = hands_figure(None, straight_hands(INTERHAND), None, INTERHAND)
    out = save_figure(fig, tmp_path / "figs", "hands", png_method="matplotlib")
    html = out["html"].read_text()
    assert (
        "plotly" in html.lower() and "scatter3d" in html and len(html) > 1_000_000
    )  # plotly.js embedded: opens offline
    assert '<script src="https://cdn.plot.ly' not in html
    assert out["png"].read_bytes()[:8] == PNG_MAGIC and out["png_via"] == "matplotlib"
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["hands.html", "hands.png"]  # no temp files

    # auto mode with a browser that cannot start: falls back, records why, warns once
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    export_mod._warn_once.cache_clear()
    with pytest.warns(export_mod.PngExportWarning, match="no Chrome"):
        auto = save_figure(fig, tmp_path, "auto", width=300, height=240)
    assert auto["png_via"] == "matplotlib" and "no Chrome" in auto["png_fallback_reason"]
    assert auto["png"].read_bytes()[:8] == PNG_MAGIC
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same reason is not repeated
        save_figure(fig, tmp_path, "auto2", width=300, height=240)
    with pytest.raises(RuntimeError, match="kaleido"):
        save_figure(fig, tmp_path, "strict", png_method="kaleido")

    mpl = save_figure(overlay_figure(blank(), image_points(INTERHAND)), tmp_path, "overlay")
    assert mpl["html"] is None and mpl["png"].read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="stem"):
        save_figure(fig, tmp_path, "a/b")
    with pytest.raises(ValueError, match="png_method"):
        save_figure(fig, tmp_path, "x", png_method="svg")


@pytest.mark.browser
@pytest.mark.slow
def test_save_figure_png_through_kaleido(tmp_path, monkeypatch):
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    if find_browser() is None:
        pytest.skip("no Chrome/Chromium for kaleido (apt-get install chromium, or plotly_get_chrome)")
    fig = hands_figure(None, straight_hands(INTERHAND), None, INTERHAND)
    out = save_figure(fig, tmp_path, "hands", width=320, height=240)
    assert out["png_via"] == "kaleido" and out["png_fallback_reason"] is None
    data = out["png"].read_bytes()
    assert data[:8] == PNG_MAGIC
    assert int.from_bytes(data[16:20], "big") == 320 and int.from_bytes(data[20:24], "big") == 240  # IHDR


def test_show_displays_the_figure_and_a_png(monkeypatch):
    import base64

    from IPython import display as ipd

    shown = []
    monkeypatch.setattr(ipd, "display", lambda *objs, **kw: shown.append((objs, kw)))
    fig = hands_figure(None, straight_hands(INTERHAND), None, INTERHAND)
    assert show(fig) is None  # nothing more printed at the end of a cell
    assert len(shown) == 1  # one output: the interactive figure and its picture together
    (bundle,), kw = shown[0]
    assert kw.get("raw") is True
    assert bundle["application/vnd.plotly.v1+json"]["data"][0]["type"] == fig.data[0].type
    assert base64.b64decode(bundle["image/png"])[:8] == PNG_MAGIC
    shown.clear()
    show(fig, static=False)
    assert len(shown) == 1 and "image/png" not in shown[0][0][0]
    # matplotlib figures made without pyplot still display as PNG in Jupyter
    assert overlay_figure(blank(), image_points(INTERHAND))._repr_png_()[:8] == PNG_MAGIC
    assert static_fallback(fig)._repr_png_()[:8] == PNG_MAGIC


# ------------------------------------------------------------------------------------------------- widgets
def test_sample_browser_follows_the_slider_and_toggles():
    base = straight_hands(INTERHAND)
    calls = []

    def get_sample(i: int) -> dict:
        calls.append(i)
        cam = base + np.array([10.0 * i, 0.0, 0.0])
        px = cam[:, :2] * 0.5 + np.array([60.0, 40.0])
        return dict(
            img=np.full((100, 140, 3), 10 * i, np.uint8),
            joint_img=px,
            pred_img=px + 2,
            joint_cam=cam,
            pred_cam=cam + 3,
            joint_valid=np.ones(42),
            title=f"frame {i}",
        )

    browser = SampleBrowser(get_sample, 5, INTERHAND)
    assert browser.index == 0 and calls == [0]
    x_before = traces_of(browser.figure, source="gt", hand="right", part="joints")[0].x
    png_before = browser.image_png
    assert png_before[:8] == PNG_MAGIC and browser.image.value == png_before

    browser.slider.value = 3
    assert browser.index == 3 and calls == [0, 3]
    x_after = traces_of(browser.figure, source="gt", hand="right", part="joints")[0].x
    assert np.allclose(np.asarray(x_after) - np.asarray(x_before), 30.0)
    assert browser.image_png != png_before and "frame 3" in browser.title_html.value

    browser.next_button.click()
    assert browser.index == 4 and browser.slider.value == 4
    browser.next_button.click()
    assert browser.index == 4  # clamped
    browser.prev_button.click()
    assert browser.slider.value == 3

    n_all = len(browser.figure.data)
    browser.hand_boxes["right"].value = False
    assert len(browser.figure.data) == n_all // 2 and not traces_of(browser.figure, hand="right")
    browser.pred_box.value = False
    assert {t.meta["source"] for t in browser.figure.data} == {"gt"}
    browser.space_buttons.value = "root"
    root = joint_position(browser.figure, "gt", "left", "l_wrist")
    assert np.allclose(root, 0.0)  # one hand shown: its root at the origin
    assert calls == [0, 3, 4, 3]  # toggles redraw without fetching again
    assert browser.widget.children

    with pytest.raises(IndexError):
        browser.update(5)
    with pytest.raises(KeyError, match="img"):
        SampleBrowser(lambda i: {"joint_img": np.zeros((42, 2))}, 2)


def test_browse_order_filters_by_hand_type_and_sorts_by_error():
    from internet.vis.widgets import browse_order

    ht = ["left", "left", "interacting", "right", "interacting", "interacting"]
    err = [5.0, 50.0, 10.0, 7.0, np.nan, 30.0]
    assert browse_order(6) == [0, 1, 2, 3, 4, 5]
    assert browse_order(6, ht, err, "interacting", "worst") == [5, 2, 4]  # NaN last
    assert browse_order(6, ht, err, "interacting", "best") == [2, 5, 4]
    assert browse_order(6, ht, err, "all", "worst") == [1, 5, 2, 3, 0, 4]
    assert browse_order(6, ht, err, "right") == [3]
    with pytest.raises(ValueError, match="hand_filter"):
        browse_order(6, ht, err, "both")
    with pytest.raises(ValueError, match="error"):
        browse_order(6, ht, None, "all", "worst")


def test_sample_browser_walks_the_filtered_order_and_leaves_a_static_view():
    base = straight_hands(INTERHAND)

    def get_sample(i: int) -> dict:
        cam = base + np.array([10.0 * i, 0.0, 0.0])
        return dict(img=np.full((100, 140, 3), 10 * i, np.uint8), joint_cam=cam, pred_cam=cam + i, title=f"#{i}")

    ht = ["left", "interacting", "right", "interacting"]
    browser = SampleBrowser(get_sample, 4, INTERHAND, hand_type=ht, error=[1.0, 2.0, 3.0, 9.0],
                            hand_filter="interacting", order="worst")  # fmt: skip
    assert browser.index == 3 and browser.order == [3, 1] and browser.slider.max == 1  # worst interacting first
    browser.next_button.click()
    assert browser.index == 1
    browser.next_button.click()
    assert browser.index == 1  # the end of the filtered order
    browser.filter_dropdown.value = "all"
    assert browser.order == [3, 2, 1, 0] and browser.index == 3
    browser.order_dropdown.value = "best"
    assert browser.index == 0 and "(1 / 4)" in browser.title_html.value
    bundle = browser._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("<sample browser") and "VBox" not in bundle["text/plain"]
    import base64

    assert base64.b64decode(bundle["image/png"])[:8] == PNG_MAGIC


def test_box_slider_is_the_box_on_screen_with_a_live_preview():
    from internet.infer.predictor import check_box
    from internet.vis.box import BoxSlider

    img = np.full((100, 120, 3), BACKGROUND, np.uint8)
    seen = []

    def check(b):
        if b[2] > 100:
            raise ValueError("bbox too wide")
        return check_box(b, 120, 100)

    slider = BoxSlider(img, [10, 10, 40, 30], check=check)
    slider.observe(seen.append)
    png0 = slider.picture.value
    slider.sliders["x"].value = 50
    assert slider.box.tolist() == [50, 10, 40, 30] and seen[-1].tolist() == [50, 10, 40, 30]
    assert slider.picture.value != png0  # the preview moved with the box
    shown = cv2.imdecode(np.frombuffer(slider.picture.value, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert tuple(shown[25, 50]) == (255, 255, 0) and tuple(shown[25, 10]) == (BACKGROUND,) * 3  # the left edge
    slider.sliders["w"].value = 200  # refused by the check: reported, the box stays
    assert slider.box.tolist() == [50, 10, 40, 30] and "not changed" in slider.message.value
    bundle = slider._repr_mimebundle_()
    assert "image/png" in bundle and bundle["text/plain"] == "<box [50.0, 10.0, 40.0, 30.0]>"


def test_sample_browser_exports_the_sample_on_screen(tmp_path):
    base = straight_hands(INTERHAND)

    def get_sample(i: int) -> dict:
        cam = base + np.array([10.0 * i, 0.0, 0.0])
        return dict(img=np.full((80, 100, 3), 20 * i, np.uint8), joint_cam=cam, pred_cam=cam + 1.0, title=f"#{i}")

    browser = SampleBrowser(get_sample, 3, INTERHAND, start=2, export_dir=tmp_path / "exp")
    assert browser.export_button in browser.widget.children[1].children
    browser.hand_boxes["left"].value = False  # what is on screen is what is exported
    browser.export_button.click()
    html = (tmp_path / "exp" / "sample_2_3d.html").read_text()
    assert "plotly" in html[:20000].lower() and '"hand":"right"' in html.replace(" ", "")
    assert '"hand":"left"' not in html.replace(" ", "")
    for name in ("sample_2_3d.png", "sample_2_2d.png", "sample_2.png"):
        assert (tmp_path / "exp" / name).read_bytes()[:8] == PNG_MAGIC
    assert "exported to" in browser.title_html.value
