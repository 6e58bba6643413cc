"""A sequence player that plays in the browser: every frame precomputed, animated client-side by plotly frames.

:func:`player_figure` lays out one plotly figure: the image with both hands' 2D skeletons (drawn in the shared look,
``internet.vis.style``) at the top left, the per-frame error curves with the current frame's cursor below it, and the
3D hands (root-aligned, fixed axes) on the right. Each frame of the animation replaces only the image, the 3D
coordinates and the cursor, so playing needs no kernel: it plays in JupyterLab (the plotly renderer adds the frames),
in an executed notebook opened without a kernel, and in the HTML of :func:`save_player_html`. A play/pause button and
a frame slider (laid under the error curve, so the slider's handle sits under the cursor) seek; clicking the error
curve seeks to that frame (:data:`SEEK_ON_CLICK_JS`, plotly's ``plotly_click`` event and ``Plotly.animate``) in the
exported HTML and, through :func:`show_player`'s script output, in JupyterLab's trusted outputs. :func:`player_png` is
its static picture for viewers without JavaScript.
"""

from __future__ import annotations

import base64
import io
import uuid
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import cv2
import numpy as np
import plotly.graph_objects as go

from internet.skeleton import INTERHAND, Skeleton
from internet.utils.atomic import atomic_write_bytes
from internet.vis.export import plotly_bundle
from internet.vis.overlay import PngFigure, check_image, draw_sources_2d
from internet.vis.plot3d import finger_bones, xyz_lists
from internet.vis.sequence import MPJPE_LINES, frame_sources, scene_ranges
from internet.vis.style import HAND_COLORS, rgb, source_style

# Domains (paper fractions) of the three panels.
_IMAGE = dict(x=[0.0, 0.40], y=[0.46, 1.0])
_CURVE = dict(x=[0.04, 0.40], y=[0.2, 0.38])
_SCENE = dict(x=[0.43, 1.0], y=[0.0, 1.0])
PLAYER_GAP_MM = 180.0  # the root-aligned hands this far apart (x), so they fill the 3D view

SEEK_ON_CLICK_JS = """
function playerSeekOnClick(gd, Plotly) {
  if (!gd || !gd.on || !Plotly || gd.__seekOnClick) return false;
  gd.__seekOnClick = true;
  gd.on('plotly_click', function (ev) {
    var p = ev && ev.points && ev.points[0];
    if (!p || !p.data.meta || p.data.meta.part !== 'curve') return;
    var names = gd.layout.meta.frame_names, k = p.customdata;
    if (k === undefined || k === null || !names[k]) return;
    Plotly.animate(gd, [names[k]], {mode: 'immediate', frame: {duration: 0, redraw: true}, transition: {duration: 0}});
  });
  gd.on('plotly_animatingframe', function (ev) {
    (gd.__shownFrames = gd.__shownFrames || []).push([performance.now(), ev.name]);
  });
  return true;
}
"""
"""The error curve's click-to-seek (plotly's ``plotly_click`` event and ``Plotly.animate``) and a per-page record of
the frames shown (``gd.__shownFrames``, read by the browser tests), for a player's graph div ``gd``."""

_HTML_SEEK_JS = SEEK_ON_CLICK_JS + "playerSeekOnClick(document.getElementById('{plot_id}'), window.Plotly);\n"

# JupyterLab: run by its JavaScript renderer (trusted outputs only) with ``element`` the output's node. The player's
# graph is created later, when the pointer first enters its PNG (plotly's renderer), so wait for it in the output
# area; plotly.js, loaded by that renderer, is the page's ``window.Plotly``.
_LAB_SEEK_JS = (
    "(function (node, id) {\n"
    "  node = node && node.jquery ? node[0] : node;  // nbconvert's classic HTML passes a jQuery object\n"
    "  var area = node && node.closest ? node.closest('.jp-OutputArea') : null;\n"
    + SEEK_ON_CLICK_JS
    + """  var find = function () {
    var gds = area.querySelectorAll('.js-plotly-plot');
    for (var i = 0; i < gds.length; i++) {
      var m = gds[i].layout && gds[i].layout.meta;
      if (m && m.player_id === id && playerSeekOnClick(gds[i], window.Plotly)) return true;
    }
    return false;
  };
  if (!area || find()) return;
  var watch = new MutationObserver(function () { if (find()) watch.disconnect(); });
  watch.observe(area, {childList: true, subtree: true, attributes: true});
})(typeof element === 'undefined' ? null : element, '{player_id}');
"""
)


