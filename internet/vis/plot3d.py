"""Interactive 3D figures (plotly) of two hands and of a camera rig, and a matplotlib rendering of the same figures.

Every hand figure is built from per-(source, hand) groups of traces (:func:`hand_traces`: one line trace per finger,
in the hand's colour family, and one marker trace for the joints), so other traces (a mesh) can be added beside them.
Each trace carries ``meta = {"source", "hand", "part", ...}`` so code and tests can find it, and the traces of a group
share a ``legendgroup``: clicking the legend entry "pred right" hides or shows that whole hand. The look is
``internet.vis.style``: ground truth solid and translucent, prediction dashed; right warm, left cool.

Coordinates are camera space in mm (x right, y down, z forward): the default view (:data:`OBLIQUE_VIEW`) looks from
behind and above the camera at an angle, with -y up, so the hands keep the image's orientation and show their depth.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import plotly.graph_objects as go

from internet.geometry.camera import check_rotation
from internet.skeleton import INTERHAND, Skeleton
from internet.vis.overlay import HANDS, check_hands, check_joints, check_valid
from internet.vis.style import ERROR_MAX_MM, ERROR_SCALE, LEGEND_FINGER, finger_colour, joint_colours, rgb, source_style

SOURCES = ("pred", "gt")
# The view of an image: eye behind the camera centre looking along +z, with -y (image up) pointing up on screen.
CAMERA_VIEW = dict(up=dict(x=0, y=-1, z=0), eye=dict(x=0.0, y=0.0, z=-1.6), center=dict(x=0, y=0, z=0))
# The default: from behind the camera, up and to the side, so the depth (z) is seen; -y (image up) stays up.
OBLIQUE_VIEW = dict(up=dict(x=0, y=-1, z=0), eye=dict(x=1.2, y=-0.85, z=-1.65), center=dict(x=0, y=0, z=0))
_rgb = rgb


def xyz_lists(points: np.ndarray) -> Tuple[list, list, list]:
    """Plotly's x, y, z lists of ``points`` (N, 3): a NaN coordinate becomes None, where plotly leaves a gap."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return tuple([None if np.isnan(v) else float(v) for v in points[:, k]] for k in range(3))


def finger_bones(skeleton: Skeleton, hand: str) -> List[Tuple[int, np.ndarray, tuple]]:
    """(finger id, bones (B, 2), colour) of one hand's bones, grouped by finger in skeleton order (the colour is the
    hand's shade of the finger, ``internet.vis.style``): what one line trace per finger draws."""
    in_hand = set(int(j) for j in skeleton.joint_type[hand])
    bones = np.array([b for b in skeleton.bones if int(b[0]) in in_hand], dtype=np.int64)
    fingers = [int(skeleton.finger[int(c)]) for c in bones[:, 0]]
    out = []
    for finger in dict.fromkeys(fingers):
        seg = bones[[f == finger for f in fingers]]
        out.append((finger, seg, finger_colour(hand, finger)))
    return out


def bone_trace(
    xyz: np.ndarray,
    colour,
    style: dict,
    name: str,
    group: str,
    showlegend: bool,
    source: str,
    hand: str,
    finger: int,
) -> go.Scatter3d:
    """One finger's bones as one line trace: ``xyz`` (S, 2, 3) segment ends in mm, a segment with a NaN end left
    out; segments are separated by None, where plotly breaks the line. ``style``: ``style.source_style(...)``."""
    x, y, z = xyz_lists(np.concatenate([np.asarray(xyz, dtype=np.float64), np.full((len(xyz), 1, 3), np.nan)], axis=1))
    return go.Scatter3d(
        x=x,
        y=y,
        z=z,
        mode="lines",
        name=name,
        legendgroup=group,
        showlegend=showlegend,
        hoverinfo="skip",
        line=dict(color=_rgb(colour), width=style["width"], dash=style["dash"]),
        opacity=style["opacity"],
        meta=dict(source=source, hand=hand, part="bones", finger=int(finger)),
    )


