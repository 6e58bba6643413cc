"""RHD and STB: the real RHD sample, synthetic RHD/STB sets (writer, loaders, flip, RootNet mode, errors), the
official single-hand evaluation on the loaders' targets, and a short Trainer run + test on each format."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from vendored import RHD_SAMPLE

from internet.config import Config
from internet.data import build_dataset
from internet.data.augment import AugParams
from internet.data.io import DataFileError
from internet.data.rhd import RHD
from internet.data.stb import STB
from internet.evaluation.protocol import evaluate_single_hand
from internet.evaluation.scores import SingleHandEvalResult
from internet.geometry.crop import tight_bbox
from internet.skeleton import RHD as RHD_SKELETON
from internet.skeleton import STB as STB_SKELETON
from internet.synth.__main__ import main as synth_main
from internet.synth.single_hand import write_rhd, write_stb

STB_SK = {"focal": (607.92271, 607.88192), "princpt": (314.78337, 236.42484)}
FORMATS = {"RHD": ("RHD_training.json", "RHD_evaluation.json"), "STB": ("STB_train.json", "STB_test.json")}
KEYS = {
    "img": ((3, 256, 256), np.float32),
    "joint_coord": ((42, 3), np.float32),
    "rel_root_depth": ((1,), np.float32),
    "hand_type": ((2,), np.float32),
    "joint_valid": ((42,), np.float32),
    "root_valid": ((1,), np.float32),
    "hand_type_valid": ((), np.float32),
    "inv_trans": ((2, 3), np.float32),
    "capture": ((), np.int64),
    "cam": ((), np.int64),
    "frame": ((), np.int64),
    "ann_id": ((), np.int64),
    "index": ((), np.int64),
}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Small synthetic RHD and STB sets (written once for the module)."""
    root = tmp_path_factory.mktemp("single_hand")
    write_rhd(root / "RHD", seed=3, n_train=8, n_test=6)
    write_stb(root / "STB", seed=3, n_train=8, n_test=6)
    return root


def cfg_for(dataset: str, data_root, **kw) -> Config:
    return Config.from_params(dict(dataset=dataset, data_root=str(data_root), **kw))


def blocks_of(skeleton, hand_type: str):
    other = "left" if hand_type == "right" else "right"
    return skeleton.joint_type[hand_type], skeleton.joint_type[other]


def check_sample(s: dict) -> None:
    for key, (shape, dtype) in KEYS.items():
        assert key in s, key
        assert s[key].shape == shape and s[key].dtype == dtype, (key, s[key].shape, s[key].dtype)
    assert 0.0 <= s["img"].min() and s["img"].max() <= 1.0
    assert np.isin(s["joint_valid"], (0.0, 1.0)).all()
    assert s["hand_type"].sum() == 1.0 and s["hand_type_valid"] == 1.0
    assert s["root_valid"][0] == 0.0 and s["rel_root_depth"][0] == 32.0  # one hand: 0 mm, masked


def back_to_image(s: dict) -> np.ndarray:
    """Heatmap x, y -> original image pixels through the sample's inv_trans."""
    xy = s["joint_coord"][:, :2].astype(np.float64) * 4.0
    t = s["inv_trans"].astype(np.float64)
    return xy @ t[:, :2].T + t[:, 2]


# ----------------------------------------------------------------------------------------------------- real RHD
def test_real_rhd_projection_matches_joint_img():
    with open(RHD_SAMPLE / "RHD_training.json") as f:
        data = json.load(f)
    images = {im["id"]: im for im in data["images"]}
    for ann in data["annotations"]:
        cam = np.asarray(ann["joint_cam"], np.float64)
        p = images[ann["image_id"]]["cam_param"]
        uv = cam[:, :2] / cam[:, 2:] * np.asarray(p["focal"]) + np.asarray(p["princpt"])
        assert np.abs(uv - np.asarray(ann["joint_img"])).max() < 0.1, ann["id"]
    # the loader holds the same numbers
    ds = RHD(cfg_for("RHD", RHD_SAMPLE), "train", "test")
    cam = ds.ann.joint_cam.astype(np.float64)
    uv = cam[..., :2] / cam[..., 2:] * ds.ann.focal[:, None] + ds.ann.princpt[:, None]
    assert np.abs(uv - ds.ann.joint_img).max() < 0.1


