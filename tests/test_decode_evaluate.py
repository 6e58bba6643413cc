"""Decoding (argmax, sub-voxel, flip test, back-projection) and evaluation: parity with the official evaluate()."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from vendored import INTERHAND_SAMPLE as SAMPLE
from vendored import OFFICIAL as FIXTURES

from internet.config import Config
from internet.evaluation.metrics import average_precision
from internet.evaluation.protocol import evaluate_interhand, evaluate_interhand_loop, evaluate_single_hand
from internet.evaluation.scores import SUBSETS
from internet.geometry.camera import pixel2cam, world2cam
from internet.geometry.codec import HeatmapCodec
from internet.geometry.crop import generate_patch_image, trans_points_2d
from internet.infer.decode import (
    decode_heatmaps,
    hard_argmax_3d,
    merge_flip,
    subvoxel_refine,
)
from internet.model.targets import render_gaussian_heatmap
from internet.skeleton import INTERHAND, RHD

PAPER = Config()
"""The official fixtures' geometry: 256x256 crops, 64x64x64 heatmaps, 400 mm depth ranges."""


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------------------------------- local loader
def _load_gt(order):
    """GT of the real sample frames the way the official loader builds it (float32 cameras, root propagation,
    GT root depths), in the given frame order. Local on purpose: the data set module is written elsewhere."""
    ann_dir = SAMPLE / "annotations" / "test"
    data = json.loads((ann_dir / "InterHand2.6M_test_data.json").read_text())
    cams = json.loads((ann_dir / "InterHand2.6M_test_camera.json").read_text())
    joints = json.loads((ann_dir / "InterHand2.6M_test_joint_3d.json").read_text())
    images = {im["id"]: im for im in data["images"]}
    rows = {}
    for ann in data["annotations"]:
        im = images[ann["image_id"]]
        cap, cam = str(im["capture"]), str(im["camera"])
        R = np.array(cams[cap]["camrot"][cam], dtype=np.float32)
        T = np.array(cams[cap]["campos"][cam], dtype=np.float32)
        world = np.array(joints[cap][str(im["frame_idx"])]["world_coord"], dtype=np.float32)
        joint_cam = world2cam(world, R, T)
        valid = np.array(ann["joint_valid"], dtype=np.float32).reshape(42)
        valid[:21] *= valid[20]
        valid[21:] *= valid[41]
        rows[im["frame_idx"]] = dict(
            joint_cam=joint_cam,
            joint_valid=valid,
            hand_type=ann["hand_type"],
            hand_type_valid=float(ann["hand_type_valid"]),
            focal=np.array(cams[cap]["focal"][cam], dtype=np.float32),
            princpt=np.array(cams[cap]["princpt"][cam], dtype=np.float32),
            abs_depth=joint_cam[[20, 41], 2],
        )
    gt = {
        k: np.stack([rows[f][k] for f in order])
        for k in ("joint_cam", "joint_valid", "hand_type_valid", "focal", "princpt", "abs_depth")
    }
    gt["hand_type"] = np.array([rows[f]["hand_type"] for f in order])
    return gt


@pytest.fixture(scope="module")
def real():
    metrics = json.loads((FIXTURES / "evaluate_metrics.json").read_text())
    order = metrics["rule"]["sample_order"]
    test_mode = dict(np.load(FIXTURES / "data_test_mode.npz"))
    assert list(test_mode["frame_idx"]) == order
    gt = _load_gt(order)
    gt["inv_trans"] = test_mode["inv_trans"]
    return dict(metrics=metrics, test_mode=test_mode, gt=gt)


def _documented_prediction(real):
    """The prediction the official evaluate() was given (fixture README)."""
    tm, rule = real["test_mode"], real["metrics"]["rule"]
    j = np.arange(42)
    offset = np.stack([0.8 * np.sin(1.3 * j + 0.5), 0.8 * np.cos(0.7 * j), 1.5 * np.sin(0.9 * j + 1)], axis=1)
    probs = rule["pred_hand_type"]
    return dict(
        joint_coord=tm["joint_coord"] + offset,
        rel_root_depth=tm["rel_root_depth"] + 2.0,
        hand_type=np.array([probs[h] for h in real["gt"]["hand_type"]], dtype=np.float64),
    )


