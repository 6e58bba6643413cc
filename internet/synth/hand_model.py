"""An articulated 3D hand: per-subject bone geometry, anatomical joint limits, a pose library and forward kinematics.

The model is a right hand in its own frame, in mm: origin at the wrist, x towards the thumb (radial), y along the
middle finger (distal), z out of the palm (palmar). (x, y, z) is right-handed for a right hand; the left hand is its
mirror image (x negated), so a left hand placed with a proper rotation is anatomically a left hand.

Each digit has a base joint fixed in the palm (thumb: CMC = ``thumb1``; fingers: MCP = ``*1``) and three segments.
A pose is ``angles`` (..., 5, 4) in radians, per digit (thumb, index, middle, ring, pinky):
``[abduction, flexion at the base, flexion at the middle joint, flexion at the last joint]``. Abduction turns the
digit within the palm plane (positive = towards the thumb side); flexion bends it towards the palm, cumulatively.
Joints come out in the InterHand2.6M order of one hand: thumb4..1, index4..1, middle4..1, ring4..1, pinky4..1, wrist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Union

import numpy as np

DIGITS = ("thumb", "index", "middle", "ring", "pinky")

# Rest geometry of a medium right hand (wrist -> middle MCP 85 mm), calibrated on the real InterHand2.6M sample:
# wrist->MCP 79-92 mm, MCP spacing 20-28 mm, wrist->thumb1 33-44 mm, phalanges as below.
_BASE_POS = np.array(
    [
        [22.0, 25.0, 16.0],  # thumb CMC (thumb1)
        [25.0, 80.0, 3.0],  # index MCP
        [0.0, 85.0, 0.0],  # middle MCP
        [-22.0, 79.0, 1.0],  # ring MCP
        [-41.0, 68.0, 5.0],  # pinky MCP
    ]
)
_SEG_LEN = np.array(
    [
        [40.0, 32.0, 28.0],  # thumb: CMC->MCP, MCP->IP, IP->tip
        [42.0, 25.0, 21.0],  # index: MCP->PIP, PIP->DIP, DIP->tip
        [44.0, 29.0, 21.5],
        [38.0, 27.0, 20.5],
        [30.0, 20.0, 18.0],
    ]
)
# Fingers fan out slightly from the middle finger (rotation of the rest direction about z, + towards the thumb).
_FAN_DEG = np.array([0.0, 6.0, 0.0, -5.0, -12.0])
# Thumb rest direction and the direction its flexion bends it (across the palm), in the hand frame.
_THUMB_ALONG = np.array([0.62, 0.70, 0.35])
_THUMB_PALMAR = np.array([-0.75, 0.0, 0.65])

# Anatomical limits in degrees, per digit and angle [abduction, base flexion, middle flexion, last flexion].
ANGLE_LIMITS_DEG = np.array(
    [
        [[-40, 25], [-20, 55], [-20, 80], [-20, 90]],  # thumb
        [[-15, 25], [-25, 90], [0, 110], [-5, 80]],  # index
        [[-15, 15], [-25, 90], [0, 110], [-5, 80]],  # middle
        [[-20, 12], [-25, 90], [0, 110], [-5, 80]],  # ring
        [[-30, 10], [-25, 90], [0, 110], [-5, 80]],  # pinky
    ],
    dtype=np.float64,
)

_OPEN = [[-10, 10, -15, -15], [3, 5, 5, 3], [0, 5, 5, 3], [-3, 5, 5, 3], [-6, 5, 5, 3]]
_FIST_FINGER = [0, 85, 100, 60]
_THUMB_ACROSS = [-30, 0, 65, 60]
_EXT = [0, 0, 5, 3]


def _fist_with(**fingers) -> list:
    pose = [_THUMB_ACROSS, _FIST_FINGER, _FIST_FINGER, _FIST_FINGER, _FIST_FINGER]
    for name, value in fingers.items():
        pose[DIGITS.index(name)] = value
    return pose


# Named key poses (degrees). Sequences draw around one of these; 'random' draws uniformly within the limits.
POSE_LIBRARY_DEG: Dict[str, np.ndarray] = {
    k: np.array(v, dtype=np.float64)
    for k, v in {
        "open": _OPEN,
        "spread": [[-5, -5, -20, -20], [14, 0, 0, 0], [0, 0, 0, 0], [-10, 0, 0, 0], [-22, 0, 0, 0]],
        "relaxed": [[-10, 10, 10, 10], [2, 25, 35, 20], [0, 30, 40, 22], [-3, 32, 42, 25], [-6, 35, 45, 25]],
        "fist": _fist_with(),
        "point": _fist_with(index=_EXT),
        "peace": _fist_with(index=[10, 0, 5, 3], middle=[-8, 0, 5, 3]),
        "three": _fist_with(index=[8, 0, 5, 3], middle=[0, 0, 5, 3], ring=[-8, 0, 5, 3]),
        "four": [[-40, 0, 80, 70], [8, 0, 5, 3], [0, 0, 5, 3], [-6, 0, 5, 3], [-14, 0, 5, 3]],
        "thumbup": _fist_with(thumb=[-10, 5, 0, -15]),
        "ok": [[-5, -5, 55, 50], [0, 55, 60, 35], [0, 15, 10, 5], [-6, 20, 10, 5], [-14, 25, 10, 5]],
        "pinch": [[-10, 15, 35, 0], [0, 45, 45, 30], [0, 40, 45, 25], [-3, 45, 50, 25], [-6, 50, 50, 25]],
        "rock": _fist_with(index=[5, 0, 5, 3], pinky=[-12, 0, 5, 3]),
        "claw": [[-10, 10, 30, 30], [3, 10, 85, 65], [0, 10, 85, 65], [-3, 10, 85, 65], [-6, 10, 85, 65]],
        "grasp": [[-15, 20, 15, 10], [2, 35, 45, 30], [0, 35, 45, 30], [-3, 35, 45, 30], [-6, 35, 45, 30]],
        "interlock": [[-10, 10, 0, 0], [4, 60, 45, 25], [0, 60, 45, 25], [-4, 60, 45, 25], [-8, 60, 45, 25]],
    }.items()
}
POSE_FAMILIES = tuple(POSE_LIBRARY_DEG) + ("random",)


@dataclass(frozen=True)
class HandShape:
    """Bone geometry of one subject's right hand, in mm (the left hand is its mirror).

    ``base_pos`` (5, 3): base joint of each digit (thumb CMC, finger MCPs) in the hand frame.
    ``base_frame`` (5, 3, 3): per digit, columns = (lateral, along, palmar) unit axes in the hand frame.
    ``seg_len`` (5, 3): the three segment lengths of each digit.
    """

    base_pos: np.ndarray
    base_frame: np.ndarray
    seg_len: np.ndarray
    betas: Optional[np.ndarray] = None
    """The 10 shape coefficients that give ``base_pos`` and ``seg_len`` (:func:`shape_from_betas`), as the
    synthetic MANO-format model's ``shapedirs`` (``internet.synth.mano``); None for a hand built otherwise."""

    @property
    def palm_length(self) -> float:
        """Wrist -> middle MCP distance (mm)."""
        return float(np.linalg.norm(self.base_pos[2]))


