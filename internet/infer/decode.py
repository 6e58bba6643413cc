"""From network outputs to heatmap coordinates: the official hard argmax, an optional sub-voxel refinement and the
flip test merge (spec sections 1.6 and 5). From heatmap coordinates on to crop and image pixels, millimetres and
camera space is :class:`internet.geometry.codec.HeatmapCodec`'s job.

Heatmap space: x, y in heatmap pixels (voxel k sits at coordinate k, no half-pixel offset), z in depth bins.
Volumes are (D, H, W) = (z, y, x).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Union

import numpy as np
import torch

from internet.config import Config
from internet.geometry.codec import HeatmapCodec
from internet.skeleton import INTERHAND, Skeleton


# ----------------------------------------------------------------------------------------------------- argmax
def _check_volume(heatmap: torch.Tensor) -> None:
    if not isinstance(heatmap, torch.Tensor) or heatmap.dim() != 5:
        shape = tuple(heatmap.shape) if hasattr(heatmap, "shape") else type(heatmap).__name__
        raise ValueError(f"heatmap must be a (B, J, D, H, W) tensor, got {shape}")


def _argmax_indices(heatmap: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) int64 voxel indices (x, y, z) of each joint's maximum."""
    _, _, depth, height, width = heatmap.shape
    # the first maximum; NaN counts as the maximum. (A numpy argmax on the CPU was faster here but gained nothing end
    # to end, benchmarks/RESULTS.md section 9: removed.)
    flat = heatmap.detach().reshape(*heatmap.shape[:2], -1).argmax(-1)
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
    *,
    cfg: Union[Config, HeatmapCodec],
    flipped_by: str = "tensor",
    mode: str = "heatmap",
) -> Dict[str, torch.Tensor]:
    """Flip test: bring the prediction for the horizontally flipped crop back to the original crop and average.

    Un-flipping swaps the two hand blocks (``skeleton.flip_perm``), mirrors x (x -> c - x, see
    :meth:`HeatmapCodec.flip_mirror_constant <internet.geometry.codec.HeatmapCodec.flip_mirror_constant>`), swaps the
    [right, left] hand-type bits and mirrors the relative root depth bin about the centre (bin -> R - bin: the flip
    exchanges the hands, so left-minus-right depth changes sign; mmpose negates the bin instead, which is wrong). z is
    root-relative per hand and unchanged. ``cfg``: the outputs' geometry (Config or HeatmapCodec), required.

    ``mode='heatmap'`` averages the volumes (``joint_heatmap``, decode afterwards); ``mode='coord'`` averages decoded
    coordinates (``joint_coord`` of both dicts). ``hand_type`` probabilities, ``hand_type_logits`` and
    ``rel_root_depth`` are averaged when present in both. Returns a new dict; the inputs are not modified."""
    if mode not in ("heatmap", "coord"):
        raise ValueError(f"mode must be 'heatmap' or 'coord', got {mode!r}")
    codec = HeatmapCodec.from_config(cfg)
    mirror = codec.flip_mirror_constant(flipped_by)
    hm_width = codec.output_hm_shape[2]
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
        merged["rel_root_depth"] = (
            outputs["rel_root_depth"] + (codec.output_root_hm_shape - outputs_of_flipped_img["rel_root_depth"])
        ) / 2
    return merged
