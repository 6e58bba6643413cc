"""MANO in plain torch: linear blend skinning, batched, differentiable, on any device.

Written from the model's definition (Romero et al. 2017): shape blend, joints regressed from the shaped rest mesh,
pose blend from the rotations' ``R - I``, the rigid kinematic chain, and skinning. Inputs are MANO's units (metres,
axis-angle radians); :meth:`ManoLayer.forward` returns vertices and joints in metres and, in ``mm``, the same in mm
with InterHand2.6M's 21 joints of one hand (thumb4..1, ..., pinky4..1, wrist) in the data set's order.

Official usage of the InterHand2.6M fits: ``use_pca=False``, ``flat_hand_mean=False``: ``hand_pose`` (45) is an
offset from the model's ``hands_mean``, so the full pose is ``[global_orient, hand_pose + hands_mean]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from internet.mano.loader import ManoModel


def rodrigues(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3): ``I + A K + B K^2`` with ``K`` the cross-product matrix
    of ``aa``, ``A = sin(t)/t``, ``B = (1 - cos t)/t^2``, their Taylor series near zero (exact and smooth there)."""
    sq = (aa * aa).sum(-1)[..., None, None]
    small = sq < 1e-8
    safe = torch.where(small, torch.ones_like(sq), sq)
    t = torch.sqrt(safe)
    A = torch.where(small, 1 - sq / 6 + sq * sq / 120, torch.sin(t) / t)
    B = torch.where(small, 0.5 - sq / 24 + sq * sq / 720, (1 - torch.cos(t)) / safe)
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(K)
    return eye + A * K + B * (K[..., :, :, None] * K[..., None, :, :]).sum(-2)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> axis-angle (..., 3) (angles in [0, pi])."""
    q = _matrix_to_quaternion(R)
    w, v = q[..., :1], q[..., 1:]
    n = v.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(n, w.abs())
    scale = torch.where(n > 1e-8, angle / n.clamp_min(1e-12), torch.full_like(n, 2.0))
    return v * torch.sign(w + (w == 0).to(w.dtype)) * scale


def _matrix_to_quaternion(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> unit quaternions (..., 4) as (w, x, y, z), from the best-conditioned of four formulas."""
    r00, r01, r02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    r10, r11, r12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    r20, r21, r22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    t = torch.stack([1 + r00 + r11 + r22, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22], -1)
    s21, s02, s10 = r21 - r12, r02 - r20, r10 - r01
    a01, a02, a12 = r01 + r10, r02 + r20, r12 + r21
    cand = torch.stack(
        [
            torch.stack([t[..., 0], s21, s02, s10], -1),
            torch.stack([s21, t[..., 1], a01, a02], -1),
            torch.stack([s02, a01, t[..., 2], a12], -1),
            torch.stack([s10, a02, a12, t[..., 3]], -1),
        ],
        -2,
    )  # row k = 4 q_k q
    k = t.argmax(-1)
    row = torch.gather(cand, -2, k[..., None, None].expand(*k.shape, 1, 4)).squeeze(-2)
    return row / row.norm(dim=-1, keepdim=True)


@dataclass
class ManoOutput:
    """``vertices`` (B, V, 3) and ``joints`` (B, 16, 3) MANO joints in metres; ``ih26m`` (B, 21, 3) the data set's
    joints in metres; ``root`` (B, 3) the posed wrist (= the shaped rest wrist J0 + trans); :attr:`vertices_mm` and
    :attr:`ih26m_mm` in mm."""

    vertices: torch.Tensor
    joints: torch.Tensor
    ih26m: torch.Tensor
    rest_joints: torch.Tensor

    @property
    def vertices_mm(self) -> torch.Tensor:
        return self.vertices * 1000.0

    @property
    def ih26m_mm(self) -> torch.Tensor:
        return self.ih26m * 1000.0