def _jpeg_uri(img: np.ndarray, max_side: int, quality: int = 85) -> str:
    """A data URI of ``img`` (RGB uint8) as JPEG, scaled so its longer side is at most ``max_side``."""
    scale = min(1.0, max_side / max(img.shape[:2]))
    if scale < 1.0:
        size = (max(1, int(round(img.shape[1] * scale))), max(1, int(round(img.shape[0] * scale))))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV fails only on arrays check_image rules out
        raise RuntimeError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def overlay_image(frame: Mapping[str, Any], skeleton: Skeleton = INTERHAND) -> np.ndarray:
    """The frame's image with GT (solid) and prediction (dashed) of both hands drawn on it."""
    img = check_image(np.asarray(frame["img"]), "frame['img']")
    return draw_sources_2d(
        img, frame.get("joint_img"), frame.get("pred_img"), frame.get("joint_valid"), skeleton,
        pred_valid=frame.get("pred_valid"),
    )  # fmt: skip


def compact_hand_traces(
    sources: Mapping[str, Any], skeleton: Skeleton = INTERHAND, hands: Sequence[str] = ("right", "left")
) -> list:
    """One Scatter3d per (source, hand), bones and joints together with per-vertex colours (the hand's finger
    shades): the fewest WebGL objects for a frame, so each animation frame redraws fast. Invalid joints are gaps."""
    out = []
    for source in ("gt", "pred"):
        if source not in sources:
            continue
        pts, ok = sources[source]
        st = source_style(source, alone=len(sources) == 1)
        for hand in hands:
            xyz, colours = [], []
            for _, seg, colour in finger_bones(skeleton, hand):
                for a, b in seg:
                    both = ok[a] and ok[b]
                    xyz += [pts[b] if both else (np.nan,) * 3, pts[a] if both else (np.nan,) * 3, (np.nan,) * 3]
                    colours += [rgb(colour)] * 3
            x, y, z = xyz_lists(np.asarray(xyz, dtype=np.float64))
            out.append(
                go.Scatter3d(
                    x=x, y=y, z=z, mode="lines+markers", name=f"{st['label']} {hand}", legendgroup=f"{source}:{hand}",
                    showlegend=False, hoverinfo="skip", opacity=st["opacity"],
                    line=dict(color=colours, width=st["width"], dash=st["dash"]),
                    marker=dict(size=st["marker"], color=colours), meta=dict(source=source, hand=hand, part="hand"),
                )
            )  # fmt: skip
    return out


def _legend_traces(sources: Mapping[str, Any], hands: Sequence[str] = ("right", "left")) -> list:
    """Legend entries (no data) in each (source, hand)'s key colour and dash; clicking one hides that hand."""
    out = []
    for source in ("gt", "pred"):
        if source in sources:
            st = source_style(source, alone=len(sources) == 1)
            for hand in hands:
                out.append(
                    go.Scatter3d(
                        x=[None], y=[None], z=[None], mode="lines", name=f"{st['label']} {hand}",
                        legendgroup=f"{source}:{hand}", line=dict(color=rgb(HAND_COLORS[hand]), width=st["width"],
                        dash=st["dash"]), opacity=st["opacity"], hoverinfo="skip",
                        meta=dict(source=source, hand=hand, part="legend"),
                    )
                )  # fmt: skip
    return out


def _curve_traces(x: Sequence[float], curves: Mapping[str, np.ndarray]) -> list:
    out = []
    for key, label, colour in MPJPE_LINES:
        if key in curves:
            y = [None if not np.isfinite(v) else float(v) for v in np.asarray(curves[key], dtype=np.float64)]
            out.append(
                go.Scatter(
                    x=list(x), y=y, mode="lines+markers", name=label, line=dict(color=colour, width=2),
                    marker=dict(size=6), customdata=list(range(len(x))), xaxis="x2", yaxis="y2",
                    hovertemplate="%{x:.2f}: %{y:.1f} mm<extra>" + label + "</extra>",
                    meta=dict(part="curve", curve=key),
                )
            )  # fmt: skip
    return out


def _cursor(x: float, top: float) -> go.Scatter:
    return go.Scatter(
        x=[x, x], y=[0.0, top], mode="lines", line=dict(color="black", width=2, dash="dot"), showlegend=False,
        hoverinfo="skip", xaxis="x2", yaxis="y2", meta=dict(part="cursor"),
    )  # fmt: skip


def _image_trace(uri: str) -> go.Image:
    return go.Image(source=uri, xaxis="x", yaxis="y", hoverinfo="skip", meta=dict(part="image"))


