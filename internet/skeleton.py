"""The two-hand skeletons: joint names, parents, bones, roots, fingers and the right/left swap used by flipping.

InterHand2.6M (``skeleton.txt`` of the release): 42 joints, right hand first (0-20), left hand 21-41. Within a hand:
thumb4 (tip), thumb3, thumb2, thumb1, index4..1, middle4..1, ring4..1, pinky4..1, wrist last; so the roots are 20
(right) and 41 (left). RHD and STB use the same 42-joint, two-block layout with the **left** hand first and their own
within-hand order (RHD: wrist, then each finger tip->MCP; STB: palm centre, then each finger from little to thumb,
MCP->tip), as InterNet's parsed files do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

HAND_TYPES = ("right", "left", "interacting")
"""The annotation's hand types, in the order of their int8 codes (``hand_type_code``): one hand, or both."""

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
# One colour per finger (RGB 0-255), and grey for wrist/palm; used by every 2D and 3D drawing.
FINGER_COLORS = {
    "thumb": (230, 60, 60),
    "index": (240, 170, 30),
    "middle": (60, 190, 75),
    "ring": (40, 140, 240),
    "pinky": (170, 80, 220),
    "palm": (160, 160, 160),
}


@dataclass(frozen=True)
class Skeleton:
    """A 42-joint two-hand skeleton.

    ``names[j]``, ``parents[j]`` (-1 for a root), ``finger[j]`` (index into FINGERS, -1 for wrist/palm),
    ``joint_type[h]`` (the 21 indices of hand h) and ``root_idx[h]`` for h in ('right', 'left').
    """

    name: str
    names: Tuple[str, ...]
    parents: np.ndarray
    finger: np.ndarray
    joint_type: Dict[str, np.ndarray]
    root_idx: Dict[str, int]
    first_hand: str = "right"

    @property
    def joint_num(self) -> int:
        return len(self.names)

    @property
    def bones(self) -> np.ndarray:
        """(child, parent) pairs, 40 of them."""
        child = np.nonzero(self.parents >= 0)[0]
        return np.stack([child, self.parents[child]], axis=1)

    @property
    def flip_perm(self) -> np.ndarray:
        """Index array that swaps the two hand blocks: ``x_flipped = x[flip_perm]``."""
        return np.concatenate([np.arange(21, 42), np.arange(0, 21)])

    def hand_of(self, j: int) -> str:
        return "right" if j in self.joint_type["right"] else "left"

    def bone_color(self, child: int) -> Tuple[int, int, int]:
        f = self.finger[child]
        return FINGER_COLORS[FINGERS[f]] if f >= 0 else FINGER_COLORS["palm"]

    def index(self, name: str) -> int:
        return self.names.index(name)


def _hand_block(prefix: str, order: str, offset: int):
    """Names, parents and finger ids of one 21-joint hand in a given within-hand order."""
    names, parents, finger = [], [], []
    if order == "interhand":  # tips first, wrist last
        for f, fname in enumerate(FINGERS):
            for k in range(4, 0, -1):
                names.append(f"{prefix}{fname}{k}")
                finger.append(f)
                # tip(4)->3->2->1->wrist
                parents.append(offset + len(names) if k > 1 else offset + 20)
        names.append(f"{prefix}wrist")
        finger.append(-1)
        parents.append(-1)
    elif order == "rhd":  # wrist first, then each finger tip->MCP
        names.append(f"{prefix}wrist")
        finger.append(-1)
        parents.append(-1)
        for f, fname in enumerate(FINGERS):
            for k in range(4, 0, -1):
                names.append(f"{prefix}{fname}{k}")
                finger.append(f)
                parents.append(offset + len(names) if k > 1 else offset + 0)
    elif order == "stb":  # palm centre first, then pinky..thumb, each MCP->tip
        names.append(f"{prefix}palm")
        finger.append(-1)
        parents.append(-1)
        for f in (4, 3, 2, 1, 0):
            for k in range(1, 5):
                names.append(f"{prefix}{FINGERS[f]}{k}")
                finger.append(f)
                parents.append(offset + len(names) - 2 if k > 1 else offset + 0)
    else:  # pragma: no cover
        raise ValueError(order)
    return names, parents, finger


def _make(name: str, order: str, first_hand: str) -> Skeleton:
    second = "left" if first_hand == "right" else "right"
    prefix = {"right": "r_", "left": "l_"}
    n1, p1, f1 = _hand_block(prefix[first_hand], order, 0)
    n2, p2, f2 = _hand_block(prefix[second], order, 21)
    root_local = 20 if order == "interhand" else 0
    joint_type = {first_hand: np.arange(0, 21), second: np.arange(21, 42)}
    root_idx = {first_hand: root_local, second: 21 + root_local}
    return Skeleton(
        name=name,
        names=tuple(n1 + n2),
        parents=np.array(p1 + p2, dtype=np.int64),
        finger=np.array(f1 + f2, dtype=np.int64),
        joint_type=joint_type,
        root_idx=root_idx,
        first_hand=first_hand,
    )


INTERHAND = _make("InterHand2.6M", "interhand", "right")
RHD = _make("RHD", "rhd", "left")
STB = _make("STB", "stb", "left")

_BY_DATASET = {"InterHand2.6M": INTERHAND, "RHD": RHD, "STB": STB}


def get_skeleton(dataset: str) -> Skeleton:
    """The skeleton of a data set ('InterHand2.6M', 'RHD', 'STB')."""
    try:
        return _BY_DATASET[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(_BY_DATASET)}") from None


def hand_type_to_array(hand_type: str) -> np.ndarray:
    """'right' -> [1, 0], 'left' -> [0, 1], 'interacting' -> [1, 1] (float32, [right, left] presence)."""
    table = {"right": (1.0, 0.0), "left": (0.0, 1.0), "interacting": (1.0, 1.0)}
    try:
        return np.array(table[hand_type], dtype=np.float32)
    except KeyError:
        raise ValueError(f"hand_type {hand_type!r} is not 'right', 'left' or 'interacting'") from None
