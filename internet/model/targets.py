"""Gaussian target volumes for the joint heatmaps (official InterNet targets, spec section 1.5).

Each joint's target is ``255 * exp(-((x-x_j)^2 + (y-y_j)^2 + (z-z_j)^2) / (2 sigma^2))`` evaluated at the integer voxel
indices of a (depth, height, width) volume, over the whole volume (no truncation). The volume axis order is (z, y, x);
coordinates come as (x, y, z) in heatmap units. The Gaussian is separable, so the same volume is the outer product of
three 1-D factors; :func:`gaussian_factors` gives them and the fast loss uses them without building the volume.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch

TARGET_PEAK = 255.0
"""Peak value of a target Gaussian (official)."""


def _check_coord(joint_coord: torch.Tensor, hm_shape: Sequence[int], sigma: float) -> None:
    if not isinstance(joint_coord, torch.Tensor):
        raise TypeError(f"joint_coord must be a torch.Tensor, got {type(joint_coord).__name__}")
    if joint_coord.dim() != 3 or joint_coord.shape[-1] != 3:
        raise ValueError(f"joint_coord must have shape (B, J, 3), got {tuple(joint_coord.shape)}")
    if len(hm_shape) != 3 or any(int(s) <= 0 for s in hm_shape):
        raise ValueError(f"hm_shape must be (depth, height, width) of positive sizes, got {tuple(hm_shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")


def gaussian_factors(
    joint_coord: torch.Tensor,
    hm_shape: Sequence[int] = (64, 64, 64),
    sigma: float = 2.5,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The separable factors of the target: ``gx`` (B,J,W), ``gy`` (B,J,H), ``gz`` (B,J,D), float32, each
    ``exp(-((k - c)/sigma)^2 / 2)`` at integer k, so that the target volume is
    ``255 * gz[..., :, None, None] * gy[..., None, :, None] * gx[..., None, None, :]``."""
    _check_coord(joint_coord, hm_shape, sigma)
    depth, height, width = (int(s) for s in hm_shape)
    coord = joint_coord.float()
    # float64 inputs (gradient checks) keep float64; everything else is float32 like the official code
    if joint_coord.dtype == torch.float64:
        coord = joint_coord
    factors = []
    for axis, size in ((0, width), (1, height), (2, depth)):
        grid = torch.arange(size, device=coord.device, dtype=coord.dtype)
        d = (grid - coord[..., axis, None]) / sigma
        factors.append(torch.exp(-(d * d) / 2))
    gx, gy, gz = factors
    return gx, gy, gz


def render_gaussian_heatmap(
    joint_coord: torch.Tensor,
    hm_shape: Sequence[int] = (64, 64, 64),
    sigma: float = 2.5,
) -> torch.Tensor:
    """The dense official target (B, J, D, H, W), float32 on the input's device, peak 255.

    Computed as the official code does (one exponential of the summed squared distances), so it is the reference
    the fast loss is checked against. Memory: B*J*D*H*W floats (44 MB per sample at 42 x 64^3)."""
    _check_coord(joint_coord, hm_shape, sigma)
    depth, height, width = (int(s) for s in hm_shape)
    coord = joint_coord.float()
    dev = coord.device
    zz = torch.arange(depth, device=dev, dtype=torch.float32)[:, None, None]
    yy = torch.arange(height, device=dev, dtype=torch.float32)[None, :, None]
    xx = torch.arange(width, device=dev, dtype=torch.float32)[None, None, :]
    x = coord[..., 0, None, None, None]
    y = coord[..., 1, None, None, None]
    z = coord[..., 2, None, None, None]
    # sum the three squared terms first (broadcast small tensors), then one exp over the full volume
    arg = -(((xx - x) / sigma) ** 2) / 2 - (((yy - y) / sigma) ** 2) / 2 - (((zz - z) / sigma) ** 2) / 2
    return arg.exp_().mul_(TARGET_PEAK)  # in place: one volume-sized buffer