def _controls(names: Sequence[str], fps: float) -> dict:
    """Play/pause buttons and the frame slider (under the error curve)."""
    ms = int(round(1000.0 / fps))
    play = dict(frame=dict(duration=ms, redraw=True), fromcurrent=True, transition=dict(duration=0), mode="immediate")
    pause = dict(frame=dict(duration=0, redraw=False), mode="immediate", transition=dict(duration=0))
    buttons = dict(
        type="buttons", direction="left", showactive=False, x=0.0, y=0.0, xanchor="left", yanchor="bottom",
        pad=dict(t=0, r=6), buttons=[dict(label="▶ play", method="animate", args=[None, play]),
                                     dict(label="❚❚ pause", method="animate", args=[[None], pause])],
    )  # fmt: skip
    seek = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    slider = dict(
        active=0, x=_CURVE["x"][0] + 0.08, len=_CURVE["x"][1] - _CURVE["x"][0] - 0.08, y=0.0, yanchor="bottom",
        pad=dict(t=0, b=0), currentvalue=dict(prefix="frame ", font=dict(size=11)), transition=dict(duration=0),
        steps=[dict(method="animate", label=n, args=[[n], seek]) for n in names],
    )  # fmt: skip
    return dict(updatemenus=[buttons], sliders=[slider])


def player_figure(
    frames: Sequence[Mapping[str, Any]],
    fps: float = 5.0,
    curves: Optional[Mapping[str, np.ndarray]] = None,
    time_axis: Optional[Sequence[float]] = None,
    skeleton: Skeleton = INTERHAND,
    title: Optional[str] = None,
    height: int = 640,
    image_max_side: int = 400,
    x_title: str = "time (s)",
) -> go.Figure:
    """The client-side player of ``frames`` (dicts with ``img`` and any of ``joint_img`` / ``pred_img`` (J, 2) px,
    ``joint_cam`` / ``pred_cam`` (J, 3) mm, ``joint_valid`` / ``pred_valid`` (J,), ``title``, ``label``) at ``fps``.
    ``curves``: per-frame error arrays ('right', 'left', 'interacting') drawn against ``time_axis`` (default the
    frame index) with the current frame's cursor. Every frame is precomputed (JPEG image with the 2D skeletons, 3D
    coordinates, cursor position), so playing and seeking happen in the browser."""
    if not frames:
        raise ValueError("player_figure needs at least one frame")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    n = len(frames)
    xs = [float(v) for v in (range(n) if time_axis is None else time_axis)]
    if len(xs) != n:
        raise ValueError(f"time_axis has {len(xs)} entries for {n} frames")
    names = [str(f.get("label", k)) for k, f in enumerate(frames)]
    if len(set(names)) != n:
        names = [str(k) for k in range(n)]
    srcs = [frame_sources(f, skeleton, gap_mm=PLAYER_GAP_MM) for f in frames]
    uris = [_jpeg_uri(overlay_image(f, skeleton), image_max_side) for f in frames]
    titles = [str(f.get("title", title or f"frame {k}")) for k, f in enumerate(frames)]

    curve = _curve_traces(xs, curves) if curves is not None else []
    finite = [v for t in curve for v in t.y if v is not None]
    top = max(finite) * 1.08 if finite else 1.0
    hands3d = compact_hand_traces(srcs[0], skeleton)
    data = [_image_trace(uris[0]), *hands3d, *_legend_traces(srcs[0]), *curve]
    moving = [0, *range(1, 1 + len(hands3d))]
    if curve:
        data.append(_cursor(xs[0], top))
        moving.append(len(data) - 1)
    fig = go.Figure(data=data)
    fig.frames = [
        go.Frame(
            name=name,
            data=[_image_trace(u), *compact_hand_traces(s, skeleton), *([_cursor(x, top)] if curve else [])],
            traces=moving,
            layout=dict(title=dict(text=t)),
        )
        for name, u, s, x, t in zip(names, uris, srcs, xs, titles)
    ]
    scene = dict(domain=_SCENE, **_player_scene(srcs))
    fig.update_layout(
        title=dict(text=titles[0], x=0.01, xanchor="left", font=dict(size=13)),
        height=height,
        autosize=True,
        margin=dict(l=10, r=10, t=70, b=10),
        scene=scene,
        xaxis=dict(domain=_IMAGE["x"], visible=False),
        yaxis=dict(domain=_IMAGE["y"], visible=False, scaleanchor="x"),
        xaxis2=dict(domain=_CURVE["x"], title=dict(text=x_title, standoff=2), anchor="y2", range=_pad(xs)),
        yaxis2=dict(domain=_CURVE["y"], title=dict(text="MPJPE (mm)"), anchor="x2", range=[0, top], fixedrange=True),
        legend=dict(groupclick="togglegroup", orientation="h", x=0.0, y=1.0, yanchor="bottom", font=dict(size=11)),
        uirevision="player",
        meta=dict(kind="sequence_player", frames=n, fps=float(fps), frame_names=names),
        **_controls(names, fps),
    )
    return fig


def _pad(xs: Sequence[float]) -> list:
    lo, hi = min(xs), max(xs)
    pad = (hi - lo) * 0.03 or 0.5
    return [lo - pad, hi + pad]


