"""internet.geometry.camera, the one owner of the pinhole camera: the vectorised forms equal the official per-point
formulas for one camera, one camera per sample and one per point, and root alignment is each hand minus its root."""

from __future__ import annotations

import numpy as np
import pytest

from internet.geometry.camera import (
    at_root_depth,
    cam2pixel,
    cam2world,
    pixel2cam,
    root_aligned_errors,
    root_relative,
    subtract_roots,
    world2cam,
)
from internet.skeleton import INTERHAND, RHD


def _cameras(n: int, rng: np.random.Generator, dtype=np.float32) -> tuple:
    R = np.stack([np.linalg.qr(rng.normal(size=(3, 3)))[0] for _ in range(n)])
    R *= np.sign(np.linalg.det(R))[:, None, None]  # proper rotations
    T = rng.normal(scale=500.0, size=(n, 3))
    f = rng.uniform(1000.0, 1500.0, size=(n, 2))
    c = rng.uniform(200.0, 300.0, size=(n, 2))
    return tuple(a.astype(dtype) for a in (R, T, f, c))


def _official_world2cam(world, R, T):  # InterHand2.6M's utils: one camera, (J, 3)
    return np.dot(R, (world - T.reshape(1, 3)).transpose(1, 0)).transpose(1, 0)


def _official_cam2pixel(cam, f, c):
    x = cam[:, 0] / (cam[:, 2] + 1e-8) * f[0] + c[0]
    y = cam[:, 1] / (cam[:, 2] + 1e-8) * f[1] + c[1]
    return np.stack([x, y, cam[:, 2]], 1)


def _official_pixel2cam(pix, f, c):
    x = (pix[:, 0] - c[0]) / f[0] * pix[:, 2]
    y = (pix[:, 1] - c[1]) / f[1] * pix[:, 2]
    return np.stack([x, y, pix[:, 2]], 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_camera_per_sample_equals_the_official_formula_sample_by_sample(dtype):
    rng = np.random.default_rng(0)
    R, T, f, c = _cameras(6, rng, dtype)
    world = (rng.normal(scale=100.0, size=(6, 42, 3)) + np.array([0.0, 0.0, 3000.0])).astype(dtype)
    world += T[:, None, :]  # in front of every camera after the rotation is not needed: depths stay far from 0
    cam = world2cam(world, R, T)
    pix = cam2pixel(cam, f, c)
    assert cam.dtype == pix.dtype == dtype and cam.shape == pix.shape == (6, 42, 3)
    tol = dict(rtol=1e-5, atol=1e-3) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-9)
    for i in range(6):
        expected_cam = _official_world2cam(world[i], R[i], T[i])
        np.testing.assert_allclose(cam[i], expected_cam, **tol)
        np.testing.assert_array_equal(pix[i], cam2pixel(cam[i], f[i], c[i]))  # per sample = one camera, exactly
        np.testing.assert_allclose(pix[i], _official_cam2pixel(cam[i], f[i], c[i]), **tol)
        np.testing.assert_allclose(pixel2cam(pix[i], f[i], c[i]), _official_pixel2cam(pix[i], f[i], c[i]), **tol)
    np.testing.assert_allclose(cam2world(cam, R, T), world, rtol=1e-5, atol=1e-2 if dtype == np.float32 else 1e-8)
    np.testing.assert_allclose(pixel2cam(pix, f, c), cam, rtol=1e-5, atol=1e-2 if dtype == np.float32 else 1e-8)


def test_one_camera_per_point():
    rng = np.random.default_rng(1)
    R, T, f, c = _cameras(5, rng, np.float64)
    points = rng.normal(scale=100.0, size=(5, 3)) + np.array([0.0, 0.0, 2000.0])
    cam = world2cam(points, R, T)
    pix = cam2pixel(cam, f, c)
    for i in range(5):
        np.testing.assert_allclose(cam[i], _official_world2cam(points[i : i + 1], R[i], T[i])[0], rtol=1e-12)
        np.testing.assert_allclose(pix[i], _official_cam2pixel(cam[i : i + 1], f[i], c[i])[0], rtol=1e-12)
    np.testing.assert_allclose(pixel2cam(pix, f, c), cam, rtol=1e-9)


@pytest.mark.parametrize("skeleton", [INTERHAND, RHD], ids=["interhand", "rhd"])
def test_root_alignment_is_each_hand_minus_its_root(skeleton):
    rng = np.random.default_rng(2)
    joints = rng.normal(size=(4, 42, 3))
    rel = root_relative(joints, skeleton)
    for hand in ("right", "left"):
        jt, root = skeleton.joint_type[hand], skeleton.root_idx[hand]
        np.testing.assert_array_equal(rel[:, jt], joints[:, jt] - joints[:, root : root + 1])
    assert np.array_equal(joints, joints.copy()) and rel is not joints  # a copy
    inplace = joints.copy()
    assert subtract_roots(inplace, skeleton) is inplace
    np.testing.assert_array_equal(inplace, rel)
    gt = rng.normal(size=(4, 42, 3))
    expected = np.linalg.norm(rel - root_relative(gt, skeleton), axis=-1)
    np.testing.assert_allclose(root_aligned_errors(joints, gt, skeleton), expected, rtol=1e-12, atol=1e-12)
    shifted = joints.copy()
    for hand in ("right", "left"):  # moving a whole hand changes no root-aligned error
        shifted[:, skeleton.joint_type[hand]] += rng.normal(size=(4, 1, 3))
    np.testing.assert_allclose(root_aligned_errors(shifted, gt, skeleton), expected, rtol=1e-9, atol=1e-9)


def test_at_root_depth_moves_joints_along_their_rays():
    rng = np.random.default_rng(3)
    cam = rng.normal(0.0, 40.0, size=(42, 3)) + [20.0, -10.0, 700.0]
    focal, princpt = np.array([1200.0, 1150.0]), np.array([160.0, 240.0])
    root = INTERHAND.root_idx["right"]
    moved = at_root_depth(cam, root, 450.0, focal, princpt)
    assert moved[root, 2] == pytest.approx(450.0)
    # the same image, the same depths relative to the root
    np.testing.assert_allclose(cam2pixel(moved, focal, princpt)[:, :2], cam2pixel(cam, focal, princpt)[:, :2])
    np.testing.assert_allclose(moved[:, 2] - moved[root, 2], cam[:, 2] - cam[root, 2])
    with pytest.raises(ValueError, match="root_depth"):
        at_root_depth(cam, root, float("nan"), focal, princpt)