def hand_traces(
    joints: np.ndarray,
    ok: np.ndarray,
    skeleton: Skeleton,
    hand: str,
    source: str,
    offset: Optional[np.ndarray] = None,
    style: Optional[str] = None,
    errors: Optional[np.ndarray] = None,
    error_max_mm: float = ERROR_MAX_MM,
    showscale: bool = False,
) -> List[go.Scatter3d]:
    """Traces of one hand of one source: a line trace per finger (bones whose both ends are ``ok``) and a marker
    trace of the ``ok`` joints. ``joints`` (J, 3) in mm; ``offset`` (3,) is added (root-aligned side-by-side);
    ``style`` ('pred', 'gt', 'hands': a source drawn alone) defaults to the source's own look. ``errors`` (J,) mm
    colour the joints on the error scale (0 to ``error_max_mm``; ``showscale`` draws its colour bar). The legend
    entry ("pred right") is the index finger's trace: the hand's key colour with the source's dash."""
    st = source_style(source if style in (None, source) else "gt", alone=style == "hands")
    pts = joints + (0.0 if offset is None else np.asarray(offset, dtype=np.float64).reshape(1, 3))
    in_hand = np.zeros(skeleton.joint_num, dtype=bool)
    in_hand[skeleton.joint_type[hand]] = True
    keep = ok & in_hand
    group = f"{source}:{hand}"
    name = f"{st['label']} {hand}"
    traces: List[go.Scatter3d] = []
    drawn = []
    for finger, seg, colour in finger_bones(skeleton, hand):
        seg = seg[keep[seg[:, 0]] & keep[seg[:, 1]]]  # bones whose both ends are drawn
        if len(seg):
            drawn.append((finger, seg, colour))
    legend_at = next((f for f, _, _ in drawn if f == LEGEND_FINGER), drawn[0][0] if drawn else None)
    for finger, seg, colour in drawn:
        traces.append(bone_trace(pts[seg], colour, st, name, group, finger == legend_at, source, hand, finger))
    idx = np.nonzero(keep)[0]
    if errors is not None:
        err = np.asarray(errors, dtype=np.float64).reshape(-1)[idx]
        marker = dict(
            size=st["marker"] * 1.6,
            color=[None if not np.isfinite(e) else float(e) for e in err],
            colorscale=ERROR_SCALE,
            cmin=0.0,
            cmax=float(error_max_mm),
            showscale=showscale,
            colorbar=dict(title=dict(text="error (mm)"), len=0.6, thickness=12),
            line=dict(width=0),
        )
        text = [f"{skeleton.names[j]}<br>error {e:.1f} mm" for j, e in zip(idx, err)]
    else:
        jcol = joint_colours(skeleton)
        marker = dict(size=st["marker"], color=[rgb(jcol[j]) for j in idx], line=dict(width=0))
        text = [skeleton.names[j] for j in idx]
    traces.append(
        go.Scatter3d(
            x=pts[idx, 0].tolist(),
            y=pts[idx, 1].tolist(),
            z=pts[idx, 2].tolist(),
            mode="markers",
            name=name,
            legendgroup=group,
            showlegend=legend_at is None,  # only when no bone is drawn
            marker=marker,
            opacity=st["opacity"],
            text=text,
            hovertemplate="%{text}<br>x %{x:.1f}<br>y %{y:.1f}<br>z %{z:.1f}<extra>" + name + "</extra>",
            meta=dict(source=source, hand=hand, part="joints"),
        )
    )
    return traces


def root_align(sources: Dict[str, Tuple[np.ndarray, np.ndarray]], skeleton: Skeleton) -> Tuple[dict, dict]:
    """Each source's hands relative to their own roots: ``(aligned sources, roots)`` with ``sources`` name ->
    (joints (J, 3), ok (J,)); a hand whose root is not ok is left out (its joints not ok); ``roots`` name -> hand ->
    root position (for the side-by-side order)."""
    roots: Dict[str, Dict[str, np.ndarray]] = {}
    aligned = {}
    for source, (arr, ok) in sources.items():
        roots[source] = {h: arr[skeleton.root_idx[h]] for h in HANDS if ok[skeleton.root_idx[h]]}
        arr, ok = arr.copy(), ok.copy()
        for h in HANDS:
            jt = skeleton.joint_type[h]
            if h in roots[source]:
                arr[jt] -= roots[source][h]
            else:
                ok[jt] = False
        aligned[source] = (arr, ok)
    return aligned, roots