def _player_scene(srcs) -> dict:
    from internet.vis.plot3d import OBLIQUE_VIEW

    axes = {k: dict(v, title=dict(text=f"{k[0]} (mm)")) for k, v in scene_ranges(srcs).items()}
    return dict(aspectmode="cube", camera=OBLIQUE_VIEW, **axes)


def player_html(fig: go.Figure, include_plotlyjs: Union[bool, str] = True, full_html: bool = True) -> str:
    """The player as HTML with click-to-seek on the error curve (and a per-page record of the frames shown, read by
    the browser tests as ``gd.__shownFrames``)."""
    return fig.to_html(
        include_plotlyjs=include_plotlyjs, full_html=full_html, auto_play=False, post_script=_HTML_SEEK_JS
    )


def save_player_html(fig: go.Figure, path: Union[str, Path]) -> Path:
    """Write the player as one self-contained HTML file (plotly.js embedded: opens offline), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, player_html(fig).encode("utf-8"))
    return path


def player_png(
    frames: Sequence[Mapping[str, Any]],
    k: int = 0,
    curves: Optional[Mapping[str, np.ndarray]] = None,
    time_axis: Optional[Sequence[float]] = None,
    skeleton: Skeleton = INTERHAND,
    dpi: int = 100,
) -> bytes:
    """A static picture of the player at frame ``k`` (same panels and look: image with 2D skeletons, error curves
    with the cursor, the 3D hands rendered by matplotlib) as PNG bytes, for viewers without JavaScript."""
    from internet.vis.plot3d import OBLIQUE_VIEW
    from internet.vis.static3d import static_fallback

    f = frames[k]
    from internet.vis.sequence import animation_traces

    hands = go.Figure(animation_traces(frame_sources(f, skeleton, gap_mm=PLAYER_GAP_MM), skeleton))
    hands.update_layout(scene=_player_scene([frame_sources(g, skeleton, gap_mm=PLAYER_GAP_MM) for g in frames]))
    hands.layout.scene.camera = OBLIQUE_VIEW
    pic3d = static_fallback(hands, as_png=True, width_in=5.5, height_in=5.0, dpi=dpi)
    out = PngFigure(figsize=(11.0, 6.0), dpi=dpi)
    grid = out.add_gridspec(3, 2, width_ratios=[0.45, 0.55], height_ratios=[1, 1, 0.8])
    ax_img = out.add_subplot(grid[0:2, 0])
    ax_img.imshow(overlay_image(f, skeleton))
    ax_img.set_axis_off()
    ax_3d = out.add_subplot(grid[:, 1])
    ax_3d.imshow(cv2.imdecode(np.frombuffer(pic3d, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1])
    ax_3d.set_axis_off()
    if curves is not None:
        ax_c = out.add_subplot(grid[2, 0])
        xs = np.arange(len(frames)) if time_axis is None else np.asarray(time_axis, dtype=np.float64)
        for key, label, colour in MPJPE_LINES:
            if key in curves:
                c = [int(v) / 255 for v in colour[4:-1].split(",")]
                ax_c.plot(xs, curves[key], "-o", color=c, markersize=3, linewidth=1.5, label=label)
        ax_c.axvline(xs[k], color="black", linestyle=":", linewidth=1.5)
        ax_c.set_ylabel("MPJPE (mm)", fontsize=8)
        ax_c.tick_params(labelsize=7)
        ax_c.legend(fontsize=6, loc="upper right")
    out.suptitle(str(f.get("title", f"frame {k}")), fontsize=10, x=0.01, ha="left")
    out.tight_layout()
    buf = io.BytesIO()
    out.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def show_player(fig: go.Figure, png: Optional[bytes] = None) -> None:
    """Display the player in a notebook: plotly's mimetype (JupyterLab plays it client-side, with or without a
    kernel) with ``png`` (from :func:`player_png`) for viewers without JavaScript, then a script output that adds
    click-to-seek on the error curve. JupyterLab runs that script in trusted outputs only (those made in the running
    session): in a notebook opened from disk, executed elsewhere, the slider under the curve seeks."""
    from IPython.display import display

    spec = fig.to_plotly_json()
    player_id = uuid.uuid4().hex
    spec["layout"]["meta"] = dict(spec["layout"].get("meta") or {}, player_id=player_id)
    text = f"<sequence player: {fig.layout.meta['frames']} frames at {fig.layout.meta['fps']:g} fps>"
    display(plotly_bundle(spec, png, text), raw=True)
    # text/plain (empty) is what an untrusted notebook shows in its place
    display({"application/javascript": _LAB_SEEK_JS.replace("{player_id}", player_id), "text/plain": ""}, raw=True)


__all__ = ["player_figure", "player_html", "player_png", "save_player_html", "show_player"]
