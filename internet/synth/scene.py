"""Frames of a capture: one or two posed hands (with forearms) placed in the world, vectorised over frames.

World frame (as the real rig's): mm, y points down, the subject sits behind the capture centre facing -z, so the
subject's right hand is on the -x side. Every hand is first posed as a right hand (``hand_model``); a left hand is a
right hand reflected through a plane (the body's mid-plane x = centre_x, or for palm-to-palm interactions the contact
plane), which turns its geometry into a left hand's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from internet.synth.hand_model import (
    POSE_LIBRARY_DEG,
    HandShape,
    axis_angle_matrix,
    hand_joints,
    sample_poses,
)

SINGLE_FAMILIES = tuple(POSE_LIBRARY_DEG) + ("random",)
INTERACTIONS = ("pray", "interlock", "touch", "cross", "occlude", "free")
_FREE_FAMILIES = ("open", "relaxed", "spread", "fist", "point", "grasp", "claw", "pinch", "ok", "random")
FOREARM_LENGTH = 240.0  # wrist -> elbow (mm)


@dataclass
class FrameBatch:
    """``n`` frames. ``world`` (n, 42, 3) mm (InterHand order; rows of an absent hand are NaN), ``present`` (n, 2)
    bool [right, left], ``elbow`` (n, 2, 3) mm (NaN for an absent hand), ``hand_type`` (n,) str."""

    world: np.ndarray
    present: np.ndarray
    elbow: np.ndarray
    hand_type: np.ndarray

    def __len__(self) -> int:
        return int(self.world.shape[0])

    @staticmethod
    def concat(batches: Sequence["FrameBatch"]) -> "FrameBatch":
        return FrameBatch(
            *(np.concatenate([getattr(b, k) for b in batches]) for k in ("world", "present", "elbow", "hand_type"))
        )


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rot(axis_index: int, angle: np.ndarray) -> np.ndarray:
    axis = np.zeros((len(angle), 3))
    axis[:, axis_index] = 1.0
    return axis_angle_matrix(axis, angle)


def _reflect(points: np.ndarray, normal: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Reflect (n, k, 3) points through the planes (normal (n, 3) unit, origin (n, 3))."""
    d = np.einsum("nkj,nj->nk", points - origin[:, None], normal)
    return points - 2.0 * d[..., None] * normal[:, None]


