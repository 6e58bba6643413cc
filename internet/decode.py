"""From network outputs to joint coordinates: the official hard argmax, an optional sub-voxel refinement, the flip
test merge, and the back-projection from heatmap space to camera space (spec sections 1.6 and 5).

Heatmap space: x, y in heatmap pixels (crop pixels / 4; voxel k sits at coordinate k, no half-pixel offset), z in
depth bins (0..64 covers root-relative depth -200..200 mm). Volumes are (D, H, W) = (z, y, x).
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import numpy as np
import torch

from internet.config import Config
from internet.skeleton import INTERHAND, Skeleton


# ----------------------------------------------------------------------------------------------------- argmax
def _check_volume(heatmap: torch.Tensor) -> None:
    if not isinstance(heatmap, torch.Tensor) or heatmap.dim() != 5:
        shape = tuple(heatmap.shape) if hasattr(heatmap, "shape") else type(heatmap).__name__
        raise ValueError(f"heatmap must be a (B, J, D, H, W) tensor, got {shape}")


def _argmax_indices(heatmap: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) int64 voxel indices (x, y, z) of each joint's maximum."""
    _, _, depth, height, width = heatmap.shape
    flat = heatmap.reshape(*heatmap.shape[:2], -1).argmax(-1)  # a view when contiguous: no big temporary
    z = torch.div(flat, height * width, rounding_mode="floor")
    rest = flat - z * (height * width)
    y = torch.div(rest, width, rounding_mode="floor")
    x = rest - y * width
    return torch.stack([x, y, z], dim=-1)


def hard_argmax_3d(heatmap: torch.Tensor) -> torch.Tensor:
    """The official decode: (x, y, z) voxel indices of each joint's maximum, (B, J, 3) float32.

    The official code takes three successive max/gather steps, which equals the argmax of the flattened volume
    (up to exact ties)."""
    _check_volume(heatmap)
    return _argmax_indices(heatmap).float()


