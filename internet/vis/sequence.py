"""Hands over time and across cameras: the sequence player, per-frame error curves, the multi-view grid, exports.

- :func:`animation_traces` / :func:`hands_animation_figure`: 3D hands with a fixed set of traces (one per source,
  hand and finger, plus the joints), so a frame changes only coordinates: the player updates them in place and the
  exported HTML animates them with plotly frames.
- the player that plays in the browser is ``internet.vis.player`` (plotly frames: image, 2D and 3D hands, error
  curve); writing videos is ``internet.vis.video_io``.
- :func:`mpjpe_curve_figure`, :func:`multiview_grid_figure` (every camera of a capture with the projected joints),
  :func:`save_animation_html`.

Nothing here reads files or runs a model: the frames come from a callable (see ``internet.data.sequences`` and
``internet.app.video`` for the data).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import plotly.graph_objects as go

from internet.skeleton import INTERHAND, Skeleton
from internet.utils.atomic import atomic_write_bytes
from internet.vis.overlay import HANDS, PngFigure, check_image, draw_sources_2d
from internet.vis.plot3d import OBLIQUE_VIEW, bone_trace, cube_ranges, finger_bones, xyz_lists
from internet.vis.style import HAND_COLORS, LEGEND_FINGER, joint_colours, rgb, source_style

MPJPE_LINES = (
    ("right", "right hand", rgb(HAND_COLORS["right"])),
    ("left", "left hand", rgb(HAND_COLORS["left"])),
    ("interacting", "interacting (both hands)", "rgb(60,60,60)"),
)


# ============================================================================================== 3D hands, fixed traces
def root_aligned_side(
    joints: np.ndarray,
    valid: np.ndarray,
    skeleton: Skeleton = INTERHAND,
    gap_mm: float = 250.0,
    right_first: bool = True,
) -> Tuple[np.ndarray, np.ndarray]:
    """Each hand relative to its root, the hands ``gap_mm`` apart along x (right at -x when ``right_first``);
    joints of a hand whose root is invalid become invalid. Returns (joints (J, 3), valid (J,))."""
    pts = np.array(joints, dtype=np.float64, copy=True)
    ok = np.asarray(valid).astype(bool) & np.isfinite(pts).all(axis=1)
    for k, hand in enumerate(("right", "left") if right_first else ("left", "right")):
        jt = skeleton.joint_type[hand]
        root = skeleton.root_idx[hand]
        if not ok[root]:
            ok[jt] = False
            continue
        pts[jt] -= pts[root]
        pts[jt, 0] += (-0.5 + k) * gap_mm
    return pts, ok


def animation_traces(
    sources: Mapping[str, Tuple[np.ndarray, np.ndarray]], skeleton: Skeleton = INTERHAND, hands: Sequence[str] = HANDS
) -> List[go.Scatter3d]:
    """The fixed trace list of one frame: for each source in ('pred', 'gt') present in ``sources`` (name ->
    (joints (J, 3), valid (J,))), each hand, one line trace per finger and one marker trace. Invalid joints and their
    bones are gaps (None), so every frame has the same traces."""
    traces: List[go.Scatter3d] = []
    jcol = joint_colours(skeleton)
    for source in ("gt", "pred"):  # the prediction on top
        if source not in sources:
            continue
        pts, ok = sources[source]
        style = source_style(source, alone=len(sources) == 1)
        for hand in hands:
            name, group = f"{style['label']} {hand}", f"{source}:{hand}"
            for finger, seg, colour in finger_bones(skeleton, hand):
                xyz = np.where((ok[seg[:, 0]] & ok[seg[:, 1]])[:, None, None], pts[seg], np.nan)
                traces.append(
                    bone_trace(xyz, colour, style, name, group, finger == LEGEND_FINGER, source, hand, finger)
                )
            jt = np.asarray(skeleton.joint_type[hand])
            x, y, z = xyz_lists(np.where(ok[jt][:, None], pts[jt], np.nan))
            traces.append(
                go.Scatter3d(
                    x=x,
                    y=y,
                    z=z,
                    mode="markers",
                    name=name,
                    legendgroup=group,
                    showlegend=False,
                    marker=dict(size=style["marker"], color=[rgb(jcol[j]) for j in jt]),
                    opacity=style["opacity"],
                    hoverinfo="skip",
                    meta=dict(source=source, hand=hand, part="joints"),
                )
            )
    return traces


def frame_sources(
    frame: Mapping[str, Any], skeleton: Skeleton = INTERHAND, gap_mm: float = 250.0
) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Root-aligned side-by-side (pred, gt) of a frame dict with ``joint_cam`` (GT) and/or ``pred_cam``,
    ``joint_valid``; the order of the hands follows the GT roots (else the prediction's) as in the image."""
    valid = np.asarray(frame.get("joint_valid", np.ones(skeleton.joint_num)), dtype=bool)
    ref = frame.get("joint_cam") if frame.get("joint_cam") is not None else frame.get("pred_cam")
    right_first = True
    if ref is not None:
        r, l = np.asarray(ref)[skeleton.root_idx["right"]], np.asarray(ref)[skeleton.root_idx["left"]]
        if valid[skeleton.root_idx["right"]] and valid[skeleton.root_idx["left"]]:
            right_first = bool(r[0] <= l[0])
    out = {}
    if frame.get("pred_cam") is not None:
        pred_valid = np.asarray(frame.get("pred_valid", np.ones(skeleton.joint_num)), dtype=bool)
        out["pred"] = root_aligned_side(frame["pred_cam"], pred_valid, skeleton, gap_mm, right_first)
    if frame.get("joint_cam") is not None:
        out["gt"] = root_aligned_side(frame["joint_cam"], valid, skeleton, gap_mm, right_first)
    return out


