"""Hands as meshes: plotly ``mesh3d`` traces, a CPU rasteriser that overlays shaded meshes on an image (z-buffer,
both hands depth-ordered; numpy only, no OpenGL), and OBJ/PLY export.

Right and left hands use two colour families (:data:`MESH_COLORS`: warm for the right hand, cool for the left), the
ground-truth fit a lighter and a fit to the prediction a deeper shade of its family. Label a mesh fitted to predicted
joints as such ("MANO fit to the prediction"): it is not the network's output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from internet.utils.atomic import atomic_write_bytes, atomic_write_text

MESH_COLORS = {
    ("right", "gt"): (244, 143, 96),
    ("right", "pred"): (214, 69, 45),
    ("left", "gt"): (110, 170, 235),
    ("left", "pred"): (40, 90, 200),
}
"""RGB per (hand, kind): kind 'gt' (the data set's fit) or 'pred' (MANO fit to the prediction)."""
LABELS = {"gt": "MANO fit (ground truth)", "pred": "MANO fit to the prediction"}


def mesh_color(hand: str, kind: str = "gt") -> Tuple[int, int, int]:
    return MESH_COLORS[(hand, kind)]


def clean_faces(faces: np.ndarray) -> np.ndarray:
    """Faces without repeated vertices (the synthetic model pads MANO's face count with degenerate ones)."""
    f = np.asarray(faces, dtype=np.int64)
    return f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]


# ---------------------------------------------------------------------------------------------- plotly
def mesh3d_trace(vertices: np.ndarray, faces: np.ndarray, hand: str, kind: str = "gt", name: Optional[str] = None,
                 opacity: float = 1.0):  # fmt: skip
    """A plotly ``Mesh3d`` of one hand (vertices (V, 3) mm), flat-shaded in its hand's colour family."""
    import plotly.graph_objects as go

    f = clean_faces(faces)
    v = np.asarray(vertices, dtype=np.float64)
    r, g, b = mesh_color(hand, kind)
    return go.Mesh3d(
        x=v[:, 0], y=v[:, 1], z=v[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2],
        color=f"rgb({r},{g},{b})", opacity=opacity, flatshading=True,
        lighting=dict(ambient=0.45, diffuse=0.8, specular=0.15, roughness=0.6),
        name=name or f"{hand} hand: {LABELS[kind]}", showlegend=True, hoverinfo="name",
    )  # fmt: skip


def mesh_figure(meshes: Iterable[dict], title: str = "", skeletons: Sequence[dict] = (), height: int = 520):
    """A 3D figure of hand meshes. ``meshes``: dicts with ``vertices``, ``faces``, ``hand``, ``kind`` (and optional
    ``name``, ``opacity``); ``skeletons``: dicts with ``joints`` (21, 3) mm and ``hand``, drawn on top as lines.
    Camera coordinates are shown as the camera sees them (y down, z away)."""
    import plotly.graph_objects as go

    from internet.skeleton import INTERHAND

    fig = go.Figure()
    for m in meshes:
        fig.add_trace(mesh3d_trace(m["vertices"], m["faces"], m["hand"], m.get("kind", "gt"), m.get("name"),
                                   m.get("opacity", 1.0)))  # fmt: skip
    bones = INTERHAND.bones[:20]
    for s in skeletons:
        j = np.asarray(s["joints"], dtype=np.float64)
        xs, ys, zs = [], [], []
        for c, p in bones:
            xs += [j[c, 0], j[p, 0], None]
            ys += [j[c, 1], j[p, 1], None]
            zs += [j[c, 2], j[p, 2], None]
        fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", line=dict(color="black", width=4),
                                   name=s.get("name", f"{s['hand']} joints")))  # fmt: skip
    fig.update_layout(
        title=title, height=height, margin=dict(l=0, r=0, t=40, b=0),
        scene=dict(aspectmode="data", camera=dict(up=dict(x=0, y=-1, z=0), eye=dict(x=0.0, y=-0.3, z=-2.0)),
                   xaxis_title="x (mm)", yaxis_title="y (mm)", zaxis_title="z (mm)"),
    )  # fmt: skip
    return fig