class ManoLayer(nn.Module):
    """One hand's MANO model as a torch module (buffers move with ``.to(device)``).

    ``use_pca``: ``hand_pose`` is ``num_pca_comps`` coefficients of ``hands_components``; ``flat_hand_mean``: the
    hand pose is absolute (True) or an offset from ``hands_mean`` (False, MANO's and InterHand2.6M's default).
    """

    def __init__(
        self,
        model: ManoModel,
        use_pca: bool = False,
        num_pca_comps: int = 6,
        flat_hand_mean: bool = False,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.side, self.synthetic = model.side, model.synthetic
        self.use_pca, self.flat_hand_mean = use_pca, flat_hand_mean
        J = model.num_joints
        parents = [int(p) for p in model.parents]
        if parents[0] != -1 or any(not 0 <= p < i for i, p in enumerate(parents) if i):
            raise ValueError(f"parents must list each joint after its parent with joint 0 the root, got {parents}")
        self.parents = parents
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)  # noqa: E731
        self.register_buffer("v_template", t(model.v_template))
        self.register_buffer("shapedirs", t(model.shapedirs))
        self.register_buffer("posedirs", t(model.posedirs.reshape(-1, model.posedirs.shape[-1]).T))  # (P, V*3)
        self.register_buffer("J_regressor", t(model.J_regressor))
        self.register_buffer("ih26m_regressor", t(model.ih26m_regressor()))
        support = np.nonzero(np.abs(model.ih26m_regressor()).sum(0) > 0)[0]
        self.register_buffer("regressor_support", torch.as_tensor(support, dtype=torch.int64))
        self.register_buffer("J_template", t(model.J_regressor @ model.v_template))
        self.register_buffer("J_shapedirs", t(np.einsum("jv,vcs->jcs", model.J_regressor, model.shapedirs)))
        self.register_buffer("weights", t(model.weights))
        self.register_buffer("faces", torch.as_tensor(model.faces, dtype=torch.int64))
        self.register_buffer("hands_mean", t(model.hands_mean if not flat_hand_mean else np.zeros(3 * (J - 1))))
        if use_pca:
            if model.hands_components is None:
                raise ValueError(f"use_pca=True but {model.path or 'the model'} has no 'hands_components'")
            if not 1 <= num_pca_comps <= model.hands_components.shape[0]:
                raise ValueError(f"num_pca_comps must be in 1..{model.hands_components.shape[0]}, got {num_pca_comps}")
            self.register_buffer("hands_components", t(model.hands_components[:num_pca_comps]))
        self.num_betas = int(model.shapedirs.shape[-1])
        self.num_hand_pose = num_pca_comps if use_pca else 3 * (J - 1)

    def full_pose(self, global_orient: torch.Tensor, hand_pose: torch.Tensor) -> torch.Tensor:
        """(B, 3 J) axis-angle: ``[global_orient, hand_pose (+ hands_mean)]`` with PCA expanded."""
        if self.use_pca:
            hand_pose = hand_pose @ self.hands_components
        return torch.cat([global_orient, hand_pose + self.hands_mean], dim=-1)

    def forward(
        self,
        global_orient: Optional[torch.Tensor] = None,
        hand_pose: Optional[torch.Tensor] = None,
        betas: Optional[torch.Tensor] = None,
        transl: Optional[torch.Tensor] = None,
        joints_only: bool = False,
    ) -> ManoOutput:
        """Every input (B, ...) is optional (zeros); metres and radians in, :class:`ManoOutput` out.
        ``joints_only``: faster, for fitting (only the vertices the joints need are skinned)."""
        ref = next(x for x in (global_orient, hand_pose, betas, transl, self.v_template) if x is not None)
        B = ref.shape[0] if ref is not self.v_template else 1
        dt, dev = self.v_template.dtype, self.v_template.device
        z = lambda n: torch.zeros(B, n, dtype=dt, device=dev)  # noqa: E731
        global_orient = z(3) if global_orient is None else global_orient.to(dt)
        hand_pose = z(self.num_hand_pose) if hand_pose is None else hand_pose.to(dt)
        betas = z(self.num_betas) if betas is None else betas.to(dt)
        transl = z(3) if transl is None else transl.to(dt)
        return lbs(self, self.full_pose(global_orient, hand_pose), betas, transl, joints_only)

    def mesh_mm(self, pose: torch.Tensor, shape: torch.Tensor, trans: torch.Tensor) -> ManoOutput:
        """InterHand2.6M NeuralAnnot parameters: ``pose`` (B, 48) = [root, hand_pose], ``shape`` (B, 10), ``trans``
        (B, 3) metres -> the output (use ``.vertices_mm`` / ``.ih26m_mm``)."""
        return self(pose[:, :3], pose[:, 3:], shape, trans)


def lbs(
    layer: ManoLayer, full_pose: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor, joints_only: bool = False
) -> ManoOutput:
    """Linear blend skinning of ``layer``'s model: pose (B, 3 J), betas (B, S), transl (B, 3) -> :class:`ManoOutput`.
    ``joints_only``: skin only the vertices the 21-joint regressor reads (``vertices`` is then that subset)."""
    B = full_pose.shape[0]
    nj = len(layer.parents)
    vt, sd, pd, wts, reg = layer.v_template, layer.shapedirs, layer.posedirs, layer.weights, layer.ih26m_regressor
    if joints_only:
        vidx = layer.regressor_support
        vt, sd, wts, reg = vt[vidx], sd[vidx], wts[vidx], reg[:, vidx]
        pd = pd.view(pd.shape[0], -1, 3)[:, vidx].reshape(pd.shape[0], -1)
        J = layer.J_template + torch.einsum("jcs,bs->bjc", layer.J_shapedirs, betas)
    v_shaped = vt + torch.einsum("vcs,bs->bvc", sd, betas)
    if not joints_only:
        J = torch.einsum("jv,bvc->bjc", layer.J_regressor, v_shaped)
    R = rodrigues(full_pose.reshape(B, nj, 3))
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    v_posed = v_shaped + ((R[:, 1:] - eye).reshape(B, -1) @ pd).reshape(B, -1, 3)
    # Rigid chain: each joint's world transform, root first.
    rel = J.clone()
    rel[:, 1:] = J[:, 1:] - J[:, layer.parents[1:]]
    rots, trans = [R[:, 0]], [rel[:, 0]]
    for i in range(1, nj):  # 3x3 products written out: faster than bmm dispatches for small matrices
        p = layer.parents[i]
        rots.append((rots[p][:, :, :, None] * R[:, i, None, :, :]).sum(2))
        trans.append((rots[p] * rel[:, i, None, :]).sum(-1) + trans[p])
    Rg, tg = torch.stack(rots, 1), torch.stack(trans, 1)  # (B, J, 3, 3), (B, J, 3): posed joints = tg
    t_skin = tg - (Rg * J[:, :, None, :]).sum(-1)  # transform of a rest point: Rg x + (tg - Rg J)
    T = torch.matmul(wts, torch.cat([Rg.reshape(B, nj, 9), t_skin], -1))  # (B, V, 12) blended transforms
    verts = (T[..., :9].reshape(B, -1, 3, 3) * v_posed[:, :, None, :]).sum(-1) + T[..., 9:] + transl[:, None]
    ih = torch.einsum("jv,bvc->bjc", reg, verts)
    return ManoOutput(vertices=verts, joints=tg + transl[:, None], ih26m=ih, rest_joints=J)