def _subset(d: dict, rows) -> dict:
    return {k: np.asarray(v)[rows] for k, v in d.items()}


# ----------------------------------------------------------------------------------------------------- argmax
def _official_three_step_argmax(hm: torch.Tensor) -> torch.Tensor:
    """The official decode written as its three max/gather steps (reference for the flattened argmax)."""
    width = hm.shape[-1]
    val_z, idx_z = hm.max(2)
    val_zy, idx_zy = val_z.max(2)
    _, x = val_zy.max(2)
    y = idx_zy.gather(2, x[..., None])
    z = idx_z.gather(2, y[..., None].expand(-1, -1, 1, width))[:, :, 0, :].gather(2, x[..., None])
    return torch.cat([x[..., None], y, z], dim=-1).float()


def test_hard_argmax_equals_official_three_step_decode():
    g = torch.Generator().manual_seed(0)
    hm = torch.randn(3, 7, 9, 11, 13, generator=g)
    coords = hard_argmax_3d(hm)
    assert coords.shape == (3, 7, 3) and coords.dtype == torch.float32
    torch.testing.assert_close(coords, _official_three_step_argmax(hm))
    b, j = 1, 4
    z, y, x = np.unravel_index(hm[b, j].argmax().item(), hm.shape[2:])
    assert coords[b, j].tolist() == [x, y, z]
    torch.testing.assert_close(decode_heatmaps(hm), coords)
    with pytest.raises(ValueError, match="heatmap"):
        hard_argmax_3d(torch.zeros(2, 3, 4))


def test_subvoxel_stays_within_half_a_voxel_of_the_argmax():
    g = torch.Generator().manual_seed(1)
    hm = torch.randn(2, 5, 6, 7, 8, generator=g)
    hm[0, 0, 0, 0, 0] = 100.0  # a maximum on the border: that axis cannot be refined
    hard = hard_argmax_3d(hm)
    refined = subvoxel_refine(hm, hard)
    assert (refined - hard).abs().max() <= 0.5
    assert refined[0, 0].tolist() == [0.0, 0.0, 0.0]
    torch.testing.assert_close(subvoxel_refine(hm), refined)


def test_subvoxel_recovers_real_target_coordinates(real):
    coord = torch.from_numpy(real["test_mode"]["joint_coord"])
    valid = real["test_mode"]["joint_valid"] > 0
    hm = render_gaussian_heatmap(coord)
    hard = (decode_heatmaps(hm) - coord).abs().numpy()[valid]
    fine = (decode_heatmaps(hm, subvoxel=True) - coord).abs().numpy()[valid]
    assert 0.3 < hard.max() <= 0.5 + 1e-4  # quantisation
    assert fine.max() < hard.max() / 50


def test_round_trip_target_argmax_evaluate(real):
    """GT -> heatmap-space targets -> evaluate gives back the GT (errors ~1e-5 mm: the data pipeline and the evaluation
    invert each other); through dense target heatmaps the hard argmax is the nearest voxel of every valid joint, and
    sub-voxel refinement recovers the exact coordinates."""
    tm, gt = real["test_mode"], real["gt"]
    hm = render_gaussian_heatmap(torch.from_numpy(tm["joint_coord"]))
    exact = evaluate_interhand(
        dict(joint_coord=tm["joint_coord"], rel_root_depth=tm["rel_root_depth"], hand_type=tm["hand_type"]),
        gt,
        cfg=PAPER,
    )
    results, decoded = {}, {}
    for subvoxel in (False, True):
        decoded[subvoxel] = decode_heatmaps(hm, subvoxel=subvoxel).numpy()
        pred = dict(joint_coord=decoded[subvoxel], rel_root_depth=tm["rel_root_depth"], hand_type=tm["hand_type"])
        results[subvoxel] = evaluate_interhand(pred, gt, cfg=PAPER)
    hard, fine = results[False], results[True]
    valid = tm["joint_valid"] > 0
    np.testing.assert_array_equal(decoded[False][valid], np.clip(np.rint(tm["joint_coord"]), 0, 63)[valid])
    for r in (exact, fine):
        assert r.mpjpe_all < 1e-4 and r.mpjpe_single < 1e-4 and r.mpjpe_interacting < 1e-4 and r.mrrpe < 1e-4
    assert fine.mpjpe_all < hard.mpjpe_all / 5
    assert fine.mrrpe < hard.mrrpe / 5
    assert hard.handedness_accuracy == 1.0


