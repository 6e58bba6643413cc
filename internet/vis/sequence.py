"""Hands over time and across cameras: the sequence player, per-frame error curves, the multi-view grid, exports.

- :func:`animation_traces` / :func:`hands_animation_figure`: 3D hands with a fixed set of traces (one per source,
  hand and finger, plus the joints), so a frame changes only coordinates: the player updates them in place and the
  exported HTML animates them with plotly frames.
- :class:`SequencePlayer` (ipywidgets): play/pause (``Play``), a frame slider, a speed control, the image with the 2D
  skeleton beside the 3D hands (GT dashed, prediction solid) and the per-frame MPJPE with the current frame marked.
- :func:`mpjpe_curve_figure`, :func:`multiview_grid_figure` (every camera of a capture with the projected joints),
  :func:`write_video` (MP4 through OpenCV, GIF where no encoder works), :func:`save_animation_html`.

Nothing here reads files or runs a model: the frames come from a callable (see ``internet.data.sequences`` and
``internet.app.video`` for the data).
"""

from __future__ import annotations

import html
import io
import math
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from internet.skeleton import INTERHAND, Skeleton
from internet.utils.atomic import atomic_write_bytes
from internet.vis.overlay import HANDS, PngFigure, check_image, draw_skeleton_2d, draw_sources_2d
from internet.vis.plot3d import OBLIQUE_VIEW, bone_trace, cube_ranges, finger_bones, xyz_lists
from internet.vis.style import HAND_COLORS, LEGEND_FINGER, joint_colours, rgb, source_style
from internet.vis.widgets import _figure_widget, _png, redraw_in_output

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
    """A plotly figure animating the 3D hands of ``frames`` (dicts as for :class:`SequencePlayer`) with plotly
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


# ============================================================================================== the player
class SequencePlayer:
    """Play a sequence: image with the 2D skeleton, 3D hands (root-aligned, GT dashed, prediction solid) and the
    per-frame MPJPE with the current frame marked; play/pause, a frame slider and a speed control.

    get_frame(k) returns a dict with ``img`` (H, W, 3) uint8 and any of ``joint_img`` / ``pred_img`` (J, 2) px,
    ``joint_cam`` / ``pred_cam`` (J, 3) mm, ``joint_valid`` (J,), ``title``. ``n`` frames at ``fps``; ``curves``
    (optional): per-frame MPJPE arrays ('right', 'left', 'interacting') for the error plot, against ``time_axis``
    (default the frame index). ``sources3d``: every frame's 3D sources (for fixed axis ranges; computed from
    get_frame when None). All logic is in plain methods (:meth:`show_frame`, :meth:`set_speed`), testable without a
    browser.
    """

    SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)

    def __init__(
        self,
        get_frame: Callable[[int], Dict[str, Any]],
        n: int,
        fps: float = 5.0,
        curves: Optional[Mapping[str, np.ndarray]] = None,
        time_axis: Optional[Sequence[float]] = None,
        skeleton: Skeleton = INTERHAND,
        image_width: int = 360,
        figure_height: int = 420,
        figure_width: int = 560,
        sources3d: Optional[Sequence[Mapping[str, Tuple[np.ndarray, np.ndarray]]]] = None,
    ) -> None:
        if not callable(get_frame):
            raise TypeError("get_frame must be a callable index -> dict")
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        self._get_frame, self.n, self.fps, self.skeleton = get_frame, int(n), float(fps), skeleton
        self._index = -1
        self.frame: Dict[str, Any] = {}
        self.image_png = b""
        if sources3d is None:
            sources3d = [frame_sources(get_frame(k), skeleton) for k in range(self.n)]
        self._ranges = scene_ranges(sources3d)
        self._source_names = tuple(s for s in ("pred", "gt") if s in sources3d[0])

        self.play = widgets.Play(
            value=0, min=0, max=self.n - 1, step=1, interval=self._interval(1.0), description="play", repeat=True
        )
        self.slider = widgets.IntSlider(
            value=0,
            min=0,
            max=self.n - 1,
            description="frame",
            continuous_update=True,
            layout=widgets.Layout(width="420px"),
        )
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.speed = widgets.Dropdown(
            options=[(f"{s:g}x", s) for s in self.SPEEDS],
            value=1.0,
            description="speed",
            layout=widgets.Layout(width="160px"),
        )
        self.title_html = widgets.HTML()
        self.image = widgets.Image(format="png", width=image_width)

        fw = _figure_widget()
        self.figure: go.Figure = fw if fw is not None else go.Figure()
        self.figure.add_traces(animation_traces(sources3d[0], skeleton))
        self.figure.update_layout(
            height=figure_height,
            width=figure_width,
            margin=dict(l=0, r=0, t=10, b=0),
            scene=_scene(self._ranges),
            uirevision="player",
            legend=dict(groupclick="togglegroup", orientation="h", y=0.0, x=0.0),
            meta=dict(kind="sequence_player_3d"),
        )
        self.curve: Optional[go.Figure] = None
        if curves is not None:
            xs = list(range(self.n)) if time_axis is None else list(time_axis)
            new = mpjpe_curve_figure(xs, curves)
            cw = _figure_widget()
            self.curve = cw if cw is not None else go.Figure()
            self.curve.add_traces(list(new.data))
            self.curve.update_layout(new.layout)
            self._curve_x = [float(v) for v in xs]
        self._outputs = None if fw is not None else widgets.Output()

        self.slider.observe(lambda change: self.show_frame(change["new"]), names="value")
        self.speed.observe(lambda change: self.set_speed(change["new"]), names="value")
        plots: List[widgets.Widget] = [self.figure if fw is not None else self._outputs]
        rows = [widgets.HBox([self.play, self.slider, self.speed]), self.title_html, widgets.HBox([self.image, *plots])]
        if self.curve is not None and fw is not None:
            rows.append(self.curve)
        self._widget = widgets.VBox(rows)
        self.show_frame(0)

    def _interval(self, speed: float) -> int:
        return max(10, int(round(1000.0 / (self.fps * speed))))

    @property
    def widget(self) -> widgets.VBox:
        return self._widget

    @property
    def index(self) -> int:
        return self._index

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._widget)

    def set_speed(self, speed: float) -> None:
        """Playback speed relative to the recorded frame rate (the Play widget's interval)."""
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed!r}")
        self.play.interval = self._interval(float(speed))

    def show_frame(self, k: int) -> None:
        """Draw frame ``k``: overlay image, 3D coordinates updated in place, the curve's marker."""
        if int(k) != k or not 0 <= k < self.n:
            raise IndexError(f"frame index {k!r} is outside [0, {self.n - 1}]")
        k = int(k)
        f = self._get_frame(k)
        if "img" not in f:
            raise KeyError(f"get_frame({k}) returned no 'img' (keys: {sorted(f)})")
        img = check_image(np.asarray(f["img"]), f"get_frame({k})['img']")
        img = draw_sources_2d(
            img,
            f.get("joint_img"),
            f.get("pred_img"),
            f.get("joint_valid"),
            self.skeleton,
            pred_valid=f.get("pred_valid"),
        )
        self.image_png = _png(img)
        self.image.value = self.image_png
        self.title_html.value = f"<b>{html.escape(str(f.get('title', f'frame {k}')))}</b> ({k + 1} / {self.n})"
        new = animation_traces(frame_sources(f, self.skeleton), self.skeleton)
        with self.figure.batch_update():
            for trace, src in zip(self.figure.data, new):
                trace.x, trace.y, trace.z = src.x, src.y, src.z
        if self.curve is not None:
            mark_frame(self.curve, self._curve_x[k])
        self.frame, self._index = f, k
        if self.slider.value != k:
            self.slider.value = k
        self._redraw_without_widget()

    def _redraw_without_widget(self) -> None:
        redraw_in_output(self._outputs, self.figure, *([self.curve] if self.curve is not None else []))


