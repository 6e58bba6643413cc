"""Wiring tests, round two (issue 30): each bad-input rule at, just inside and just outside its bound; the Config
fields that inference and evaluation read each change their result; predictions gathered from shards that arrive out
of order; one non-square geometry end to end against the official formulas."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch
import torch.distributed as dist
from standins import TinyInterNet
from test_predict_loader import SIZE, EchoModel, ValueImages

import internet.infer.predict as predict_module
from internet.config import Config, ConfigError
from internet.geometry.codec import HeatmapCodec
from internet.geometry.crop import MAX_BOX_SCALE, MIN_BOX_SIDE, box_fault, check_box, invalid_boxes
from internet.infer.predict import predict

W, H = 640, 480  # a non-square image


# ============================================================================================== bounds
def _ok(box) -> bool:
    return not invalid_boxes(np.array([box], dtype=np.float64), W, H)[0]


def test_box_side_at_just_inside_and_just_outside_its_minimum():
    assert _ok([10, 10, MIN_BOX_SIDE, MIN_BOX_SIDE])  # at the bound
    assert _ok([10, 10, MIN_BOX_SIDE + 1e-9, 50])  # just inside
    for box in (
        [10, 10, np.nextafter(MIN_BOX_SIDE, 0), 50],
        [10, 10, 50, np.nextafter(MIN_BOX_SIDE, 0)],
        [10, 10, 0, 5],
    ):
        assert not _ok(box), box
        assert "has a side under 1 px" in box_fault(box, W, H)


def test_box_scale_at_just_inside_and_just_outside_its_maximum():
    limit = MAX_BOX_SCALE * max(W, H)
    assert _ok([0, 0, limit, 20]) and _ok([0, 0, 20, limit])  # at the bound, either side
    assert _ok([0, 0, np.nextafter(limit, 0), 20])  # just inside
    for box in ([0, 0, np.nextafter(limit, np.inf), 20], [0, 0, 20, np.nextafter(limit, np.inf)]):
        assert not _ok(box)
        assert f"over {MAX_BOX_SCALE:g} times the longer side" in box_fault(box, W, H)


@pytest.mark.parametrize(
    "box, ok",
    [
        ([W - 1e-6, 10, 50, 50], True),  # left edge just inside the right image edge
        ([W, 10, 50, 50], False),  # exactly at the right edge: no pixel of the image
        ([10, H - 1e-6, 50, 50], True),
        ([10, H, 50, 50], False),
        ([-50 + 1e-6, 10, 50, 50], True),  # right edge just past x = 0
        ([-50, 10, 50, 50], False),  # right edge exactly at x = 0
        ([10, -50 + 1e-6, 50, 50], True),
        ([10, -50, 50, 50], False),
    ],
)
def test_box_at_the_image_edges(box, ok):
    assert _ok(box) is ok
    if not ok:
        with pytest.raises(ValueError, match=rf"lies entirely outside the {W}x{H} \(WxH\) image"):
            check_box(box, W, H)


@pytest.mark.parametrize(
    "name", ["sigma", "bbox_3d_size", "bbox_3d_size_root", "lr", "lr_dec_factor", "loader_timeout_s"]
)
def test_positive_config_fields_at_zero_and_just_above(name):
    assert getattr(Config.from_params({name: 1e-12}), name) == 1e-12  # just inside
    for bad in (0.0, -1e-12):
        with pytest.raises(ConfigError, match=f"config parameter {name}="):
            Config.from_params({name: bad})


@pytest.mark.parametrize(
    "name", ["output_root_hm_shape", "end_epoch", "head_channels", "train_batch_size", "test_batch_size", "num_gpus"]
)
def test_at_least_one_config_fields_at_one_and_zero(name):
    assert getattr(Config.from_params({name: 1}), name) == 1
    with pytest.raises(ConfigError, match=f"config parameter {name}=0: must be >= 1"):
        Config.from_params({name: 0})


# ============================================================================================== gathering
def test_predictions_gathered_from_shards_arriving_out_of_order_are_in_sample_order(monkeypatch, tmp_path):
    """Every sample gets its own prediction (its index), so a gather that kept the arrival order would show it."""
    cfg = Config.cpu_demo(data_root=str(tmp_path), input_img_shape=(SIZE, SIZE), output_hm_shape=(16, 16, 16))
    data, n = ValueImages(7), 7  # uneven shards: 4 and 3
    single = predict(EchoModel(), data, cfg, num_workers=0, batch_size=2)
    shards = {}

    def gather_as(rank):
        def all_gather_object(gathered, local):
            shards[rank] = copy.deepcopy(local)
            other = shards.get(1 - rank, local)
            gathered[:] = [other, local]  # rank 1's shard first: out of order for rank 0

        return all_gather_object

    for rank in (1, 0):
        monkeypatch.setattr(predict_module, "_dist_shard", lambda r=rank: (r, 2))
        monkeypatch.setattr(dist, "all_gather_object", gather_as(rank))
        out = predict(EchoModel(), data, cfg, num_workers=0, batch_size=2)
    assert len(shards[0]["position"]) == 4 and len(shards[1]["position"]) == 3
    np.testing.assert_array_equal(out["index"], np.arange(n))
    np.testing.assert_array_equal(out["rel_root_depth"], np.arange(n))  # the per-sample predictions, in order
    for k in single:
        np.testing.assert_array_equal(out[k], single[k], err_msg=k)


# ============================================================================================== config fields reach
@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    net = TinyInterNet(bn=False, depth=16)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))  # a model whose heatmaps have distinct, off-centre peaks
    return net


@pytest.mark.parametrize("name, value", [("flip_test", True), ("subvoxel", True)])
def test_inference_fields_change_the_predictions(model, tmp_path, name, value):
    cfg = Config.cpu_demo(
        data_root=str(tmp_path), input_img_shape=(256, 256), output_hm_shape=(16, 64, 64), channels_last=False
    )
    rng = np.random.default_rng(0)
    imgs = rng.random((3, 3, 256, 256)).astype(np.float32)

    class Noise(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"img": imgs[i], "inv_trans": np.eye(2, 3)}

    base = predict(model, Noise(), cfg, num_workers=0)
    changed = predict(model, Noise(), cfg.replace(**{name: value}), num_workers=0)
    assert not np.array_equal(base["joint_coord"], changed["joint_coord"]), name
    # and the options that must not change the numbers do not
    same = predict(model, Noise(), cfg.replace(test_batch_size=1, num_workers=1), num_workers=None)
    np.testing.assert_array_equal(same["joint_coord"], base["joint_coord"])


@pytest.mark.parametrize(
    "name, value, metric",
    [
        ("bbox_3d_size", 300.0, "mpjpe_all"),
        ("output_hm_shape", (32, 64, 64), "mpjpe_all"),
        ("bbox_3d_size_root", 300.0, "mrrpe"),
        ("output_root_hm_shape", 32, "mrrpe"),
    ],
)
def test_evaluation_fields_change_the_scores(name, value, metric):
    from test_decode_evaluate import _random_eval_case

    from internet.evaluation.protocol import evaluate_dataset

    pred, gt = _random_eval_case(40, seed=7)
    base = Config()
    # (input_img_shape is tied to output_hm_shape's height and width by the config: their ratio, all the scorer
    # reads, cannot change)
    r0 = evaluate_dataset(pred, gt, base)
    r1 = evaluate_dataset(pred, gt, base.replace(**{name: value}))
    assert getattr(r1, metric) != pytest.approx(getattr(r0, metric), rel=1e-9), name


# ============================================================================================== non-square geometry
def _official_trans(c_x, c_y, src_w, src_h, dst_w, dst_h, inv=False):
    """Official ``gen_trans_from_patch_cv`` with scale 1 and no rotation."""
    src = np.float32([[c_x, c_y], [c_x, c_y + src_h * 0.5], [c_x + src_w * 0.5, c_y]])
    dst = np.float32([[dst_w * 0.5, dst_h * 0.5], [dst_w * 0.5, dst_h * 0.5 + dst_h * 0.5], [dst_w, dst_h * 0.5]])
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


def test_a_non_square_crop_and_heatmap_end_to_end_against_the_official_formulas(shared_dir):
    from internet.data import InterHand26M

    in_h, in_w = 128, 96
    d, hm_h, hm_w = 16, 32, 24
    cfg = Config(
        data_root=str(shared_dir / "data" / "interhand26m_sample"),
        input_img_shape=(in_h, in_w),
        output_hm_shape=(d, hm_h, hm_w),
    )
    ds = InterHand26M(cfg, "test", "test", cache=False)
    codec = HeatmapCodec.from_config(cfg)
    gt = ds.eval_targets()
    for i in range(len(ds)):
        s = ds[i]
        row = ds._row(i)
        x, y, w, h = (float(v) for v in ds.index["bbox"][row])
        aspect = in_w / in_h  # official process_bbox: widen the short side to the input's w / h, then x1.25
        w, h = (w, w / aspect) if w > aspect * h else (h * aspect, h)
        cx, cy = (
            float(ds.index["bbox"][row][0] + ds.index["bbox"][row][2] / 2),
            float(ds.index["bbox"][row][1] + ds.index["bbox"][row][3] / 2),
        )
        w, h = w * 1.25, h * 1.25
        np.testing.assert_allclose(s["inv_trans"], _official_trans(cx, cy, w, h, in_w, in_h, inv=True), atol=1e-3)
        trans = _official_trans(cx, cy, w, h, in_w, in_h)
        uv = np.asarray(ds.index["joint_img"][row], dtype=np.float64)
        crop = uv @ trans[:, :2].T + trans[:, 2]
        cam = np.asarray(ds.index["joint_cam"][row], dtype=np.float64)
        valid = s["joint_valid"] > 0
        rel_z = cam[:, 2].copy()
        rel_z[:21] -= cam[20, 2]
        rel_z[21:] -= cam[41, 2]
        official = np.stack(
            [crop[:, 0] / in_w * hm_w, crop[:, 1] / in_h * hm_h, (rel_z / (cfg.bbox_3d_size / 2) + 1) / 2 * d], 1
        )
        np.testing.assert_allclose(s["joint_coord"][valid], official[valid], atol=1e-3)
        back = codec.heatmap_to_image(s["joint_coord"][None], s["inv_trans"][None])[0]
        np.testing.assert_allclose(back[valid, :2], uv[valid], atol=1e-2)  # pixels of the original image
        placed = codec.to_camera(
            s["joint_coord"][None],
            None,
            s["inv_trans"][None],
            gt["focal"][i : i + 1],
            gt["princpt"][i : i + 1],
            gt["abs_depth"][i : i + 1],
        )[0]
        np.testing.assert_allclose(placed[valid], cam[valid], atol=0.5)  # mm


# ============================================================================================== defaults
def test_the_default_sequence_is_the_first_interacting_one_seen_by_its_busiest_camera(shared_dir, tmp_path):
    """Data built so that every simpler rule picks otherwise: a one-hand sequence sorts first, and the busiest
    camera of the interacting sequence is not its lowest-numbered one."""
    import json
    import shutil

    from internet.data.sequences import SequenceIndex, SequenceKey

    root = tmp_path / "sample"
    shutil.copytree(shared_dir / "data" / "interhand26m_sample", root)
    ann_dir = root / "annotations" / "test"
    data = json.loads((ann_dir / "InterHand2.6M_test_data.json").read_text())
    cams = json.loads((ann_dir / "InterHand2.6M_test_camera.json").read_text())
    joints = json.loads((ann_dir / "InterHand2.6M_test_joint_3d.json").read_text())
    k = next(i for i, img in enumerate(data["images"]) if img["seq_name"] == "0390_dh_touchROM")
    img0, ann0 = data["images"][k], data["annotations"][k]
    assert (img0["capture"], img0["camera"], ann0["hand_type"]) == (3, "400026", "interacting")
    for key in ("camrot", "campos", "focal", "princpt"):
        cams["3"][key]["400030"] = cams["3"][key]["400026"]
    new_id = 900000
    for seq, cam, frame, hand in [
        ("0390_dh_touchROM", "400030", 69148, "interacting"),
        ("0390_dh_touchROM", "400030", 69154, "interacting"),
        ("0001_first_one_hand", "400026", 10, "right"),
    ]:
        new_id += 1
        name = f"Capture3/{seq}/cam{cam}/image{frame}.jpg"
        data["images"].append(
            {**img0, "id": new_id, "file_name": name, "seq_name": seq, "camera": cam, "frame_idx": frame}
        )
        data["annotations"].append({**ann0, "id": new_id, "image_id": new_id, "hand_type": hand})
        joints["3"].setdefault(str(frame), joints["3"]["69148"])
    (ann_dir / "InterHand2.6M_test_data.json").write_text(json.dumps(data))
    (ann_dir / "InterHand2.6M_test_camera.json").write_text(json.dumps(cams))
    (ann_dir / "InterHand2.6M_test_joint_3d.json").write_text(json.dumps(joints))
    seqs = SequenceIndex(root, "test", cache=False)
    assert seqs.sequences(3) == ["0001_first_one_hand", "0390_dh_touchROM"]
    assert seqs.cameras(3, "0390_dh_touchROM") == ["400026", "400030"]
    assert seqs.default_sequence() == SequenceKey(3, "0390_dh_touchROM", "400030")
    assert seqs.busiest_camera(3, "0001_first_one_hand") == "400026"


class FixedOutput(torch.nn.Module):
    """Heatmaps peaked at one cell, a root bin far from the middle, and given hand-type probabilities."""

    def __init__(self, hand_type) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.hand = torch.tensor(hand_type, dtype=torch.float32)

    def forward(self, img):
        b = len(img)
        hm = torch.zeros(b, 42, 16, 16, 16) + self.anchor
        hm[:, :, 8, 8, 8] = 1.0
        return {"joint_heatmap": hm, "rel_root_depth": torch.full((b, 1), 60.0), "hand_type": self.hand.expand(b, 2)}


@pytest.mark.parametrize("hand_type, both", [((0.1, 0.9), False), ((0.9, 0.1), False), ((0.9, 0.8), True)])
def test_the_left_root_follows_the_relative_depth_only_when_both_hands_are_there(hand_type, both):
    from internet.infer.predictor import Predictor

    cfg = Config.cpu_demo(input_img_shape=(64, 64), output_hm_shape=(16, 16, 16), channels_last=False)
    out = Predictor(FixedOutput(hand_type), cfg, device="cpu").predict(
        np.zeros((120, 160, 3), np.uint8), [40, 30, 50, 50]
    )
    z_right, z_left = out["root_depth_mm"]
    assert out["rel_root_depth_mm"] == pytest.approx((60 / 64 * 2 - 1) * cfg.bbox_3d_size_root / 2)
    if both:
        assert z_left - z_right == pytest.approx(out["rel_root_depth_mm"])
    else:  # the root head is trained on interacting samples only: a lone hand sits at the box's depth guess
        assert z_left == z_right
    assert out["joint_cam"][20, 2] == pytest.approx(z_right) and out["joint_cam"][41, 2] == pytest.approx(z_left)


# ============================================================================================== the demo's options
def _demo_plan(monkeypatch, tmp_path, *argv) -> dict:
    """What ``python -m internet.app.demo ARGV`` hands to the data generator and each notebook (nothing run)."""
    import internet.app.demo as demo

    seen: dict = {}
    monkeypatch.setattr(demo, "prepare_data", lambda *a: seen.__setitem__("data", a) or "ready")
    monkeypatch.setattr(demo, "run_notebook", lambda name, params, out, echo=True: seen.__setitem__(name, params))
    monkeypatch.setattr(demo, "_report", lambda *a: None)
    assert demo.main(["--data-root", str(tmp_path / "d"), "--output-dir", str(tmp_path / "o"), *argv]) == 0
    return seen


@pytest.mark.parametrize(
    "argv, where, expected",
    [
        (["--seed", "7"], lambda s: (s["data"][1], s["02_train"]["config_overrides"]["seed"]), (7, 7)),
        (["--train-size", "33"], lambda s: s["data"][2], 33),
        (["--val-size", "0"], lambda s: s["data"][3], 0),
        (["--test-size", "11"], lambda s: s["data"][4], 11),
        (["--synth-workers", "3"], lambda s: s["data"][5], 3),
        (["--epochs", "2"], lambda s: s["02_train"].get("epochs"), 2),
        (["--batch-size", "5"], lambda s: s["02_train"].get("batch_size"), 5),
        (["--max-iters-per-epoch", "0"], lambda s: s["02_train"]["max_iters_per_epoch"], None),
        (["--max-iters-per-epoch", "9"], lambda s: s["02_train"]["max_iters_per_epoch"], 9),
        (["--num-workers", "0"], lambda s: s["02_train"].get("num_workers"), 0),
        (["--float32"], lambda s: s["02_train"]["config_overrides"].get("amp"), False),
        (["--resume"], lambda s: s["02_train"]["resume"], True),
        (
            ["--png-export", "matplotlib"],
            lambda s: {s[n]["png_export"] for n in ("01_explore_dataset", "04_visualize_3d", "06_sequences")},
            {"matplotlib"},
        ),
    ],
)
def test_each_demo_option_reaches_what_it_names(monkeypatch, tmp_path, argv, where, expected):
    default = where(_demo_plan(monkeypatch, tmp_path))
    given = where(_demo_plan(monkeypatch, tmp_path, *argv))
    assert given == expected and given != default, (argv, default, given)


def test_the_demo_folders_reach_every_notebook(monkeypatch, tmp_path):
    plan = _demo_plan(monkeypatch, tmp_path)
    notebooks = [k for k in plan if k != "data"]
    assert len(notebooks) == 5
    for name in notebooks:
        assert plan[name]["data_root"] == str(tmp_path / "d") and plan[name]["output_dir"] == str(tmp_path / "o")
    assert plan["data"][0] == tmp_path / "d"