# ----------------------------------------------------------------------------------------------------- flip test
def test_flip_mirror_constant_matches_the_crop_geometry():
    """Official flip: u' = W - u - 1 and the crop centre mirrored the same way; the flipped crop's pixel i is the
    crop's pixel input_width - i, and a joint's crop x maps to input_width - x, i.e. c = hm_width in heatmap units.
    A tensor flip of the crop maps pixel i to input_width - 1 - i."""
    g = np.random.default_rng(0)
    img = g.random((90, 120, 3)).astype(np.float32) * 255
    bbox, out = [25.3, 14.1, 60.0, 60.0], (64, 64)
    patch, trans, _ = generate_patch_image(img, bbox, False, 1.0, 0.0, out)
    patch_f, trans_f, _ = generate_patch_image(img, bbox, True, 1.0, 0.0, out)
    i = np.arange(1, 64)
    np.testing.assert_allclose(patch_f[:, i], patch[:, 64 - i], atol=1e-2)
    u = np.array([[40.7, 33.2], [71.9, 50.5]])
    x = trans_points_2d(u, trans)[:, 0]
    x_f = trans_points_2d(np.stack([120 - 1 - u[:, 0], u[:, 1]], 1), trans_f)[:, 0]
    stride = 4
    codec = _geometry(hm_shape=(16, 16, 16), input_width=64)
    c_crop = codec.flip_mirror_constant(flipped_by="crop")
    np.testing.assert_allclose(x_f / stride, c_crop - x / stride, atol=1e-4)
    c_tensor = codec.flip_mirror_constant(flipped_by="tensor")
    assert c_tensor * stride == 64 - 1
    with pytest.raises(ValueError, match="flipped_by"):
        codec.flip_mirror_constant(flipped_by="mirror")


def _geometry(hm_shape, input_width) -> HeatmapCodec:
    """A codec of crops input_width wide (and as many heatmap strides high) with the paper's 400 mm and 64 root bins."""
    stride = input_width // hm_shape[2]
    return HeatmapCodec(
        input_img_shape=(hm_shape[1] * stride, input_width),
        output_hm_shape=hm_shape,
        bbox_3d_size=400.0,
        bbox_3d_size_root=400.0,
        output_root_hm_shape=64,
    )


def _flip_case(flipped_by: str, shape=(16, 24, 32), input_width=128):
    g = torch.Generator().manual_seed(2)
    d, h, w = shape
    coord = torch.rand(2, 42, 3, generator=g) * torch.tensor([w - 12.0, h - 12.0, d - 8.0])
    coord += torch.tensor([6.0, 6.0, 4.0])  # away from the borders
    c = _geometry(shape, input_width).flip_mirror_constant(flipped_by)
    flipped = coord[:, INTERHAND.flip_perm].clone()
    flipped[..., 0] = c - flipped[..., 0]
    root = torch.tensor([[20.0], [45.5]])
    probs = torch.tensor([[0.9, 0.2], [0.3, 0.8]])
    outputs = dict(
        joint_heatmap=render_gaussian_heatmap(coord, shape),
        joint_coord=coord,
        rel_root_depth=root,
        hand_type=probs,
        hand_type_logits=torch.logit(probs),
    )
    outputs_f = dict(
        joint_heatmap=render_gaussian_heatmap(flipped, shape),
        joint_coord=flipped,
        rel_root_depth=64 - root,
        hand_type=probs.flip(-1),
        hand_type_logits=torch.logit(probs).flip(-1),
    )
    return coord, outputs, outputs_f, dict(cfg=_geometry(shape, input_width), flipped_by=flipped_by)


