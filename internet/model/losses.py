"""The three official InterNet losses (spec section 2), a fast heatmap loss with the same value, and InterNetLoss.

Official masking and averaging:
- joint heatmap: mean over all B*J*D*H*W elements of (P - T)^2 * joint_valid; invalid joints add 0 to the numerator
  but still count in the denominator; no 0.5 factor.
- relative root depth: mean over the batch of |d - d_gt| * root_valid (L1 in bins).
- hand type: per sample, the mean of the two binary cross-entropies, times hand_type_valid, mean over the batch.

All losses are computed in float32 (autocast is switched off inside), whatever the dtype of the model outputs.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from internet.config import Config, ConfigError
from internet.model.targets import TARGET_PEAK, gaussian_factors, render_gaussian_heatmap


def _no_autocast(t: torch.Tensor):
    return torch.autocast(device_type=t.device.type, enabled=False)


def _check_heatmap_args(heatmap_out: torch.Tensor, joint_coord: torch.Tensor, joint_valid: torch.Tensor) -> None:
    if heatmap_out.dim() != 5:
        raise ValueError(f"heatmap_out must be (B, J, D, H, W), got shape {tuple(heatmap_out.shape)}")
    b, j = heatmap_out.shape[:2]
    if tuple(joint_coord.shape) != (b, j, 3):
        raise ValueError(f"joint_coord must be ({b}, {j}, 3) to match heatmap_out, got {tuple(joint_coord.shape)}")
    if tuple(joint_valid.shape) != (b, j):
        raise ValueError(f"joint_valid must be ({b}, {j}) to match heatmap_out, got {tuple(joint_valid.shape)}")


def _clean_coord(joint_coord: torch.Tensor) -> torch.Tensor:
    # A NaN target of an invalid joint would turn the masked (0 *) term into NaN; the official targets are finite.
    return torch.nan_to_num(joint_coord.detach(), nan=0.0)


def joint_heatmap_loss_dense(
    heatmap_out: torch.Tensor,
    joint_coord: torch.Tensor,
    joint_valid: torch.Tensor,
    sigma: float = 2.5,
) -> torch.Tensor:
    """Reference heatmap loss: builds the dense target (B,J,D,H,W) and returns mean((P - T)^2 * valid) (float32)."""
    _check_heatmap_args(heatmap_out, joint_coord, joint_valid)
    with _no_autocast(heatmap_out):
        target = render_gaussian_heatmap(_clean_coord(joint_coord), heatmap_out.shape[2:], sigma)
        valid = joint_valid.detach().float()[:, :, None, None, None]
        return ((heatmap_out.float() - target) ** 2 * valid).mean()


class _SeparableL2(torch.autograd.Function):
    """sum_bj w_bj * sum_zyx (P - 255 gz gy gx)^2, with the target built from its separable factors (a product of
    three 1D Gaussians, no exponential per voxel) in the same pass that subtracts it from the heatmap.

    Forward: the residual P - T in float32 (float64 for float64 heatmaps) by one fused multiply-add over the volume,
    its squared norm per row of voxels, summed in float64. The residual is kept for the backward, which scales
    it in place into the gradient 2 w (P - T): the residual is the buffer the backward would allocate anyway, so the
    peak memory does not grow, and the volume is read and written far fewer times than by expanding the square
    (which also had to be accumulated in float64, because its terms cancel).
    """

    @staticmethod
    def _residual(heatmap, gx, gy, gz):
        acc = torch.float64 if heatmap.dtype == torch.float64 else torch.float32
        gzy = gz.to(acc)[:, :, :, None, None] * gy.to(acc)[:, :, None, :, None]
        return torch.addcmul(heatmap.to(acc), gzy, gx.to(acc)[:, :, None, None, :], value=-TARGET_PEAK)

    @staticmethod
    def forward(ctx, heatmap, gx, gy, gz, weight):  # type: ignore[override]
        with torch.autocast(device_type=heatmap.device.type, enabled=False):
            b, j = heatmap.shape[:2]
            residual = _SeparableL2._residual(heatmap, gx, gy, gz)
            # the norm of each row of W voxels in the residual's dtype (a short sum of squares: no cancellation and
            # little rounding), the rows' squares summed in float64; a float64 copy of the volume cost 5% of a CPU
            # step, and one float32 sum over a 64^3 joint drifted by 3e-6
            rows = torch.linalg.vector_norm(residual.reshape(b, j, -1, residual.shape[-1]), dim=-1)
            sse = rows.to(torch.float64).square().sum(-1)
            loss = (sse * weight.to(torch.float64)).sum()
        # the heatmap is the network's output, alive anyway: saving it costs nothing
        ctx.save_for_backward(heatmap, gx, gy, gz, weight)
        ctx.residual = residual
        return loss.to(residual.dtype)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        heatmap, gx, gy, gz, weight = ctx.saved_tensors
        with torch.autocast(device_type=heatmap.device.type, enabled=False):
            residual, ctx.residual = ctx.residual, None  # the first backward turns the buffer into the gradient
            if residual is None:  # a retained graph backpropagated again (gradcheck, retain_graph=True)
                residual = _SeparableL2._residual(heatmap, gx, gy, gz)
            coef = (2.0 * grad_out.to(residual.dtype)) * weight.to(residual.dtype)
            grad = residual.mul_(coef[:, :, None, None, None])
        return grad.to(heatmap.dtype), None, None, None, None


def joint_heatmap_loss_fast(
    heatmap_out: torch.Tensor,
    joint_coord: torch.Tensor,
    joint_valid: torch.Tensor,
    sigma: float = 2.5,
) -> torch.Tensor:
    """The same value as :func:`joint_heatmap_loss_dense` (float32 scalar), from the separable Gaussian factors, so
    the target volume is never stored: less memory and no 64^3 exponentials per joint. Backpropagates to
    ``heatmap_out`` (in its own dtype, e.g. bf16 under autocast)."""
    _check_heatmap_args(heatmap_out, joint_coord, joint_valid)
    with _no_autocast(heatmap_out):
        coord = _clean_coord(joint_coord)
        if heatmap_out.dtype == torch.float64:
            coord = coord.double()
        gx, gy, gz = gaussian_factors(coord, heatmap_out.shape[2:], sigma)
        count = heatmap_out.numel()
        weight = joint_valid.detach().to(torch.float64) / count
        loss = _SeparableL2.apply(heatmap_out, gx, gy, gz, weight)
    return loss if heatmap_out.dtype == torch.float64 else loss.float()


def rel_root_depth_loss(out: torch.Tensor, gt: torch.Tensor, root_valid: torch.Tensor) -> torch.Tensor:
    """Official L1 on the relative root depth (bins): mean over the batch of |out - gt| * root_valid.
    Shapes (B, 1) each (or (B,) each)."""
    if out.shape != gt.shape or out.shape != root_valid.shape:
        raise ValueError(
            f"rel_root_depth shapes differ: out {tuple(out.shape)}, gt {tuple(gt.shape)}, "
            f"root_valid {tuple(root_valid.shape)}"
        )
    with _no_autocast(out):
        return (torch.abs(out.float() - gt.detach().float()) * root_valid.detach().float()).mean()


def _check_hand_type(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, name: str) -> None:
    if pred.dim() != 2 or pred.shape[1] != 2:
        raise ValueError(f"{name} must be (B, 2) [right, left], got {tuple(pred.shape)}")
    if tuple(gt.shape) != tuple(pred.shape):
        raise ValueError(f"hand_type target must be {tuple(pred.shape)}, got {tuple(gt.shape)}")
    if valid.numel() != pred.shape[0]:
        raise ValueError(f"hand_type_valid must have {pred.shape[0]} entries, got shape {tuple(valid.shape)}")


def hand_type_loss(logits: torch.Tensor, gt: torch.Tensor, hand_type_valid: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits form of the official hand-type loss (autocast-safe, no log(0) clamp needed):
    mean over the 2 outputs per sample, times hand_type_valid, mean over the batch."""
    _check_hand_type(logits, gt, hand_type_valid, "hand_type_logits")
    with _no_autocast(logits):
        per = F.binary_cross_entropy_with_logits(logits.float(), gt.detach().float(), reduction="none").mean(1)
        return (per * hand_type_valid.detach().float().reshape(-1)).mean()