def test_real_rhd_samples_blocks_and_round_trip():
    cfg = cfg_for("RHD", RHD_SAMPLE)
    ds = build_dataset(cfg, "train", "test")
    assert isinstance(ds, RHD) and len(ds) == 3
    with open(RHD_SAMPLE / "RHD_training.json") as f:
        anns = json.load(f)["annotations"]
    gt = ds.eval_targets()
    assert list(gt["hand_type"]) == [a["hand_type"] for a in anns] == ["left", "left", "right"]
    for i, ann in enumerate(anns):
        s = ds[i]
        check_sample(s)
        own, other = blocks_of(RHD_SKELETON, ann["hand_type"])
        # left hand -> block 0-20 (left first), right -> 21-41; the other block is zero and invalid
        assert own[0] == (0 if ann["hand_type"] == "left" else 21)
        np.testing.assert_array_equal(gt["joint_cam"][i, own], np.asarray(ann["joint_cam"], np.float32))
        assert not gt["joint_cam"][i, other].any() and not gt["joint_valid"][i, other].any()
        assert s["joint_valid"][own].sum() == 21 and s["joint_valid"][other].sum() == 0  # all inside the crop
        assert s["hand_type"].tolist() == ([1.0, 0.0] if ann["hand_type"] == "right" else [0.0, 1.0])
        # the crop and its inverse bring the joints back to joint_img; the root sits at depth bin 32 (0 mm)
        np.testing.assert_allclose(back_to_image(s)[own], np.asarray(ann["joint_img"]), atol=2e-3)
        assert s["joint_coord"][own[0], 2] == pytest.approx(32.0)
        assert gt["abs_depth"][i] == pytest.approx(ann["joint_cam"][0][2])  # root = wrist, local index 0
    # the test-mode targets, decoded and evaluated officially, give back the GT: MPJPE ~ 0 (the file's joint_img is
    # its joint_cam's projection rounded to ~0.04 px, about 0.1 mm at these depths), all PCK hits
    pred = {
        "joint_coord": np.stack([ds[i]["joint_coord"] for i in range(3)]),
        "hand_type": np.array([[0.1, 0.9], [0.2, 0.7], [0.8, 0.4]]),
    }
    r = evaluate_single_hand(pred, gt, ds.skeleton, cfg=cfg)
    assert r.mpjpe < 0.2 and r.auc_pck_20_50 == 1.0 and r.handedness_accuracy == 1.0
    assert r.counts == {"samples": 3, "right": 1, "left": 2, "valid_joints": 63}


# ----------------------------------------------------------------------------------------------------- synthetic
@pytest.mark.parametrize("fmt", ["RHD", "STB"])
def test_synthetic_files_follow_the_format(synth, fmt):
    root = synth / fmt
    skeleton = RHD_SKELETON if fmt == "RHD" else STB_SKELETON
    for name in FORMATS[fmt]:
        with open(root / name) as f:
            data = json.load(f)
        assert set(data) == {"images", "annotations"}
        images = {im["id"]: im for im in data["images"]}
        for ann in data["annotations"]:
            im = images[ann["image_id"]]
            assert ann["id"] == ann["image_id"] and ann["hand_type"] in ("right", "left")
            cam = np.asarray(ann["joint_cam"], np.float64)
            img = np.asarray(ann["joint_img"], np.float64)
            valid = np.asarray(ann["joint_valid"]) > 0
            assert cam.shape == (21, 3) and img.shape == (21, 2) and valid.shape == (21,)
            p = im["cam_param"]
            uv = cam[:, :2] / cam[:, 2:] * np.asarray(p["focal"]) + np.asarray(p["princpt"])
            assert np.abs(uv - img).max() < 0.01
            assert (
                valid[0]
                and (img[valid] >= 0).all()
                and (img[valid, 0] < im["width"]).all()
                and (img[valid, 1] < im["height"]).all()
            )
            np.testing.assert_allclose(ann["bbox"], tight_bbox(img, valid, 1.2), atol=1e-3)
            # the joint order follows the skeleton's names: every bone is a plausible hand bone (mm), and in each
            # digit the base segment (1-2) is longer than the last (3-4), whatever the pose
            bones = skeleton.bones[:20]  # the first (left) block's bones = local indices
            length = np.linalg.norm(cam[bones[:, 0]] - cam[bones[:, 1]], axis=1)
            assert (length > 8).all() and (length < 110).all(), length
            for finger in ("thumb", "index", "middle", "ring", "pinky"):
                j1, j2, j3, j4 = (skeleton.index(f"l_{finger}{k}") for k in (1, 2, 3, 4))
                assert np.linalg.norm(cam[j1] - cam[j2]) > np.linalg.norm(cam[j3] - cam[j4]), finger
            if fmt == "RHD":
                assert skeleton.names[0] == "l_wrist" and skeleton.index("l_thumb4") == 1
                assert im["width"] == im["height"] == 320 and p["princpt"] == [160.0, 160.0]
                assert 250 < p["focal"][0] < 350
            else:
                assert skeleton.names[0] == "l_palm" and skeleton.index("l_pinky1") == 1
                assert (im["width"], im["height"]) == (640, 480)
                np.testing.assert_allclose(p["focal"], STB_SK["focal"], rtol=1e-6)
                np.testing.assert_allclose(p["princpt"], STB_SK["princpt"], rtol=1e-6)
                # the palm centre lies between the wrist-side bases and the middle finger's MCP
                assert 20 < np.linalg.norm(cam[0] - cam[skeleton.index("l_middle1")]) < 60
                test = name.endswith("test.json")
                seqs = {im["seq_name"] for im in data["images"]}
                assert seqs <= (
                    {"B1Counting", "B1Random"}
                    if test
                    else {f"B{b}{k}" for b in range(2, 7) for k in ("Counting", "Random")}
                )
    assert (root / "skeleton.txt").read_text().count("\n") == 43
    rootnet = json.loads((root / "rootnet_output" / f"rootnet_{fmt.lower()}_output.json").read_text())
    assert len(rootnet) == 6 and all(np.isscalar(e["abs_depth"]) for e in rootnet)