def _digit_frames(fan_deg: np.ndarray, thumb_along: np.ndarray, thumb_palmar: np.ndarray) -> np.ndarray:
    frames = np.zeros((5, 3, 3))
    for d in range(1, 5):
        b = np.deg2rad(fan_deg[d])
        along = np.array([np.sin(b), np.cos(b), 0.0])
        lateral = np.array([np.cos(b), -np.sin(b), 0.0])
        frames[d] = np.stack([lateral, along, [0.0, 0.0, 1.0]], axis=1)
    a = thumb_along / np.linalg.norm(thumb_along)
    p = thumb_palmar - (thumb_palmar @ a) * a
    p /= np.linalg.norm(p)
    frames[0] = np.stack([np.cross(a, p), a, p], axis=1)  # (l, a, p) right-handed: l = a x p
    return frames


def default_hand_shape() -> HandShape:
    """The rest geometry of a medium hand (wrist -> middle MCP 85 mm): all shape coefficients zero."""
    return HandShape(
        _BASE_POS.copy(), _digit_frames(_FAN_DEG, _THUMB_ALONG, _THUMB_PALMAR), _SEG_LEN.copy(), np.zeros(NUM_BETAS)
    )


def _shape_basis() -> tuple:
    """(10, 5, 3) changes of ``base_pos`` and (10, 5, 3) of ``seg_len`` (mm) per unit shape coefficient."""
    db, ds = np.zeros((NUM_BETAS, 5, 3)), np.zeros((NUM_BETAS, 5, 3))
    db[0], ds[0] = _BASE_POS * 0.11, _SEG_LEN * 0.11  # overall size
    db[1, :, 1] = _BASE_POS[:, 1] * 0.11  # palm length
    db[2, :, 0] = _BASE_POS[:, 0] * 0.10  # palm width
    ds[3, 1:] = _SEG_LEN[1:] * 0.11  # finger length
    ds[4, 0] = _SEG_LEN[0] * 0.11  # thumb length
    db[5, 0] = [0.85, -0.85, 0.6]  # thumb base
    ds[6, :, 0], ds[6, :, 2] = _SEG_LEN[:, 0] * 0.012, -_SEG_LEN[:, 2] * 0.012  # proximal vs distal phalanges
    ds[7, 3:] = _SEG_LEN[3:] * 0.04  # ring and pinky length
    db[7, 4, 1] = -1.5
    db[8, :, 2] = [0.57, 0.85, 0.0, 0.57, 1.15]  # knuckle arch
    ds[9, 1], ds[9, 3] = _SEG_LEN[1] * 0.028, -_SEG_LEN[3] * 0.028  # index vs ring
    return db, ds