def hand_type_loss_from_probs(probs: torch.Tensor, gt: torch.Tensor, hand_type_valid: torch.Tensor) -> torch.Tensor:
    """The official form: BCE on sigmoid probabilities (log clamped at -100, as torch's BCE does), per-sample mean
    over the 2 outputs, times hand_type_valid, mean over the batch. For parity checks; train on logits."""
    _check_hand_type(probs, gt, hand_type_valid, "hand_type")
    with _no_autocast(probs):
        per = F.binary_cross_entropy(probs.float(), gt.detach().float(), reduction="none").mean(1)
        return (per * hand_type_valid.detach().float().reshape(-1)).mean()


class InterNetLoss(nn.Module):
    """The official total loss: its terms (:attr:`TERMS`) from a model output dict and a batch dict (sample-contract
    keys), and their weighted sum (:meth:`total`).

    ``forward(outputs, batch)`` returns dict(joint_heatmap, rel_root_depth, hand_type) of unweighted float32 scalars;
    ``total`` weights them (official weights 1:1:1). The hand-type term uses ``hand_type_logits`` when present
    (with-logits BCE), else the ``hand_type`` probabilities (official BCE). A new term is a name in ``TERMS`` and an
    entry of ``forward``'s dict; ``Config.loss_weights`` then takes one more weight."""

    TERMS = ("joint_heatmap", "rel_root_depth", "hand_type")
    """The loss terms, in the order of ``weights`` (``Config.loss_weights``)."""
    REQUIRED_OUTPUTS = ("joint_heatmap", "rel_root_depth")
    REQUIRED_BATCH = ("joint_coord", "joint_valid", "rel_root_depth", "root_valid", "hand_type", "hand_type_valid")

    def __init__(
        self,
        sigma: float = 2.5,
        hm_shape: Sequence[int] = (64, 64, 64),
        fast: bool = True,
        weights: Sequence[float] = (1.0, 1.0, 1.0),
    ):
        """sigma: Gaussian sigma in voxels; hm_shape: (depth, height, width) expected of the heatmaps;
        fast: use the separable heatmap loss (same value, no dense target); weights: one per term of ``TERMS``."""
        super().__init__()
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if len(hm_shape) != 3:
            raise ValueError(f"hm_shape must be (depth, height, width), got {hm_shape}")
        self.sigma = float(sigma)
        self.hm_shape = tuple(int(s) for s in hm_shape)
        self.fast = bool(fast)
        self.weights = self.check_weights(weights)

    @classmethod
    def from_config(cls, cfg: Config) -> "InterNetLoss":
        """The loss of ``cfg``: its sigma, heatmap shape, ``fast_loss`` and ``loss_weights``."""
        return cls(sigma=cfg.sigma, hm_shape=tuple(cfg.output_hm_shape), fast=cfg.fast_loss, weights=cfg.loss_weights)

    @classmethod
    def check_weights(cls, weights: Sequence[float]) -> Dict[str, float]:
        """``{term: weight}`` from one finite non-negative weight per term of ``TERMS``, or a :class:`ConfigError`
        naming ``loss_weights`` and the terms."""
        try:
            values = [float(w) for w in weights]
        except (TypeError, ValueError):
            values = []
        if len(values) != len(cls.TERMS) or not all(0 <= w < math.inf for w in values):
            raise ConfigError(
                f"config parameter loss_weights={weights!r}: must be {len(cls.TERMS)} finite "
                f"non-negative weights, one per loss term ({', '.join(cls.TERMS)})"
            )
        return dict(zip(cls.TERMS, values))

    def total(self, losses: Mapping[str, Any]) -> Any:
        """The weighted sum of ``losses`` (tensors or numbers; names with or without the log's ``loss_`` prefix;
        a term not in ``TERMS`` counts once)."""
        return sum(
            self.weights.get(name[len("loss_") :] if name.startswith("loss_") else name, 1.0) * value
            for name, value in losses.items()
        )

    def forward(
        self,
        outputs: Mapping[str, torch.Tensor],
        batch: Mapping[str, torch.Tensor],
    ) -> Dict[str, torch.Tensor]:
        for k in self.REQUIRED_OUTPUTS:
            if k not in outputs:
                raise KeyError(f"model output dict has no {k!r} (keys: {sorted(outputs)})")
        if "hand_type_logits" not in outputs and "hand_type" not in outputs:
            raise KeyError(
                f"model output dict has neither 'hand_type_logits' nor 'hand_type' (keys: {sorted(outputs)})"
            )
        for k in self.REQUIRED_BATCH:
            if k not in batch:
                raise KeyError(f"batch has no {k!r} (keys: {sorted(batch)})")
        heatmap = outputs["joint_heatmap"]
        if tuple(heatmap.shape[2:]) != self.hm_shape:
            raise ValueError(f"joint_heatmap volume is {tuple(heatmap.shape[2:])}, expected hm_shape {self.hm_shape}")
        heatmap_loss = joint_heatmap_loss_fast if self.fast else joint_heatmap_loss_dense
        root_out = outputs["rel_root_depth"]
        root_gt = batch["rel_root_depth"].to(root_out.device).reshape(root_out.shape)
        root_valid = batch["root_valid"].to(root_out.device).reshape(root_out.shape)
        dev = heatmap.device
        hand_gt = batch["hand_type"].to(dev)
        hand_valid = batch["hand_type_valid"].to(dev).reshape(-1)
        if "hand_type_logits" in outputs:
            ht = hand_type_loss(outputs["hand_type_logits"], hand_gt, hand_valid)
        else:
            ht = hand_type_loss_from_probs(outputs["hand_type"], hand_gt, hand_valid)
        return {
            "joint_heatmap": heatmap_loss(
                heatmap, batch["joint_coord"].to(dev), batch["joint_valid"].to(dev), self.sigma
            ),
            "rel_root_depth": rel_root_depth_loss(root_out, root_gt, root_valid),
            "hand_type": ht,
        }
