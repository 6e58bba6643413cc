"""The one owner of the pinhole camera: world <-> camera <-> pixels, as InterHand2.6M defines them.

Conventions (InterHand2.6M): ``X_cam = R @ (X_world - campos)`` with ``camrot`` = R (world -> camera), then
``u = X/Z * fx + cx`` and ``v = Y/Z * fy + cy``; units are mm and pixels. All functions are vectorised over joints.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def world2cam(world_coord: np.ndarray, R: np.ndarray, T: np.ndarray) -> np.ndarray:
    """World (N,3) -> camera (N,3): ``R @ (X - T)`` with T the camera centre in world coordinates."""
    world_coord = np.asarray(world_coord)
    return (np.asarray(R) @ (world_coord - np.asarray(T).reshape(1, 3)).T).T


def cam2world(cam_coord: np.ndarray, R: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Camera (N,3) -> world (N,3), the inverse of :func:`world2cam`."""
    return (np.asarray(R).T @ np.asarray(cam_coord).T).T + np.asarray(T).reshape(1, 3)


def cam2pixel(cam_coord: np.ndarray, focal: Sequence[float], princpt: Sequence[float]) -> np.ndarray:
    """Camera (N,3) -> (u, v, Z) (N,3). The +1e-8 keeps a zero depth finite, as in the official code."""
    cam_coord = np.asarray(cam_coord)
    z = cam_coord[:, 2]
    u = cam_coord[:, 0] / (z + 1e-8) * focal[0] + princpt[0]
    v = cam_coord[:, 1] / (z + 1e-8) * focal[1] + princpt[1]
    return np.stack([u, v, z], axis=1)


def pixel2cam(pixel_coord: np.ndarray, focal: Sequence[float], princpt: Sequence[float]) -> np.ndarray:
    """(u, v, Z) (N,3) -> camera (N,3): back-projection at the given depth."""
    pixel_coord = np.asarray(pixel_coord)
    z = pixel_coord[:, 2]
    x = (pixel_coord[:, 0] - princpt[0]) / focal[0] * z
    y = (pixel_coord[:, 1] - princpt[1]) / focal[1] * z
    return np.stack([x, y, z], axis=1)


def check_rotation(R: np.ndarray, name: str = "camrot", tol: float = 1e-3) -> np.ndarray:
    """Return R as a 3x3 float array, or raise ValueError naming ``name`` if it is not a proper rotation."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3) or not np.all(np.isfinite(R)):
        raise ValueError(f"{name} must be a finite 3x3 matrix, got shape {R.shape}")
    det = float(np.linalg.det(R))
    if abs(det - 1.0) > tol or np.abs(R @ R.T - np.eye(3)).max() > tol:
        raise ValueError(f"{name} is not a rotation (det={det:.4g}, R R^T != I): a singular or scaled camera")
    return R
