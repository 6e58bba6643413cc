"""Heatmap space, both directions, in one place: :class:`HeatmapCodec`.

The network predicts each joint in heatmap space: x, y in heatmap pixels (crop pixels / stride, stride = input /
heatmap size; voxel k sits at coordinate k, no half-pixel offset) and z in depth bins (0..D covers root-relative
depth -bbox_3d_size/2..+bbox_3d_size/2 mm); the left-minus-right root depth in root bins (0..R covers
-bbox_3d_size_root/2..+bbox_3d_size_root/2 mm). The paper: 256x256 crops, 64x64x64 heatmaps, 400 mm, 64 bins.

Encoding (the training targets, :mod:`internet.data.augment`) and decoding (evaluation, inference, the predictor, the
mean-pose baseline) both go through one codec built from the config, so a change of depth range or resolution is
made once. Same idea as mmpose's ``Hand3DHeatmap`` codec; the arithmetic here is the official InterNet code's, step
for step, so the parity tests against its fixtures hold to the last bit where they did before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union

import numpy as np

from internet.config import Config
from internet.geometry.camera import pixel2cam
from internet.skeleton import INTERHAND, Skeleton
from internet.utils.arrays import as_array


def _float_copy(x) -> np.ndarray:
    """A float copy of ``x`` that keeps a float32 input float32 (the training targets are float32)."""
    arr = np.asarray(x)
    return np.array(arr, dtype=arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64)


@dataclass(frozen=True)
class HeatmapCodec:
    """The mapping between crop pixels / millimetres and heatmap coordinates / depth bins, built from a config.

    Encode: :meth:`encode_joints` (crop pixels + root-relative depth mm -> heatmap x, y, depth bin, and which joints
    fall inside the depth range), :meth:`encode_root_depth` (left-minus-right root depth mm -> root bin, and whether
    it is inside the range). Decode: :meth:`heatmap_to_crop`, :meth:`depth_bins_to_mm`, :meth:`root_bins_to_mm`,
    :meth:`heatmap_to_image` (through the crop's ``inv_trans``) and :meth:`to_camera` (the official back-projection);
    :meth:`flip_mirror_constant` is the flip test's x mirror in heatmap units.
    """

    input_img_shape: Tuple[int, int]
    """Crop (height, width) in pixels."""
    output_hm_shape: Tuple[int, int, int]
    """Heatmap (depth bins, height, width)."""
    bbox_3d_size: float
    """Root-relative depth range in mm covered by the depth bins (centred on the hand's root)."""
    bbox_3d_size_root: float
    """Left-minus-right root depth range in mm covered by the root bins (centred on 0)."""
    output_root_hm_shape: int
    """Number of root-depth bins."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_img_shape", tuple(int(v) for v in self.input_img_shape))
        object.__setattr__(self, "output_hm_shape", tuple(int(v) for v in self.output_hm_shape))
        if len(self.input_img_shape) != 2 or len(self.output_hm_shape) != 3:
            raise ValueError(
                f"input_img_shape must be (height, width) and output_hm_shape (depth, height, width), "
                f"got {self.input_img_shape} and {self.output_hm_shape}"
            )
        if min(self.input_img_shape + self.output_hm_shape) < 1 or int(self.output_root_hm_shape) < 1:
            raise ValueError(
                f"heatmap shapes must be positive, got input {self.input_img_shape}, heatmap "
                f"{self.output_hm_shape}, root bins {self.output_root_hm_shape}"
            )
        if not (self.bbox_3d_size > 0 and self.bbox_3d_size_root > 0):
            raise ValueError(
                f"depth ranges must be positive, got bbox_3d_size={self.bbox_3d_size}, "
                f"bbox_3d_size_root={self.bbox_3d_size_root}"
            )

    @classmethod
    def from_config(cls, cfg: Union[Config, "HeatmapCodec"]) -> "HeatmapCodec":
        """The codec of ``cfg`` (an :class:`internet.config.Config`, or a codec, returned as it is). A missing config
        is a TypeError: outputs of the CPU preset (16x24x24 heatmaps) read with the paper's geometry would come back
        in wrong millimetres without any error."""
        if isinstance(cfg, cls):
            return cfg
        if not isinstance(cfg, Config):
            raise TypeError(
                "the heatmap geometry is required: pass the internet.Config the model was trained with "
                f"(or its HeatmapCodec), got {type(cfg).__name__}"
            )
        return cls(
            input_img_shape=cfg.input_img_shape,
            output_hm_shape=cfg.output_hm_shape,
            bbox_3d_size=float(cfg.bbox_3d_size),
            bbox_3d_size_root=float(cfg.bbox_3d_size_root),
            output_root_hm_shape=int(cfg.output_root_hm_shape),
        )

    # ------------------------------------------------------------------------------------------------ encode
    def depth_mm_to_bins(self, z_mm):
        """Root-relative depth (mm) -> depth bins: ``(z / (bbox_3d_size / 2) + 1) / 2 * D``."""
        return (z_mm / (self.bbox_3d_size / 2) + 1) / 2.0 * self.output_hm_shape[0]

    def encode_joints(self, joint_coord) -> Tuple[np.ndarray, np.ndarray]:
        """(..., 3) crop pixels x, y and root-relative depth z (mm) -> (heatmap coordinates (..., 3), in_range (...)
        bool: the depth bin lies in [0, D)). float32 stays float32; the input is not modified."""
        in_h, in_w = self.input_img_shape
        depth, hm_h, hm_w = self.output_hm_shape
        coord = _float_copy(joint_coord)
        coord[..., 0] = coord[..., 0] / in_w * hm_w
        coord[..., 1] = coord[..., 1] / in_h * hm_h
        coord[..., 2] = self.depth_mm_to_bins(coord[..., 2])
        return coord, (coord[..., 2] >= 0) & (coord[..., 2] < depth)

    def encode_root_depth(self, rel_root_depth_mm) -> Tuple[np.ndarray, np.ndarray]:
        """Left-minus-right root depth (mm) -> (root bins, in_range bool: the bin lies in [0, R)), same shape."""
        bins = self.output_root_hm_shape
        rel = (_float_copy(rel_root_depth_mm) / (self.bbox_3d_size_root / 2) + 1) / 2.0 * bins
        return rel, (rel >= 0) & (rel < bins)

    # ------------------------------------------------------------------------------------------------ decode
    def flip_mirror_constant(self, flipped_by: str = "tensor") -> float:
        """The constant c of the horizontal mirror x -> c - x in heatmap units between a crop and its flipped version.

        - ``'tensor'``: the flipped input is the crop tensor reversed along x (``img.flip(-1)``): crop pixel i <->
          W_in - 1 - i, so c = (W_in - 1) / stride with stride = W_in / W_hm (63.75 at 256 -> 64).
        - ``'crop'``: the flipped input was cropped again from the flipped image with the mirrored centre, as the
          official augmentation does (``u' = W - u - 1``, ``c_x' = W - c_x - 1``): crop pixel i <-> W_in - i, so
          c = W_hm (64).
        """
        input_width, hm_width = self.input_img_shape[1], self.output_hm_shape[2]
        stride = input_width / hm_width
        if flipped_by == "tensor":
            return (input_width - 1) / stride
        if flipped_by == "crop":
            return input_width / stride
        raise ValueError(f"flipped_by must be 'tensor' or 'crop', got {flipped_by!r}")

    def depth_bins_to_mm(self, z_bins):
        """Depth bins -> root-relative depth (mm): ``(z / D * 2 - 1) * (bbox_3d_size / 2)``."""
        return (z_bins / self.output_hm_shape[0] * 2 - 1) * (self.bbox_3d_size / 2)

    def root_bins_to_mm(self, rel_root_depth_bins) -> np.ndarray:
        """Root bins -> left-minus-right root depth (mm), shape (N,): ``(d / R * 2 - 1) * (bbox_3d_size_root / 2)``."""
        d = as_array(rel_root_depth_bins, "rel_root_depth").reshape(-1)
        return (d / self.output_root_hm_shape * 2 - 1) * (self.bbox_3d_size_root / 2)

    def heatmap_to_crop(self, joint_coord_hm) -> np.ndarray:
        """(..., 3) heatmap coordinates -> x, y in crop pixels and z root-relative depth in mm, float64."""
        coord = as_array(joint_coord_hm, "joint_coord")
        in_h, in_w = self.input_img_shape
        _, hm_h, hm_w = self.output_hm_shape
        out = np.empty(coord.shape, dtype=np.float64)
        out[..., 0] = coord[..., 0] * (in_w / hm_w)
        out[..., 1] = coord[..., 1] * (in_h / hm_h)
        out[..., 2] = self.depth_bins_to_mm(coord[..., 2])
        return out

    def heatmap_to_image(self, joint_coord_hm, inv_trans) -> np.ndarray:
        """(N, J, 3) heatmap coordinates -> (N, J, 3) with x, y in original-image pixels (crop pixels, then the crop's
        inverse affine ``inv_trans`` (N, 2, 3)) and z root-relative depth in mm. float64."""
        coord = as_array(joint_coord_hm, "joint_coord")
        inv_trans = as_array(inv_trans, "inv_trans")
        if coord.ndim != 3 or coord.shape[-1] != 3:
            raise ValueError(f"joint_coord must be (N, J, 3), got {coord.shape}")
        if inv_trans.shape != (coord.shape[0], 2, 3):
            raise ValueError(f"inv_trans must be ({coord.shape[0]}, 2, 3), got {inv_trans.shape}")
        out = self.heatmap_to_crop(coord)
        x, y = out[..., 0].copy(), out[..., 1].copy()
        t = inv_trans[:, :, :, None]  # (N, 2, 3, 1): broadcast over joints
        out[..., 0] = t[:, 0, 0] * x + t[:, 0, 1] * y + t[:, 0, 2]
        out[..., 1] = t[:, 1, 0] * x + t[:, 1, 1] * y + t[:, 1, 2]
        return out

    def to_camera(
        self,
        joint_coord_hm,
        rel_root_depth_bins: Optional[Any],
        inv_trans,
        focal,
        princpt,
        abs_depth,
        skeleton: Skeleton = INTERHAND,
    ) -> np.ndarray:
        """The official back-projection of heatmap-space joints to camera coordinates (mm), vectorised over N.

        x, y: heatmap -> crop pixels -> original image via ``inv_trans`` (N,2,3); z: root-relative mm from the bin,
        plus the absolute root depth of the joint's hand; then pixel -> camera with ``focal``/``princpt`` (N,2).
        ``abs_depth``: (N, 2) [right, left] root depths in mm (GT or RootNet), or (N,) one depth for both hands
        (RHD/STB). ``rel_root_depth_bins``: None for the official per-hand depths (evaluation); given (N,) or (N,1),
        the left hand is anchored at abs_depth_right + the predicted left-minus-right depth instead (as for MRRPE and
        in the demo). Returns (N, J, 3) float64."""
        uvz = self.heatmap_to_image(joint_coord_hm, inv_trans)
        n = uvz.shape[0]
        focal, princpt = as_array(focal, "focal"), as_array(princpt, "princpt")
        for name, arr in (("focal", focal), ("princpt", princpt)):
            if arr.shape != (n, 2):
                raise ValueError(f"{name} must be ({n}, 2), got {arr.shape}")
        abs_depth = as_array(abs_depth, "abs_depth")
        if abs_depth.shape in ((n,), (n, 1)):
            abs_depth = np.repeat(abs_depth.reshape(n, 1), 2, axis=1)
        if abs_depth.shape != (n, 2):
            raise ValueError(f"abs_depth must be ({n}, 2) [right, left] or ({n},), got {abs_depth.shape}")
        root_right = abs_depth[:, 0].copy()
        root_left = abs_depth[:, 1].copy()
        if rel_root_depth_bins is not None:
            root_left = root_right + self.root_bins_to_mm(rel_root_depth_bins).reshape(n)
        depth_add = np.zeros(uvz.shape[:2])
        depth_add[:, skeleton.joint_type["right"]] = root_right[:, None]
        depth_add[:, skeleton.joint_type["left"]] = root_left[:, None]
        uvz[..., 2] += depth_add
        return pixel2cam(uvz, focal, princpt)
