"""2D drawing on images: the two-hand skeleton, boxes, and a matplotlib GT-vs-prediction figure.

Images are RGB uint8 (H, W, 3) throughout and are never modified in place. Colours are RGB and are written as RGB:
the official demo hands a BGR array to PIL, so its saved picture has red and blue swapped; we do not copy that.
"""

from __future__ import annotations

import io
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
from matplotlib.figure import Figure

from internet.skeleton import INTERHAND, Skeleton
from internet.vis.style import bone_colour, error_colours, joint_colours

# Sub-pixel precision for OpenCV drawing: coordinates are passed as ints scaled by 2**_SHIFT.
_SHIFT = 4
_SCALE = float(1 << _SHIFT)
# Points further than this outside the image are treated as invalid (keeps the int32 drawing coordinates sane).
_FAR = 1e5
HANDS = ("right", "left")


class PngFigure(Figure):
    """A matplotlib Figure that Jupyter shows as a PNG even when pyplot (and so the inline backend) was never
    imported: we build figures without pyplot to keep no global state and need no GUI backend (issue #32)."""

    def _repr_png_(self) -> bytes:

        from matplotlib.backends.backend_agg import FigureCanvasAgg

        if not isinstance(self.canvas, FigureCanvasAgg):
            FigureCanvasAgg(self)
        buf = io.BytesIO()
        self.savefig(buf, format="png")
        return buf.getvalue()