def test_synthetic_sets_are_deterministic(tmp_path):
    write_rhd(tmp_path / "a", seed=5, n_train=3, n_test=0, with_images=False)
    assert (
        synth_main(
            [
                "--out",
                str(tmp_path / "b"),
                "--format",
                "rhd",
                "--seed",
                "5",
                "--train",
                "3",
                "--test",
                "0",
                "--no-images",
                "--quiet",
            ]
        )
        == 0
    )
    a = (tmp_path / "a" / "RHD_training.json").read_bytes()
    assert a == (tmp_path / "b" / "RHD_training.json").read_bytes()
    assert not (tmp_path / "a" / "training").exists()  # no images asked for
    write_rhd(tmp_path / "c", seed=6, n_train=3, n_test=0, with_images=False)
    assert a != (tmp_path / "c" / "RHD_training.json").read_bytes()
    # rewriting a set with a split skipped removes that split's old files; a foreign data set is never overwritten
    write_stb(tmp_path / "d", seed=1, n_train=2, n_test=2, with_images=False)
    write_stb(tmp_path / "d", seed=1, n_train=2, n_test=0, with_images=False)
    assert not (tmp_path / "d" / "STB_test.json").exists()
    assert not (tmp_path / "d" / "rootnet_output" / "rootnet_stb_output.json").exists()
    (tmp_path / "d" / "synth_info.json").unlink()
    with pytest.raises(FileExistsError, match="not a data set written by internet.synth"):
        write_stb(tmp_path / "d", seed=1, n_train=2, n_test=0)
    with pytest.raises(SystemExit):  # the CLI reports it as a usage error
        synth_main(["--out", str(tmp_path / "d"), "--format", "stb", "--train", "1", "--test", "0", "--quiet"])


@pytest.mark.parametrize("fmt", ["RHD", "STB"])
def test_synthetic_loader_samples_and_flip(synth, fmt):
    cfg = cfg_for(fmt, synth / fmt)
    train = build_dataset(cfg, "train", "train")
    assert type(train).__name__ == fmt and len(train) == 8 and train.split == "train"
    skeleton = train.skeleton
    types = train.eval_targets()["hand_type"]
    for i in range(2):
        s = train[i]
        check_sample(s)
        assert s["index"] == i
        plain = train.get_sample(i, AugParams())
        flipped = train.get_sample(i, AugParams(do_flip=True))
        own, other = blocks_of(skeleton, types[i])
        # flipping swaps the blocks and the hand-type bits, mirrors x about the crop centre, keeps y and z
        assert flipped["hand_type"].tolist() == plain["hand_type"][::-1].tolist()
        np.testing.assert_array_equal(flipped["joint_valid"][other], plain["joint_valid"][own])
        assert flipped["joint_valid"][own].sum() == 0
        np.testing.assert_allclose(flipped["joint_coord"][other, 0], 64.0 - plain["joint_coord"][own, 0], atol=1e-3)
        np.testing.assert_allclose(flipped["joint_coord"][other, 1:], plain["joint_coord"][own, 1:], atol=1e-3)
        assert flipped["rel_root_depth"][0] == 32.0 and flipped["root_valid"][0] == 0.0
    # the augmentation is a function of (seed, epoch, index)
    a = train[3]["joint_coord"]
    train.set_epoch(1)
    assert not np.array_equal(a, train[3]["joint_coord"])
    train.set_epoch(0)
    np.testing.assert_array_equal(a, train[3]["joint_coord"])
    assert train.image_path(0).relative_to(train.image_root).parts[-1] == train.ann.file_name[0]
    if fmt == "STB":
        test = build_dataset(cfg, "test", "test")
        assert set(test.seq_names) <= {"B1Counting", "B1Random"}
        assert test[0]["capture"] == test.seq_names.index(str(test.ann.seq_name[0]))


