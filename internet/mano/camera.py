"""From NeuralAnnot's world-frame MANO parameters to camera space, by the exact method and two alternatives.

InterHand2.6M's fits (``pose``, ``shape``, ``trans`` in metres) live in the capture's world frame, one per time step.
Cameras follow the project's convention ``X_cam = R (X_world - campos)`` in mm (:mod:`internet.geometry.camera`).

- :func:`mesh_in_camera` (method 1, exact and the one the project uses): skin in the world with ``trans``, convert
  to mm, then apply the extrinsics.
- :func:`camera_parameters` (method 2): MANO parameters whose skinning lands directly in camera space. MANO rotates
  about the shaped rest wrist ``J0``, not the origin, so the translation must be compensated by ``(R - I) J0``.
- :func:`naive_camera_parameters` rotates the root and the translation only: off by ``(R - I) J0`` (tens of mm on
  the real data; kept to test and to explain that error).
"""

from __future__ import annotations

from typing import Tuple

import torch

from internet.mano.layer import ManoLayer, ManoOutput, matrix_to_axis_angle, rodrigues


def _as(x, ref: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=ref.dtype, device=ref.device)


def world_to_camera_mm(points_mm: torch.Tensor, camrot, campos_mm) -> torch.Tensor:
    """(B, N, 3) world mm -> camera mm with ``camrot`` (3, 3) or (B, 3, 3) and ``campos`` (3,) or (B, 3)."""
    R, c = _as(camrot, points_mm), _as(campos_mm, points_mm)
    R = R.expand(points_mm.shape[0], 3, 3) if R.dim() == 2 else R
    c = c.reshape(-1, 1, 3)
    return torch.einsum("bij,bnj->bni", R, points_mm - c)


def mesh_in_camera(layer: ManoLayer, pose, shape, trans, camrot, campos_mm) -> Tuple[torch.Tensor, torch.Tensor]:
    """Method 1: vertices (B, V, 3) and InterHand2.6M joints (B, 21, 3) in camera mm from world-frame fits."""
    out = layer.mesh_mm(pose, shape, trans)
    return (
        world_to_camera_mm(out.vertices_mm, camrot, campos_mm),
        world_to_camera_mm(out.ih26m_mm, camrot, campos_mm),
    )


def rest_wrist(layer: ManoLayer, shape: torch.Tensor) -> torch.Tensor:
    """The shaped rest wrist ``J0`` (B, 3) metres: MANO's centre of the root rotation."""
    v = layer.v_template + torch.einsum("vcs,bs->bvc", layer.shapedirs, shape.to(layer.v_template.dtype))
    return torch.einsum("v,bvc->bc", layer.J_regressor[0], v)


def _extrinsics(pose, camrot, campos_mm):
    R = _as(camrot, pose)
    R = R.expand(pose.shape[0], 3, 3) if R.dim() == 2 else R
    t = -torch.einsum("bij,bj->bi", R, _as(campos_mm, pose).reshape(-1, 3).expand(pose.shape[0], 3)) / 1000.0
    root = matrix_to_axis_angle(R @ rodrigues(pose[:, :3]))
    return R, t, torch.cat([root, pose[:, 3:]], dim=1)


def camera_parameters(layer: ManoLayer, pose, shape, trans, camrot, campos_mm):
    """Method 2: ``(pose', trans')`` in camera space (metres): ``root' = R root`` and
    ``trans' = R trans + t + (R - I) J0`` with ``t = -R campos`` and ``J0`` the exact shaped rest wrist."""
    R, t, pose_c = _extrinsics(pose, camrot, campos_mm)
    J0 = rest_wrist(layer, shape)
    trans_c = torch.einsum("bij,bj->bi", R, trans) + t + torch.einsum("bij,bj->bi", R, J0) - J0
    return pose_c, trans_c


def naive_camera_parameters(layer: ManoLayer, pose, shape, trans, camrot, campos_mm):
    """The common mistake: ``root' = R root``, ``trans' = R trans + t`` (off by ``(R - I) J0``)."""
    R, t, pose_c = _extrinsics(pose, camrot, campos_mm)
    return pose_c, torch.einsum("bij,bj->bi", R, trans) + t


def skin_camera(layer: ManoLayer, pose_c, shape, trans_c) -> ManoOutput:
    """Skin camera-space parameters (method 2 or the naive one)."""
    return layer.mesh_mm(pose_c, shape, trans_c)