def _side_offsets(
    roots: Dict[str, Dict[str, np.ndarray]], hands: Tuple[str, ...], gap_mm: float
) -> Dict[str, np.ndarray]:
    """x offsets for root-aligned hands placed side by side, keeping each hand on the side where it really is."""
    offsets = {h: np.zeros(3) for h in hands}
    if len(hands) < 2:
        return offsets
    order = ["right", "left"]  # right hand at -x unless the data say otherwise
    for source in ("gt", "pred"):
        r = roots.get(source, {})
        if "right" in r and "left" in r:
            order = ["right", "left"] if r["right"][0] <= r["left"][0] else ["left", "right"]
            break
    offsets[order[0]][0] = -gap_mm / 2.0
    offsets[order[1]][0] = gap_mm / 2.0
    return offsets


def _cube_ranges(fig: go.Figure, pad: float = 0.08) -> dict:
    """Equal-length axis ranges around all points of ``fig``: with aspectmode 'cube' this is an equal aspect whose
    box has a fixed size, so the camera frames it (aspectmode 'data' blows a flat hand up past the view)."""
    ranges = cube_ranges([trace_xyz(t) for t in fig.data if t.type == "scatter3d"], pad)
    return {f"{a}axis_range": r for a, r in zip("xyz", ranges)}


def cube_ranges(points: Sequence[np.ndarray], pad: float) -> List[List[float]]:
    """[lo, hi] of x, y and z, of equal length (at least 20 mm, plus ``pad`` of it), centred on the finite points
    of ``points`` (arrays (N, 3)); [] when there are none."""
    pts = np.concatenate(points) if len(points) else np.zeros((0, 3))
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        return []
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    half = max(float((hi - lo).max()) / 2.0, 10.0) * (1.0 + pad)
    mid = (lo + hi) / 2.0
    return [[float(mid[k] - half), float(mid[k] + half)] for k in range(3)]


def hands_figure(
    pred: Optional[np.ndarray] = None,
    gt: Optional[np.ndarray] = None,
    valid: Optional[np.ndarray] = None,
    skeleton: Skeleton = INTERHAND,
    space: str = "camera",
    show: Sequence[str] = HANDS,
    title: Optional[str] = None,
    root_layout: str = "side",
    hand_gap_mm: float = 250.0,
    pred_valid: Optional[np.ndarray] = None,
    height: int = 560,
    color_by_error: bool = False,
    camera: Optional[dict] = None,
) -> go.Figure:
    """3D figure of predicted and/or ground-truth hands.

    pred, gt: (J, 3) joints in mm (camera space), either may be None. valid: (J,) joint validity (all valid when
    None); it masks GT and, unless ``pred_valid`` is given, the prediction too. show: which hands to draw. Ground
    truth is solid and translucent, the prediction dashed (``internet.vis.style``); a source alone is solid.
    color_by_error: the predicted joints coloured by their distance to GT (in the drawn space) with a colour bar.
    camera: a plotly scene camera (default :data:`OBLIQUE_VIEW`; :data:`CAMERA_VIEW` looks along the optical axis).
    The figure fills the output's width; ``uirevision`` keeps the user's rotation when it is redrawn.

    space 'camera' draws the coordinates as given. space 'root' subtracts each hand's root joint (per source, as the
    per-hand MPJPE does) so prediction and GT are compared shape against shape; a hand whose root is invalid is left
    out. root_layout 'overlay' leaves both hands at the origin; 'side' shifts them ``hand_gap_mm`` apart along x.
    The side order follows the real root x (GT if available, else the prediction), so each hand stays on the side
    where it appears in the image: with both hands at one origin, or ordered by name, the hands can look swapped
    (official repository issue #9). The legend always names the hand.
    """
    if pred is None and gt is None:
        raise ValueError("hands_figure needs pred, gt or both")
    if space not in ("camera", "root"):
        raise ValueError(f"space must be 'camera' or 'root', got {space!r}")
    if root_layout not in ("side", "overlay"):
        raise ValueError(f"root_layout must be 'side' or 'overlay', got {root_layout!r}")
    hands = check_hands(show, "show")
    ok_gt = check_valid(valid, skeleton, "valid")
    ok_pred = check_valid(pred_valid, skeleton, "pred_valid") if pred_valid is not None else ok_gt
    sources = {}
    if pred is not None:
        arr = check_joints(pred, skeleton, 3, "pred")
        sources["pred"] = (arr, ok_pred & np.isfinite(arr).all(axis=1))
    if gt is not None:
        arr = check_joints(gt, skeleton, 3, "gt")
        sources["gt"] = (arr, ok_gt & np.isfinite(arr).all(axis=1))

    offsets: Dict[str, np.ndarray] = {h: np.zeros(3) for h in hands}
    if space == "root":
        sources, roots = root_align(sources, skeleton)
        if root_layout == "side":
            offsets = _side_offsets(roots, hands, hand_gap_mm)

    errors = None
    if color_by_error and "pred" in sources and "gt" in sources:
        (pa, pok), (ga, gok) = sources["pred"], sources["gt"]
        errors = np.where(pok & gok, np.linalg.norm(pa - ga, axis=1), np.nan)
    fig = go.Figure()
    for source in ("gt", "pred"):  # the prediction on top
        if source in sources:
            arr, ok = sources[source]
            style = "hands" if len(sources) == 1 else source
            for k, hand in enumerate(hands):
                err = errors if source == "pred" else None
                fig.add_traces(
                    hand_traces(arr, ok, skeleton, hand, source, offsets[hand], style, err, showscale=k == 0)
                )
    unit = "mm, root-relative" if space == "root" else "mm"
    scene = dict(
        aspectmode="cube",
        camera=camera or OBLIQUE_VIEW,
        xaxis_title=f"x ({unit})",
        yaxis_title="y (mm)",
        zaxis_title="z (mm, depth)",
    )
    scene.update(_cube_ranges(fig))
    fig.update_layout(scene_layout(title, height, space), scene=scene)
    fig.layout.meta = dict(kind="hands", space=space, skeleton=skeleton.name)
    return fig


