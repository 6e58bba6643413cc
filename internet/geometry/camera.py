"""The one owner of the pinhole camera: world <-> camera <-> pixels and root alignment, as InterHand2.6M defines them.

Conventions (InterHand2.6M): ``X_cam = R @ (X_world - campos)`` with ``camrot`` = R (world -> camera), then
``u = X/Z * fx + cx`` and ``v = Y/Z * fy + cy``; units are mm and pixels. Every function is vectorised over leading
axes: points are (..., 3); a camera parameter is either one camera's ((3, 3), (3,), (2,)) or one per point
(``points.shape[:-1]`` + its own shape) or one per sample of (..., J, 3) joints (``points.shape[:-2]`` + its own
shape). The arithmetic is the official code's, in its order, so float32 inputs give its float32 results.
"""

from __future__ import annotations

import numpy as np

from internet.skeleton import INTERHAND, Skeleton


def _per_sample(param, points: np.ndarray, ndim: int) -> np.ndarray:
    """``param`` broadcastable against ``points``' leading axes: one camera, one per point, or one per sample of
    (..., J, 3) joints (a joint axis is inserted)."""
    param = np.asarray(param)
    lead = param.shape[: param.ndim - ndim]
    if lead and lead != points.shape[:-1]:
        param = np.expand_dims(param, axis=-ndim - 1)
    return param


def _rotate(points: np.ndarray, R) -> np.ndarray:
    """``R @ p`` for every point: one matrix product for one camera or one per sample (broadcast over the
    points' sample axes), an einsum for one per point."""
    R = np.asarray(R)
    if R.ndim == 2:
        return points @ R.T
    if R.shape[:-2] == points.shape[:-1]:  # one camera per point
        return np.einsum("...ij,...j->...i", R, points)
    return np.matmul(points, np.swapaxes(R, -1, -2))  # one camera per sample of (..., J, 3) joints


def world2cam(world_coord, R, T) -> np.ndarray:
    """World (..., 3) -> camera (..., 3): ``R @ (X - T)`` with T the camera centre in world coordinates."""
    world_coord = np.asarray(world_coord)
    return _rotate(world_coord - _per_sample(T, world_coord, 1), R)


def cam2world(cam_coord, R, T) -> np.ndarray:
    """Camera (..., 3) -> world (..., 3), the inverse of :func:`world2cam`."""
    cam_coord = np.asarray(cam_coord)
    return _rotate(cam_coord, np.swapaxes(np.asarray(R), -1, -2)) + _per_sample(T, cam_coord, 1)


def cam2pixel(cam_coord, focal, princpt) -> np.ndarray:
    """Camera (..., 3) -> (u, v, Z) (..., 3). The +1e-8 keeps a zero depth finite, as in the official code."""
    cam_coord = np.asarray(cam_coord)
    f, c = _per_sample(focal, cam_coord, 1), _per_sample(princpt, cam_coord, 1)
    z = cam_coord[..., 2] + 1e-8
    out = np.empty(cam_coord.shape, dtype=np.result_type(cam_coord, f, c))
    out[..., 0] = cam_coord[..., 0] / z * f[..., 0] + c[..., 0]
    out[..., 1] = cam_coord[..., 1] / z * f[..., 1] + c[..., 1]
    out[..., 2] = cam_coord[..., 2]
    return out


def pixel2cam(pixel_coord, focal, princpt) -> np.ndarray:
    """(u, v, Z) (..., 3) -> camera (..., 3): back-projection at the given depth."""
    pixel_coord = np.asarray(pixel_coord)
    f, c = _per_sample(focal, pixel_coord, 1), _per_sample(princpt, pixel_coord, 1)
    # one coordinate at a time: faster than strided (..., :2) arithmetic and a concatenation (the evaluation calls
    # this on every test joint)
    z = pixel_coord[..., 2]
    out = np.empty(pixel_coord.shape, dtype=np.result_type(pixel_coord, f, c))
    out[..., 0] = (pixel_coord[..., 0] - c[..., 0]) / f[..., 0] * z
    out[..., 1] = (pixel_coord[..., 1] - c[..., 1]) / f[..., 1] * z
    out[..., 2] = z
    return out


def at_root_depth(cam_coord, root: int, root_depth: float, focal, princpt) -> np.ndarray:
    """(J, 3) camera joints moved along their own rays so that joint ``root`` lies at depth ``root_depth``: every
    depth shifts by the same offset and each joint is back-projected through its own pixel, so the joints' image is
    unchanged. This is how the official evaluation places a prediction with ``trans_test='gt'`` (the ground truth's
    root depth, the predicted root-relative depths and 2D joints); a float64 copy."""
    cam_coord = np.asarray(cam_coord, dtype=np.float64)
    if not np.isfinite(root_depth) or root_depth <= 0:
        raise ValueError(f"root_depth must be a positive depth in mm, got {root_depth}")
    uvz = cam2pixel(cam_coord, focal, princpt)
    uvz[:, 2] += root_depth - cam_coord[root, 2]
    return pixel2cam(uvz, focal, princpt)


def check_rotation(R: np.ndarray, name: str = "camrot", tol: float = 1e-3) -> np.ndarray:
    """Return R as a 3x3 float array, or raise ValueError naming ``name`` if it is not a proper rotation."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3) or not np.all(np.isfinite(R)):
        raise ValueError(f"{name} must be a finite 3x3 matrix, got shape {R.shape}")
    det = float(np.linalg.det(R))
    if abs(det - 1.0) > tol or np.abs(R @ R.T - np.eye(3)).max() > tol:
        raise ValueError(f"{name} is not a rotation (det={det:.4g}, R R^T != I): a singular or scaled camera")
    return R


# ---------------------------------------------------------------------------------------------------- root alignment
def hand_blocks(skeleton: Skeleton = INTERHAND) -> list:
    """(hand, its joints as a slice when contiguous else an index array, its root index) for each hand."""
    out = []
    for hand in ("right", "left"):
        block = np.asarray(skeleton.joint_type[hand])
        contiguous = np.array_equal(block, np.arange(block[0], block[0] + len(block)))
        sel = (
            slice(int(block[0]), int(block[0]) + len(block)) if contiguous else block
        )  # a slice: faster than an index array
        out.append((hand, sel, int(skeleton.root_idx[hand])))
    return out


def subtract_roots(joints: np.ndarray, skeleton: Skeleton = INTERHAND) -> np.ndarray:
    """Each hand of (..., J, C) ``joints`` minus its own root joint, in place; returns ``joints``."""
    for _, sel, root in hand_blocks(skeleton):
        joints[..., sel, :] -= joints[..., root : root + 1, :].copy()
    return joints


def root_relative(joints, skeleton: Skeleton = INTERHAND) -> np.ndarray:
    """(..., J, 3) joints with each hand relative to its own root joint (a float64 copy)."""
    return subtract_roots(np.array(joints, dtype=np.float64, copy=True), skeleton)


def root_aligned_errors(pred_cam, gt_cam, skeleton: Skeleton = INTERHAND) -> np.ndarray:
    """(..., J) distances (mm) between prediction and ground truth after aligning each hand at its own root:
    ``|(pred - pred_root) - (gt - gt_root)|``."""
    # regrouped: one difference, then each hand minus its root's difference
    diff = subtract_roots(np.asarray(pred_cam, dtype=np.float64) - np.asarray(gt_cam, dtype=np.float64), skeleton)
    return np.sqrt(np.einsum("...jk,...jk->...j", diff, diff))
