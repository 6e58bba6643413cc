"""One visual language for two hands, shared by every 2D and 3D figure, widget and export.

- **Which hand**: the right hand in a warm colour family (reds, oranges), the left hand in a cool one (blues,
  purples); the five fingers are shades within the family, the palm/wrist a muted tone of it.
- **Which source**: ground truth solid and translucent, the prediction dashed and opaque (a lone source is solid).
- **Legends** carry one entry per (source, hand), drawn with the hand's key colour (its index finger) and the
  source's dash, so the swatch matches what is drawn.
- **Errors**: joints may be coloured by their error in mm on one sequential scale (:func:`error_colours`).

Colours are RGB 0-255 tuples; :func:`rgb` writes them for plotly.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from internet.skeleton import FINGERS, Skeleton

RGB = Tuple[int, int, int]

# thumb, index, middle, ring, pinky, palm/wrist: shades of one family per hand
HAND_FINGER_COLORS: Dict[str, Dict[str, RGB]] = {
    "right": {
        "thumb": (150, 20, 40),
        "index": (225, 40, 40),
        "middle": (245, 110, 30),
        "ring": (235, 170, 20),
        "pinky": (225, 80, 150),
        "palm": (170, 110, 100),
    },
    "left": {
        "thumb": (20, 50, 150),
        "index": (35, 110, 235),
        "middle": (20, 175, 215),
        "ring": (30, 160, 130),
        "pinky": (130, 80, 220),
        "palm": (100, 115, 160),
    },
}
# the colour that names a hand (legends, curves, text): its index finger
HAND_COLORS: Dict[str, RGB] = {h: c["index"] for h, c in HAND_FINGER_COLORS.items()}
LEGEND_FINGER = FINGERS.index("index")

# Per-source look. 3D: line width and marker size in plotly px; 2D: thickness and radius in image px are scaled.
SOURCE_STYLE = {
    "gt": dict(dash="solid", opacity=0.55, width=7, marker=3.5, label="GT"),
    "pred": dict(dash="dash", opacity=1.0, width=4, marker=3.0, label="pred"),
    "hands": dict(dash="solid", opacity=1.0, width=5, marker=3.0, label="hand"),  # one source alone
}
ERROR_SCALE = "Viridis"  # plotly's name; the same colour map is used for 2D (matplotlib 'viridis')
ERROR_MAX_MM = 50.0  # top of the error colour scale (the PCK range)


def rgb(colour: Sequence[float]) -> str:
    """A plotly colour string of an RGB 0-255 triple."""
    return "rgb({},{},{})".format(*(int(v) for v in colour[:3]))


def source_style(source: str, alone: bool = False) -> dict:
    """The look of ``source`` ('gt', 'pred'); ``alone``: the only source drawn (solid and opaque)."""
    if source not in ("gt", "pred", "hands"):
        raise ValueError(f"source must be 'gt', 'pred' or 'hands', got {source!r}")
    style = dict(SOURCE_STYLE["hands" if alone else source])
    style["label"] = SOURCE_STYLE[source]["label"]
    return style


def finger_colour(hand: str, finger: int) -> RGB:
    """Colour of finger ``finger`` (index into FINGERS, -1 for wrist/palm) of ``hand``."""
    family = HAND_FINGER_COLORS[hand]
    return family[FINGERS[finger]] if finger >= 0 else family["palm"]


def bone_colour(skeleton: Skeleton, child: int) -> RGB:
    """Colour of the bone ending at joint ``child``: its hand's shade of its finger."""
    return finger_colour(skeleton.hand_of(int(child)), int(skeleton.finger[int(child)]))


def joint_colours(skeleton: Skeleton) -> np.ndarray:
    """(J, 3) uint8 RGB colour of every joint: its hand's shade of its finger (the palm tone for the wrist)."""
    return np.array(
        [finger_colour(skeleton.hand_of(j), int(skeleton.finger[j])) for j in range(skeleton.joint_num)],
        dtype=np.uint8,
    )


def error_colours(errors: np.ndarray, max_mm: Optional[float] = None) -> np.ndarray:
    """(N, 3) uint8 RGB of errors in mm on the error scale (viridis, 0 mm dark purple to ``max_mm`` yellow); NaN
    errors are grey."""
    from matplotlib import colormaps

    e = np.asarray(errors, dtype=np.float64).reshape(-1)
    top = float(max_mm or ERROR_MAX_MM)
    rgba = colormaps["viridis"](np.clip(np.nan_to_num(e, nan=0.0) / top, 0.0, 1.0))
    out = np.round(rgba[:, :3] * 255).astype(np.uint8)
    out[~np.isfinite(e)] = (150, 150, 150)
    return out


def joint_errors(pred: np.ndarray, gt: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Per-joint Euclidean distance (J,) between ``pred`` and ``gt`` (J, D); NaN where invalid or not finite."""
    d = np.linalg.norm(np.asarray(pred, dtype=np.float64) - np.asarray(gt, dtype=np.float64), axis=-1)
    if valid is not None:
        d = np.where(np.asarray(valid).reshape(-1) > 0, d, np.nan)
    return np.where(np.isfinite(d), d, np.nan)
