"""The capture rig and the plan of a split: cameras on a dome, captures, subjects and sequences.

Like the real studio, one rig of camera slots (names '400xxx' colour, '41xxxx' monochrome) is shared by all
captures; each capture uses a subset of it, recalibrated a little (position, aim, focal length). Cameras sit 0.95-1.2 m
from the capture centre on the front part of a dome, look at the centre, keep the world's down direction as image
down (plus a small roll), and image at the released resolution: 334x512 (portrait, W x H) or 512x334 (landscape)
with a focal length of 1200-1300 px. All camera numbers are rounded to float32, as the released JSON stores them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from internet.synth.hand_model import HandShape, sample_hand_shape

SPLITS = ("train", "val", "test")
SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
MAX_CAPTURES = {"train": 27, "val": 1, "test": 8}
"""As the real v1.0 release: train Capture0-26, val Capture0, test Capture0-7."""
SUBJECT_OFFSET = {"train": 0, "val": 27, "test": 28}
"""Subjects differ between splits (train 0-26, val 27, test 28-35)."""
ANNOTATIONS_PER_CAPTURE = 400
"""Below 27 (train) / 8 (test) captures, a new capture (a new subject) starts for about every this many annotations,
so that even small sets hold several subjects."""
HUMAN_FRACTION = {"train": 528482 / 1361062, "val": 0.0, "test": 121573 / 849160}
"""Fraction of frames listed as human-annotated (as the real H / H+M counts)."""

PORTRAIT = (334, 512)
LANDSCAPE = (512, 334)
RIG_SLOTS = 48

# (seq_name, kind, pose families or interaction). Names follow the real 'NNNN_description' pattern.
SINGLE_SEQUENCES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("0000_neutral_relaxed", ("relaxed",)),
    ("0001_neutral_rigid", ("open",)),
    ("0002_good_luck", ("peace", "point")),
    ("0003_fake_pose", ("random",)),
    ("0004_simple_pose", ("open", "fist", "relaxed")),
    ("0007_thumbup_normal", ("thumbup",)),
    ("0010_fist", ("fist",)),
    ("0012_aokay_upright", ("ok",)),
    ("0014_pinch_ROM", ("pinch", "ok")),
    ("0016_index_point", ("point",)),
    ("0018_peace", ("peace",)),
    ("0020_three_count", ("three",)),
    ("0021_four_count", ("four",)),
    ("0022_five_count", ("spread",)),
    ("0026_claw", ("claw",)),
    ("0029_grasp_cup", ("grasp",)),
    ("0115_rocker_backside", ("rock",)),
    ("0125_finger_ROM", ("random", "open", "fist", "spread")),
)
TWO_HAND_SEQUENCES: Tuple[Tuple[str, str], ...] = (
    ("0266_dh_pray", "pray"),
    ("0272_dh_interlock", "interlock"),
    ("0276_dh_fingers_crossed", "interlock"),
    ("0284_dh_crossed_hands", "cross"),
    ("0289_dh_occlusion", "occlude"),
    ("0301_dh_occlusion_ROM", "occlude"),
    ("0390_dh_touchROM", "touch"),
    ("0392_dh_poke", "touch"),
    ("0400_dh_two_hands_ROM", "free"),
    ("0402_dh_clap_ready", "pray"),
)


@dataclass(frozen=True)
class Camera:
    """One calibrated camera: ``campos`` (3,) centre in world mm, ``camrot`` (3, 3) world -> camera rotation,
    ``focal`` (2,) and ``princpt`` (2,) in px, image ``width`` x ``height``. Monochrome when the name starts '41'."""

    name: str
    campos: np.ndarray
    camrot: np.ndarray
    focal: np.ndarray
    princpt: np.ndarray
    width: int
    height: int

    @property
    def grey(self) -> bool:
        return self.name.startswith("41")


@dataclass(frozen=True)
class SequenceSpec:
    """A sequence of a capture: ``kind`` 'right', 'left' or 'interacting'; ``families`` (single hand: pose families
    to draw from) or ``interaction`` (two hands); ``quota`` = annotations to produce."""

    name: str
    kind: str
    families: Tuple[str, ...] = ()
    interaction: str = ""
    quota: int = 0


@dataclass(frozen=True)
class Backdrop:
    """What the cameras see behind the hands: the dome's lights (L, 3) world mm, the subject's torso quad (4, 3) and
    head (centre (3,), radius mm), shirt colour (BGR) and pattern ('plain', 'stripes', 'plaid')."""

    lights: np.ndarray
    torso: np.ndarray
    head_centre: np.ndarray
    head_radius: float
    shirt: Tuple[float, float, float]
    shirt2: Tuple[float, float, float]
    pattern: str
    pattern_period: float


@dataclass(frozen=True)
class Capture:
    """One capture of a split: its subject, hand shape, centre (where the hands are, world mm), cameras, backdrop
    and sequences (with their annotation quotas)."""

    split: str
    index: int
    subject: int
    shape: HandShape
    centre: np.ndarray
    cameras: List[Camera]
    backdrop: Backdrop
    sequences: List[SequenceSpec] = field(default_factory=list)

    @property
    def quota(self) -> int:
        return sum(s.quota for s in self.sequences)


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for one purpose, fixed by the seed and integer keys (so results never depend on
    the order in which things are generated, nor on the number of worker processes)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *[int(k) for k in keys]])


_PURPOSE = {"rig": 1, "subject": 2, "capture": 3, "frames": 4, "image": 5, "background": 6, "annot": 7, "style": 8}


def purpose(name: str) -> int:
    return _PURPOSE[name]


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _look_at(campos: np.ndarray, target: np.ndarray, roll_rad: float) -> np.ndarray:
    z = target - campos
    z /= np.linalg.norm(z)
    down = np.array([0.0, 1.0, 0.0])
    y = down - (down @ z) * z
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    c, s = math.cos(roll_rad), math.sin(roll_rad)
    x, y = c * x + s * y, -s * x + c * y
    return np.stack([x, y, z])  # rows: camera axes in world; det +1 since x = y cross z


def _orthonormal_f32(R: np.ndarray) -> np.ndarray:
    """Round to float32 without losing the rotation: re-orthonormalise, round, and keep det +1 within 1e-6."""
    u, _, vt = np.linalg.svd(R)
    return _f32(u @ vt)


@dataclass(frozen=True)
class _Slot:
    name: str
    direction: np.ndarray  # unit, from the centre to the camera
    distance: float
    focal: float
    landscape: bool
    princpt_offset: np.ndarray


def make_rig(seed: int, n_slots: int = RIG_SLOTS) -> List[_Slot]:
    """The rig's camera slots: names, directions on the front dome (azimuth within +-100 deg of the subject's view
    direction, elevation -25..60 deg), distances, focal lengths, orientation (20 % landscape)."""
    rng = rng_for(seed, purpose("rig"))
    n_colour = int(round(n_slots * 0.4))
    colour_ids = rng.choice(np.arange(1, 100), size=n_colour, replace=False)
    mono_ids = rng.choice(np.arange(1, 1000), size=n_slots - n_colour, replace=False)
    names = [f"4000{i:02d}" for i in colour_ids] + [f"410{i:03d}" for i in mono_ids]
    rng.shuffle(names)
    slots = []
    for name in names:
        az = np.deg2rad(rng.uniform(-100.0, 100.0))
        el = np.deg2rad(rng.uniform(-25.0, 60.0))
        # Subject faces -z and y points down: az 0 = straight in front, el > 0 = above.
        direction = np.array([math.sin(az) * math.cos(el), -math.sin(el), -math.cos(az) * math.cos(el)])
        slots.append(
            _Slot(
                name=name,
                direction=direction,
                distance=float(rng.uniform(950.0, 1200.0)),
                focal=float(rng.uniform(1200.0, 1300.0)),
                landscape=bool(rng.random() < 0.2),
                princpt_offset=np.clip(rng.normal(0.0, 10.0, size=2), -25.0, 25.0),
            )
        )
    return slots


def _camera_for_capture(slot: _Slot, centre: np.ndarray, rng: np.random.Generator) -> Camera:
    width, height = LANDSCAPE if slot.landscape else PORTRAIT
    campos = centre + slot.direction * slot.distance + rng.normal(0.0, 10.0, size=3)
    target = centre + rng.normal(0.0, 12.0, size=3)
    camrot = _orthonormal_f32(_look_at(campos, target, np.deg2rad(rng.normal(0.0, 2.5))))
    f = slot.focal + rng.normal(0.0, 3.0)
    focal = _f32([f, f * (1.0 + rng.normal(0.0, 1e-4))])
    princpt = _f32(np.array([width / 2.0, height / 2.0]) + slot.princpt_offset + rng.normal(0.0, 1.0, size=2))
    return Camera(slot.name, _f32(campos), camrot, focal, princpt, width, height)


def _backdrop(seed: int, subject: int, centre: np.ndarray) -> Backdrop:
    rng = rng_for(seed, purpose("subject"), subject, 1)
    # Dome lights: rings of LEDs on a 1.6 m sphere around the rig centre, all around the subject.
    az = np.deg2rad(np.arange(0, 360, 15))
    lights = []
    for el in np.deg2rad([-20.0, 0.0, 20.0, 40.0, 60.0]):
        off = az + np.deg2rad(7.5) * (round(np.rad2deg(el)) // 20 % 2)
        lights.append(np.stack([np.sin(off) * np.cos(el), -np.full_like(off, np.sin(el)), np.cos(off) * np.cos(el)], 1))
    lights = centre + 1600.0 * np.concatenate(lights)
    w, top, bottom, back = rng.uniform(170, 220), rng.uniform(220, 300), 700.0, rng.uniform(250, 330)
    torso = centre + np.array([[-w, -top, back], [w, -top, back], [w * 1.1, bottom, back], [-w * 1.1, bottom, back]])
    shirt = tuple(float(v) for v in rng.uniform(10, 120, size=3) * rng.uniform(0.3, 1.0))
    shirt2 = tuple(float(v) for v in np.clip(np.array(shirt) * rng.uniform(0.3, 2.2) + rng.normal(0, 20, 3), 0, 255))
    pattern = str(rng.choice(["plain", "plain", "stripes", "plaid"]))
    return Backdrop(
        lights,
        torso,
        centre + np.array([0.0, -top - 130.0, back - 40.0]),
        95.0,
        shirt,
        shirt2,
        pattern,
        float(rng.uniform(12.0, 40.0)),
    )


def views_per_frame(capture_quota: int, n_cams: int) -> float:
    """How many camera views each frame contributes: all usable ones at full scale (like the real rig), but only a
    few in small sets, so that they still hold many different poses."""
    return float(np.clip(capture_quota / 400.0, 3.0, 0.85 * n_cams))


def plan_split(seed: int, split: str, n_annotations: int) -> List[Capture]:
    """Captures of a split with their cameras, subject, backdrop and sequence quotas summing to ``n_annotations``.

    The number of captures grows with the size (one per ~400 annotations) up to the real count (train 27, val 1,
    test 8). Each capture uses 8-24 of the rig's cameras and a handful of sequences, alternating single-hand and
    two-hand ones, so even a tiny split mixes right, left and interacting frames.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if n_annotations < 0:
        raise ValueError(f"number of {split} annotations must be >= 0, got {n_annotations}")
    if n_annotations == 0:
        return []
    slots = make_rig(seed)
    n_caps = min(MAX_CAPTURES[split], max(1, math.ceil(n_annotations / ANNOTATIONS_PER_CAPTURE)))
    quotas = [n_annotations // n_caps + (1 if i < n_annotations % n_caps else 0) for i in range(n_caps)]
    captures = []
    for c, quota in enumerate(quotas):
        rng = rng_for(seed, purpose("capture"), SPLIT_CODE[split], c)
        subject = SUBJECT_OFFSET[split] + c
        shape = sample_hand_shape(rng_for(seed, purpose("subject"), subject))
        centre = _f32(np.array([0.0, 0.0, 1050.0]) + rng.normal(0.0, [20.0, 20.0, 30.0]))
        n_cams = int(rng.integers(8, 25))
        chosen = sorted(rng.choice(len(slots), size=n_cams, replace=False))
        cameras = [_camera_for_capture(slots[i], centre, rng) for i in chosen]
        frames_est = quota / views_per_frame(quota, n_cams)
        n_seq = int(np.clip(math.ceil(frames_est / 6.0), min(4, quota), 12))
        singles = list(rng.permutation(len(SINGLE_SEQUENCES)))
        doubles = list(rng.permutation(len(TWO_HAND_SEQUENCES)))
        first_single = bool(rng.random() < 0.5)
        first_side = int(rng.integers(0, 2))  # single-hand sequences alternate between the hands
        sequences = []
        for k in range(n_seq):
            q = quota // n_seq + (1 if k < quota % n_seq else 0)
            if (k % 2 == 0) == first_single and singles:
                name, fams = SINGLE_SEQUENCES[singles.pop()]
                side = ("right", "left")[(first_side + sum(q.kind != "interacting" for q in sequences)) % 2]
                sequences.append(SequenceSpec(name, side, families=fams, quota=q))
            else:
                name, inter = TWO_HAND_SEQUENCES[doubles.pop()]  # at most 6 of the 10 are needed
                sequences.append(SequenceSpec(name, "interacting", interaction=inter, quota=q))
        sequences.sort(key=lambda s: s.name)
        captures.append(Capture(split, c, subject, shape, centre, cameras, _backdrop(seed, subject, centre), sequences))
    return captures
