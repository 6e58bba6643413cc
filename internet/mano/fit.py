"""Fitting MANO to 21 joints of a hand (e.g. the network's prediction): pose and shape with priors, batched, on the
layer's device. The mesh is a fit to the joints, not network output: label it "MANO fit to the prediction".

Each hand's parameters are independent (the loss is a sum over hands), so a batch of samples and frames fits in
one go. Initialisation: translation from the wrist, root rotation from the palm (Kabsch between the mean hand's
wrist and finger bases and the targets'). Then Adam on the root and translation, and then on everything, with
quadratic priors pulling ``hand_pose`` towards ``hands_mean`` and ``betas`` towards the mean shape.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import torch

from internet.mano.layer import ManoLayer, matrix_to_axis_angle

PALM = (20, 7, 11, 15, 19)  # wrist and finger bases in InterHand2.6M's order of one hand


@dataclass
class FitResult:
    """``pose`` (B, 48) [root, hand_pose offset from hands_mean], ``shape`` (B, 10), ``trans`` (B, 3) metres (the
    targets' frame); ``vertices`` (B, V, 3) and ``joints`` (B, 21, 3) in mm; ``error_mm`` (B,) mean distance to the
    valid target joints; ``seconds`` spent."""

    pose: torch.Tensor
    shape: torch.Tensor
    trans: torch.Tensor
    vertices: torch.Tensor
    joints: torch.Tensor
    error_mm: torch.Tensor
    seconds: float


def _kabsch(src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor):
    """Weighted rigid alignment: (B, P, 3) points, (B, P) weights -> rotations R (B, 3, 3) and translations t (B, 3)
    with ``R src + t ~ dst``."""
    wn = (w / w.sum(1, keepdim=True).clamp_min(1e-9))[..., None]
    cs, cd = (src * wn).sum(1, keepdim=True), (dst * wn).sum(1, keepdim=True)
    U, _, Vh = torch.linalg.svd(((src - cs) * wn).transpose(1, 2) @ (dst - cd))
    V = Vh.transpose(1, 2)
    det = torch.linalg.det(V @ U.transpose(1, 2))
    D = torch.diag_embed(torch.stack([torch.ones_like(det), torch.ones_like(det), det], -1))
    R = V @ D @ U.transpose(1, 2)
    return R, cd[:, 0] - (R @ cs[:, 0, :, None])[..., 0]


def fit_to_joints(
    layer: ManoLayer,
    joints_mm: torch.Tensor,
    valid: Optional[torch.Tensor] = None,
    iters: int = 150,
    lr: float = 0.05,
    pose_prior: float = 0.02,
    shape_prior: float = 0.05,
) -> FitResult:
    """Fit ``layer`` to target joints (B, 21, 3) mm in InterHand2.6M's order of one hand (camera or world frame);
    ``valid`` (B, 21) masks joints out of the loss. Returns a :class:`FitResult` (error on the valid joints)."""
    t0 = time.perf_counter()
    dev, dt = layer.v_template.device, layer.v_template.dtype
    target = torch.as_tensor(joints_mm, dtype=dt, device=dev) / 1000.0
    B = target.shape[0]
    w = torch.ones(B, 21, dtype=dt, device=dev) if valid is None else torch.as_tensor(valid, device=dev).to(dt)
    target = torch.nan_to_num(target) * (w[..., None] > 0)
    with torch.no_grad():
        rest = layer(betas=torch.zeros(1, layer.num_betas, dtype=dt, device=dev))
        rest_j = rest.ih26m.expand(B, -1, -1)
        # Rigid start: the palm's joints where at least 3 are valid, else all valid joints.
        palm_w = torch.zeros_like(w)
        palm_w[:, list(PALM)] = w[:, list(PALM)]
        wk = torch.where((palm_w.sum(1, keepdim=True) >= 3), palm_w, w)
        R, t = _kabsch(rest_j, target, wk)
        root = matrix_to_axis_angle(R)
        J0 = rest.joints[:, 0].expand(B, 3)
        trans = t - J0 + (R @ J0[..., None])[..., 0]  # MANO rotates about J0: R (x - J0) + J0 + trans = R x + t
    params = {
        "root": root.clone().requires_grad_(),
        "trans": trans.clone().requires_grad_(),
        "hand_pose": torch.zeros(B, layer.num_hand_pose, dtype=dt, device=dev, requires_grad=True),
        "betas": torch.zeros(B, layer.num_betas, dtype=dt, device=dev, requires_grad=True),
    }

    def loss_fn():
        out = layer(params["root"], params["hand_pose"], params["betas"], params["trans"], joints_only=True)
        d2 = ((out.ih26m - target) * 100.0).pow(2).sum(-1)  # cm^2
        data = (d2 * w).sum(1) / w.sum(1).clamp_min(1)
        prior = pose_prior * params["hand_pose"].pow(2).sum(1) + shape_prior * params["betas"].pow(2).sum(1)
        return (data + prior).sum()

    stages = [(["root", "trans"], max(iters // 5, 1)), (list(params), iters)]
    for names, n in stages:
        opt = torch.optim.Adam([params[k] for k in names], lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, n, eta_min=lr * 0.02)
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            loss_fn().backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        out = layer(params["root"], params["hand_pose"], params["betas"], params["trans"])
        err = ((out.ih26m - target).norm(dim=-1) * w).sum(1) / w.sum(1).clamp_min(1) * 1000.0
    pose = torch.cat([params["root"], params["hand_pose"]], 1).detach()
    return FitResult(
        pose=pose,
        shape=params["betas"].detach(),
        trans=params["trans"].detach(),
        vertices=out.vertices_mm,
        joints=out.ih26m_mm,
        error_mm=err,
        seconds=time.perf_counter() - t0,
    )
