"""The official InterNet training augmentation and sample construction, independent of the data set.

Everything here is parameterised by a :class:`~internet.skeleton.Skeleton` (which block is which hand, the roots, the
flip permutation) and a :class:`~internet.config.Config` (input and heatmap shapes, depth ranges), so InterHand2.6M,
RHD and STB share one pipeline. Arithmetic follows the official code's float32 steps so that the parity fixtures
match to float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Mapping, Sequence, Tuple

import numpy as np

from internet.config import Config
from internet.geometry.camera import subtract_roots
from internet.geometry.codec import HeatmapCodec
from internet.geometry.crop import generate_patch_image, trans_points_2d
from internet.skeleton import Skeleton

# Official draw ranges (common/utils/preprocessing.py get_aug_config).
TRANS_FACTOR = 0.15
SCALE_FACTOR = 0.25
ROT_FACTOR = 45.0
ROT_PROB = 0.6
FLIP_PROB = 0.5
COLOR_FACTOR = 0.2


@dataclass(frozen=True)
class AugParams:
    """One augmentation draw.

    trans: box-corner shift as a fraction of (w, h); scale: crop-size factor; rot: rotation in degrees;
    do_flip: horizontal flip (swaps the hand blocks); color: per-channel (R, G, B) multiplicative factor.
    """

    trans: Tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    rot: float = 0.0
    do_flip: bool = False
    color: Tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        trans = tuple(float(v) for v in self.trans)
        color = tuple(float(v) for v in self.color)
        if len(trans) != 2 or not all(math.isfinite(v) for v in trans):
            raise ValueError(f"AugParams.trans must be two finite numbers, got {self.trans!r}")
        if len(color) != 3 or not all(math.isfinite(v) and v >= 0 for v in color):
            raise ValueError(f"AugParams.color must be three finite non-negative numbers, got {self.color!r}")
        if not (math.isfinite(float(self.scale)) and float(self.scale) > 0):
            raise ValueError(f"AugParams.scale must be a finite number > 0, got {self.scale!r}")
        if not math.isfinite(float(self.rot)):
            raise ValueError(f"AugParams.rot must be finite, got {self.rot!r}")
        object.__setattr__(self, "trans", trans)
        object.__setattr__(self, "color", color)
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "rot", float(self.rot))
        object.__setattr__(self, "do_flip", bool(self.do_flip))

    @classmethod
    def identity(cls) -> "AugParams":
        """No augmentation (test mode): no shift, scale 1, no rotation, no flip, colour 1."""
        return cls()

    @classmethod
    def from_dict(cls, d: Mapping) -> "AugParams":
        """From a mapping with keys trans, scale, rot, do_flip, color (e.g. the parity fixture's JSON)."""
        missing = {"trans", "scale", "rot", "do_flip", "color"} - set(d)
        if missing:
            raise KeyError(f"augmentation parameters lack {sorted(missing)}")
        return cls(
            trans=tuple(d["trans"]), scale=d["scale"], rot=d["rot"], do_flip=d["do_flip"], color=tuple(d["color"])
        )


def sample_aug_params(rng: np.random.Generator) -> AugParams:
    """One draw from the official distributions: shift U[-0.15, 0.15]^2, scale 1 + 0.25 clip(N, -1, 1),
    rotation 45 clip(N, -2, 2) degrees with probability 0.6 (else 0), flip with probability 0.5, colour U[0.8, 1.2]^3.
    The same number of values is drawn every time, so the stream never depends on earlier outcomes."""
    trans = rng.uniform(-TRANS_FACTOR, TRANS_FACTOR, size=2)
    scale = float(np.clip(rng.standard_normal(), -1.0, 1.0) * SCALE_FACTOR + 1.0)
    rot_draw = float(np.clip(rng.standard_normal(), -2.0, 2.0) * ROT_FACTOR)
    rot = rot_draw if rng.random() < ROT_PROB else 0.0
    do_flip = bool(rng.random() < FLIP_PROB)
    color = rng.uniform(1.0 - COLOR_FACTOR, 1.0 + COLOR_FACTOR, size=3)
    return AugParams(
        trans=(float(trans[0]), float(trans[1])),
        scale=scale,
        rot=rot,
        do_flip=do_flip,
        color=tuple(float(c) for c in color),
    )


# ----------------------------------------------------------------------------------------------------- boxes
def crop_inv_trans(bbox: np.ndarray, input_img_shape: Tuple[int, int]) -> np.ndarray:
    """The test-mode (no shift, scale 1, no rotation, no flip) crop -> image affine for (N, 4) boxes, vectorised:
    (N, 2, 3) float32. Built from the same float32 point triplets as ``geometry.gen_trans_from_patch_cv`` and solved
    in float64 (as OpenCV does), so it equals the per-sample ``inv_trans`` to float32 rounding."""
    b = np.asarray(bbox, dtype=np.float32).reshape(-1, 4)
    out_h, out_w = float(input_img_shape[0]), float(input_img_shape[1])
    # source points centre, centre + (0, h/2), centre + (w/2, 0), rounded to float32 as the official code stores them
    c_x = b[:, 0] + np.float32(0.5) * b[:, 2]
    c_y = b[:, 1] + np.float32(0.5) * b[:, 3]
    right_x = (c_x + np.float32(0.5) * b[:, 2]).astype(np.float64)
    down_y = (c_y + np.float32(0.5) * b[:, 3]).astype(np.float64)
    c_x, c_y = c_x.astype(np.float64), c_y.astype(np.float64)
    inv = np.zeros((len(b), 2, 3), dtype=np.float64)
    inv[:, 0, 0] = (right_x - c_x) / (out_w * 0.5)
    inv[:, 1, 1] = (down_y - c_y) / (out_h * 0.5)
    inv[:, 0, 2] = c_x - inv[:, 0, 0] * (out_w * 0.5)
    inv[:, 1, 2] = c_y - inv[:, 1, 1] * (out_h * 0.5)
    return inv.astype(np.float32)


# ----------------------------------------------------------------------------------------------------- joints
def augment_joints(
    joint_coord: np.ndarray,
    joint_valid: np.ndarray,
    hand_type: np.ndarray,
    img_width: int,
    trans: np.ndarray,
    do_flip: bool,
    skeleton: Skeleton,
    input_img_shape: Tuple[int, int],
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flip (u' = W - u - 1, swap the hand blocks and the hand-type bits), apply the crop affine ``trans`` to (u, v)
    and invalidate joints outside the crop. Returns new (joint_coord, joint_valid, hand_type); z is unchanged."""
    joint_coord = np.array(joint_coord, dtype=np.float32)
    joint_valid = np.array(joint_valid, dtype=np.float32)
    hand_type = np.array(hand_type, dtype=np.float32)
    if do_flip:
        joint_coord[:, 0] = img_width - joint_coord[:, 0] - 1
        perm = skeleton.flip_perm
        joint_coord = joint_coord[perm]
        joint_valid = joint_valid[perm]
        hand_type = hand_type[::-1].copy()  # [right, left] -> [left, right]
    # float64 product as the official per-point np.dot with a float64 homogeneous point, stored back as float32
    joint_coord[:, :2] = trans_points_2d(joint_coord[:, :2].astype(np.float64), trans.astype(np.float64))
    input_h, input_w = input_img_shape
    inside = (
        (joint_coord[:, 0] >= 0)
        & (joint_coord[:, 0] < input_w)
        & (joint_coord[:, 1] >= 0)
        & (joint_coord[:, 1] < input_h)
    )
    joint_valid = joint_valid * inside
    return joint_coord, joint_valid, hand_type


def root_depth_target(
    joint_coord: np.ndarray,
    joint_valid: np.ndarray,
    hand_type: np.ndarray,
    skeleton: Skeleton,
) -> Tuple[np.ndarray, np.ndarray]:
    """Left-root minus right-root depth (mm, (1,)) and its validity (both roots valid and both hands present).

    Computed from the stored coordinates whatever their validity: for a single hand the other root is a
    placeholder and the value is meaningless but masked by root_valid (the official code does the same)."""
    right, left = skeleton.root_idx["right"], skeleton.root_idx["left"]
    rel_root_depth = np.array([joint_coord[left, 2] - joint_coord[right, 2]], dtype=np.float32).reshape(1)
    both = hand_type[0] * hand_type[1] == 1
    root_valid = np.array([joint_valid[right] * joint_valid[left] if both else 0.0], dtype=np.float32)
    return rel_root_depth, root_valid


def to_output_space(
    joint_coord: np.ndarray,
    joint_valid: np.ndarray,
    rel_root_depth: np.ndarray,
    root_valid: np.ndarray,
    skeleton: Skeleton,
    cfg: Config,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Crop pixels and camera depth -> heatmap space: z made relative to the joint's own hand root, then encoded by
    the config's :class:`~internet.geometry.codec.HeatmapCodec` (x, y to heatmap pixels, z and the relative root depth
    to bins). Joints and root outside the depth range become invalid."""
    codec = HeatmapCodec.from_config(cfg)
    joint_coord = np.array(joint_coord, dtype=np.float32)
    subtract_roots(joint_coord[:, 2:3], skeleton)  # z relative to the joint's own hand root, in place (a view)
    joint_coord, in_range = codec.encode_joints(joint_coord)
    joint_valid = joint_valid * in_range.astype(np.float32)
    rel_root_depth, root_in_range = codec.encode_root_depth(np.asarray(rel_root_depth, dtype=np.float32))
    root_valid = root_valid * root_in_range.astype(np.float32)
    return joint_coord, joint_valid.astype(np.float32), rel_root_depth.astype(np.float32), root_valid.astype(np.float32)


# ----------------------------------------------------------------------------------------------------- sample
def color_to_chw(patch: np.ndarray, color: Sequence[float], in_range: bool = False) -> np.ndarray:
    """The official colour jitter, clip and ToTensor of a (h, w, 3) float32 patch in [0, 255]: returns the
    (3, h, w) float32 image ``clip(patch * color, 0, 255) / 255``.

    One strided pass per channel writes the scaled plane straight into the CHW array, instead of the official four
    whole-patch passes (scale, clip, transpose copy, divide). ``in_range=True`` (the patch of a uint8 image, which a
    bilinear warp keeps in [0, 255]) clips only the channels scaled up, as no other can leave the range. The factor
    is folded as ``color / 255``, which moves a value by at most one float32 rounding (about 6e-8)."""
    out = np.empty((3,) + patch.shape[:2], dtype=np.float32)
    factor = np.asarray(color, dtype=np.float32) / np.float32(255.0)
    for c in range(3):
        np.multiply(patch[:, :, c], factor[c], out=out[c])
        if not in_range or color[c] > 1.0:
            np.clip(out[c], 0.0, 1.0, out=out[c])
    return out


def make_sample(
    img: np.ndarray,
    bbox: np.ndarray,
    joint_coord: np.ndarray,
    joint_valid: np.ndarray,
    hand_type: np.ndarray,
    aug: AugParams,
    skeleton: Skeleton,
    cfg: Config,
) -> Dict[str, np.ndarray]:
    """The network input and targets of one annotation (spec 3.4 and 1.5).

    img: RGB (H, W, 3) in [0, 255], float32 or uint8 (the crop converts what it reads; same patch); bbox: the crop
    box [x, y, w, h] (processed GT or RootNet box); joint_coord: (J, 3) = (u, v) image pixels and z camera depth in
    mm; joint_valid: (J,); hand_type: (2,) [right, left] presence. Returns img (3, h, w) in [0, 1],
    joint_coord (J, 3) in heatmap space, joint_valid (J,), rel_root_depth (1,), root_valid (1,), hand_type (2,) and
    inv_trans (2, 3), all float32. Inputs are not modified.
    """
    bbox = np.array(bbox, dtype=np.float32).reshape(4)  # a copy: the official code shifts the stored box in place
    bbox[0] = bbox[0] + bbox[2] * np.float32(aug.trans[0])
    bbox[1] = bbox[1] + bbox[3] * np.float32(aug.trans[1])
    input_shape = (int(cfg.input_img_shape[0]), int(cfg.input_img_shape[1]))
    patch, trans, inv_trans = generate_patch_image(img, bbox, aug.do_flip, aug.scale, aug.rot, input_shape)
    joint_coord, joint_valid, hand_type = augment_joints(
        joint_coord, joint_valid, hand_type, img.shape[1], trans, aug.do_flip, skeleton, input_shape
    )
    rel_root_depth, root_valid = root_depth_target(joint_coord, joint_valid, hand_type, skeleton)
    joint_coord, joint_valid, rel_root_depth, root_valid = to_output_space(
        joint_coord, joint_valid, rel_root_depth, root_valid, skeleton, cfg
    )
    return {
        "img": color_to_chw(patch, aug.color, in_range=img.dtype == np.uint8),
        "joint_coord": joint_coord,
        "rel_root_depth": rel_root_depth,
        "hand_type": hand_type,
        "joint_valid": joint_valid,
        "root_valid": root_valid,
        "inv_trans": inv_trans.astype(np.float32),
    }


class EpochAugmented:
    """Data-set mixin: in train mode sample ``i`` gets the augmentation drawn from (cfg.seed, epoch, i) only, so it
    does not depend on worker count, process count or resumption. Needs ``cfg``, ``mode``, ``__len__`` and
    ``get_sample(i, aug)``."""

    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of an epoch (train mode). DataLoader workers copy the data set when an
        iterator starts, so call this before iterating (with ``persistent_workers=True`` it would not reach them)."""
        self.epoch = int(epoch)

    def aug_params(self, i: int) -> AugParams:
        """The augmentation of sample ``i`` this epoch: a function of (seed, epoch, i) only."""
        if self.mode != "train":
            return AugParams.identity()
        return sample_aug_params(np.random.default_rng([self.cfg.seed, self.epoch, i % len(self)]))

    def __getitem__(self, i: int):
        return self.get_sample(i, self.aug_params(int(i)))