@pytest.mark.parametrize("fmt", ["RHD", "STB"])
def test_evaluation_on_loader_targets_matches_official_loop(synth, fmt):
    """evaluate_single_hand on eval_targets() = a per-sample loop written from the official RHD/STB evaluate()."""
    cfg = cfg_for(fmt, synth / fmt)
    ds = build_dataset(cfg, "test", "test")
    gt = ds.eval_targets()
    n = len(ds)
    rng = np.random.default_rng(0)
    coord = np.stack([ds[i]["joint_coord"] for i in range(n)]).astype(np.float64)
    coord += rng.normal(0.0, 1.0, size=coord.shape)
    probs = rng.uniform(0, 1, size=(n, 2))
    r = evaluate_single_hand({"joint_coord": coord, "hand_type": probs}, gt, ds.skeleton, cfg=cfg)
    per_joint = [[] for _ in range(21)]
    correct = 0
    for i in range(n):
        own = ds.skeleton.joint_type[gt["hand_type"][i]]
        t = gt["inv_trans"][i].astype(np.float64)
        xy = coord[i, :, :2] * 4.0 @ t[:, :2].T + t[:, 2]
        z = (coord[i, :, 2] / 64 * 2 - 1) * 200 + gt["abs_depth"][i]  # one depth for all 42 joints
        cam = np.stack(
            [
                (xy[:, 0] - gt["princpt"][i, 0]) / gt["focal"][i, 0] * z,
                (xy[:, 1] - gt["princpt"][i, 1]) / gt["focal"][i, 1] * z,
                z,
            ],
            1,
        )
        pred = cam[own] - cam[own[0]]
        ref = gt["joint_cam"][i, own].astype(np.float64) - gt["joint_cam"][i, own[0]]
        for j in range(21):
            if gt["joint_valid"][i, own[j]]:
                per_joint[j].append(np.linalg.norm(pred[j] - ref[j]))
        p = probs[i]
        correct += (p[0] > 0.5 and p[1] < 0.5) if gt["hand_type"][i] == "right" else (p[0] < 0.5 and p[1] > 0.5)
    assert r.mpjpe == pytest.approx(np.mean([np.mean(v) for v in per_joint]), rel=1e-9)
    assert r.handedness_accuracy == pytest.approx(correct / n)
    assert 0.0 <= r.auc_pck_20_50 <= 1.0


@pytest.mark.parametrize("fmt", ["RHD", "STB"])
def test_rootnet_mode(synth, fmt, tmp_path):
    cfg = cfg_for(fmt, synth / fmt, trans_test="rootnet")
    ds = build_dataset(cfg, "test", "test")
    gt_mode = build_dataset(cfg.replace(trans_test="gt"), "test", "test").eval_targets()
    entries = json.loads(ds.rootnet_path.read_text())
    by_id = {e["annot_id"]: e for e in entries}
    gt = ds.eval_targets()
    for i, aid in enumerate(gt["ann_id"]):
        np.testing.assert_allclose(gt["bbox"][i], by_id[int(aid)]["bbox"], rtol=1e-6)
        assert gt["abs_depth"][i] == pytest.approx(by_id[int(aid)]["abs_depth"], rel=1e-6)
    np.testing.assert_allclose(gt["bbox"], gt_mode["bbox"], atol=1e-3)  # the RootNet box is the processed GT box
    assert 0 < np.abs(gt["abs_depth"] - gt_mode["abs_depth"]).max() < 100
    check_sample(ds[0])
    # a file that lacks an annotation id: the error names it
    bad = tmp_path / "rootnet.json"
    bad.write_text(json.dumps([e for e in entries if e["annot_id"] != int(gt["ann_id"][2])]))
    with pytest.raises(DataFileError, match=rf"lacks 1 .*\b{int(gt['ann_id'][2])}\b"):
        build_dataset(cfg.replace(rootnet_path=str(bad)), "test", "test")
    with pytest.raises(FileNotFoundError, match="rootnet"):
        build_dataset(cfg.replace(rootnet_path=str(tmp_path / "none.json")), "test", "test")