@pytest.mark.parametrize("flipped_by", ["crop", "tensor"])
def test_merge_flip_recovers_the_unflipped_prediction(flipped_by):
    coord, outputs, outputs_f, kw = _flip_case(flipped_by)
    before = {k: v.clone() for k, v in outputs_f.items()}
    merged = merge_flip(outputs, outputs_f, INTERHAND, mode="heatmap", **kw)
    # crop mode: an integer shift, exact; tensor mode: a quarter-voxel linear interpolation of the volume
    tol = 1e-3 if flipped_by == "crop" else 0.05
    assert (decode_heatmaps(merged["joint_heatmap"], subvoxel=True) - coord).abs().max() < tol
    torch.testing.assert_close(hard_argmax_3d(merged["joint_heatmap"]), hard_argmax_3d(outputs["joint_heatmap"]))
    torch.testing.assert_close(merged["rel_root_depth"], outputs["rel_root_depth"])
    torch.testing.assert_close(merged["hand_type"], outputs["hand_type"])
    torch.testing.assert_close(merged["hand_type_logits"], outputs["hand_type_logits"])
    by_coord = merge_flip(outputs, outputs_f, INTERHAND, mode="coord", **kw)
    torch.testing.assert_close(by_coord["joint_coord"], coord, atol=1e-5, rtol=0)
    for k, v in before.items():
        assert torch.equal(outputs_f[k], v)  # inputs untouched


def test_merge_flip_averages_the_two_views_and_mirrors_the_root_bin():
    _, outputs, outputs_f, kw = _flip_case("crop")
    outputs_f["rel_root_depth"] = outputs_f["rel_root_depth"] + 3.0  # flipped view thinks the right root is deeper
    outputs_f["hand_type"] = torch.tensor([[0.5, 0.7], [0.6, 0.1]])
    merged = merge_flip(outputs, outputs_f, INTERHAND, mode="coord", **kw)
    torch.testing.assert_close(merged["rel_root_depth"], outputs["rel_root_depth"] - 1.5)
    torch.testing.assert_close(merged["hand_type"], (outputs["hand_type"] + torch.tensor([[0.7, 0.5], [0.1, 0.6]])) / 2)
    with pytest.raises(KeyError, match="joint_coord"):
        merge_flip({"joint_heatmap": outputs["joint_heatmap"]}, outputs_f, mode="coord", **kw)


# ----------------------------------------------------------------------------------------------------- camera space
def test_to_camera_matches_per_joint_official_steps(real):
    tm, gt = real["test_mode"], real["gt"]
    pred = _documented_prediction(real)
    codec = HeatmapCodec.from_config(PAPER)
    cam = codec.to_camera(pred["joint_coord"], None, tm["inv_trans"], gt["focal"], gt["princpt"], gt["abs_depth"])
    rel = codec.to_camera(
        pred["joint_coord"], pred["rel_root_depth"], tm["inv_trans"], gt["focal"], gt["princpt"], gt["abs_depth"]
    )
    for n in range(3):
        xy = trans_points_2d(pred["joint_coord"][n, :, :2] * 4, tm["inv_trans"][n])
        z = (pred["joint_coord"][n, :, 2] / 64 * 2 - 1) * 200
        z = z + np.where(np.arange(42) < 21, gt["abs_depth"][n, 0], gt["abs_depth"][n, 1])
        expected = pixel2cam(np.concatenate([xy, z[:, None]], 1), gt["focal"][n], gt["princpt"][n])
        np.testing.assert_allclose(cam[n], expected, rtol=1e-9, atol=1e-6)
        delta = (float(pred["rel_root_depth"][n, 0]) / 64 * 2 - 1) * 200
        left_root = float(gt["abs_depth"][n, 0]) + delta  # left anchored at the right root + predicted depth
        np.testing.assert_allclose(rel[n, 21:, 2] - cam[n, 21:, 2], left_root - float(gt["abs_depth"][n, 1]), atol=1e-6)
        np.testing.assert_allclose(rel[n, :21], cam[n, :21])
    with pytest.raises(ValueError, match="abs_depth"):
        codec.to_camera(pred["joint_coord"], None, tm["inv_trans"], gt["focal"], gt["princpt"], np.zeros((3, 3)))