def scene_ranges(frames: Iterable[Mapping[str, Tuple[np.ndarray, np.ndarray]]], pad: float = 0.1) -> dict:
    """Equal-length axis ranges holding every valid point of all frames (so the view does not jump while playing)."""
    ranges = cube_ranges([p[ok] for f in frames for p, ok in f.values()], pad)
    return {f"{a}axis": dict(range=r, autorange=False) for a, r in zip("xyz", ranges)}


def _scene(ranges: dict) -> dict:
    # the shared oblique view: the image's orientation, with the depth seen
    axes = {k: dict(v, title=dict(text=f"{k[0]} (mm)")) for k, v in ranges.items()}
    return dict(aspectmode="cube", camera=OBLIQUE_VIEW, **axes)


def hands_animation_figure(
    frames: Sequence[Mapping[str, Any]],
    fps: float = 5.0,
    skeleton: Skeleton = INTERHAND,
    title: Optional[str] = None,
    height: int = 560,
) -> go.Figure:
    """A plotly figure animating the 3D hands of ``frames`` (dicts as for ``internet.vis.player``) with plotly
    frames, a play/pause button and a frame slider: self-contained once saved with :func:`save_animation_html`."""
    if not frames:
        raise ValueError("hands_animation_figure needs at least one frame")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    srcs = [frame_sources(f, skeleton) for f in frames]
    fig = go.Figure(data=animation_traces(srcs[0], skeleton))
    names = [str(f.get("label", k)) for k, f in enumerate(frames)]
    fig.frames = [
        go.Frame(
            data=animation_traces(s, skeleton), name=n, layout=dict(title=dict(text=str(f.get("title", title or ""))))
        )
        for s, n, f in zip(srcs, names, frames)
    ]
    ms = int(round(1000.0 / fps))
    fig.update_layout(
        title=str(frames[0].get("title", title or "")),
        height=height,
        margin=dict(l=0, r=0, t=40, b=0),
        scene=_scene(scene_ranges(srcs)),
        legend=dict(groupclick="togglegroup"),
        updatemenus=[
            dict(
                type="buttons",
                showactive=False,
                x=0.02,
                y=0.02,
                xanchor="left",
                yanchor="bottom",
                buttons=[
                    dict(
                        label="▶ play",
                        method="animate",
                        args=[
                            None,
                            dict(frame=dict(duration=ms, redraw=True), fromcurrent=True, transition=dict(duration=0)),
                        ],
                    ),
                    dict(
                        label="❚❚ pause",
                        method="animate",
                        args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")],
                    ),
                ],
            )
        ],
        sliders=[
            dict(
                active=0,
                x=0.2,
                len=0.78,
                y=0.02,
                yanchor="bottom",
                currentvalue=dict(prefix="frame "),
                steps=[
                    dict(
                        method="animate",
                        label=n,
                        args=[[n], dict(mode="immediate", frame=dict(duration=0, redraw=True))],
                    )
                    for n in names
                ],
            )
        ],
        meta=dict(kind="hands_animation", frames=len(frames), fps=fps),
    )
    return fig