def subvoxel_refine(heatmap: torch.Tensor, coords: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Sub-voxel refinement of the argmax, per axis, from the peak and its two neighbours along that axis.

    When the three values are positive a parabola is fitted to their logarithms (exact for a Gaussian peak such as
    the training target); otherwise a parabola on the raw values (a Taylor step). The offset is used only where the
    parabola has a maximum, and clipped to +-0.5 voxel; at the volume border that axis is left unrefined.
    ``coords``: the integer (x, y, z) of the maximum (from :func:`hard_argmax_3d`); computed when None.
    Returns (B, J, 3) float32. Not part of the official protocol (off by default)."""
    _check_volume(heatmap)
    b, j, depth, height, width = heatmap.shape
    idx = _argmax_indices(heatmap) if coords is None else coords.round().long()
    sizes = torch.tensor([width, height, depth], device=heatmap.device)
    strides = torch.tensor([1, width, height * width], device=heatmap.device)
    flat = heatmap.reshape(b, j, -1)
    centre = (idx * strides).sum(-1)  # (B, J)
    inside = (idx > 0) & (idx < sizes - 1)  # (B, J, 3): both neighbours exist
    step = strides.expand_as(idx)
    minus = (centre[..., None] - step).clamp(0, flat.shape[-1] - 1)
    plus = (centre[..., None] + step).clamp(0, flat.shape[-1] - 1)
    gather = torch.cat([centre[..., None], minus, plus], dim=-1)  # (B, J, 7)
    vals = flat.gather(2, gather).double()
    v0, vm, vp = vals[..., :1], vals[..., 1:4], vals[..., 4:7]
    positive = (vm > 0) & (vp > 0) & (v0 > 0)
    lm, l0, lp = (torch.log(torch.where(positive, v, torch.ones_like(v))) for v in (vm, v0.expand_as(vm), vp))
    num = torch.where(positive, lm - lp, vm - vp)
    den = torch.where(positive, lm - 2 * l0 + lp, vm - 2 * v0 + vp)
    ok = inside & (den < 0)
    offset = torch.where(ok, 0.5 * num / torch.where(ok, den, -torch.ones_like(den)), torch.zeros_like(den))
    return (idx.double() + offset.clamp(-0.5, 0.5)).float()


def decode_heatmaps(heatmap: torch.Tensor, subvoxel: bool = False) -> torch.Tensor:
    """(B, J, 3) float32 (x, y, z) heatmap coordinates: the official hard argmax, optionally refined."""
    coords = hard_argmax_3d(heatmap)
    return subvoxel_refine(heatmap, coords) if subvoxel else coords


# ----------------------------------------------------------------------------------------------------- flip test
def flip_mirror_constant(hm_width: int = 64, input_width: int = 256, flipped_by: str = "tensor") -> float:
    """The constant c of the horizontal mirror x -> c - x in heatmap units between a crop and its flipped version.

    - ``'tensor'``: the flipped input is the crop tensor reversed along x (``img.flip(-1)``): crop pixel i <-> 255 - i,
      so c = (input_width - 1) / stride with stride = input_width / hm_width (63.75 at 256 -> 64).
    - ``'crop'``: the flipped input was cropped again from the flipped image with the mirrored centre, as the official
      augmentation does (``u' = W - u - 1``, ``c_x' = W - c_x - 1``): crop pixel i <-> 256 - i, so c = hm_width (64).
    """
    stride = input_width / hm_width
    if flipped_by == "tensor":
        return (input_width - 1) / stride
    if flipped_by == "crop":
        return input_width / stride
    raise ValueError(f"flipped_by must be 'tensor' or 'crop', got {flipped_by!r}")


def _unflip_volume(heatmap: torch.Tensor, mirror: float) -> torch.Tensor:
    """U[..., k] = F[..., mirror - k] along x, linear interpolation between voxels, zero outside."""
    rev = heatmap.flip(-1)  # rev[m] = F[W - 1 - m], so U[k] = rev[k - shift] with shift = mirror - (W - 1)
    width = heatmap.shape[-1]
    shift = mirror - (width - 1)
    base = int(np.floor(shift))
    frac = shift - base

    def shifted(t: torch.Tensor, s: int) -> torch.Tensor:
        out = torch.zeros_like(t)
        if s >= 0:
            if s < width:
                out[..., s:] = t[..., : width - s]
        elif -s < width:
            out[..., :s] = t[..., -s:]
        return out

    if frac == 0:
        return shifted(rev, base)
    return shifted(rev, base) * (1 - frac) + shifted(rev, base + 1) * frac


def merge_flip(
    outputs: Mapping[str, torch.Tensor],
    outputs_of_flipped_img: Mapping[str, torch.Tensor],
    skeleton: Skeleton = INTERHAND,
    hm_width: int = 64,
    input_width: int = 256,
    flipped_by: str = "tensor",
    output_root_hm_shape: int = 64,
    mode: str = "heatmap",
) -> Dict[str, torch.Tensor]:
    """Flip test: bring the prediction for the horizontally flipped crop back to the original crop and average.

    Un-flipping swaps the two hand blocks (``skeleton.flip_perm``), mirrors x (x -> c - x, see
    :func:`flip_mirror_constant`), swaps the [right, left] hand-type bits and mirrors the relative root depth bin about
    the centre (bin -> output_root_hm_shape - bin: the flip exchanges the hands, so left-minus-right depth changes sign;
    mmpose negates the bin instead, which is wrong). z is root-relative per hand and unchanged.

    ``mode='heatmap'`` averages the volumes (``joint_heatmap``, decode afterwards); ``mode='coord'`` averages decoded
    coordinates (``joint_coord`` of both dicts). ``hand_type`` probabilities, ``hand_type_logits`` and
    ``rel_root_depth`` are averaged when present in both. Returns a new dict; the inputs are not modified."""
    if mode not in ("heatmap", "coord"):
        raise ValueError(f"mode must be 'heatmap' or 'coord', got {mode!r}")
    mirror = flip_mirror_constant(hm_width, input_width, flipped_by)
    perm = torch.as_tensor(skeleton.flip_perm)
    merged: Dict[str, torch.Tensor] = {}
    key = "joint_heatmap" if mode == "heatmap" else "joint_coord"
    for name, d in (("outputs", outputs), ("outputs_of_flipped_img", outputs_of_flipped_img)):
        if key not in d:
            raise KeyError(f"merge_flip(mode={mode!r}): {name} has no {key!r} (keys: {sorted(d)})")
    a, f = outputs[key], outputs_of_flipped_img[key]
    if a.shape != f.shape:
        raise ValueError(f"{key} shapes differ: {tuple(a.shape)} vs flipped {tuple(f.shape)}")
    f = f[:, perm.to(f.device)]
    if mode == "heatmap":
        if a.shape[-1] != hm_width:
            raise ValueError(f"joint_heatmap width {a.shape[-1]} != hm_width {hm_width}")
        merged["joint_heatmap"] = (a + _unflip_volume(f, mirror)) / 2
    else:
        f = f.clone()
        f[..., 0] = mirror - f[..., 0]
        merged["joint_coord"] = (a.to(f.dtype) + f) / 2
    for name in ("hand_type", "hand_type_logits"):  # [right, left] -> [left, right] for the flipped view
        if name in outputs and name in outputs_of_flipped_img:
            merged[name] = (outputs[name] + outputs_of_flipped_img[name].flip(-1)) / 2
    if "rel_root_depth" in outputs and "rel_root_depth" in outputs_of_flipped_img:
        merged["rel_root_depth"] = (outputs["rel_root_depth"]
                                    + (output_root_hm_shape - outputs_of_flipped_img["rel_root_depth"])) / 2
    return merged


# ----------------------------------------------------------------------------------------------------- camera space
def _as_np(x, name: str, dtype=np.float64) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: cannot be read as a {np.dtype(dtype).name} array ({e})") from None


def heatmap_to_image(joint_coord_hm, inv_trans, cfg: Optional[Config] = None) -> np.ndarray:
    """(N, J, 3) heatmap coordinates -> (N, J, 3) with x, y in original-image pixels (x * 4, y * 4, then the inverse
    affine of the crop) and z as root-relative depth in mm ((z / 64 * 2 - 1) * 200). float64."""
    cfg = cfg or Config()
    coord = _as_np(joint_coord_hm, "joint_coord")
    inv_trans = _as_np(inv_trans, "inv_trans")
    if coord.ndim != 3 or coord.shape[-1] != 3:
        raise ValueError(f"joint_coord must be (N, J, 3), got {coord.shape}")
    if inv_trans.shape != (coord.shape[0], 2, 3):
        raise ValueError(f"inv_trans must be ({coord.shape[0]}, 2, 3), got {inv_trans.shape}")
    depth, height, width = cfg.output_hm_shape
    in_h, in_w = cfg.input_img_shape
    out = np.empty(coord.shape, dtype=np.float64)
    x = coord[..., 0] * (in_w / width)
    y = coord[..., 1] * (in_h / height)
    t = inv_trans[:, :, :, None]  # (N, 2, 3, 1): broadcast over joints
    out[..., 0] = t[:, 0, 0] * x + t[:, 0, 1] * y + t[:, 0, 2]
    out[..., 1] = t[:, 1, 0] * x + t[:, 1, 1] * y + t[:, 1, 2]
    out[..., 2] = (coord[..., 2] / depth * 2 - 1) * (cfg.bbox_3d_size / 2)
    return out


def rel_root_depth_to_mm(rel_root_depth_bins, cfg: Optional[Config] = None) -> np.ndarray:
    """Root-depth bins -> left-minus-right root depth in mm: (d / 64 * 2 - 1) * 200. Shape (N,)."""
    cfg = cfg or Config()
    d = _as_np(rel_root_depth_bins, "rel_root_depth").reshape(-1)
    return (d / cfg.output_root_hm_shape * 2 - 1) * (cfg.bbox_3d_size_root / 2)


def pixel2cam_batch(uvz: np.ndarray, focal: np.ndarray, princpt: np.ndarray) -> np.ndarray:
    """(N, J, 3) (u, v, Z) -> camera mm with per-sample focal (N, 2) and princpt (N, 2)."""
    # one coordinate at a time: ~3x faster than strided (..., :2) arithmetic and a concatenation (the evaluation
    # calls this on all 849k x 42 test joints)
    z = uvz[..., 2]
    out = np.empty(uvz.shape, dtype=np.result_type(uvz, focal, princpt))
    out[..., 0] = (uvz[..., 0] - princpt[:, 0:1]) / focal[:, 0:1] * z
    out[..., 1] = (uvz[..., 1] - princpt[:, 1:2]) / focal[:, 1:2] * z
    out[..., 2] = z
    return out


def to_camera(
    joint_coord_hm,
    rel_root_depth_bins,
    inv_trans,
    focal,
    princpt,
    abs_depth,
    cfg: Optional[Config] = None,
    skeleton: Skeleton = INTERHAND,
) -> np.ndarray:
    """The official back-projection of heatmap-space joints to camera coordinates (mm), vectorised over N.

    x, y: heatmap -> crop pixels (x4) -> original image via ``inv_trans`` (N,2,3); z: root-relative mm from the bin,
    plus the absolute root depth of the joint's hand; then pixel -> camera with ``focal``/``princpt`` (N,2).
    ``abs_depth``: (N, 2) [right, left] root depths in mm (GT or RootNet), or (N,) one depth for both hands (RHD/STB).
    ``rel_root_depth_bins``: None for the official per-hand depths (evaluation); given (N,) or (N,1), the left hand
    is anchored at abs_depth_right + the predicted left-minus-right depth instead (as for MRRPE and in the demo).
    Returns (N, 42, 3) float64."""
    cfg = cfg or Config()
    uvz = heatmap_to_image(joint_coord_hm, inv_trans, cfg)
    n = uvz.shape[0]
    focal, princpt = _as_np(focal, "focal"), _as_np(princpt, "princpt")
    for name, arr in (("focal", focal), ("princpt", princpt)):
        if arr.shape != (n, 2):
            raise ValueError(f"{name} must be ({n}, 2), got {arr.shape}")
    abs_depth = _as_np(abs_depth, "abs_depth")
    if abs_depth.shape in ((n,), (n, 1)):
        abs_depth = np.repeat(abs_depth.reshape(n, 1), 2, axis=1)
    if abs_depth.shape != (n, 2):
        raise ValueError(f"abs_depth must be ({n}, 2) [right, left] or ({n},), got {abs_depth.shape}")
    root_right = abs_depth[:, 0].copy()
    root_left = abs_depth[:, 1].copy()
    if rel_root_depth_bins is not None:
        root_left = root_right + rel_root_depth_to_mm(rel_root_depth_bins, cfg).reshape(n)
    depth_add = np.zeros(uvz.shape[:2])
    depth_add[:, skeleton.joint_type["right"]] = root_right[:, None]
    depth_add[:, skeleton.joint_type["left"]] = root_left[:, None]
    uvz[..., 2] += depth_add
    return pixel2cam_batch(uvz, focal, princpt)