def scene_layout(title: Optional[str], height: int, space: str) -> dict:
    """The layout shared by hand figures: full width (autosize), the legend in one row above the scene (it never
    covers the hands), margins that clip nothing, and ``uirevision`` so a rotation survives redraws."""
    return dict(
        title=dict(text=title, x=0.01, xanchor="left", font=dict(size=14)) if title else None,
        height=height,
        autosize=True,
        margin=dict(l=0, r=0, t=64 if title else 30, b=0),
        legend=dict(groupclick="togglegroup", orientation="h", x=0.0, y=1.0, yanchor="bottom", font=dict(size=12)),
        meta=dict(kind="hands", space=space),
        uirevision="hands",
    )


def _frustum_lines(pos: np.ndarray, rot: np.ndarray, frustum_mm: float) -> Tuple[list, list, list]:
    """Plotly x, y, z lists of every camera's frustum (a 4:3 image plane at ``frustum_mm``) and optical axis, in
    world coordinates (X = R^T c + campos), segments separated by gaps."""
    corners = np.array([[-0.5, -0.375, 1], [0.5, -0.375, 1], [0.5, 0.375, 1], [-0.5, 0.375, 1]]) * frustum_mm
    world = pos[:, None, :] + np.einsum("cji,kj->cki", rot, corners)  # (C, 4, 3)
    axis_end = pos + 2.0 * frustum_mm * rot[:, 2, :]
    segs = [np.stack([pos, world[:, k]], axis=1) for k in range(4)]
    segs += [np.stack([world[:, k], world[:, (k + 1) % 4]], axis=1) for k in range(4)]
    segs.append(np.stack([pos, axis_end], axis=1))
    seg = np.concatenate(segs, axis=0)  # (S, 2, 3)
    return xyz_lists(np.concatenate([seg, np.full((len(seg), 1, 3), np.nan)], axis=1))


