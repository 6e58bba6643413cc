"""A matplotlib rendering of this package's plotly 3D figures, for places where JavaScript does not run (executed
notebooks read without a browser, CI artefacts, no browser for kaleido): same traces, colours, dashes and view."""

from __future__ import annotations

import io
from typing import Sequence, Tuple, Union

import numpy as np
import plotly.graph_objects as go
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from plotly.basedatatypes import BaseFigure

from internet.vis.overlay import PngFigure
from internet.vis.plot3d import hands_figure
from internet.vis.plot3d import trace_xyz as _xyz


def _colour(value, default="rgb(80,80,80)") -> Tuple[float, float, float, float]:
    """A plotly colour ('rgb(..)', 'rgba(..)', '#hex', a name) as a matplotlib RGBA tuple."""
    if value is None:
        value = default
    s = str(value).strip()
    if s.startswith(("rgb(", "rgba(")):
        parts = [float(p) for p in s[s.index("(") + 1 : s.rindex(")")].split(",")]
        return (parts[0] / 255, parts[1] / 255, parts[2] / 255, parts[3] if len(parts) > 3 else 1.0)
    return to_rgba(s)


def _marker_colours(marker) -> list:
    """RGBA tuples of a marker's per-point colours: colour strings, or numbers on its colour scale (viridis for
    the error scale) between cmin and cmax."""
    values = list(marker.color)
    if not values or isinstance(next((v for v in values if v is not None), ""), str):
        return [_colour(c) for c in values]
    from matplotlib import colormaps

    lo, hi = float(marker.cmin or 0.0), float(marker.cmax or 1.0)
    v = np.array([np.nan if c is None else c for c in values], dtype=np.float64)
    rgba = colormaps["viridis"](np.clip((np.nan_to_num(v) - lo) / max(hi - lo, 1e-9), 0.0, 1.0))
    rgba[~np.isfinite(v)] = (0.6, 0.6, 0.6, 1.0)
    return [tuple(c) for c in rgba]


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


def _draw_trace(ax, trace, p: np.ndarray, alpha: float, mode: str):
    """Draw one Scatter3d trace's lines, markers and text (points ``p`` in view coordinates); the artist for its
    legend entry, or None."""
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
        colours = _marker_colours(trace.marker) if isinstance(mc, (list, tuple)) else _colour(mc)
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
    return handle


def _legend_proxy(trace, mode: str, alpha: float) -> Line2D:
    """A legend entry in the trace's colour (its line, else its first marker) and dash."""
    mc = trace.marker.color
    colour = trace.line.color if "lines" in mode else (mc[0] if isinstance(mc, (list, tuple)) and mc else mc)
    dash = "--" if (trace.line.dash or "") == "dash" else "-"
    return Line2D([], [], color=_colour(colour)[:3], alpha=alpha, marker="o", markersize=4, linestyle=dash)


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
        handle = _draw_trace(ax, trace, p, alpha, mode)
        if handle is not None and trace.showlegend is not False and trace.name and trace.name not in labels:
            labels.append(trace.name)
            handles.append(_legend_proxy(trace, mode, alpha))

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