def _mirror_midline(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    out = np.array(points, copy=True)
    out[..., 0] = 2.0 * centre[0] - out[..., 0]
    return out


class _Arm:
    """A right arm: posed hand joints (n, 21, 3) world, elbow (n, 3), hand rotation (n, 3, 3), palm centre (n, 3)."""

    def __init__(self, joints, elbow, rot, palm_centre):
        self.joints, self.elbow, self.rot, self.palm_centre = joints, elbow, rot, palm_centre

    def translate(self, t: np.ndarray) -> "_Arm":
        return _Arm(self.joints + t[:, None], self.elbow + t, self.rot, self.palm_centre + t)

    def reflect(self, normal: np.ndarray, origin: np.ndarray) -> "_Arm":
        pts = _reflect(np.concatenate([self.joints, self.elbow[:, None], self.palm_centre[:, None]], 1), normal, origin)
        return _Arm(pts[:, :21], pts[:, 21], None, pts[:, 22])

    def mirror(self, centre: np.ndarray) -> "_Arm":
        pts = _mirror_midline(np.concatenate([self.joints, self.elbow[:, None], self.palm_centre[:, None]], 1), centre)
        return _Arm(pts[:, :21], pts[:, 21], None, pts[:, 22])


def _pose_arm(
    rng: np.random.Generator,
    shape: HandShape,
    angles: np.ndarray,
    palm_target: np.ndarray,
    centre: np.ndarray,
    roll_deg: Optional[np.ndarray] = None,
    flex_sd: float = 25.0,
) -> _Arm:
    """Pose right hands so that their palm centres land on ``palm_target`` (n, 3): the forearm comes from an elbow
    at the subject's right side, then forearm roll (0 = palm down, 90 = thumb up, 180 = palm up), wrist flexion and
    deviation within anatomical ranges give the hand's orientation."""
    n = len(angles)
    elbow0 = centre + np.array([-170.0, 230.0, 230.0]) + rng.normal(0.0, 40.0, size=(n, 3))
    along = _unit(_unit(palm_target - elbow0) + rng.normal(0.0, 0.25, size=(n, 3)))
    down = np.broadcast_to(np.array([0.0, 1.0, 0.0]), (n, 3))
    palmar = down - np.sum(down * along, axis=1, keepdims=True) * along
    palmar = _unit(palmar + 1e-6 * rng.normal(size=(n, 3)))
    lateral = np.cross(along, palmar)
    forearm = np.stack([lateral, along, palmar], axis=2)  # columns: hand-frame x, y, z of a neutral wrist
    if roll_deg is None:
        roll_deg = rng.uniform(-40.0, 200.0, size=n)
    flex = np.clip(rng.normal(0.0, flex_sd, size=n), -70.0, 70.0)
    dev = np.clip(rng.normal(0.0, 10.0, size=n), -25.0, 25.0)
    rot = forearm @ _rot(1, np.deg2rad(roll_deg)) @ _rot(0, np.deg2rad(flex)) @ _rot(2, np.deg2rad(dev))
    local = hand_joints(shape, angles)
    palm_local = 0.5 * shape.base_pos[2]
    wrist = palm_target - rot @ palm_local
    joints = np.einsum("nij,nkj->nki", rot, local) + wrist[:, None]
    length = FOREARM_LENGTH * shape.palm_length / 85.0
    elbow = wrist - along * length * rng.uniform(0.9, 1.1, size=(n, 1))
    return _Arm(joints, elbow, rot, palm_target.copy())


def _families(rng: np.random.Generator, family: Sequence[str], n: int) -> list:
    return [family[i] for i in rng.integers(0, len(family), size=n)]


def sample_single_frames(
    rng: np.random.Generator,
    shape: HandShape,
    n: int,
    families: Sequence[str],
    side: str,
    centre: np.ndarray,
) -> FrameBatch:
    """``n`` frames of one hand (``side`` 'right' or 'left'), poses drawn around ``families`` (one picked per frame)."""
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    centre = np.asarray(centre, dtype=np.float64)
    angles = sample_poses(rng, _families(rng, families, n), n)
    target = centre + rng.normal(0.0, 25.0, size=(n, 3))
    arm = _pose_arm(rng, shape, angles, _mirror_midline(target, centre) if side == "left" else target, centre)
    if side == "left":
        arm = arm.mirror(centre)
    world = np.full((n, 42, 3), np.nan)
    elbow = np.full((n, 2, 3), np.nan)
    h = 0 if side == "right" else 1
    world[:, 21 * h : 21 * h + 21] = arm.joints
    elbow[:, h] = arm.elbow
    present = np.zeros((n, 2), dtype=bool)
    present[:, h] = True
    return FrameBatch(world, present, elbow, np.full(n, side, dtype=object))


def sample_two_hand_frames(
    rng: np.random.Generator,
    shape: HandShape,
    n: int,
    interaction: str,
    centre: np.ndarray,
) -> FrameBatch:
    """``n`` frames of two interacting hands of one subject. ``interaction``: 'pray' (palms pressed together),
    'interlock' (fingers interleaved), 'touch' (one index fingertip on the other hand), 'cross' (hands crossed, one
    in front), 'occlude' (one hand in front of the other), 'free' (both hands near each other, independent)."""
    if interaction not in INTERACTIONS:
        raise ValueError(f"unknown interaction {interaction!r}; known: {list(INTERACTIONS)}")
    centre = np.asarray(centre, dtype=np.float64)
    pair_centre = centre + rng.normal(0.0, 20.0, size=(n, 3))
    if interaction in ("pray", "interlock"):
        right, left = _palm_to_palm(rng, shape, n, interaction, pair_centre, centre)
    elif interaction == "touch":
        right, left = _touch(rng, shape, n, pair_centre, centre)
    else:
        if interaction == "cross":
            dx = rng.uniform(15.0, 40.0, size=n)  # right hand ends on the subject's left side
            dz = rng.uniform(25.0, 50.0, size=n) * rng.choice([-1.0, 1.0], size=n)
            dy = rng.normal(0.0, 20.0, size=n)
        elif interaction == "occlude":
            dx = -rng.uniform(0.0, 35.0, size=n)
            dz = rng.uniform(35.0, 70.0, size=n) * rng.choice([-1.0, 1.0], size=n)
            dy = rng.normal(0.0, 25.0, size=n)
        else:  # free
            dx = -rng.uniform(45.0, 110.0, size=n)
            dz = rng.normal(0.0, 25.0, size=n)
            dy = rng.normal(0.0, 30.0, size=n)
        off_r = np.stack([dx, dy, -dz], axis=1)
        off_l = np.stack([dx, -dy, dz], axis=1)  # in the mirrored (right-model) frame
        right = _pose_arm(
            rng, shape, sample_poses(rng, _families(rng, _FREE_FAMILIES, n), n), pair_centre + off_r, centre
        )
        left_model_target = _mirror_midline(pair_centre, centre) + off_l
        left = _pose_arm(
            rng, shape, sample_poses(rng, _families(rng, _FREE_FAMILIES, n), n), left_model_target, centre
        ).mirror(centre)
    world = np.concatenate([right.joints, left.joints], axis=1)
    elbow = np.stack([right.elbow, left.elbow], axis=1)
    return FrameBatch(world, np.ones((n, 2), dtype=bool), elbow, np.full(n, "interacting", dtype=object))


def _palm_to_palm(rng, shape, n, interaction, pair_centre, centre):
    """The left hand is the reflection of a second right hand through a plane just off the right palm, so the
    two palms face each other; 'interlock' shifts it sideways by half a finger spacing so the fingers interleave."""
    if interaction == "pray":
        fam = _families(rng, ("open", "relaxed", "spread"), n)
        gap = rng.uniform(13.0, 18.0, size=n)
        shift_x = rng.normal(0.0, 3.0, size=n)
        noise = 6.0
    else:
        fam = ["interlock"] * n
        gap = rng.uniform(6.0, 10.0, size=n)
        shift_x = rng.choice([-1.0, 1.0], size=n) * rng.uniform(10.0, 13.0, size=n)
        noise = 8.0
    angles_r = sample_poses(rng, fam, n, noise_deg=noise, blend_prob=0.0)
    angles_l = sample_poses(rng, fam, n, noise_deg=noise, blend_prob=0.0)
    if interaction == "pray":
        # Pressed palms: fingers (nearly) straight and thumbs alongside, or they would pass through the other hand.
        for a in (angles_r, angles_l):
            a[:, 1:, 1:] = np.minimum(a[:, 1:, 1:], np.deg2rad(6.0))
            a[:, 0] = np.deg2rad([-5.0, -10.0, -20.0, -15.0]) + np.deg2rad(rng.normal(0.0, 4.0, size=(n, 4)))
    roll = rng.normal(90.0, 25.0, size=n)  # palm facing the subject's left: the mid-plane
    right = _pose_arm(rng, shape, angles_r, pair_centre + np.array([-15.0, 0.0, 0.0]), centre, roll, flex_sd=15.0)
    normal = right.rot[:, :, 2]
    shift = right.rot @ np.stack([shift_x, rng.normal(0.0, 4.0, size=n), np.zeros(n)], axis=1)[..., None]
    shift = shift[..., 0]
    twin = _posed_like(rng, shape, angles_l, right, shift)
    left = twin.reflect(normal, right.palm_centre + normal * gap[:, None])
    return right, left


def _posed_like(rng, shape, angles, arm: _Arm, shift):
    """Right hands with ``arm``'s orientation and forearm, different articulation, palm centre moved by ``shift``."""
    local = hand_joints(shape, angles)
    wrist = arm.palm_centre + shift - arm.rot @ (0.5 * shape.base_pos[2])
    joints = np.einsum("nij,nkj->nki", arm.rot, local) + wrist[:, None]
    elbow = arm.elbow + shift
    return _Arm(joints, elbow, arm.rot, arm.palm_centre + shift)


def _touch(rng, shape, n, pair_centre, centre):
    """One hand points its index fingertip onto a joint (or the palm centre) of the other, from the side it comes."""
    touched_fam = _families(rng, ("open", "relaxed", "spread", "fist", "grasp", "claw"), n)
    toucher_fam = _families(rng, ("point", "point", "pinch", "relaxed"), n)
    right_touches = rng.random(n) < 0.5
    fam_r = [toucher_fam[i] if right_touches[i] else touched_fam[i] for i in range(n)]
    fam_l = [touched_fam[i] if right_touches[i] else toucher_fam[i] for i in range(n)]
    side = rng.uniform(30.0, 60.0, size=(n, 1))
    right = _pose_arm(rng, shape, sample_poses(rng, fam_r, n), pair_centre + side * [-1.0, 0.0, 0.0], centre)
    left_model = _pose_arm(
        rng, shape, sample_poses(rng, fam_l, n), _mirror_midline(pair_centre, centre) + side * [-1.0, 0.0, 0.0], centre
    )
    normal_l = left_model.rot[:, :, 2] * [-1.0, 1.0, 1.0]  # the palm normal, mirrored with the hand
    left = left_model.mirror(centre)
    normal_r = right.rot[:, :, 2]
    # Target on the touched hand: a finger joint (not a tip) or the palm centre.
    choices = np.array([1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19, -1])
    k = choices[rng.integers(0, len(choices), size=n)]
    idx = np.arange(n)
    touched_joints = np.where(right_touches[:, None, None], left.joints, right.joints)
    touched_palm = np.where(right_touches[:, None], left.palm_centre, right.palm_centre)
    touched_normal = np.where(right_touches[:, None], normal_l, normal_r)
    target = np.where((k >= 0)[:, None], touched_joints[idx, np.maximum(k, 0)], touched_palm)
    toucher_joints = np.where(right_touches[:, None, None], right.joints, left.joints)
    tip = toucher_joints[:, 4]
    direction = _unit(tip - toucher_joints[:, 5])
    s = -np.sign(np.sum(direction * touched_normal, axis=1, keepdims=True))
    s[s == 0] = 1.0
    radius = np.where(k >= 0, 9.0, 13.0)[:, None]
    t = target + s * touched_normal * radius - tip
    right = right.translate(np.where(right_touches[:, None], t, 0.0))
    left = left.translate(np.where(right_touches[:, None], 0.0, t))
    return right, left