def _check_rig(campos, camrot, names) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """(campos (C, 3), camrot (C, 3, 3), names) checked, or ValueError naming what is wrong."""
    pos = np.asarray(campos, dtype=np.float64)
    rot = np.asarray(camrot, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] == 0:
        raise ValueError(f"campos must have shape (C, 3), got {np.shape(campos)}")
    if rot.shape != (pos.shape[0], 3, 3):
        raise ValueError(f"camrot must have shape ({pos.shape[0]}, 3, 3) to match campos, got {np.shape(camrot)}")
    for c in range(len(rot)):
        check_rotation(rot[c], name=f"camrot[{c}]")
    if not np.isfinite(pos).all():
        raise ValueError("campos contains non-finite values")
    names = [str(n) for n in (range(len(pos)) if names is None else names)]
    if len(names) != len(pos):
        raise ValueError(f"names has {len(names)} entries for {len(pos)} cameras")
    return pos, rot, names


def camera_rig_figure(
    campos: np.ndarray,
    camrot: np.ndarray,
    names: Optional[Sequence[str]] = None,
    hands_world: Optional[np.ndarray] = None,
    valid: Optional[np.ndarray] = None,
    skeleton: Skeleton = INTERHAND,
    frustum_mm: Optional[float] = None,
    title: Optional[str] = None,
    height: int = 600,
) -> go.Figure:
    """3D figure of a camera rig: one marker per camera (labelled by ``names``), a small frustum and the optical axis
    of each camera, and optionally the hands in world coordinates.

    campos: (C, 3) camera centres in world mm; camrot: (C, 3, 3) world->camera rotations (InterHand2.6M convention
    ``X_cam = R (X_world - campos)``, so row 2 of R is the viewing direction). frustum_mm: frustum depth (default
    12 % of the median camera distance from the rig centre). The scene's up is the cameras' mean -y axis.
    """
    pos, rot, names = _check_rig(campos, camrot, names)

    centre = pos.mean(axis=0)
    hands = None
    if hands_world is not None:
        hands = check_joints(hands_world, skeleton, 3, "hands_world")
        ok = check_valid(valid, skeleton, "valid") & np.isfinite(hands).all(axis=1)
        if ok.any():
            centre = hands[ok].mean(axis=0)
    if frustum_mm is None:  # 12 % of the median camera distance
        dist = float(np.median(np.linalg.norm(pos - centre, axis=1)))
        frustum_mm = 0.12 * dist if dist > 0 else 100.0
    if not frustum_mm > 0:
        raise ValueError(f"frustum_mm must be > 0, got {frustum_mm}")

    x, y, z = _frustum_lines(pos, rot, frustum_mm)

    fig = go.Figure()
    fig.add_trace(
        go.Scatter3d(
            x=x,
            y=y,
            z=z,
            mode="lines",
            name="frustums",
            line=dict(color="rgb(90,90,110)", width=2),
            hoverinfo="skip",
            meta=dict(part="frustums"),
        )
    )
    fig.add_trace(
        go.Scatter3d(
            x=pos[:, 0].tolist(), y=pos[:, 1].tolist(), z=pos[:, 2].tolist(), mode="markers+text", name="cameras",
            text=names, textposition="top center", textfont=dict(size=9), marker=dict(size=4, color="rgb(20,20,30)"),
            meta=dict(part="cameras"),
        )
    )  # fmt: skip
    if hands is not None:
        for hand in HANDS:
            fig.add_traces(hand_traces(hands, ok, skeleton, hand, "hands"))

    up = -rot[:, 1, :].mean(axis=0)
    up = up / np.linalg.norm(up) if np.linalg.norm(up) > 0.1 else np.array([0.0, 0.0, 1.0])
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=0, r=0, t=40 if title else 10, b=0),
        legend=dict(groupclick="togglegroup"),
        scene=dict(
            aspectmode="data",
            xaxis_title="x (mm)",
            yaxis_title="y",
            zaxis_title="z",
            camera=dict(up=dict(x=up[0], y=up[1], z=up[2]), eye=dict(x=1.4, y=1.4, z=1.0)),
        ),
        meta=dict(kind="camera_rig", cameras=len(pos)),
    )
    return fig


def trace_xyz(trace) -> np.ndarray:
    """(N, 3) float points of a Scatter3d trace (None -> NaN)."""
    cols = [
        np.array([np.nan if v is None else v for v in (getattr(trace, k) or ())], dtype=np.float64)
        for k in ("x", "y", "z")
    ]
    n = min(len(c) for c in cols)
    return np.stack([c[:n] for c in cols], axis=1)