# ----------------------------------------------------------------------------------------------------- evaluation
def test_evaluate_matches_official_metrics(real):
    ref = real["metrics"]
    pred = _documented_prediction(real)
    gt_before = copy.deepcopy(real["gt"])
    pred_before = copy.deepcopy(pred)
    result = evaluate_interhand(pred, real["gt"], cfg=PAPER)
    assert result.handedness_accuracy == pytest.approx(ref["handedness_accuracy"], abs=1e-9)
    assert result.mrrpe == pytest.approx(ref["mrrpe"], abs=1e-4)
    assert result.mpjpe_all == pytest.approx(ref["mpjpe_all"], abs=0.006)
    assert result.mpjpe_single == pytest.approx(ref["mpjpe_single"], abs=0.006)
    assert result.mpjpe_interacting == pytest.approx(ref["mpjpe_interacting"], abs=0.006)
    for subset, per_joint in zip(SUBSETS, ref["per_joint"]):
        assert list(result.per_joint[subset]) == list(per_joint)
        for name, value in per_joint.items():
            assert result.per_joint[subset][name] == pytest.approx(value, abs=0.006), (subset, name)
    assert result.counts["mrrpe"] == 1 and result.counts["single"] == 2 and result.counts["interacting"] == 1
    for k, v in gt_before.items():
        np.testing.assert_array_equal(real["gt"][k], v)  # evaluate never aligns the GT in place
    for k, v in pred_before.items():
        np.testing.assert_array_equal(pred[k], v)
    # a second call gives the same numbers (the official one would not)
    assert evaluate_interhand(pred, real["gt"], cfg=PAPER).to_dict() == result.to_dict()
    table = result.table()
    assert "official protocol" in table and "mmpose" in table and "l_pinky1" in table
    json.dumps(result.to_dict(), allow_nan=False)


def test_evaluate_empty_subsets_are_undefined_not_a_crash(real):
    pred = _documented_prediction(real)
    single = evaluate_interhand(_subset(pred, [0, 1]), _subset(real["gt"], [0, 1]), cfg=PAPER)
    assert single.mpjpe_interacting is None and single.mrrpe is None and single.mpjpe_single is not None
    assert any("interacting" in n for n in single.notes)
    assert single.mpjpe_pooled_interacting is None
    inter = evaluate_interhand(_subset(pred, [2]), _subset(real["gt"], [2]), cfg=PAPER)
    assert inter.mpjpe_single is None and inter.mpjpe_interacting == pytest.approx(
        real["metrics"]["mpjpe_interacting"], abs=0.006
    )
    for r in (single, inter):
        d = r.to_dict()
        json.dumps(d, allow_nan=False)
        assert "undefined" in r.table()
    # a joint without any valid sample is left out of the mean and listed
    gt = copy.deepcopy(real["gt"])
    gt["joint_valid"][:, 0] = 0
    r = evaluate_interhand(pred, gt, cfg=PAPER)
    assert r.excluded_joints["all"] == ["r_thumb4"] and r.per_joint["all"]["r_thumb4"] is None
    others = [v for k, v in r.per_joint["all"].items() if k != "r_thumb4"]
    assert r.mpjpe_all == pytest.approx(np.mean(others), rel=1e-12)


def _random_eval_case(n: int, seed: int):
    g = np.random.default_rng(seed)
    hand_type = g.choice(np.array(["right", "left", "interacting"]), n)
    valid = (g.random((n, 42)) > 0.15).astype(np.float32)
    valid[hand_type == "right", 21:] = 0
    valid[hand_type == "left", :21] = 0
    valid[:, :21] *= valid[:, 20:21]
    valid[:, 21:] *= valid[:, 41:42]
    scale = g.uniform(0.5, 2.0, n)
    inv_trans = np.zeros((n, 2, 3))
    inv_trans[:, 0, 0] = inv_trans[:, 1, 1] = scale
    inv_trans[:, :, 2] = g.uniform(-50, 150, (n, 2))
    joint_cam = g.normal(0, 60, (n, 42, 3)) + np.array([0, 0, 1000.0])
    pred = dict(
        joint_coord=g.uniform(0, 64, (n, 42, 3)), rel_root_depth=g.uniform(0, 64, n), hand_type=g.random((n, 2))
    )
    gt = dict(
        joint_cam=joint_cam,
        joint_valid=valid,
        hand_type=hand_type,
        hand_type_valid=(g.random(n) > 0.1).astype(np.float32),
        focal=g.uniform(1000, 1400, (n, 2)),
        princpt=g.uniform(100, 300, (n, 2)),
        abs_depth=joint_cam[:, [20, 41], 2] + g.normal(0, 5, (n, 2)),
        inv_trans=inv_trans,
    )
    return pred, gt