NUM_BETAS = 10
SHAPE_BASIS_BASE, SHAPE_BASIS_SEG = _shape_basis()
"""A subject's ``base_pos`` and ``seg_len`` are linear in 10 coefficients (like MANO's shape space), so that the
synthetic MANO-format model reproduces every subject's joints exactly."""


def shape_from_betas(betas: np.ndarray, fan_deg=_FAN_DEG, thumb_along=_THUMB_ALONG) -> HandShape:
    """The hand of shape coefficients ``betas`` (10,): base positions and segment lengths linear in them."""
    betas = np.asarray(betas, dtype=np.float64).reshape(NUM_BETAS)
    base = _BASE_POS + np.einsum("k,kdc->dc", betas, SHAPE_BASIS_BASE)
    seg = _SEG_LEN + np.einsum("k,kdc->dc", betas, SHAPE_BASIS_SEG)
    return HandShape(base, _digit_frames(np.asarray(fan_deg), np.asarray(thumb_along), _THUMB_PALMAR), seg, betas)


def sample_hand_shape(rng: np.random.Generator) -> HandShape:
    """A subject's hand: overall scale 0.93-1.06 (wrist -> middle MCP about 79-90 mm), a few percent of variation
    per bone and per base position, and a little variation of the finger fan and thumb; the base positions and bone
    lengths are then projected (least squares, mm) onto the 10 shape coefficients of :func:`shape_from_betas`, so
    that a MANO-format model reproduces the hand exactly. The random draws are those of the earlier, unprojected
    model (the generator's streams, hence its scenes, stay as they were)."""
    scale = rng.uniform(0.93, 1.06)
    base = _BASE_POS * scale * rng.normal(1.0, 0.03, size=(5, 1))
    base = base + rng.normal(0.0, 1.2, size=(5, 3)) * scale
    seg = _SEG_LEN * scale * np.clip(rng.normal(1.0, 0.04, size=(5, 3)), 0.88, 1.12)
    fan = _FAN_DEG + rng.normal(0.0, 2.0, size=5)
    thumb_along = _THUMB_ALONG + rng.normal(0.0, 0.05, size=3)
    return shape_from_betas(betas_of(base, seg), fan, thumb_along)


def betas_of(base_pos: np.ndarray, seg_len: np.ndarray) -> np.ndarray:
    """The shape coefficients (10,) whose hand is nearest (least squares, mm) to ``base_pos`` and ``seg_len``."""
    A = np.concatenate([SHAPE_BASIS_BASE.reshape(NUM_BETAS, -1), SHAPE_BASIS_SEG.reshape(NUM_BETAS, -1)], 1).T
    y = np.concatenate([(base_pos - _BASE_POS).ravel(), (seg_len - _SEG_LEN).ravel()])
    return np.linalg.lstsq(A, y, rcond=None)[0]


def clip_angles(angles: np.ndarray) -> np.ndarray:
    """Clip (..., 5, 4) radians to :data:`ANGLE_LIMITS_DEG`."""
    lim = np.deg2rad(ANGLE_LIMITS_DEG)
    return np.clip(angles, lim[:, :, 0], lim[:, :, 1])


def pose_angles(name: str) -> np.ndarray:
    """A named key pose as (5, 4) radians."""
    try:
        return np.deg2rad(POSE_LIBRARY_DEG[name])
    except KeyError:
        raise ValueError(f"unknown pose {name!r}; known: {sorted(POSE_LIBRARY_DEG)}") from None