@pytest.mark.parametrize("fmt", ["RHD", "STB"])
def test_trainer_runs_and_tests_each_format(synth, fmt, tmp_path):
    from internet.engine.trainer import Trainer

    cfg = Config.cpu_demo(
        dataset=fmt,
        data_root=str(synth / fmt),
        output_dir=str(tmp_path / "out"),
        max_iters_per_epoch=2,
        end_epoch=1,
        train_batch_size=2,
        test_batch_size=6,
        num_workers=0,
        amp=False,
        channels_last=False,
    )
    trainer = Trainer(cfg, progress_bar=False)
    summary = trainer.train()
    assert summary["global_step"] == 2 and all(math.isfinite(v) for v in summary["losses"].values())
    # the root-depth head gets no gradient signal: root_valid is 0 for every single-hand sample
    assert summary["losses"]["loss_rel_root_depth"] == 0.0
    result = trainer.test()
    trainer.close()
    assert isinstance(result, SingleHandEvalResult) and result.counts["samples"] == 6
    assert math.isfinite(result.mpjpe) and 0.0 <= result.auc_pck_20_50 <= 1.0
    saved = json.loads((cfg.result_dir / "eval_test.json").read_text())
    assert saved["meta"]["dataset"] == fmt
    assert saved["official_protocol"]["mpjpe"] == pytest.approx(result.mpjpe)
    assert saved["variants"]["auc_pck_20_50mm"] == pytest.approx(result.auc_pck_20_50)


# ----------------------------------------------------------------------------------------------------- bad input
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def test_bad_files_give_clear_errors(synth, tmp_path):
    root = _copy(synth / "RHD", tmp_path / "RHD")
    cfg = cfg_for("RHD", root)
    path = root / "RHD_training.json"
    first_id = json.loads(path.read_text())["annotations"][1]["id"]

    with pytest.raises(ValueError, match="RHD has no split 'val'"):
        RHD(cfg, "val", "test")
    with pytest.raises(FileNotFoundError, match="RHD_evaluation.json"):
        RHD(cfg_for("RHD", tmp_path / "nowhere"), "test", "test")

    original = path.read_text()
    path.write_text(original[:-40])
    with pytest.raises(DataFileError, match="malformed annotation file .*RHD_training.json"):
        RHD(cfg, "train", "test")

    cases = [
        (lambda d: d["annotations"][1].pop("joint_cam"), rf"id={first_id} .*no key 'joint_cam'"),
        (
            lambda d: d["annotations"][1].__setitem__("joint_img", d["annotations"][1]["joint_img"][:20]),
            rf"id={first_id} .*'joint_img' must be numeric of shape \[21, 2\]",
        ),
        (
            lambda d: d["annotations"][1].__setitem__("hand_type", "interacting"),
            rf"id={first_id} .*hand_type 'interacting'",
        ),
        (lambda d: d["annotations"][1].__setitem__("image_id", 12345), r"image_id 12345 is not in 'images'"),
        (lambda d: d["images"][0]["cam_param"].pop("focal"), r"image id=0 .*'cam_param' has no key 'focal'"),
        (lambda d: d["annotations"][1].__setitem__("bbox", [1, 2, 0, 5]), rf"id={first_id} .*bbox"),
        (lambda d: d.pop("images"), r"top-level key 'images' must be a list \(missing\)"),
        (lambda d: d["annotations"][1]["joint_valid"].__setitem__(3, 2), rf"id={first_id} .*0/1 values"),
        (lambda d: d["annotations"][1]["joint_cam"][0].__setitem__(2, -5.0), rf"id={first_id} has root depth -5.0 mm"),
    ]
    for edit, pattern in cases:
        path.write_text(original)
        _edit(path, edit)
        with pytest.raises(DataFileError, match=pattern):
            RHD(cfg, "train", "test")
    path.write_text(original)
    ds = RHD(cfg, "train", "test")
    ds.image_path(1).unlink()
    with pytest.raises(FileNotFoundError, match=r"00001\.png"):
        ds[1]

    stb = _copy(synth / "STB", tmp_path / "STB")
    _edit(stb / "STB_test.json", lambda d: d["images"][2].pop("seq_name"))
    with pytest.raises(DataFileError, match=r"STB_test.json: image id=2 .*no key 'seq_name'"):
        STB(cfg_for("STB", stb), "test", "test")
