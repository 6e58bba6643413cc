"""Run a trained InterNet on any RGB image with a hand box: 2D joints in image pixels and root-relative 3D hands.

The steps are the official demo's (``demo/demo.py``), without its GPU-only calls: process the box (square, x1.25),
crop with the affine transform, forward, hard-argmax decode, then map x, y back to the image with the inverse affine.

Depth. The network predicts each joint's depth relative to its hand's root (in mm) and the left-minus-right root
depth; it does not know the camera. To draw hands in 3D we need an absolute root depth and intrinsics, so we guess:

- principal point: the image centre; focal length: ``DEFAULT_FOCAL_PER_PX * max(W, H)`` (InterHand2.6M's released
  cameras: fx ~ 1261 px for 512-px images), unless ``focal`` is given;
- root depth: RootNet's rule (Moon et al., ICCV 2019), ``Z = sqrt(fx * fy * A_real / A_img)`` with A_img the area of
  the processed box in pixels and A_real = ``box_mm``**2 (300 x 300 mm, the hand setting of RootNet, official issue
  #36). The right hand is placed at Z; when both hands are present the left root is Z + the predicted relative depth.

X and Y of root-relative joints scale with Z / f, i.e. with ``box_mm`` / box size, so the focal guess only changes the
(small) perspective effect; the root-relative shape is meaningful, its absolute scale is the box guess.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from internet.config import Config
from internet.data.io import DataFileError, read_image
from internet.geometry.camera import pixel2cam, root_relative
from internet.geometry.codec import HeatmapCodec
from internet.geometry.crop import check_box, generate_patch_image, process_bboxes  # check_box: also notebook 05's
from internet.infer.predict import infer_batch
from internet.model.load import load_model
from internet.skeleton import INTERHAND, Skeleton
from internet.utils.device import choose_device
from internet.utils.runtime import retain_freed_memory

DEFAULT_FOCAL_PER_PX = 1261.6 / 512.0
"""Focal length guess per pixel of the image's longer side (InterHand2.6M's released cameras)."""
DEFAULT_BOX_MM = 300.0
"""Real-world side of the processed hand box assumed for the root-depth guess (RootNet's hand setting)."""


MIN_IMAGE_SIDE = 8
"""Smallest image side in pixels that prediction accepts: a smaller image holds no hand to find (and notebook 05's box
sliders need room)."""


def load_rgb(path: Union[str, Path]) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3); errors name the file (missing, empty, truncated, corrupt, undecodable,
    too large, or under :data:`MIN_IMAGE_SIDE` pixels on a side)."""
    image = read_image(path, dtype=np.uint8)
    if min(image.shape[:2]) < MIN_IMAGE_SIDE:
        raise DataFileError(
            f"image {path} is {image.shape[1]}x{image.shape[0]} pixels; prediction needs at least "
            f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}"
        )
    return image


class Predictor:
    """Batch-1 inference of InterNet on one image and one hand box (CPU friendly).

    ``Predictor(model_or_checkpoint, cfg, device).predict(image, bbox)``; see :meth:`predict` for the outputs.

    Args:
        model_or_checkpoint: an InterNet module, or a checkpoint path (this project's or an official
            ``snapshot_N.pth.tar``), built by :func:`internet.model.load.load_model`: its saved config (or, for an
            official snapshot, its keys) decides the backbone and shapes, and ``self.cfg`` is updated to match.
        cfg: shapes and test options (input_img_shape, output_hm_shape, bbox_3d_size, flip_test, subvoxel, ...).
            Required with a module (nothing else knows its geometry: a CPU-preset model read with the paper's would
            give wrong millimetres); optional with a checkpoint path, which carries its own shapes: then the test
            options are ``Config()``'s and the shapes the checkpoint's (an official snapshot, which has no config,
            is the paper's network). With ``cfg.retain_freed_memory`` (the default) this process keeps its freed
            C-heap memory (glibc), which makes CPU forwards faster (benchmarks/RESULTS.md section 6).
        device: 'cpu', 'cuda', 'auto' (default: cfg.device).
        skeleton: the 42-joint order of the outputs.
    """

    def __init__(
        self,
        model_or_checkpoint: Union[nn.Module, str, Path],
        cfg: Optional[Config] = None,
        device: Optional[str] = None,
        skeleton: Skeleton = INTERHAND,
    ) -> None:
        if cfg is None and isinstance(model_or_checkpoint, (str, Path)):
            cfg = Config()  # only the test options: load_model below takes the shapes from the checkpoint
        if not isinstance(cfg, Config):
            raise TypeError(
                "cfg must be an internet.Config (the model's geometry: required with a module, optional "
                f"with a checkpoint path), got {type(cfg).__name__}"
            )
        self.cfg = cfg
        self.device = choose_device(device if device is not None else self.cfg.device)
        if self.cfg.retain_freed_memory:
            retain_freed_memory()  # the forward's buffers are reused, not page-faulted in on every call
        self.skeleton = skeleton
        self.checkpoint: Optional[Path] = None
        if isinstance(model_or_checkpoint, nn.Module):
            model = model_or_checkpoint
        elif isinstance(model_or_checkpoint, (str, Path)):
            path = Path(model_or_checkpoint)
            if not path.is_file():
                raise FileNotFoundError(f"checkpoint not found: {path}")
            model, self.cfg, _ = load_model(path, self.cfg)  # the checkpoint's own shapes and backbone
            self.checkpoint = path
        else:
            raise TypeError(
                "model_or_checkpoint must be an nn.Module or a checkpoint path, got "
                f"{type(model_or_checkpoint).__name__}"
            )
        self.model = model.to(self.device).eval()

    # ------------------------------------------------------------------------------------------------ steps
    def crop(self, image: np.ndarray, bbox: Sequence[float]):
        """(processed box, float32 crop (h, w, 3) in [0, 255], inv_trans (2, 3) crop -> image)."""
        in_h, in_w = (int(v) for v in self.cfg.input_img_shape)
        box = process_bboxes(bbox, aspect_ratio=in_w / in_h)
        patch, _, inv_trans = generate_patch_image(image, box, False, 1.0, 0.0, (in_h, in_w))  # converts the window
        return box, patch, inv_trans

    def infer(self, patches: np.ndarray) -> Dict[str, np.ndarray]:
        """Decoded predictions for crops (B, h, w, 3) float32 in [0, 255] (or one crop (h, w, 3)), through
        :func:`internet.infer.predict.infer_batch` (the data-set path's step: flip test and sub-voxel refinement as
        ``cfg`` says, decoding on the device): ``joint_coord`` (B, 42, 3) heatmap space, ``rel_root_depth`` (B,)
        bins, ``hand_type`` (B, 2) probabilities, float64."""
        patches = np.asarray(patches, dtype=np.float32)
        single = patches.ndim == 3
        x = torch.from_numpy(np.ascontiguousarray((patches[None] if single else patches).transpose(0, 3, 1, 2)))
        x = (x / 255.0).to(self.device)
        out = infer_batch(self.model, x, self.cfg, self.skeleton)
        return {k: v.cpu().numpy().astype(np.float64) for k, v in out.items()}

    def predict(
        self,
        image: Union[np.ndarray, str, Path],
        bbox: Sequence[float],
        focal: Optional[Sequence[float]] = None,
        princpt: Optional[Sequence[float]] = None,
        box_mm: float = DEFAULT_BOX_MM,
    ) -> Dict[str, Any]:
        """Predict both hands in ``image`` (uint8 RGB (H, W, 3), or an image path) inside ``bbox`` [x, y, w, h] px.

        Returns a dict:
        ``joint_img`` (42, 2) image pixels; ``joint_cam_rel`` (42, 3) mm, each hand relative to its own root;
        ``joint_cam`` (42, 3) mm in the guessed camera (see the module docstring); ``rel_root_depth_mm`` (float,
        left minus right root depth); ``hand_type`` (2,) [right, left] probabilities; ``hands_present`` (2,) bool
        (probability > 0.5); ``joint_coord_hm`` (42, 3) heatmap-space output; ``bbox`` (4,) processed crop box;
        ``crop`` the network input as uint8; ``inv_trans`` (2, 3); ``focal``, ``princpt`` (2,) and
        ``root_depth_mm`` (2,) [right, left]: the guesses used for ``joint_cam``.
        """
        if isinstance(image, (str, Path)):
            image = load_rgb(image)
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < MIN_IMAGE_SIDE:
            raise ValueError(
                f"image must be RGB of shape (H, W, 3), at least {MIN_IMAGE_SIDE} pixels on a side, "
                f"got shape {img.shape}"
            )
        if img.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (0-255), got dtype {img.dtype}")
        height, width = img.shape[:2]
        box_in = check_box(bbox, width, height)
        if not (isinstance(box_mm, (int, float)) and box_mm > 0):
            raise ValueError(f"box_mm must be a positive number of millimetres, got {box_mm!r}")
        f = self._pair(focal, "focal", DEFAULT_FOCAL_PER_PX * max(width, height))
        c = self._pair(princpt, "princpt", None, default_pair=(width / 2.0, height / 2.0))
        if np.any(f <= 0):
            raise ValueError(f"focal must be positive, got {f.tolist()}")

        box, patch, inv_trans = self.crop(img, box_in)
        out = self.infer(patch)
        coord = out["joint_coord"][0]
        codec = HeatmapCodec.from_config(self.cfg)
        uvz = codec.heatmap_to_image(coord[None], inv_trans[None])[0]
        rel_root_mm = float(codec.root_bins_to_mm(out["rel_root_depth"])[0])
        hand_type = out["hand_type"][0]
        present = hand_type > 0.5

        # RootNet-style depth guess for the right root; the left root follows the predicted relative depth only
        # when both hands are there (the root head is trained on interacting samples only).
        z_right = float(np.sqrt(f[0] * f[1] * box_mm**2 / (float(box[2]) * float(box[3]))))
        z_left = z_right + rel_root_mm if present.all() else z_right
        right, left = self.skeleton.joint_type["right"], self.skeleton.joint_type["left"]
        z = uvz[:, 2].copy()
        z[right] += z_right
        z[left] += z_left
        joint_cam = pixel2cam(np.stack([uvz[:, 0], uvz[:, 1], z], axis=1), f, c)
        joint_cam_rel = root_relative(joint_cam, self.skeleton)
        return {
            "joint_img": uvz[:, :2],
            "joint_cam_rel": joint_cam_rel,
            "joint_cam": joint_cam,
            "rel_root_depth_mm": rel_root_mm,
            "hand_type": hand_type,
            "hands_present": present,
            "joint_coord_hm": coord,
            "bbox": np.asarray(box, dtype=np.float64),
            "crop": np.clip(np.rint(patch), 0, 255).astype(np.uint8),
            "inv_trans": np.asarray(inv_trans, dtype=np.float64),
            "focal": f,
            "princpt": c,
            "root_depth_mm": np.array([z_right, z_left]),
        }

    @staticmethod
    def _pair(
        value: Optional[Sequence[float]],
        name: str,
        default: Optional[float],
        default_pair: Optional[Sequence[float]] = None,
    ) -> np.ndarray:
        if value is None:
            return np.array(default_pair if default_pair is not None else (default, default), dtype=np.float64)
        try:
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"{name}={value!r}: expected two finite numbers (x, y)") from None
        if arr.shape == (1,):
            arr = np.repeat(arr, 2)
        if arr.shape != (2,) or not np.isfinite(arr).all():
            raise ValueError(f"{name}={value!r}: expected two finite numbers (x, y)")
        return arr