def test_loop_and_vectorised_evaluators_agree():
    pred, gt = _random_eval_case(300, seed=3)
    fast, loop = evaluate_interhand(pred, gt, cfg=PAPER), evaluate_interhand_loop(pred, gt, cfg=PAPER)
    for name in (
        "handedness_accuracy",
        "mrrpe",
        "mpjpe_all",
        "mpjpe_single",
        "mpjpe_interacting",
        "mpjpe_pooled_all",
        "mpjpe_pooled_single",
        "mpjpe_pooled_interacting",
    ):
        assert getattr(fast, name) == pytest.approx(getattr(loop, name), abs=1e-6), name
    for subset in SUBSETS:
        for k, v in loop.per_joint[subset].items():
            assert fast.per_joint[subset][k] == pytest.approx(v, abs=1e-6), (subset, k)
    assert fast.counts == loop.counts
    assert 0.0 < fast.mrrpe and 0 < fast.handedness_accuracy < 1


def test_pooled_mpjpe_and_handedness_by_hand():
    pred, gt = _random_eval_case(60, seed=4)
    r = evaluate_interhand(pred, gt, cfg=PAPER)
    # pooled = mean over all valid joints (wrists included) = count-weighted mean of the per-joint means
    loop = evaluate_interhand_loop(pred, gt, cfg=PAPER)
    assert r.mpjpe_pooled_all == pytest.approx(loop.mpjpe_pooled_all, rel=1e-12)
    valid = gt["joint_valid"] > 0
    weights = valid.sum(0)
    means = np.array([r.per_joint["all"][k] for k in INTERHAND.names])
    assert r.mpjpe_pooled_all == pytest.approx((means * weights).sum() / weights.sum(), rel=1e-9)
    # perfect probabilities give accuracy 1 and AP_h 1
    truth = np.array([{"right": [0.9, 0.1], "left": [0.2, 0.8], "interacting": [0.7, 0.6]}[h] for h in gt["hand_type"]])
    perfect = evaluate_interhand({**pred, "hand_type": truth}, gt, cfg=PAPER)
    assert perfect.handedness_accuracy == 1.0 and perfect.ap_h == 1.0


def test_average_precision_matches_its_definition():
    g = np.random.default_rng(5)
    scores = np.round(g.random(200), 1)  # many ties
    labels = g.random(200) > 0.6
    # definition: mean over positives of the precision at the threshold of their own score
    prec = [(labels & (scores >= s)).sum() / (scores >= s).sum() for s in scores[labels]]
    assert average_precision(scores, labels) == pytest.approx(np.mean(prec), rel=1e-12)
    assert average_precision(scores, np.zeros(200, bool)) is None
    assert average_precision(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0])) == 1.0


def test_evaluate_rejects_bad_inputs():
    pred, gt = _random_eval_case(5, seed=6)
    with pytest.raises(ValueError, match="'both'"):
        evaluate_interhand(pred, {**gt, "hand_type": np.array(["right", "left", "both", "left", "right"])}, cfg=PAPER)
    with pytest.raises(KeyError, match="focal"):
        evaluate_interhand(pred, {k: v for k, v in gt.items() if k != "focal"}, cfg=PAPER)
    with pytest.raises(ValueError, match="joint_cam"):
        evaluate_interhand(pred, {**gt, "joint_cam": gt["joint_cam"][:, :21]}, cfg=PAPER)
    bad = copy.deepcopy(pred)
    bad["joint_coord"][2, 3, 1] = np.nan
    with pytest.raises(ValueError, match="joint_coord"):
        evaluate_interhand(bad, gt, cfg=PAPER)