def check_image(img: np.ndarray, name: str = "img") -> np.ndarray:
    """Return ``img`` as an (H, W, 3) uint8 array, or raise ValueError naming ``name``."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"{name} must be an RGB image of shape (H, W, 3), got shape {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (0-255), got dtype {img.dtype}")
    return img


def check_hands(hands: Sequence[str], name: str = "hands") -> Tuple[str, ...]:
    """Validate a selection of hands ('right', 'left')."""
    if isinstance(hands, str):
        hands = (hands,)
    hands = tuple(hands)
    bad = [h for h in hands if h not in HANDS]
    if bad:
        raise ValueError(f"{name} must contain only 'right' and/or 'left', got {bad}")
    return hands


def check_joints(joints: np.ndarray, skeleton: Skeleton, dim: int, name: str) -> np.ndarray:
    """Return ``joints`` as a float64 (J, dim) array for this skeleton, or raise ValueError naming ``name``."""
    arr = np.asarray(joints, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != skeleton.joint_num or arr.shape[1] < dim:
        raise ValueError(f"{name} must have shape ({skeleton.joint_num}, {dim}), got {np.shape(joints)}")
    return arr[:, :dim]


def check_valid(valid: Optional[np.ndarray], skeleton: Skeleton, name: str = "joint_valid") -> np.ndarray:
    """Return a boolean (J,) validity mask (all valid when ``valid`` is None)."""
    if valid is None:
        return np.ones(skeleton.joint_num, dtype=bool)
    arr = np.asarray(valid).reshape(-1)
    if arr.shape[0] != skeleton.joint_num:
        raise ValueError(f"{name} must have {skeleton.joint_num} entries, got shape {np.shape(valid)}")
    return arr > 0


def joint_colors(skeleton: Skeleton) -> np.ndarray:
    """(J, 3) uint8 RGB colour of every joint (``internet.vis.style.joint_colours``: the hand's shade of the
    finger)."""
    return joint_colours(skeleton)


def _dashed_line(canvas: np.ndarray, p0: np.ndarray, p1: np.ndarray, colour, thickness: int, dash_px: float) -> None:
    """A dashed anti-aliased line between fixed-point ends ``p0``, ``p1`` (scaled by 2**_SHIFT): dashes and gaps
    of ``dash_px`` image pixels, the first dash starting at ``p0``."""
    length = float(np.hypot(*(p1 - p0))) / _SCALE
    steps = max(1, int(np.ceil(length / dash_px)))
    for k in range(0, steps, 2):
        a = p0 + (p1 - p0) * (k / steps)
        b = p0 + (p1 - p0) * (min(k + 1, steps) / steps)
        cv2.line(canvas, tuple(map(int, a)), tuple(map(int, b)), colour, thickness, cv2.LINE_AA, _SHIFT)


def draw_skeleton_2d(
    img: np.ndarray,
    joint_img: np.ndarray,
    joint_valid: Optional[np.ndarray] = None,
    skeleton: Skeleton = INTERHAND,
    hands: Sequence[str] = HANDS,
    thickness: int = 2,
    radius: int = 3,
    color: Optional[Tuple[int, int, int]] = None,
    alpha: float = 1.0,
    dashed: bool = False,
    joint_error: Optional[np.ndarray] = None,
    error_max_mm: Optional[float] = None,
) -> np.ndarray:
    """Draw the 2D skeleton of the selected hands on a copy of ``img`` and return it.

    img: (H, W, 3) uint8 RGB. joint_img: (J, 2+) pixel coordinates (extra columns such as depth are ignored).
    joint_valid: (J,), joints with 0 (and non-finite ones) are skipped together with their bones.
    Bones and joints are coloured by hand and finger (``internet.vis.style``: right warm, left cool); ``color`` draws
    everything in one RGB colour instead; ``joint_error`` (J,) mm colours the joints by error
    (``style.error_colours`` up to ``error_max_mm``). ``dashed``: dashed bones (the prediction's look).
    thickness/radius are in pixels (radius 0: no joint circles). ``alpha`` < 1 blends the
    drawing into the image (e.g. ground truth under a prediction).
    """
    img = check_image(img)
    pts = check_joints(joint_img, skeleton, 2, "joint_img")
    valid = check_valid(joint_valid, skeleton)
    hands = check_hands(hands)
    if thickness < 1 or radius < 0:
        raise ValueError(f"thickness must be >= 1 and radius >= 0, got thickness={thickness}, radius={radius}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")

    h, w = img.shape[:2]
    finite = np.isfinite(pts).all(axis=1)
    near = finite & (np.abs(np.where(finite[:, None], pts, 0.0)) < _FAR + max(h, w)).all(axis=1)
    selected = np.zeros(skeleton.joint_num, dtype=bool)
    for hand in hands:
        selected[skeleton.joint_type[hand]] = True
    ok = valid & near & selected
    fixed = np.round(np.where(ok[:, None], pts, 0.0) * _SCALE).astype(np.int64)

    canvas = img.copy()
    jcol = joint_colors(skeleton) if joint_error is None else error_colours(joint_error, error_max_mm)
    dash_px = max(3.0, 3.0 * thickness)
    for child, parent in skeleton.bones:
        if ok[child] and ok[parent]:
            c = tuple(map(int, color if color is not None else bone_colour(skeleton, int(child))))
            if dashed:
                _dashed_line(canvas, fixed[parent], fixed[child], c, thickness, dash_px)
            else:
                cv2.line(
                    canvas,
                    tuple(map(int, fixed[child])),
                    tuple(map(int, fixed[parent])),
                    c,
                    thickness,
                    cv2.LINE_AA,
                    _SHIFT,
                )
    if radius > 0:
        for j in np.nonzero(ok)[0]:
            c = color if color is not None and joint_error is None else jcol[j]
            cv2.circle(
                canvas, tuple(map(int, fixed[j])), int(radius * _SCALE), tuple(map(int, c)), -1, cv2.LINE_AA, _SHIFT
            )
    if alpha < 1.0:
        # Untouched pixels are equal in both images, so blending only changes what was drawn.
        return cv2.addWeighted(canvas, alpha, img, 1.0 - alpha, 0.0)
    return canvas


def draw_sources_2d(
    img: np.ndarray,
    gt_2d: Optional[np.ndarray] = None,
    pred_2d: Optional[np.ndarray] = None,
    joint_valid: Optional[np.ndarray] = None,
    skeleton: Skeleton = INTERHAND,
    hands: Sequence[str] = HANDS,
    pred_valid: Optional[np.ndarray] = None,
    joint_error: Optional[np.ndarray] = None,
    thickness: int = 2,
    radius: int = 3,
) -> np.ndarray:
    """Ground truth and prediction of the selected hands on one image in the shared look: GT solid and translucent
    (drawn first, a little thicker), the prediction dashed on top; each hand in its colour family. ``joint_error``
    (J,) mm colours the prediction's joints by error. A source alone is drawn solid and opaque."""
    out = img
    kw = dict(skeleton=skeleton, hands=hands, radius=radius)
    both = gt_2d is not None and pred_2d is not None
    if gt_2d is not None:
        out = draw_skeleton_2d(
            out, gt_2d, joint_valid, thickness=thickness + (1 if both else 0), alpha=0.6 if both else 1.0, **kw
        )
    if pred_2d is not None:
        ok = joint_valid if pred_valid is None else pred_valid
        out = draw_skeleton_2d(out, pred_2d, ok, thickness=thickness, dashed=both, joint_error=joint_error, **kw)
    return out


def draw_bbox(
    img: np.ndarray,
    bbox: Sequence[float],
    color: Tuple[int, int, int] = (255, 255, 0),
    thickness: int = 2,
    label: Optional[str] = None,
) -> np.ndarray:
    """Draw an [x, y, w, h] box (pixels, the data sets' format) on a copy of ``img``; ``label`` is written above it."""
    img = check_image(img)
    box = np.asarray(bbox, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.isfinite(box).all() or box[2] < 0 or box[3] < 0:
        raise ValueError(f"bbox must be finite [x, y, w, h] with w, h >= 0, got {bbox!r}")
    out = img.copy()
    # Axis-aligned edges: whole pixels and no anti-aliasing keep them crisp.
    p0 = np.clip(np.round(box[:2]), -_FAR, _FAR).astype(int)
    p1 = np.clip(np.round(box[:2] + box[2:]), -_FAR, _FAR).astype(int)
    cv2.rectangle(out, tuple(map(int, p0)), tuple(map(int, p1)), tuple(map(int, color)), thickness, cv2.LINE_8)
    if label:
        org = (int(box[0]), max(int(box[1]) - 4, 10))
        cv2.putText(out, str(label), org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, tuple(map(int, color)), 1, cv2.LINE_AA)
    return out


def overlay_figure(
    img: np.ndarray,
    gt_2d: Optional[np.ndarray] = None,
    pred_2d: Optional[np.ndarray] = None,
    joint_valid: Optional[np.ndarray] = None,
    skeleton: Skeleton = INTERHAND,
    hands: Sequence[str] = HANDS,
    mode: str = "side",
    title: Optional[str] = None,
    bbox: Optional[Sequence[float]] = None,
    thickness: int = 2,
    radius: int = 3,
    panel_inches: float = 4.0,
    joint_error: Optional[np.ndarray] = None,
) -> PngFigure:
    """A matplotlib Figure with ground truth and prediction drawn on ``img``.

    mode 'side': one panel per given source (GT left, prediction right, dashed); mode 'overlay': one panel, GT solid
    and translucent under the dashed prediction. Each hand in its colour family, with a legend below;
    ``joint_error`` (J,) mm colours the predicted joints by error.
    ``joint_valid`` masks both. The Figure is built without pyplot (no global
    state, no GUI backend), so it works headless; Jupyter shows it as a PNG.
    """
    img = check_image(img)
    if gt_2d is None and pred_2d is None:
        raise ValueError("overlay_figure needs gt_2d, pred_2d or both")
    if mode not in ("side", "overlay"):
        raise ValueError(f"mode must be 'side' or 'overlay', got {mode!r}")
    base = draw_bbox(img, bbox) if bbox is not None else img
    kw = dict(joint_valid=joint_valid, skeleton=skeleton, hands=hands, thickness=thickness, radius=radius)

    panels = []
    if mode == "side":
        if gt_2d is not None:
            panels.append(("ground truth", draw_skeleton_2d(base, gt_2d, **kw), ("gt",)))
        if pred_2d is not None:
            drawn = draw_skeleton_2d(base, pred_2d, dashed=True, joint_error=joint_error, **kw)
            panels.append(("prediction" + (" (joints: error)" if joint_error is not None else ""), drawn, ("pred",)))
    else:
        drawn = draw_sources_2d(base, gt_2d, pred_2d, joint_error=joint_error, **kw)
        sources = tuple(s for s, v in (("gt", gt_2d), ("pred", pred_2d)) if v is not None)
        panels.append((" + ".join({"gt": "ground truth", "pred": "prediction"}[s] for s in sources), drawn, sources))

    h, w = img.shape[:2]
    fig = PngFigure(figsize=(panel_inches * len(panels), panel_inches * h / w + (0.9 if title else 0.7)))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, picture, _) in zip(axes, panels):
        ax.imshow(picture)
        ax.set_title(name, fontsize=10)
        ax.set_axis_off()
    shown = sorted({s for *_, srcs in panels for s in srcs}, key=("gt", "pred").index)
    handles = legend_handles(shown, check_hands(hands), dashed_pred=True)
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def legend_handles(sources: Sequence[str], hands: Sequence[str], dashed_pred: bool = True) -> list:
    """matplotlib legend entries, one per (source, hand), in the shared look (hand key colour, GT solid and
    translucent, prediction dashed)."""
    from matplotlib.lines import Line2D

    from internet.vis.style import HAND_COLORS, SOURCE_STYLE

    out = []
    for source in sources:
        st = SOURCE_STYLE[source]
        for hand in hands:
            out.append(
                Line2D(
                    [],
                    [],
                    color=np.array(HAND_COLORS[hand]) / 255.0,
                    alpha=st["opacity"],
                    linewidth=2.5 if source == "gt" else 2.0,
                    linestyle="--" if source == "pred" and dashed_pred else "-",
                    marker="o",
                    markersize=4,
                    label=f"{st['label']} {hand}",
                )
            )
    return out