# ---------------------------------------------------------------------------------------------- rasteriser
def render_overlay(
    image: np.ndarray,
    meshes: Iterable[dict],
    focal: Sequence[float],
    princpt: Sequence[float],
    alpha: float = 0.75,
    light: Sequence[float] = (0.3, -0.4, -1.0),
) -> np.ndarray:
    """Shaded meshes over ``image`` (H, W, 3) uint8 RGB: ``meshes`` dicts with ``vertices`` (V, 3) camera mm,
    ``faces`` and ``hand``/``kind`` (or ``color`` RGB). One z-buffer for all meshes, so the nearer hand wins per
    pixel; Lambert shading (two-sided) with a light from near the camera; blended with ``alpha``."""
    img = np.asarray(image)
    H, W = img.shape[:2]
    zbuf = np.full((H, W), np.inf)
    color = np.zeros((H, W, 3))
    L = np.asarray(light, dtype=np.float64)
    L = L / np.linalg.norm(L)
    fx, fy, cx, cy = float(focal[0]), float(focal[1]), float(princpt[0]), float(princpt[1])
    for m in meshes:
        v = np.asarray(m["vertices"], dtype=np.float64)
        if not np.isfinite(v).all():
            continue
        f = clean_faces(m["faces"])
        base = np.asarray(m.get("color") or mesh_color(m["hand"], m.get("kind", "gt")), dtype=np.float64)
        tri = v[f]  # (F, 3, 3)
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        shade = 0.3 + 0.7 * np.abs(n @ L)
        z = tri[..., 2]
        keep = (z > 1.0).all(1)
        u = tri[..., 0] / np.maximum(z, 1e-6) * fx + cx
        w = tri[..., 1] / np.maximum(z, 1e-6) * fy + cy
        for k in np.nonzero(keep)[0]:
            _raster_triangle(u[k], w[k], z[k], base * shade[k], zbuf, color, W, H)
    out = img.astype(np.float64).copy()
    hit = np.isfinite(zbuf)
    out[hit] = (1 - alpha) * out[hit] + alpha * color[hit]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _raster_triangle(u, v, z, rgb, zbuf, color, W, H) -> None:
    x0, x1 = max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())), W - 1)
    y0, y1 = max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())), H - 1)
    if x0 > x1 or y0 > y1:
        return
    area = (u[1] - u[0]) * (v[2] - v[0]) - (u[2] - u[0]) * (v[1] - v[0])
    if abs(area) < 1e-9:
        return
    xs, ys = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
    b0 = ((u[1] - xs) * (v[2] - ys) - (u[2] - xs) * (v[1] - ys)) / area
    b1 = ((u[2] - xs) * (v[0] - ys) - (u[0] - xs) * (v[2] - ys)) / area
    b2 = 1 - b0 - b1
    inside = (b0 >= 0) & (b1 >= 0) & (b2 >= 0)
    if not inside.any():
        return
    depth = 1.0 / (b0 / z[0] + b1 / z[1] + b2 / z[2])  # perspective-correct depth
    zb = zbuf[y0 : y1 + 1, x0 : x1 + 1]
    win = inside & (depth < zb)
    zb[win] = depth[win]
    color[y0 : y1 + 1, x0 : x1 + 1][win] = rgb


def hand_meshes(result: Dict[str, dict], faces: Dict[str, np.ndarray], kind: str) -> list:
    """Mesh dicts for :func:`render_overlay` / :func:`mesh_figure` from ``{hand: {"vertices", "valid"?}}``."""
    out = []
    for hand, r in result.items():
        if r is None or ("valid" in r and not bool(np.all(r["valid"]))):
            continue
        out.append({"vertices": r["vertices"], "faces": faces[hand], "hand": hand, "kind": kind})
    return out


# ---------------------------------------------------------------------------------------------- export
def write_obj(path, vertices: np.ndarray, faces: np.ndarray, comment: str = "") -> Path:
    """A Wavefront OBJ (vertices as given, e.g. mm; faces 1-based), written atomically."""
    v, f = np.asarray(vertices, dtype=np.float64), clean_faces(faces) + 1
    lines = [f"# {c}" for c in comment.splitlines()] if comment else []
    lines += [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v]
    lines += [f"f {a} {b} {c}" for a, b, c in f]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def write_ply(path, vertices: np.ndarray, faces: np.ndarray, rgb: Optional[Sequence[int]] = None,
              comment: str = "") -> Path:  # fmt: skip
    """A binary little-endian PLY with float32 vertices (optional uniform colour) and int32 faces, atomically."""
    v, f = np.asarray(vertices, dtype=np.float32), clean_faces(faces).astype(np.int32)
    head = ["ply", "format binary_little_endian 1.0"]
    head += [f"comment {c}" for c in comment.splitlines()] if comment else []
    head += [f"element vertex {len(v)}", "property float x", "property float y", "property float z"]
    if rgb is not None:
        head += ["property uchar red", "property uchar green", "property uchar blue"]
    head += [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    if rgb is None:
        vert = v.tobytes()
    else:
        dt = np.dtype([("p", "<f4", 3), ("c", "u1", 3)])
        rec = np.zeros(len(v), dt)
        rec["p"], rec["c"] = v, np.asarray(rgb, np.uint8)
        vert = rec.tobytes()
    fr = np.zeros(len(f), np.dtype([("n", "u1"), ("i", "<i4", 3)]))
    fr["n"], fr["i"] = 3, f
    return atomic_write_bytes(path, ("\n".join(head) + "\n").encode("ascii") + vert + fr.tobytes())


def read_ply(path) -> Tuple[np.ndarray, np.ndarray]:
    """Read back a PLY written by :func:`write_ply` (vertices, faces), for checks."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    head = data[:end].decode("ascii").splitlines()
    nv = int(next(x for x in head if x.startswith("element vertex")).split()[-1])
    nf = int(next(x for x in head if x.startswith("element face")).split()[-1])
    color = any(x.startswith("property uchar red") for x in head)
    dt = np.dtype([("p", "<f4", 3), ("c", "u1", 3)]) if color else np.dtype([("p", "<f4", 3)])
    verts = np.frombuffer(data, dt, nv, end)["p"]
    faces = np.frombuffer(data, np.dtype([("n", "u1"), ("i", "<i4", 3)]), nf, end + nv * dt.itemsize)["i"]
    return verts.astype(np.float64), faces.astype(np.int64)
