"""Interactive 3D figures (plotly) of two hands and of a camera rig, and a matplotlib rendering of the same figures.

Every hand figure is built from per-(source, hand) groups of traces: one line trace per finger (bones in the finger's
colour) and one marker trace for the joints. Each trace carries ``meta = {"source", "hand", "part", ...}`` so code and
tests can find it, and the traces of a group share a ``legendgroup``: clicking the legend entry "pred right" hides or
shows that whole hand. Prediction is drawn solid, ground truth dashed and translucent.

Coordinates are camera space in mm (x right, y down, z forward): the default view looks from the camera along +z with
-y up, so the 3D plot opens looking like the image.
"""

from __future__ import annotations

import io
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import plotly.graph_objects as go
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from plotly.basedatatypes import BaseFigure

from internet.geometry.camera import check_rotation
from internet.skeleton import INTERHAND, Skeleton
from internet.vis.overlay import HANDS, PngFigure, check_hands, check_joints, check_valid, joint_colors

SOURCES = ("pred", "gt")
# Per-source look: prediction solid and opaque, ground truth dashed and translucent.
_STYLE = {
    "pred": dict(dash="solid", opacity=1.0, width=6, marker=4.0),
    "gt": dict(dash="dash", opacity=0.5, width=4, marker=3.0),
    "hands": dict(dash="solid", opacity=1.0, width=5, marker=3.0),
}
_LABEL = {"pred": "pred", "gt": "GT", "hands": "hand"}
# The view of an image: eye behind the camera centre looking along +z, with -y (image up) pointing up on screen.
CAMERA_VIEW = dict(up=dict(x=0, y=-1, z=0), eye=dict(x=0.0, y=0.0, z=-1.6), center=dict(x=0, y=0, z=0))


def _rgb(c) -> str:
    return "rgb({},{},{})".format(*(int(v) for v in c))