def sample_poses(
    rng: np.random.Generator,
    family: Union[str, Sequence[str]],
    n: int,
    noise_deg: float = 9.0,
    blend_prob: float = 0.35,
) -> np.ndarray:
    """``n`` poses (n, 5, 4) radians around a key pose family (or one family per pose when a sequence is given).

    Each pose is the key pose plus Gaussian noise of ``noise_deg`` per angle; with probability ``blend_prob`` it is
    first blended with a random other key pose (weight up to 0.5), so poses fill the space between the families.
    'random' draws every angle uniformly within the limits, with the last flexion coupled to the middle one as in a
    real finger (DIP ~ 2/3 PIP). The result always lies within :data:`ANGLE_LIMITS_DEG`.
    """
    families = [family] * n if isinstance(family, str) else list(family)
    if len(families) != n:
        raise ValueError(f"got {len(families)} pose families for n={n}")
    unknown = sorted(set(families) - set(POSE_FAMILIES))
    if unknown:
        raise ValueError(f"unknown pose family {unknown}; known: {list(POSE_FAMILIES)}")
    keys = list(POSE_LIBRARY_DEG)
    table = np.deg2rad(np.stack([POSE_LIBRARY_DEG[k] for k in keys]))  # (K, 5, 4)
    idx = np.array([keys.index(f) if f != "random" else -1 for f in families], dtype=np.int64)
    base = table[np.maximum(idx, 0)]
    # Blend towards another key pose.
    other = table[rng.integers(0, len(keys), size=n)]
    w = rng.uniform(0.0, 0.5, size=(n, 1, 1)) * (rng.random((n, 1, 1)) < blend_prob)
    angles = base * (1 - w) + other * w + np.deg2rad(rng.normal(0.0, noise_deg, size=(n, 5, 4)))
    # Uniform poses for the 'random' family.
    lim = np.deg2rad(ANGLE_LIMITS_DEG)
    rand = rng.uniform(lim[:, :, 0], lim[:, :, 1], size=(n, 5, 4))
    rand[:, 1:, 3] = rand[:, 1:, 2] * 2.0 / 3.0 + np.deg2rad(rng.normal(0.0, 10.0, size=(n, 4)))
    angles = np.where((idx < 0)[:, None, None], rand, angles)
    return clip_angles(angles)


def hand_joints(shape: HandShape, angles: np.ndarray) -> np.ndarray:
    """Forward kinematics: ``angles`` (N, 5, 4) radians -> the 21 joints (N, 21, 3) of a right hand in its own frame
    (mm), in InterHand2.6M order (thumb4..1, index4..1, middle4..1, ring4..1, pinky4..1, wrist)."""
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim != 3 or angles.shape[1:] != (5, 4):
        raise ValueError(f"angles must be (N, 5, 4), got {angles.shape}")
    abd = angles[:, :, 0:1]  # (N, 5, 1)
    phi = np.cumsum(angles[:, :, 1:], axis=2)  # (N, 5, 3) cumulative flexion per segment
    # Segment direction in the digit frame (lateral, along, palmar).
    d_local = np.stack([np.sin(abd) * np.cos(phi), np.cos(abd) * np.cos(phi), np.sin(phi)], axis=-1)  # (N,5,3,3)
    d_hand = np.einsum("dij,ndsj->ndsi", shape.base_frame, d_local)
    steps = d_hand * shape.seg_len[None, :, :, None]
    chain = shape.base_pos[None, :, None, :] + np.cumsum(steps, axis=2)  # joints 2, 3, 4 of each digit
    n = angles.shape[0]
    out = np.zeros((n, 21, 3))
    digits = np.concatenate([chain[:, :, ::-1], np.broadcast_to(shape.base_pos, (n, 5, 3))[:, :, None]], axis=2)
    out[:, :20] = digits.reshape(n, 20, 3)  # per digit: 4, 3, 2, 1
    return out


def mirror_x(points: np.ndarray) -> np.ndarray:
    """Mirror points (..., 3) in the hand frame's x: a right hand becomes a left hand."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[..., 0] *= -1.0
    return out


# ---------------------------------------------------------------------------------------------- rotations
def axis_angle_matrix(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: unit axes (N, 3) and angles (N,) radians -> rotation matrices (N, 3, 3)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.asarray(angle, dtype=np.float64)[..., None, None]
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    eye = np.broadcast_to(np.eye(3), k.shape)
    return eye + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def random_rotations(rng: np.random.Generator, n: int, max_deg: Optional[float] = None) -> np.ndarray:
    """``n`` rotations (n, 3, 3): uniform over SO(3), or a uniformly random axis with an angle up to ``max_deg``."""
    if max_deg is None:
        q = rng.normal(size=(n, 4))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        w, x, y, z = q.T
        return np.stack(
            [
                np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
                np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
                np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
            ],
            -2,
        )
    axis = rng.normal(size=(n, 3))
    return axis_angle_matrix(axis, np.deg2rad(rng.uniform(0, max_deg, size=n)))
