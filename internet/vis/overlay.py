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

from internet.skeleton import FINGER_COLORS, FINGERS, INTERHAND, Skeleton

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
    """(J, 3) uint8 RGB colour of every joint: its finger's colour, grey for wrist/palm."""
    table = np.array([FINGER_COLORS[f] for f in FINGERS] + [FINGER_COLORS["palm"]], dtype=np.uint8)
    return table[np.where(skeleton.finger >= 0, skeleton.finger, len(FINGERS))]


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
) -> np.ndarray:
    """Draw the 2D skeleton of the selected hands on a copy of ``img`` and return it.

    img: (H, W, 3) uint8 RGB. joint_img: (J, 2+) pixel coordinates (extra columns such as depth are ignored).
    joint_valid: (J,), joints with 0 (and non-finite ones) are skipped together with their bones.
    Bones are coloured by finger (``skeleton.bone_color``), joints by their finger; ``color`` draws everything in one
    RGB colour instead. thickness/radius are in pixels (radius 0: no joint circles). ``alpha`` < 1 blends the
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
    jcol = joint_colors(skeleton)
    for child, parent in skeleton.bones:
        if ok[child] and ok[parent]:
            c = color if color is not None else skeleton.bone_color(int(child))
            cv2.line(
                canvas,
                tuple(map(int, fixed[child])),
                tuple(map(int, fixed[parent])),
                tuple(map(int, c)),
                thickness,
                cv2.LINE_AA,
                _SHIFT,
            )
    if radius > 0:
        for j in np.nonzero(ok)[0]:
            c = color if color is not None else jcol[j]
            cv2.circle(
                canvas, tuple(map(int, fixed[j])), int(radius * _SCALE), tuple(map(int, c)), -1, cv2.LINE_AA, _SHIFT
            )
    if alpha < 1.0:
        # Untouched pixels are equal in both images, so blending only changes what was drawn.
        return cv2.addWeighted(canvas, alpha, img, 1.0 - alpha, 0.0)
    return canvas


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
) -> PngFigure:
    """A matplotlib Figure with ground truth and prediction drawn on ``img``.

    mode 'side': one panel per given source (GT left, prediction right); mode 'overlay': one panel, GT blended at
    half opacity under the prediction. ``joint_valid`` masks both. The Figure is built without pyplot (no global
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
            panels.append(("ground truth", draw_skeleton_2d(base, gt_2d, **kw)))
        if pred_2d is not None:
            panels.append(("prediction", draw_skeleton_2d(base, pred_2d, **kw)))
    else:
        drawn = base
        names = []
        if gt_2d is not None:
            drawn = draw_skeleton_2d(drawn, gt_2d, alpha=0.5 if pred_2d is not None else 1.0, **kw)
            names.append("ground truth" + (" (faint)" if pred_2d is not None else ""))
        if pred_2d is not None:
            drawn = draw_skeleton_2d(drawn, pred_2d, **kw)
            names.append("prediction")
        panels.append((" + ".join(names), drawn))

    h, w = img.shape[:2]
    fig = PngFigure(figsize=(panel_inches * len(panels), panel_inches * h / w + (0.5 if title else 0.3)))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, picture) in zip(axes, panels):
        ax.imshow(picture)
        ax.set_title(name, fontsize=10)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