def xyz_lists(points: np.ndarray) -> Tuple[list, list, list]:
    """Plotly's x, y, z lists of ``points`` (N, 3): a NaN coordinate becomes None, where plotly leaves a gap."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return tuple([None if np.isnan(v) else float(v) for v in points[:, k]] for k in range(3))


def finger_bones(skeleton: Skeleton, hand: str) -> List[Tuple[int, np.ndarray, tuple]]:
    """(finger id, bones (B, 2), colour) of one hand's bones, grouped by bone colour, in skeleton order: what one
    line trace per finger draws."""
    in_hand = set(int(j) for j in skeleton.joint_type[hand])
    bones = np.array([b for b in skeleton.bones if int(b[0]) in in_hand], dtype=np.int64)
    colours = [skeleton.bone_color(int(c)) for c in bones[:, 0]]
    out = []
    for colour in dict.fromkeys(colours):
        seg = bones[[c == colour for c in colours]]
        out.append((int(skeleton.finger[int(seg[0, 0])]), seg, colour))
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
    out; segments are separated by None, where plotly breaks the line. ``style``: a ``_STYLE`` entry."""
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
) -> List[go.Scatter3d]:
    """Traces of one hand of one source: a line trace per finger (bones whose both ends are ``ok``) and a marker
    trace of the ``ok`` joints. ``joints`` (J, 3) in mm; ``offset`` (3,) is added (root-aligned side-by-side);
    ``style`` ('pred', 'gt', 'hands') defaults to the source's own look."""
    style = _STYLE[style or source]
    pts = joints + (0.0 if offset is None else np.asarray(offset, dtype=np.float64).reshape(1, 3))
    in_hand = np.zeros(skeleton.joint_num, dtype=bool)
    in_hand[skeleton.joint_type[hand]] = True
    keep = ok & in_hand
    group = f"{source}:{hand}"
    name = f"{_LABEL[source]} {hand}"
    traces: List[go.Scatter3d] = []

    for finger, seg, colour in finger_bones(skeleton, hand):
        seg = seg[keep[seg[:, 0]] & keep[seg[:, 1]]]  # bones whose both ends are drawn
        if len(seg):
            traces.append(bone_trace(pts[seg], colour, style, name, group, not traces, source, hand, finger))
    idx = np.nonzero(keep)[0]
    jcol = joint_colors(skeleton)
    traces.append(
        go.Scatter3d(
            x=pts[idx, 0].tolist(),
            y=pts[idx, 1].tolist(),
            z=pts[idx, 2].tolist(),
            mode="markers",
            name=name,
            legendgroup=group,
            showlegend=not traces,  # the legend entry: first trace of the group
            marker=dict(size=style["marker"], color=[_rgb(jcol[j]) for j in idx], line=dict(width=0)),
            opacity=style["opacity"],
            text=[skeleton.names[j] for j in idx],
            hovertemplate="%{text}<br>x %{x:.1f}<br>y %{y:.1f}<br>z %{z:.1f}<extra>" + name + "</extra>",
            meta=dict(source=source, hand=hand, part="joints"),
        )
    )
    return traces


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
    ranges = cube_ranges([_xyz(t) for t in fig.data if t.type == "scatter3d"], pad)
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
    height: int = 520,
) -> go.Figure:
    """3D figure of predicted and/or ground-truth hands.

    pred, gt: (J, 3) joints in mm (camera space), either may be None. valid: (J,) joint validity (all valid when
    None); it masks GT and, unless ``pred_valid`` is given, the prediction too. show: which hands to draw. Ground
    truth is dashed and translucent next to a prediction, solid when alone.

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
        roots: Dict[str, Dict[str, np.ndarray]] = {}
        for source, (arr, ok) in sources.items():
            roots[source] = {h: arr[skeleton.root_idx[h]] for h in HANDS if ok[skeleton.root_idx[h]]}
        aligned = {}
        for source, (arr, ok) in sources.items():
            arr = arr.copy()
            ok = ok.copy()
            for h in HANDS:
                jt = skeleton.joint_type[h]
                if h in roots[source]:
                    arr[jt] -= roots[source][h]
                else:
                    ok[jt] = False
            aligned[source] = (arr, ok)
        sources = aligned
        if root_layout == "side":
            offsets = _side_offsets(roots, hands, hand_gap_mm)

    fig = go.Figure()
    for source in ("pred", "gt"):
        if source in sources:
            arr, ok = sources[source]
            # GT is dashed only to set it apart from a prediction; alone it is drawn solid.
            style = "hands" if source == "gt" and "pred" not in sources else source
            for hand in hands:
                fig.add_traces(hand_traces(arr, ok, skeleton, hand, source, offsets[hand], style))
    unit = "mm, root-relative" if space == "root" else "mm"
    scene = dict(aspectmode="cube", camera=CAMERA_VIEW, xaxis_title=f"x ({unit})", yaxis_title="y", zaxis_title="z")
    scene.update(_cube_ranges(fig))
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=0, r=0, t=40 if title else 10, b=0),
        legend=dict(groupclick="togglegroup"),
        scene=scene,
        meta=dict(kind="hands", space=space, skeleton=skeleton.name),
        uirevision="hands",  # keep the user's rotation when the data change (widgets)
    )
    return fig


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
    if names is None:
        names = [str(c) for c in range(len(pos))]
    names = [str(n) for n in names]
    if len(names) != len(pos):
        raise ValueError(f"names has {len(names)} entries for {len(pos)} cameras")

    centre = pos.mean(axis=0)
    hands = None
    if hands_world is not None:
        hands = check_joints(hands_world, skeleton, 3, "hands_world")
        ok = check_valid(valid, skeleton, "valid") & np.isfinite(hands).all(axis=1)
        if ok.any():
            centre = hands[ok].mean(axis=0)
    if frustum_mm is None:
        dist = float(np.median(np.linalg.norm(pos - centre, axis=1)))
        frustum_mm = 0.12 * dist if dist > 0 else 100.0
    if not frustum_mm > 0:
        raise ValueError(f"frustum_mm must be > 0, got {frustum_mm}")

    # Frustum corners in camera coordinates (a 4:3 image plane at depth 1), then to world: X = R^T c + campos.
    corners = np.array([[-0.5, -0.375, 1], [0.5, -0.375, 1], [0.5, 0.375, 1], [-0.5, 0.375, 1]]) * frustum_mm
    world = pos[:, None, :] + np.einsum("cji,kj->cki", rot, corners)  # (C, 4, 3)
    axis_end = pos + 2.0 * frustum_mm * rot[:, 2, :]
    segs = [np.stack([pos, world[:, k]], axis=1) for k in range(4)]
    segs += [np.stack([world[:, k], world[:, (k + 1) % 4]], axis=1) for k in range(4)]
    segs.append(np.stack([pos, axis_end], axis=1))
    seg = np.concatenate(segs, axis=0)  # (S, 2, 3)
    line = np.concatenate([seg, np.full((len(seg), 1, 3), np.nan)], axis=1).reshape(-1, 3)
    x, y, z = ([None if np.isnan(v) else float(v) for v in line[:, k]] for k in range(3))

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
            x=pos[:, 0].tolist(),
            y=pos[:, 1].tolist(),
            z=pos[:, 2].tolist(),
            mode="markers+text",
            name="cameras",
            text=names,
            textposition="top center",
            textfont=dict(size=9),
            marker=dict(size=4, color="rgb(20,20,30)"),
            meta=dict(part="cameras"),
        )
    )
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


# ------------------------------------------------------------------------------------------ static (matplotlib)
def _colour(value, default="rgb(80,80,80)") -> Tuple[float, float, float, float]:
    """A plotly colour ('rgb(..)', 'rgba(..)', '#hex', a name) as a matplotlib RGBA tuple."""
    if value is None:
        value = default
    s = str(value).strip()
    if s.startswith(("rgb(", "rgba(")):
        parts = [float(p) for p in s[s.index("(") + 1 : s.rindex(")")].split(",")]
        return (parts[0] / 255, parts[1] / 255, parts[2] / 255, parts[3] if len(parts) > 3 else 1.0)
    return to_rgba(s)


def _xyz(trace) -> np.ndarray:
    cols = [
        np.array([np.nan if v is None else v for v in (getattr(trace, k) or ())], dtype=np.float64)
        for k in ("x", "y", "z")
    ]
    n = min(len(c) for c in cols)
    return np.stack([c[:n] for c in cols], axis=1)


def _view_basis(scene) -> Tuple[np.ndarray, float]:
    """Rows (right, forward, up) for a plotly scene camera, and the elevation (degrees) of its eye."""
    cam = scene.camera
    up = np.array([cam.up.x, cam.up.y, cam.up.z] if cam.up and cam.up.x is not None else [0, 0, 1], dtype=float)
    eye = np.array([cam.eye.x, cam.eye.y, cam.eye.z] if cam.eye and cam.eye.x is not None else [1.25] * 3, dtype=float)
    centre = np.array(
        [cam.center.x or 0, cam.center.y or 0, cam.center.z or 0] if cam.center else [0, 0, 0], dtype=float
    )
    up = up / (np.linalg.norm(up) or 1.0)
    e = eye - centre
    e = e / (np.linalg.norm(e) or 1.0)
    horiz = -(e - up * (e @ up))  # viewing direction in the horizontal plane
    if np.linalg.norm(horiz) < 1e-6:  # looking straight down/up: any horizontal direction will do
        horiz = np.cross(up, [1.0, 0, 0]) if abs(up[0]) < 0.9 else np.cross(up, [0, 1.0, 0])
    forward = horiz / np.linalg.norm(horiz)
    right = np.cross(forward, up)
    elev = float(np.degrees(np.arcsin(np.clip(e @ up, -1.0, 1.0))))
    return np.stack([right, forward, up]), elev


def _axis_label(direction: np.ndarray, titles: Sequence[str]) -> str:
    k = int(np.argmax(np.abs(direction)))
    if abs(direction[k]) < 0.99:
        return ""
    return ("-" if direction[k] < 0 else "") + titles[k]


def static_fallback(
    fig: go.Figure, as_png: bool = False, width_in: float = 7.0, height_in: float = 5.5, dpi: int = 100
) -> Union[Figure, bytes]:
    """Render a plotly 3D figure of this module (its Scatter3d traces) with matplotlib, for places where JavaScript
    does not run (executed notebooks, CI artefacts, no browser for kaleido).

    Colours, dashes, opacity, visibility ('legendonly' traces stay hidden), the legend and the scene camera's view
    (up vector and eye direction) are carried over. Returns the matplotlib Figure, or its PNG bytes if ``as_png``.
    """
    if not isinstance(fig, BaseFigure):  # go.Figure and go.FigureWidget
        raise TypeError(f"static_fallback needs a plotly figure, got {type(fig).__name__}")
    basis, elev = _view_basis(fig.layout.scene)
    out = PngFigure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(out)
    ax = out.add_subplot(projection="3d")
    handles, labels = [], []
    everything = []
    for trace in fig.data:
        if trace.type != "scatter3d" or trace.visible in (False, "legendonly"):
            continue
        pts = _xyz(trace)
        if len(pts) == 0:
            continue
        p = pts @ basis.T  # to (right, forward, up)
        everything.append(p[np.isfinite(p).all(axis=1)])
        alpha = 1.0 if trace.opacity is None else float(trace.opacity)
        mode = trace.mode or "lines+markers"
        handle = None
        if "lines" in mode:
            rgba = _colour(trace.line.color)
            dash = {"dash": "--", "dot": ":", "dashdot": "-."}.get(trace.line.dash or "solid", "-")
            width = 0.45 * (trace.line.width or 2)
            (handle,) = ax.plot(
                p[:, 0], p[:, 1], p[:, 2], color=rgba[:3], alpha=alpha * rgba[3], linestyle=dash, linewidth=width
            )
        if "markers" in mode:
            mc = trace.marker.color
            colours = [_colour(c) for c in mc] if isinstance(mc, (list, tuple)) else _colour(mc)
            size = float(trace.marker.size or 4) if not isinstance(trace.marker.size, (list, tuple)) else 4.0
            handle = ax.scatter(
                p[:, 0],
                p[:, 1],
                p[:, 2],
                c=colours if isinstance(colours, list) else [colours],
                s=(size * 1.6) ** 2,
                alpha=alpha,
                depthshade=False,
                edgecolors="none",
            )
        if "text" in mode and trace.text is not None:
            for q, t in zip(p, trace.text):
                if np.isfinite(q).all():
                    ax.text(q[0], q[1], q[2], str(t), fontsize=6)
        if handle is not None and trace.showlegend is not False and trace.name and trace.name not in labels:
            labels.append(trace.name)
            proxy_colour = _colour(
                trace.line.color
                if "lines" in mode
                else (
                    trace.marker.color[0]
                    if isinstance(trace.marker.color, (list, tuple)) and trace.marker.color
                    else trace.marker.color
                )
            )
            handles.append(
                Line2D(
                    [],
                    [],
                    color=proxy_colour[:3],
                    alpha=alpha,
                    marker="o",
                    markersize=4,
                    linestyle="--" if (trace.line.dash or "") == "dash" else "-",
                )
            )

    scene = fig.layout.scene
    titles = [scene.xaxis.title.text or "x", scene.yaxis.title.text or "y", scene.zaxis.title.text or "z"]
    ax.set_xlabel(_axis_label(basis[0], titles), fontsize=8)
    ax.set_ylabel(_axis_label(basis[1], titles), fontsize=8)
    ax.set_zlabel(_axis_label(basis[2], titles), fontsize=8)
    ax.tick_params(labelsize=6)
    if everything and len(np.concatenate(everything)):
        allp = np.concatenate(everything)
        lo, hi = allp.min(axis=0), allp.max(axis=0)
        half = max(float((hi - lo).max()) / 2.0, 1.0)
        mid = (lo + hi) / 2.0
        ax.set_xlim(mid[0] - half, mid[0] + half)
        ax.set_ylim(mid[1] - half, mid[1] + half)
        ax.set_zlim(mid[2] - half, mid[2] + half)
        ax.set_box_aspect((1, 1, 1), zoom=1.15)
    ax.view_init(elev=elev, azim=-90)
    if abs(elev) < 15:  # the depth axis is seen edge-on: its tick labels would pile up
        ax.set_yticklabels([])
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="upper left")
    title = fig.layout.title.text if fig.layout.title else None
    if title:
        ax.set_title(title, fontsize=10)
    out.subplots_adjust(left=0.0, right=1.0, bottom=0.02, top=0.94 if title else 1.0)
    if not as_png:
        return out
    buf = io.BytesIO()
    out.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def hands_figure_matplotlib(*args, **kwargs) -> Figure:
    """The matplotlib rendering of :func:`hands_figure` with the same arguments."""
    return static_fallback(hands_figure(*args, **kwargs))