def test_evaluate_single_hand_rhd_layout():
    """RHD/STB: left block first (root 0), right block second (root 21); only the GT hand's 21 joints count."""
    g = np.random.default_rng(7)
    n = 4
    hand_type = np.array(["left", "right", "left", "right"])
    cfg = Config()
    pred = dict(
        joint_coord=g.uniform(5, 60, (n, 42, 3)), hand_type=np.array([[0.1, 0.9], [0.8, 0.3], [0.6, 0.7], [0.4, 0.6]])
    )
    inv_trans = np.tile(np.array([[1.1, 0, 20.0], [0, 1.1, 10.0]]), (n, 1, 1))
    focal, princpt = np.full((n, 2), 300.0), np.full((n, 2), 160.0)
    abs_depth = g.uniform(400, 600, n)
    # the prediction in camera space, by the official steps written out here (not by to_camera, which the
    # evaluation uses): heatmap x4 -> crop pixels -> image; depth bins -> +-200 mm about the one root depth
    xy = np.einsum("nij,nkj->nki", inv_trans[:, :, :2], pred["joint_coord"][..., :2] * 4) + inv_trans[:, None, :, 2]
    z = (pred["joint_coord"][..., 2] / 64 * 2 - 1) * 200 + abs_depth[:, None]
    pred_cam = np.concatenate([(xy - princpt[:, None]) / focal[:, None] * z[..., None], z[..., None]], axis=-1)
    # GT = prediction + an offset of length k+1.5 mm on hand-local joint k (root k = 0 has none)
    direction = g.normal(size=(n, 21, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    length = np.r_[0.0, np.arange(1, 21) + 1.5]  # off the integer PCK thresholds
    joint_cam = np.zeros((n, 42, 3))
    valid = np.zeros((n, 42))
    for i, h in enumerate(hand_type):
        block = RHD.joint_type[h]
        assert block[0] == RHD.root_idx[h]
        joint_cam[i, block] = pred_cam[i, block] + direction[i] * length[:, None]
        valid[i, block] = 1
    gt = dict(
        joint_cam=joint_cam,
        joint_valid=valid,
        hand_type=hand_type,
        focal=focal,
        princpt=princpt,
        abs_depth=abs_depth,
        inv_trans=inv_trans,
    )
    r = evaluate_single_hand(pred, gt, RHD, cfg=cfg)
    assert r.mpjpe == pytest.approx(length.mean(), rel=1e-9)
    assert r.per_joint["wrist"] == pytest.approx(0.0, abs=1e-9)
    assert list(r.per_joint)[0] == "wrist" and len(r.per_joint) == 21
    assert r.handedness_accuracy == pytest.approx(2 / 4)  # samples 0 and 1 correct
    errors = np.tile(length, n)
    pck = np.array([(errors <= t).mean() for t in r.pck_thresholds])
    np.testing.assert_allclose(r.pck, pck)
    t = np.array(r.pck_thresholds)
    assert t[0] == 20 and t[-1] == 50
    assert r.auc_pck_20_50 == pytest.approx(np.sum((pck[1:] + pck[:-1]) / 2 * np.diff(t)) / 30, rel=1e-12)
    json.dumps(r.to_dict(), allow_nan=False)
    assert "official protocol" in r.table() and "AUC" in r.table()
    with pytest.raises(ValueError, match="interacting"):
        evaluate_single_hand(
            pred, {**gt, "hand_type": np.array(["left", "interacting", "left", "right"])}, RHD, cfg=cfg
        )


def test_hard_argmax_takes_the_first_maximum_and_nan():
    """Ties give the first maximum and NaN counts as the maximum (the first NaN), for float32, float64 and bf16,
    contiguous or not, requiring grad or not."""
    g = torch.Generator().manual_seed(3)
    hm = torch.randint(0, 4, (3, 5, 4, 5, 6), generator=g).float()  # many ties
    hm[0, 1, 2, 3, 4] = float("nan")
    hm[2, 4, 0, 0, 1] = float("nan")
    hm[2, 4, 3, 4, 5] = float("nan")
    for volume in (hm, hm.double(), hm.transpose(3, 4), hm.bfloat16(), hm.clone().requires_grad_()):
        expected = volume.reshape(3, 5, -1).argmax(-1)
        z, rest = expected // (volume.shape[3] * volume.shape[4]), expected % (volume.shape[3] * volume.shape[4])
        y, x = rest // volume.shape[4], rest % volume.shape[4]
        torch.testing.assert_close(hard_argmax_3d(volume), torch.stack([x, y, z], -1).float())