def save_animation_html(fig: go.Figure, path: Union[str, Path]) -> Path:
    """Write ``fig`` as one self-contained HTML file (plotly.js embedded: opens offline), atomically."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, fig.to_html(include_plotlyjs=True, full_html=True, auto_play=False).encode("utf-8"))
    return path


# ============================================================================================== per-frame error
def mpjpe_curve_figure(
    time_axis: Sequence[float],
    curves: Mapping[str, np.ndarray],
    current: Optional[int] = None,
    x_title: str = "frame",
    height: int = 260,
    title: str = "per-frame MPJPE (root-aligned)",
) -> go.Figure:
    """Lines of per-frame MPJPE (mm) for the keys 'right', 'left', 'interacting' of ``curves`` against
    ``time_axis``; the frame ``current`` (an index) is marked by a vertical line."""
    x = [float(v) for v in time_axis]
    fig = go.Figure()
    for key, label, colour in MPJPE_LINES:
        if key in curves:
            y = [None if not np.isfinite(v) else float(v) for v in np.asarray(curves[key], dtype=np.float64)]
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines+markers",
                    name=label,
                    line=dict(color=colour),
                    marker=dict(size=5),
                    meta=dict(curve=key),
                )
            )
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=50, r=10, t=40, b=40),
        xaxis_title=x_title,
        yaxis_title="MPJPE (mm)",
        legend=dict(orientation="h", y=-0.35),
        meta=dict(kind="mpjpe_curve"),
    )
    mark_frame(fig, x[current] if current is not None and x else None)
    return fig


def mark_frame(fig: go.Figure, x: Optional[float]) -> None:
    """Move the current-frame marker (a vertical line) of an MPJPE curve figure to ``x`` (None: remove it)."""
    fig.layout.shapes = (
        ()
        if x is None
        else (dict(type="line", x0=x, x1=x, y0=0, y1=1, yref="paper", line=dict(color="black", width=2, dash="dot")),)
    )


# ============================================================================================== multi-view grid
def multiview_grid_figure(
    views: Sequence[Mapping[str, Any]],
    skeleton: Skeleton = INTERHAND,
    columns: int = 4,
    tile_inches: float = 2.6,
    title: Optional[str] = None,
) -> PngFigure:
    """A grid of camera views: each ``view`` dict has ``name``, ``img`` (H, W, 3) uint8 or None (no image: a grey
    tile of ``width`` x ``height``), ``joint_img`` (J, 2) the joints projected into that camera, ``joint_valid`` (J,),
    optionally ``pred_img`` (J, 2) the prediction projected into it (drawn dashed over the solid GT), ``pred_valid``
    and ``note``. A matplotlib Figure (no pyplot) shown as PNG in notebooks."""
    if not views:
        raise ValueError("multiview_grid_figure needs at least one view")
    columns = max(1, min(int(columns), len(views)))
    rows = math.ceil(len(views) / columns)
    fig = PngFigure(figsize=(tile_inches * columns, tile_inches * 1.25 * rows + (0.4 if title else 0.1)))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, v in zip(axes.ravel(), views):
        img = v.get("img")
        if img is None:
            h, w = int(v.get("height", 512)), int(v.get("width", 334))
            img = np.full((h, w, 3), 60, dtype=np.uint8)
        img = check_image(np.asarray(img))
        img = draw_sources_2d(
            img, v.get("joint_img"), v.get("pred_img"), v.get("joint_valid"), skeleton, pred_valid=v.get("pred_valid")
        )
        ax.imshow(img)
        label = f"cam {v.get('name', '?')}" + (f"\n{v['note']}" if v.get("note") else "")
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def project(
    world: np.ndarray, campos: np.ndarray, camrot: np.ndarray, focal: np.ndarray, princpt: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    """World joints (J, 3) mm into a camera: (pixels (J, 2), depth (J,) mm)."""
    cam = (np.asarray(world, dtype=np.float64) - np.asarray(campos, dtype=np.float64)) @ np.asarray(camrot).T
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = cam[:, :2] / z[:, None] * np.asarray(focal, dtype=np.float64) + np.asarray(princpt, dtype=np.float64)
    return uv, z
