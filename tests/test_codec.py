"""HeatmapCodec: both directions of the heatmap-space mapping, its range rules, and the required geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from internet.config import Config
from internet.evaluation.protocol import (
    evaluate_interhand,
    evaluate_interhand_loop,
    evaluate_single_hand,
    per_sample_mpjpe,
)
from internet.geometry.codec import HeatmapCodec
from internet.infer.decode import merge_flip
from internet.skeleton import INTERHAND

GEOMETRIES = {"paper": Config(), "cpu_demo": Config.cpu_demo()}


def test_from_config_reads_the_five_geometry_fields():
    cfg = Config.cpu_demo().replace(bbox_3d_size=300.0, bbox_3d_size_root=500.0, output_root_hm_shape=32)
    codec = HeatmapCodec.from_config(cfg)
    assert codec.input_img_shape == tuple(cfg.input_img_shape)
    assert codec.output_hm_shape == tuple(cfg.output_hm_shape)
    assert (codec.bbox_3d_size, codec.bbox_3d_size_root, codec.output_root_hm_shape) == (300.0, 500.0, 32)
    assert HeatmapCodec.from_config(codec) is codec


@pytest.mark.parametrize("name", GEOMETRIES)
def test_decode_inverts_encode(name):
    codec = HeatmapCodec.from_config(GEOMETRIES[name])
    in_h, in_w = codec.input_img_shape
    g = np.random.default_rng(0)
    crop = np.stack([g.uniform(0, in_w, (5, 42)), g.uniform(0, in_h, (5, 42)), g.uniform(-190, 190, (5, 42))], -1)
    hm, in_range = codec.encode_joints(crop)
    assert in_range.all()
    np.testing.assert_allclose(codec.heatmap_to_crop(hm), crop, rtol=0, atol=1e-9)
    rel_mm = g.uniform(-190, 190, 7)
    bins, ok = codec.encode_root_depth(rel_mm)
    assert ok.all()
    np.testing.assert_allclose(codec.root_bins_to_mm(bins), rel_mm, rtol=0, atol=1e-9)


def test_the_paper_numbers_and_the_range_rules():
    codec = HeatmapCodec.from_config(Config())
    hm, in_range = codec.encode_joints(
        np.array([[128.0, 64.0, 0.0], [0.0, 0.0, -200.0], [4.0, 8.0, 200.0], [0.0, 0.0, -200.1]], dtype=np.float32)
    )
    assert hm.dtype == np.float32  # training targets stay float32
    np.testing.assert_array_equal(hm, np.array([[32, 16, 32], [0, 0, 0], [1, 2, 64], [0, 0, hm[3, 2]]], np.float32))
    assert in_range.tolist() == [True, True, False, False]  # depth bins in [0, 64)
    bins, ok = codec.encode_root_depth(np.array([0.0, 200.0, -200.0]))
    assert bins.tolist() == [32.0, 64.0, 0.0] and ok.tolist() == [True, False, True]
    assert codec.depth_bins_to_mm(np.array([0.0, 32.0, 64.0])).tolist() == [-200.0, 0.0, 200.0]
    assert (codec.flip_mirror_constant("tensor"), codec.flip_mirror_constant("crop")) == (63.75, 64.0)
    # CPU preset: 16 depth bins over the same 400 mm, 24x24 heatmaps of 96-pixel crops (4 pixels a cell, as the paper)
    cpu = HeatmapCodec.from_config(Config.cpu_demo())
    assert cpu.depth_bins_to_mm(np.array([8.0])).tolist() == [0.0]
    assert cpu.heatmap_to_crop(np.array([[8.0, 8.0, 8.0]])).tolist() == [[32.0, 32.0, 0.0]]
    assert cpu.flip_mirror_constant("tensor") == 23.75  # W - 1/4 for W = 24


def test_heatmap_to_image_goes_through_inv_trans_and_to_camera_adds_the_root_depths():
    codec = HeatmapCodec.from_config(Config())
    coord = np.zeros((1, 42, 3))
    coord[0, :, :] = [10.0, 20.0, 48.0]  # crop (40, 80), z = +100 mm
    inv_trans = np.array([[[2.0, 0.0, 5.0], [0.0, 3.0, 7.0]]])
    uvz = codec.heatmap_to_image(coord, inv_trans)
    np.testing.assert_allclose(uvz[0, 0], [85.0, 247.0, 100.0])
    cam = codec.to_camera(
        coord,
        np.array([40.0]),
        inv_trans,
        np.array([[100.0, 100.0]]),
        np.array([[85.0, 247.0]]),
        np.array([[500.0, 700.0]]),
        INTERHAND,
    )
    right, left = INTERHAND.joint_type["right"], INTERHAND.joint_type["left"]
    np.testing.assert_allclose(cam[0, right], np.tile([0.0, 0.0, 600.0], (21, 1)))
    np.testing.assert_allclose(cam[0, left], np.tile([0.0, 0.0, 600.0 + 50.0], (21, 1)))  # 500 + (40 bins = 50 mm)
    with pytest.raises(ValueError, match="inv_trans"):
        codec.heatmap_to_image(coord, inv_trans[:, :1])


@pytest.mark.parametrize("bad", [None, {"output_hm_shape": (64, 64, 64)}, "paper"])
def test_geometry_is_required(bad):
    with pytest.raises(TypeError, match="geometry is required"):
        HeatmapCodec.from_config(bad)


def test_evaluation_and_per_sample_error_need_the_config():
    n = 2
    pred = {
        "joint_coord": np.random.default_rng(1).uniform(0, 16, (n, 42, 3)),
        "rel_root_depth": np.full(n, 8.0),
        "hand_type": np.full((n, 2), 0.9),
    }
    gt = {
        "joint_cam": np.zeros((n, 42, 3)) + [0, 0, 500.0],
        "joint_valid": np.ones((n, 42)),
        "hand_type": np.array(["interacting", "right"]),
        "hand_type_valid": np.ones(n),
        "focal": np.full((n, 2), 500.0),
        "princpt": np.full((n, 2), 64.0),
        "abs_depth": np.full((n, 2), 500.0),
        "inv_trans": np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (n, 1, 1)),
    }
    for fn in (evaluate_interhand, evaluate_interhand_loop):
        with pytest.raises(TypeError, match="cfg"):
            fn(pred, gt)
        with pytest.raises(TypeError, match="geometry is required"):
            fn(pred, gt, cfg=None)
    with pytest.raises(TypeError, match="cfg"):
        evaluate_single_hand(pred, {**gt, "hand_type": np.array(["right", "left"])})
    with pytest.raises(TypeError, match="geometry is required"):
        per_sample_mpjpe(pred, gt, None)
    # the same CPU-preset outputs read with the paper's geometry are other millimetres: why there is no default
    cpu, paper = (per_sample_mpjpe(pred, gt, cfg) for cfg in (Config.cpu_demo(), Config()))
    assert not np.allclose(cpu, paper)


def test_flip_merge_needs_the_config():
    out = {"joint_heatmap": torch.zeros(1, 42, 4, 8, 8), "rel_root_depth": torch.full((1, 1), 5.0)}
    with pytest.raises(TypeError, match="cfg"):
        merge_flip(out, out, INTERHAND)
    cfg = Config(input_img_shape=(32, 32), output_hm_shape=(4, 8, 8), output_root_hm_shape=16)
    merged = merge_flip(out, out, INTERHAND, cfg=cfg)
    assert merged["rel_root_depth"].item() == (5.0 + (16 - 5.0)) / 2  # mirrored about the centre of 16 bins


def test_predictor_needs_the_config_of_a_module():
    from internet.infer.predictor import Predictor
    from internet.model import InterNet

    cfg = Config.cpu_demo()
    torch.manual_seed(0)
    model = InterNet.from_config(cfg)
    with pytest.raises(TypeError, match="required with a module"):
        Predictor(model, device="cpu")
    assert Predictor(model, cfg, "cpu").cfg is cfg