# ============================================================================================== multi-view grid
def multiview_grid_figure(
    views: Sequence[Mapping[str, Any]],
    skeleton: Skeleton = INTERHAND,
    columns: int = 4,
    tile_inches: float = 2.6,
    title: Optional[str] = None,
) -> PngFigure:
    """A grid of camera views: each ``view`` dict has ``name``, ``img`` (H, W, 3) uint8 or None (no image: a grey
    tile of ``width`` x ``height``), ``joint_img`` (J, 2) the joints projected into that camera, ``joint_valid`` (J,)
    and optionally ``note``. A matplotlib Figure (no pyplot) shown as PNG in notebooks."""
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
        if v.get("joint_img") is not None:
            img = draw_skeleton_2d(img, v["joint_img"], v.get("joint_valid"), skeleton, thickness=2, radius=3)
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


# ============================================================================================== video export
def write_video(
    frames: Iterable[np.ndarray], path: Union[str, Path], fps: float, gif_max_side: int = 360
) -> Dict[str, Any]:
    """Write RGB uint8 frames (all the same size) as an MP4 (OpenCV's 'mp4v'); where OpenCV has no working MP4
    encoder, as an animated GIF beside it (``path`` with suffix .gif, frames scaled to ``gif_max_side``). Frames are
    consumed one at a time (the MP4 path holds none of them). Returns ``{"path", "format", "frames", "size"}``; the
    file appears complete or not at all (written to a temporary name, then renamed)."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    it = iter(frames)
    try:
        first = check_image(np.asarray(next(it)), "frames[0]")
    except StopIteration:
        raise ValueError("write_video got no frames") from None
    h, w = first.shape[:2]
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix or '.mp4'}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    count = 0
    if writer.isOpened():
        try:
            frame = first
            while True:
                if frame.shape[:2] != (h, w):
                    raise ValueError(f"frame {count} has size {frame.shape[1]}x{frame.shape[0]}, expected {w}x{h}")
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                count += 1
                try:
                    frame = check_image(np.asarray(next(it)), f"frames[{count}]")
                except StopIteration:
                    break
        except BaseException:
            writer.release()
            tmp.unlink(missing_ok=True)
            raise
        writer.release()
        if tmp.is_file() and tmp.stat().st_size > 0:
            tmp.replace(path)
            return {"path": path, "format": "mp4", "frames": count, "size": (w, h)}
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"OpenCV wrote no data to {tmp}")
    writer.release()
    tmp.unlink(missing_ok=True)
    return _write_gif(first, it, path.with_suffix(".gif"), fps, gif_max_side)


def _write_gif(first: np.ndarray, rest: Iterable[np.ndarray], path: Path, fps: float, max_side: int) -> Dict[str, Any]:
    """GIF fallback (Pillow): frames are scaled down and palettised one at a time (a GIF needs them all at the end,
    so they are kept small)."""
    from PIL import Image

    scale = min(1.0, max_side / max(first.shape[:2]))

    def small(img: np.ndarray) -> "Image.Image":
        if scale < 1.0:
            img = cv2.resize(
                img,
                (max(1, int(img.shape[1] * scale)), max(1, int(img.shape[0] * scale))),
                interpolation=cv2.INTER_AREA,
            )
        return Image.fromarray(np.ascontiguousarray(img)).convert("P", palette=Image.Palette.ADAPTIVE)

    images = [small(first)] + [small(check_image(np.asarray(f))) for f in rest]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)

    atomic_write_bytes(path, buf.getvalue())
    return {"path": path, "format": "gif", "frames": len(images), "size": images[0].size}


def side_by_side(*images: np.ndarray, height: Optional[int] = None, gap: int = 4) -> np.ndarray:
    """RGB images scaled to one height (default the first's) and joined left to right with a white gap."""
    height = int(height or images[0].shape[0])
    tiles = []
    for img in images:
        img = check_image(np.asarray(img))
        w = max(1, int(round(img.shape[1] * height / img.shape[0])))
        tiles.append(cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA) if img.shape[0] != height else img)
        tiles.append(np.full((height, gap, 3), 255, dtype=np.uint8))
    return np.concatenate(tiles[:-1], axis=1)
