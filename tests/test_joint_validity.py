"""The joint and root validity rules of a training sample, on hand-made joints (no fixture): a joint outside the
crop, or outside the depth range around its own hand's root, is invalid; the relative root depth is valid only with
both hands present, both roots valid and the difference inside ``bbox_3d_size_root``."""

from __future__ import annotations

import numpy as np
import pytest

from internet.config import Config
from internet.data.augment import AugParams, make_sample
from internet.skeleton import INTERHAND as S

CFG = Config(
    input_img_shape=(64, 64),
    output_hm_shape=(16, 16, 16),
    output_root_hm_shape=16,
    bbox_3d_size=400.0,
    bbox_3d_size_root=300.0,
)
R_ROOT, L_ROOT = S.root_idx["right"], S.root_idx["left"]  # 20, 41
R_DEPTH, L_DEPTH = 1000.0, 1100.0  # mm


def hands(box=(0.0, 0.0, 64.0, 64.0)) -> np.ndarray:
    """(42, 3) (u, v, z): every joint at the box centre, right hand at R_DEPTH, left hand at L_DEPTH."""
    x, y, w, h = box
    coord = np.tile([x + w / 2, y + h / 2, 0.0], (42, 1))
    coord[S.joint_type["right"], 2] = R_DEPTH
    coord[S.joint_type["left"], 2] = L_DEPTH
    return coord


def sample(coord: np.ndarray, valid=None, hand_type=(1.0, 1.0), box=(0.0, 0.0, 64.0, 64.0), image_side: int = 64):
    """make_sample without augmentation: a square box of side s maps to the 64x64 crop with scale 64/s."""
    img = np.zeros((image_side, image_side, 3), np.uint8)
    valid = np.ones(42, np.float32) if valid is None else np.asarray(valid, np.float32)
    return make_sample(
        img, np.array(box, np.float32), coord, valid, np.array(hand_type, np.float32), AugParams.identity(), S, CFG
    )


def test_all_joints_inside_crop_and_depth_range_stay_valid():
    s = sample(hands())
    assert s["joint_valid"].tolist() == [1.0] * 42 and s["root_valid"].tolist() == [1.0]
    # the relative root depth in bins: (100 / 150 + 1) / 2 * 16
    assert s["rel_root_depth"][0] == pytest.approx((100 / 150 + 1) / 2 * 16, rel=1e-6)


@pytest.mark.parametrize(
    "u, v, inside",
    [
        (-0.25, 32, False),
        (0.25, 32, True),
        (63.75, 32, True),
        (64.25, 32, False),
        (32, -0.25, False),
        (32, 0.25, True),
        (32, 63.75, True),
        (32, 64.25, False),
    ],
)
def test_a_joint_outside_the_crop_is_invalid(u, v, inside):
    coord = hands()
    coord[3, :2] = (u, v)  # a right fingertip
    coord[25, :2] = (u, v)  # a left one
    s = sample(coord)
    expected = np.ones(42)
    expected[[3, 25]] = float(inside)
    np.testing.assert_array_equal(s["joint_valid"], expected)
    assert s["root_valid"][0] == 1.0  # the roots did not move


def test_the_crop_not_the_image_decides():
    """A box of side 32 at (100, 50) in a 200x200 image: crop x = (u - 100) * 2. A joint 0.2 px right of the box is
    inside the image but outside the crop; one 0.1 px inside the box edge is kept."""
    box = (100.0, 50.0, 32.0, 32.0)
    coord = hands(box)
    coord[3, 0] = 132.2  # crop x 64.4
    coord[4, 0] = 131.9  # crop x 63.8
    coord[5, 1] = 49.8  # crop y -0.4
    s = sample(coord, box=box, image_side=200)
    invalid = np.flatnonzero(s["joint_valid"] == 0).tolist()
    assert invalid == [3, 5]
    assert s["joint_coord"][4, 0] == pytest.approx(63.8 / 64 * 16, abs=1e-4)  # x in heatmap units


def test_a_root_outside_the_crop_invalidates_the_root_depth_but_not_its_hand():
    coord = hands()
    coord[R_ROOT, 0] = -3.0
    s = sample(coord)
    assert np.flatnonzero(s["joint_valid"] == 0).tolist() == [R_ROOT]  # the official rule: only that joint
    assert s["root_valid"][0] == 0.0


@pytest.mark.parametrize("offset_mm, inside", [(199.0, True), (201.0, False), (-199.0, True), (-201.0, False)])
def test_a_joint_outside_the_depth_range_of_its_own_root_is_invalid(offset_mm, inside):
    """bbox_3d_size 400: a joint may lie within +-200 mm of its own hand's root (depth bins [0, 16))."""
    coord = hands()
    coord[5, 2] = R_DEPTH + offset_mm  # right hand: relative to the right root
    coord[30, 2] = L_DEPTH + offset_mm  # left hand: relative to the left root, 100 mm deeper
    s = sample(coord)
    expected = np.ones(42)
    expected[[5, 30]] = float(inside)
    np.testing.assert_array_equal(s["joint_valid"], expected)
    for j in (5, 30):
        assert s["joint_coord"][j, 2] == pytest.approx((offset_mm / 200 + 1) / 2 * 16, abs=1e-4)


def test_the_depth_range_is_measured_from_the_joints_own_hand():
    """A left joint 150 mm behind the left root is 250 mm behind the right root: valid (its own root counts)."""
    coord = hands()
    coord[30, 2] = L_DEPTH + 150.0
    coord[5, 2] = R_DEPTH - 150.0  # and a right joint 250 mm in front of the left root
    assert sample(coord)["joint_valid"].tolist() == [1.0] * 42


@pytest.mark.parametrize(
    "left_root_mm, valid",
    [(R_DEPTH + 149.0, 1.0), (R_DEPTH + 151.0, 0.0), (R_DEPTH - 149.0, 1.0), (R_DEPTH - 151.0, 0.0)],
)
def test_the_relative_root_depth_outside_its_range_is_invalid(left_root_mm, valid):
    """bbox_3d_size_root 300: the left root within +-150 mm of the right root (root bins [0, 16))."""
    coord = hands()
    coord[S.joint_type["left"], 2] = left_root_mm  # the whole left hand moves: its joints stay valid
    s = sample(coord)
    assert s["root_valid"].tolist() == [valid]
    assert s["joint_valid"].tolist() == [1.0] * 42
    assert s["rel_root_depth"][0] == pytest.approx(((left_root_mm - R_DEPTH) / 150 + 1) / 2 * 16, rel=1e-5)


@pytest.mark.parametrize("hand_type", [(1.0, 0.0), (0.0, 1.0)])
def test_one_hand_present_means_no_relative_root_depth(hand_type):
    s = sample(hands(), hand_type=hand_type)
    assert s["root_valid"].tolist() == [0.0]
    assert s["joint_valid"].tolist() == [1.0] * 42  # the stored validity is the annotation's


def test_an_annotated_invalid_joint_stays_invalid_and_an_invalid_root_masks_the_root_depth():
    valid = np.ones(42, np.float32)
    valid[[7, L_ROOT]] = 0
    s = sample(hands(), valid=valid)
    assert np.flatnonzero(s["joint_valid"] == 0).tolist() == [7, L_ROOT]
    assert s["root_valid"].tolist() == [0.0]
