"""internet.infer.predictor: any image + a hand box -> 2D joints in image pixels and root-relative 3D hands."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from internet.config import Config
from internet.data import InterHand26M
from internet.data.io import DataFileError
from internet.geometry.codec import HeatmapCodec
from internet.infer.predict import place_predictions, predict
from internet.infer.predictor import DEFAULT_BOX_MM, DEFAULT_FOCAL_PER_PX, Predictor, load_rgb
from internet.model import InterNet
from internet.model.checkpoint import CheckpointError, official_state_dict, save_checkpoint

TINY = dict(input_img_shape=(64, 64), output_hm_shape=(16, 16, 16), sigma=1.0)


@pytest.fixture(scope="module")
def cfg(tiny_data):
    return Config.cpu_demo(data_root=str(tiny_data), **TINY)


@pytest.fixture(scope="module")
def model(cfg):
    torch.manual_seed(0)
    return InterNet.from_config(cfg).eval()


@pytest.fixture(scope="module")
def test_set(cfg):
    return InterHand26M(cfg, "test", "test")


def _raw_box(ds, i):
    """The annotated (unprocessed) box of sample i."""
    return np.asarray(ds.index["bbox"][ds.rows[i] if ds.rows is not None else i], dtype=np.float64)


def test_predict_uses_the_test_pipeline_and_maps_back_to_the_image(cfg, model, test_set):
    predictor = Predictor(model, cfg, "cpu")
    i = 0
    image = load_rgb(test_set.image_path(i))
    out = predictor.predict(image, _raw_box(test_set, i))
    sample = test_set[i]
    # same crop as the data set's test mode (processed GT box, no augmentation)
    np.testing.assert_allclose(out["crop"].astype(np.float32) / 255.0, sample["img"].transpose(1, 2, 0), atol=1 / 255)
    np.testing.assert_allclose(out["inv_trans"], sample["inv_trans"], atol=1e-3)
    np.testing.assert_allclose(out["bbox"], test_set.crop_bbox(i), atol=1e-3)
    # the same decoded coordinates as the batch path on the data set's own sample
    batch = predict(model, test_set, cfg, indices=[i], num_workers=0)
    np.testing.assert_allclose(out["joint_coord_hm"], batch["joint_coord"][0])
    # joint_img: heatmap -> crop pixels -> inverse affine
    crop_xy = out["joint_coord_hm"][:, :2] * (
        np.array(cfg.input_img_shape[::-1]) / np.array(cfg.output_hm_shape[:0:-1])
    )
    np.testing.assert_allclose(
        out["joint_img"], crop_xy @ out["inv_trans"][:, :2].T + out["inv_trans"][:, 2], atol=1e-3
    )
    assert out["joint_img"].shape == (42, 2) and out["joint_cam_rel"].shape == (42, 3)
    assert out["hand_type"].shape == (2,)
    np.testing.assert_allclose(out["hand_type"], batch["hand_type"][0], rtol=1e-6)  # the data-set path's probabilities
    np.testing.assert_array_equal(out["hands_present"], out["hand_type"] > 0.5)


def test_camera_guess_is_consistent(cfg, model, test_set):
    predictor = Predictor(model, cfg, "cpu")
    image = load_rgb(test_set.image_path(1))
    h, w = image.shape[:2]
    out = predictor.predict(image, _raw_box(test_set, 1))
    f = DEFAULT_FOCAL_PER_PX * max(w, h)
    np.testing.assert_allclose(out["focal"], [f, f])
    np.testing.assert_allclose(out["princpt"], [w / 2, h / 2])
    side = np.sqrt(out["bbox"][2] * out["bbox"][3])
    assert out["root_depth_mm"][0] == pytest.approx(f * DEFAULT_BOX_MM / side)
    # projecting the guessed camera coordinates gives back the 2D joints
    cam = out["joint_cam"]
    np.testing.assert_allclose(cam[:, :2] / cam[:, 2:] * out["focal"] + out["princpt"], out["joint_img"], atol=1e-6)
    for hand, root in (("right", 20), ("left", 41)):
        jt = slice(0, 21) if hand == "right" else slice(21, 42)
        np.testing.assert_allclose(out["joint_cam_rel"][jt], cam[jt] - cam[root], atol=1e-9)
        assert np.all(out["joint_cam_rel"][root] == 0)
    # z relative to the root is the network's depth output in mm, whatever the focal guess
    z_rel = HeatmapCodec.from_config(cfg).heatmap_to_image(out["joint_coord_hm"][None], out["inv_trans"][None])[0][:, 2]
    np.testing.assert_allclose(out["joint_cam_rel"][:21, 2], z_rel[:21] - z_rel[20], atol=1e-9)
    other = predictor.predict(image, _raw_box(test_set, 1), focal=[2 * f, 2 * f], princpt=[10, 20])
    np.testing.assert_allclose(other["joint_img"], out["joint_img"])  # 2D does not depend on the camera guess
    assert other["root_depth_mm"][0] == pytest.approx(2 * out["root_depth_mm"][0])


def test_batch_prediction_places_hands_like_the_evaluation(cfg, model, test_set):
    idx = [0, 2, 3]
    out = place_predictions(
        predict(model, test_set, cfg, indices=idx, batch_size=2, num_workers=0), test_set.eval_targets(), cfg
    )
    gt = {k: np.asarray(v)[idx] for k, v in test_set.eval_targets().items()}
    # the official back-projection written out here: heatmap -> crop pixels -> image (inv_trans); depth bins -> mm
    # about each hand's GT root depth; pixels -> camera with the focal length and principal point
    depth, hm_h, hm_w = cfg.output_hm_shape
    in_h, in_w = cfg.input_img_shape
    coord = np.asarray(out["joint_coord"], np.float64)
    crop = coord[..., :2] * np.array([in_w / hm_w, in_h / hm_h])
    inv = np.asarray(gt["inv_trans"], np.float64)
    uv = np.einsum("nij,nkj->nki", inv[:, :, :2], crop) + inv[:, None, :, 2]
    root_depth = np.where(np.arange(42) < 21, gt["abs_depth"][:, :1], gt["abs_depth"][:, 1:])
    z = (coord[..., 2] / depth * 2 - 1) * (cfg.bbox_3d_size / 2) + root_depth
    cam = np.stack(
        [
            (uv[..., 0] - gt["princpt"][:, None, 0]) / gt["focal"][:, None, 0] * z,
            (uv[..., 1] - gt["princpt"][:, None, 1]) / gt["focal"][:, None, 1] * z,
            z,
        ],
        axis=-1,
    )
    np.testing.assert_allclose(out["pred_img"], uv, atol=1e-3)
    np.testing.assert_allclose(out["pred_cam"], cam, atol=1e-3)
    assert out["pred_img"].shape == (3, 42, 2) and out["rel_root_depth"].shape == (3,)
    with pytest.raises(IndexError, match="indices"):
        predict(model, test_set, cfg, indices=[len(test_set)])


def test_checkpoint_loading_and_clear_errors(cfg, model, test_set, tmp_path):
    path = save_checkpoint(tmp_path / "snapshot_0.pth.tar", {"epoch": 0, "network": official_state_dict(model)})
    image = load_rgb(test_set.image_path(0))
    box = _raw_box(test_set, 0)
    a = Predictor(model, cfg, "cpu").predict(image, box)
    b = Predictor(path, cfg, "cpu").predict(image, box)
    np.testing.assert_allclose(a["joint_img"], b["joint_img"])
    # the checkpoint decides the network (one loader, internet.model.load.load_model), not the config given
    c = Predictor(path, cfg.replace(resnet_type=34), "cpu")
    assert c.cfg.resnet_type == 18
    np.testing.assert_allclose(c.predict(image, box)["joint_img"], a["joint_img"])
    broken = save_checkpoint(tmp_path / "snapshot_1.pth.tar", {"epoch": 1, "network": {"fc.weight": torch.zeros(1)}})
    with pytest.raises(CheckpointError, match="missing"):
        Predictor(broken, cfg, "cpu")
    with pytest.raises(FileNotFoundError, match="no_such.pth.tar"):
        Predictor(tmp_path / "no_such.pth.tar", cfg)
    with pytest.raises(TypeError, match="nn.Module or a checkpoint path"):
        Predictor(42, cfg)


def test_bad_images_and_boxes_are_named(cfg, model, tmp_path):
    predictor = Predictor(model, cfg, "cpu")
    image = np.zeros((100, 80, 3), np.uint8)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        predictor.predict(tmp_path / "missing.jpg", [0, 0, 10, 10])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataFileError, match="broken.jpg"):
        predictor.predict(broken, [0, 0, 10, 10])
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict(image.astype(np.float32), [0, 0, 10, 10])
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predictor.predict(image[..., 0], [0, 0, 10, 10])
    for box, words in (
        ([0, 0, 10], "four finite numbers"),
        ([0, 0, 0, 10], "must be >= 1"),
        ([200, 0, 10, 10], "outside the 80x100"),
        ([1, 2, float("inf"), 3], "finite"),
    ):
        with pytest.raises(ValueError, match=words):
            predictor.predict(image, box)
    with pytest.raises(ValueError, match="focal"):
        predictor.predict(image, [0, 0, 10, 10], focal=[1, 2, 3])


def test_real_demo_image_with_the_official_box(shared_dir, cfg, model):
    path = shared_dir / "data" / "interhand26m_sample" / "unannotated" / "facebookresearch_demo_input.jpg"
    image = load_rgb(path)
    assert image.shape == (512, 334, 3)
    out = Predictor(model, cfg.replace(flip_test=True), "cpu").predict(image, [69, 137, 165, 153])
    # the crop is the official processed box: square, x1.25, centred on the given box
    np.testing.assert_allclose(out["bbox"], [151.5 - 103.125, 213.5 - 103.125, 206.25, 206.25], atol=1e-3)
    assert np.isfinite(out["joint_cam_rel"]).all() and np.isfinite(out["rel_root_depth_mm"])
