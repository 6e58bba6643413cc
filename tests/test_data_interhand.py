"""InterHand2.6M data set: parity with the official code's fixtures, the cached index, augmentation, eval targets."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from vendored import INTERHAND_SAMPLE as SAMPLE
from vendored import OFFICIAL as REF

from internet.config import Config
from internet.data import InterHand26M, build_dataset
from internet.data import index_cache as index_mod
from internet.data.augment import AugParams, crop_inv_trans, make_sample, sample_aug_params
from internet.evaluation.protocol import evaluate_interhand
from internet.geometry.camera import cam2pixel, world2cam
from internet.geometry.crop import gen_trans_from_patch_cv, process_bboxes
from internet.skeleton import RHD

ANN_DIR = Path("annotations") / "test"
KINDS = ("data", "camera", "joint_3d")


@pytest.fixture(autouse=True)
def _private_user_cache(tmp_path, monkeypatch):
    # A fallback cache (read-only data root) must never land in the real home or in ../shared.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))


def sample_cfg(**kw) -> Config:
    return Config(data_root=str(SAMPLE), **kw)


def copy_sample(dst: Path) -> Path:
    """A writable copy of the real sample (annotations and images) under dst."""
    shutil.copytree(SAMPLE / "annotations", dst / "annotations")
    shutil.copytree(SAMPLE / "images", dst / "images")
    for p in dst.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    os.chmod(dst, 0o755)
    return dst


def load_json(root: Path, kind: str):
    with open(root / ANN_DIR / f"InterHand2.6M_test_{kind}.json") as f:
        return json.load(f)


def save_json(root: Path, kind: str, obj) -> None:
    with open(root / ANN_DIR / f"InterHand2.6M_test_{kind}.json", "w") as f:
        json.dump(obj, f)


# ================================================================================================ parity
FIXTURE_KEYS = (
    "joint_coord",
    "joint_valid",
    "root_valid",
    "rel_root_depth",
    "hand_type",
    "hand_type_valid",
    "inv_trans",
    "capture",
    "cam",
    "frame",
)


def _assert_sample_matches(sample: dict, ref, row: int, label: str) -> None:
    """Every target and id of ``sample`` equals the official fixture's row ``row``."""
    for key in FIXTURE_KEYS:
        np.testing.assert_allclose(
            np.asarray(sample[key], np.float64),
            ref[key][row].astype(np.float64),
            rtol=1e-6,
            atol=1e-5,
            err_msg=f"{label} key {key}",
        )


def test_test_mode_matches_official(tmp_path):
    ref = np.load(REF / "data_test_mode.npz")
    ds = InterHand26M(sample_cfg(trans_test="gt"), "test", mode="test", cache_dir=tmp_path)
    assert len(ds) == 3
    assert [int(ds[i]["frame"]) for i in range(3)] == ref["frame_idx"].tolist()  # single-hand first
    for i in range(3):
        s = ds[i]
        np.testing.assert_allclose(s["img"], ref["img"][i].astype(np.float32), atol=2e-3, rtol=0)
        _assert_sample_matches(s, ref, i, f"sample {i}")


def test_train_fixed_aug_matches_official(tmp_path):
    ref = np.load(REF / "data_train_fixed_aug.npz")
    draws = json.loads((REF / "data_train_fixed_aug.json").read_text())
    augs = [AugParams.from_dict(a) for a in draws["augs"]]
    assert augs[0].do_flip  # the fixture covers the flip
    ds = InterHand26M(sample_cfg(), "test", mode="train", cache_dir=tmp_path)
    for j, (draw, idx) in enumerate(ref["aug_sample"]):
        s = ds.get_sample(int(idx), augs[int(draw)])
        np.testing.assert_allclose(s["img"], ref["img"][j].astype(np.float32), atol=2e-3, rtol=0)
        _assert_sample_matches(s, ref, j, f"fixture row {j}")


def test_sample_contract_dtypes_and_shapes(tmp_path):
    ds = InterHand26M(sample_cfg(), "test", mode="train", cache_dir=tmp_path)
    s = ds[2]
    expect = {
        "img": (np.float32, (3, 256, 256)),
        "joint_coord": (np.float32, (42, 3)),
        "rel_root_depth": (np.float32, (1,)),
        "hand_type": (np.float32, (2,)),
        "joint_valid": (np.float32, (42,)),
        "root_valid": (np.float32, (1,)),
        "hand_type_valid": (np.float32, ()),
        "inv_trans": (np.float32, (2, 3)),
        "capture": (np.int64, ()),
        "cam": (np.int64, ()),
        "frame": (np.int64, ()),
        "ann_id": (np.int64, ()),
        "index": (np.int64, ()),
    }
    assert set(s) == set(expect)
    for key, (dtype, shape) in expect.items():
        assert s[key].dtype == dtype and s[key].shape == shape, key
    assert 0.0 <= s["img"].min() and s["img"].max() <= 1.0
    assert int(s["index"]) == 2 and int(s["ann_id"]) == 326750


def test_real_frames_project_inside_their_boxes(tmp_path):
    ds = InterHand26M(sample_cfg(), "test", mode="test", cache_dir=tmp_path)
    idx = ds.index
    assert [idx.file_name(r).split("/")[0] for r in range(3)] == ["Capture7", "Capture4", "Capture3"]
    assert list(ds.eval_targets()["hand_type"]) == ["left", "right", "interacting"]
    for r in range(3):
        valid = idx["joint_valid"][r] > 0
        uv, box = idx["joint_img"][r][valid], idx["bbox"][r]
        assert valid.sum() in (21, 42)
        assert np.all(uv[:, 0] >= box[0]) and np.all(uv[:, 0] <= box[0] + box[2])
        assert np.all(uv[:, 1] >= box[1]) and np.all(uv[:, 1] <= box[1] + box[3])
        assert np.all(idx["joint_cam"][r][valid][:, 2] > 900)  # about a metre from the camera
        img = ds.load_image(r)
        assert img.shape == (int(idx["height"][r]), int(idx["width"][r]), 3) and img.dtype == np.float32
    assert ds.load_image(1).shape == (334, 512, 3)  # the landscape frame


def test_index_projection_is_the_official_float32_formula(tmp_path):
    ds = InterHand26M(sample_cfg(), "test", mode="test", cache_dir=tmp_path)
    cams, joints = load_json(SAMPLE, "camera"), load_json(SAMPLE, "joint_3d")
    for r in range(len(ds)):
        cap, cam, frame = (str(int(ds.index[k][r])) for k in ("capture", "camera", "frame"))
        c = cams[cap]
        R, T = (np.array(c[f][cam], np.float32) for f in ("camrot", "campos"))
        f, p = (np.array(c[k][cam], np.float32) for k in ("focal", "princpt"))
        world = np.array(joints[cap][frame]["world_coord"], np.float32)
        cam_coord = world2cam(world, R, T).astype(np.float32)
        np.testing.assert_allclose(ds.index["joint_cam"][r], cam_coord, rtol=1e-6, atol=1e-3)
        np.testing.assert_allclose(ds.index["joint_img"][r], cam2pixel(cam_coord, f, p)[:, :2], rtol=1e-6, atol=1e-3)


def test_eval_targets(tmp_path):
    ds = InterHand26M(sample_cfg(), "test", mode="test", cache_dir=tmp_path)
    gt = ds.eval_targets()
    n = len(ds)
    shapes = {
        "joint_cam": (n, 42, 3),
        "joint_valid": (n, 42),
        "hand_type": (n,),
        "hand_type_valid": (n,),
        "focal": (n, 2),
        "princpt": (n, 2),
        "abs_depth": (n, 2),
        "inv_trans": (n, 2, 3),
        "ann_id": (n,),
    }
    for key, shape in shapes.items():
        assert gt[key].shape == shape, key
    np.testing.assert_array_equal(gt["abs_depth"], gt["joint_cam"][:, [20, 41], 2])
    for i in range(n):
        s = ds[i]
        np.testing.assert_allclose(gt["inv_trans"][i], s["inv_trans"], rtol=1e-6, atol=1e-5)
        assert int(gt["ann_id"][i]) == int(s["ann_id"])
        # eval validity is the annotation's (root propagated), without the crop/depth-range checks
        assert np.all(gt["joint_valid"][i] >= s["joint_valid"])
    np.testing.assert_array_equal(gt["joint_valid"][0, :21], 0)  # the left-only frame
    # the caller may modify what it gets; nothing stored changes
    before = np.array(ds.index["joint_cam"])
    gt["joint_cam"] -= gt["joint_cam"][:, 20:21]
    np.testing.assert_array_equal(ds.eval_targets()["joint_cam"], before)


def test_eval_targets_reproduce_the_official_metrics(tmp_path):
    """The documented prediction of evaluate_metrics.json scored against these targets gives the official numbers."""
    ds = InterHand26M(sample_cfg(), "test", mode="test", cache_dir=tmp_path)
    gt = ds.eval_targets()
    ref = np.load(REF / "data_test_mode.npz")
    expect = json.loads((REF / "evaluate_metrics.json").read_text())
    j = np.arange(42)
    offset = np.stack([0.8 * np.sin(1.3 * j + 0.5), 0.8 * np.cos(0.7 * j), 1.5 * np.sin(0.9 * j + 1)], axis=1)
    probs = {"right": [0.9, 0.3], "left": [0.6, 0.7], "interacting": [0.8, 0.9]}
    pred = {
        "joint_coord": ref["joint_coord"] + offset,
        "rel_root_depth": ref["rel_root_depth"][:, 0] + 2.0,
        "hand_type": np.array([probs[t] for t in gt["hand_type"]]),
    }
    got = evaluate_interhand(pred, gt, cfg=ds.cfg).to_dict()["official_protocol"]
    assert got["handedness_accuracy"] == pytest.approx(expect["handedness_accuracy"])
    assert got["mrrpe"] == pytest.approx(expect["mrrpe"], abs=1e-3)
    for key in ("mpjpe_all", "mpjpe_single", "mpjpe_interacting"):
        assert got[key] == pytest.approx(expect[key], abs=0.006), key  # the official prints 2 decimals


# ================================================================================================ augmentation
def test_aug_params_follow_the_official_distributions():
    rng = np.random.default_rng(123)
    draws = [sample_aug_params(rng) for _ in range(4000)]
    trans = np.array([d.trans for d in draws])
    scale = np.array([d.scale for d in draws])
    rot = np.array([d.rot for d in draws])
    flip = np.array([d.do_flip for d in draws])
    color = np.array([d.color for d in draws])
    assert trans.min() >= -0.15 and trans.max() <= 0.15 and abs(trans.mean()) < 0.01
    assert abs(trans.std() - 0.3 / np.sqrt(12)) < 0.005  # uniform
    assert scale.min() == pytest.approx(0.75) and scale.max() == pytest.approx(1.25)
    assert abs(np.isclose(np.abs(scale - 1), 0.25).mean() - 0.3173) < 0.03  # P(|N| > 1) mass at the clip
    nonzero = rot != 0
    assert abs(nonzero.mean() - 0.6) < 0.03
    assert np.abs(rot).max() == pytest.approx(90.0)
    assert abs(np.isclose(np.abs(rot[nonzero]), 90).mean() - 0.0455) < 0.02  # P(|N| > 2)
    assert abs(flip.mean() - 0.5) < 0.03
    assert color.min() >= 0.8 and color.max() <= 1.2 and abs(color.mean() - 1.0) < 0.01


def test_aug_params_identity_and_checks():
    ident = AugParams.identity()
    assert ident.trans == (0.0, 0.0) and ident.scale == 1.0 and ident.rot == 0.0 and not ident.do_flip
    assert ident.color == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="scale"):
        AugParams(scale=0.0)
    with pytest.raises(ValueError, match="color"):
        AugParams(color=(1.0, 1.0))


def test_train_mode_draws_depend_only_on_seed_epoch_and_index(tmp_path):
    ds = InterHand26M(sample_cfg(seed=7), "test", mode="train", cache_dir=tmp_path)
    ds.set_epoch(3)
    late = ds[2]
    first = [ds[i] for i in range(3)]
    for key in ("img", "joint_coord", "inv_trans"):
        np.testing.assert_array_equal(first[2][key], late[key])
    assert ds.aug_params(1) == sample_aug_params(np.random.default_rng([7, 3, 1]))
    ds.set_epoch(4)
    assert not np.array_equal(ds[2]["inv_trans"], late["inv_trans"])
    test_ds = InterHand26M(sample_cfg(seed=7), "test", mode="test", cache_dir=tmp_path)
    np.testing.assert_array_equal(test_ds[0]["img"], ds.get_sample(0, AugParams.identity())["img"])
    np.testing.assert_array_equal(test_ds[0]["img"], ds.get_sample(0, None)["img"])


def test_flip_swaps_hands_and_mirrors_root_depth(tmp_path):
    ds = InterHand26M(sample_cfg(), "test", mode="train", cache_dir=tmp_path)
    base = AugParams(trans=(0.02, -0.03), scale=1.1, rot=0.0, do_flip=False, color=(1.0, 1.0, 1.0))
    flipped = AugParams(trans=base.trans, scale=base.scale, rot=0.0, do_flip=True, color=base.color)
    a, b = ds.get_sample(2, base), ds.get_sample(2, flipped)  # the interacting frame
    np.testing.assert_array_equal(b["hand_type"], a["hand_type"][::-1])
    np.testing.assert_allclose(a["rel_root_depth"] + b["rel_root_depth"], 64.0, atol=1e-4)  # about bin 32
    # the right block of the flipped sample is the mirrored left hand: same depths, mirrored x
    np.testing.assert_allclose(b["joint_coord"][:21, 2], a["joint_coord"][21:, 2], atol=1e-4)
    np.testing.assert_array_equal(b["joint_valid"][:21], a["joint_valid"][21:])
    # with no rotation, the flipped crop is the mirrored crop (up to the one-pixel offset of u' = W - u - 1)
    x_a, x_b = a["joint_coord"][21:, 0], b["joint_coord"][:21, 0]
    assert np.allclose(x_a + x_b, x_a[0] + x_b[0], atol=1e-3)
    left_only = ds.get_sample(0, flipped)
    np.testing.assert_array_equal(left_only["hand_type"], [1.0, 0.0])
    assert left_only["joint_valid"][:21].sum() > 0 and left_only["joint_valid"][21:].sum() == 0


def test_augmentation_never_modifies_stored_boxes(tmp_path):
    ds = InterHand26M(sample_cfg(), "test", mode="train", cache=False)
    box_before, stored_before = ds.crop_bbox(1), np.array(ds.index["bbox"])
    shifted = AugParams(trans=(0.15, 0.15), scale=1.0, rot=0.0, do_flip=False, color=(1.0, 1.0, 1.0))
    s1, s2 = ds.get_sample(1, shifted), ds.get_sample(1, shifted)
    np.testing.assert_array_equal(s1["inv_trans"], s2["inv_trans"])  # a second draw starts from the same box
    np.testing.assert_array_equal(ds.crop_bbox(1), box_before)
    np.testing.assert_array_equal(ds.index["bbox"], stored_before)


def test_smaller_input_preset_scales_targets(tmp_path):
    cfg = sample_cfg(input_img_shape=(128, 128), output_hm_shape=(32, 32, 32))
    big = InterHand26M(sample_cfg(), "test", mode="test", cache_dir=tmp_path)[2]
    small = InterHand26M(cfg, "test", mode="test", cache_dir=tmp_path)[2]
    assert small["img"].shape == (3, 128, 128)
    np.testing.assert_allclose(small["joint_coord"] * 2, big["joint_coord"], atol=2e-3)  # same field of view
    np.testing.assert_allclose((small["rel_root_depth"]), big["rel_root_depth"], atol=1e-4)  # 64 root bins in both


def test_make_sample_is_skeleton_generic():
    # a left-first (RHD-style) single left hand: the flip moves it into the second block and swaps hand bits
    cfg = Config()
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (300, 320, 3)).astype(np.float32)
    joint_coord = np.zeros((42, 3), np.float32)
    joint_coord[:21, :2] = rng.uniform(120, 180, (21, 2))
    joint_coord[:21, 2] = 500 + rng.uniform(-50, 50, 21)
    joint_valid = np.r_[np.ones(21), np.zeros(21)].astype(np.float32)
    box = np.array([100, 100, 100, 100], np.float32)
    plain = make_sample(img, box, joint_coord, joint_valid, np.array([0, 1], np.float32), AugParams(), RHD, cfg)
    inputs = [a.copy() for a in (img, box, joint_coord, joint_valid)]
    flip = make_sample(
        img,
        box,
        joint_coord,
        joint_valid,
        np.array([0, 1], np.float32),
        AugParams(trans=(0.1, 0.1), do_flip=True, color=(0.9, 1.1, 1.0)),
        RHD,
        cfg,
    )
    for before, after in zip(inputs, (img, box, joint_coord, joint_valid)):
        np.testing.assert_array_equal(before, after)  # inputs untouched (the official code shifts the box in place)
    assert plain["joint_valid"][:21].all() and not plain["joint_valid"][21:].any()
    assert flip["joint_valid"][21:].all() and not flip["joint_valid"][:21].any()
    np.testing.assert_array_equal(flip["hand_type"], [1, 0])
    # RHD's root is index 0 of a block: root depth bin is the centre
    assert plain["joint_coord"][0, 2] == pytest.approx(32.0)
    assert flip["joint_coord"][21, 2] == pytest.approx(32.0)
    assert plain["root_valid"][0] == 0


def test_vectorised_boxes_and_inverse_affine_match_per_sample_geometry():
    rng = np.random.default_rng(5)
    boxes = np.c_[rng.uniform(-50, 300, (200, 2)), rng.uniform(5, 300, (200, 2))].astype(np.float32)
    boxes[:5, 2] = boxes[:5, 3]  # square boxes too
    processed = process_bboxes(boxes)
    for b, p in zip(boxes, processed):
        np.testing.assert_allclose(p, process_bboxes(b), rtol=1e-6, atol=1e-4)
    for aspect in (1.0, 0.75, 4 / 3):  # the one-box fast path takes the same float32 steps: bit-identical
        many = process_bboxes(boxes, aspect)
        assert all(np.array_equal(process_bboxes(b, aspect), p) for b, p in zip(boxes, many))
    inv = crop_inv_trans(processed, (256, 256))
    for p, m in zip(processed, inv):
        c_x, c_y = float(p[0] + 0.5 * p[2]), float(p[1] + 0.5 * p[3])
        ref = gen_trans_from_patch_cv(c_x, c_y, float(p[2]), float(p[3]), 256, 256, 1.0, 0.0, inv=True)
        np.testing.assert_allclose(m, ref, rtol=1e-6, atol=1e-5)


# ================================================================================================ cache
def test_cache_reused_then_rebuilt_when_a_source_changes(tmp_path, monkeypatch):
    root = copy_sample(tmp_path / "ih")
    cfg = Config(data_root=str(root))
    builds = []
    real_build = index_mod.build_interhand_index
    monkeypatch.setattr(index_mod, "build_interhand_index", lambda src: builds.append(1) or real_build(src))

    ds = InterHand26M(cfg, "test", mode="test")
    assert len(builds) == 1 and ds.index.is_memory_mapped
    cache_dirs = sorted((root / ".cache").iterdir())
    assert len(cache_dirs) == 1 and (cache_dirs[0] / "joint_cam.npy").is_file()
    assert not [p for p in (root / ".cache").iterdir() if ".tmp-" in p.name]  # no half cache left
    InterHand26M(cfg, "test", mode="train")
    assert len(builds) == 1  # reused

    data_json = root / ANN_DIR / "InterHand2.6M_test_data.json"
    st = data_json.stat()
    os.utime(data_json, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))  # touch
    InterHand26M(cfg, "test", mode="test")
    assert len(builds) == 1  # the content is the same: hashed again and reused

    data = load_json(root, "data")
    data["annotations"][0]["hand_type_valid"] = 0  # modify content
    save_json(root, "data", data)
    ds = InterHand26M(cfg, "test", mode="test")
    assert len(builds) == 2
    assert len(list((root / ".cache").iterdir())) == 1  # the stale cache was removed
    row = int(np.flatnonzero(ds.index["ann_id"] == data["annotations"][0]["id"])[0])
    assert ds[row]["hand_type_valid"] == 0


def test_damaged_cache_is_rebuilt(tmp_path):
    good = InterHand26M(sample_cfg(), "test", mode="test", cache_dir=tmp_path)
    expect = np.array(good.index["joint_cam"])
    npy = Path(good.index.directory) / "joint_cam.npy"
    npy.write_bytes(npy.read_bytes()[:200])
    with pytest.warns(UserWarning, match="damaged annotation cache"):
        ds = InterHand26M(sample_cfg(), "test", mode="test", cache_dir=tmp_path)
    np.testing.assert_array_equal(ds.index["joint_cam"], expect)
    assert ds.index.is_memory_mapped


def test_read_only_data_root_falls_back_to_user_cache(tmp_path):
    root = copy_sample(tmp_path / "ro")
    for p in [root, *root.rglob("*")]:
        os.chmod(p, 0o555 if p.is_dir() else 0o444)
    try:
        ds = InterHand26M(Config(data_root=str(root)), "test", mode="test")
        assert not (root / ".cache").exists()
        assert ds.index.is_memory_mapped
        assert Path(ds.index.directory).parent == tmp_path / "user_cache" / "internet"
    finally:
        for p in [root, *root.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)


def test_in_memory_index_without_cache(tmp_path):
    ds = InterHand26M(sample_cfg(), "test", mode="test", cache=False)
    assert not ds.index.is_memory_mapped and ds.index.directory is None
    cached = InterHand26M(sample_cfg(), "test", mode="test", cache_dir=tmp_path)
    for name in ("joint_cam", "joint_img", "joint_valid", "bbox", "ann_id", "focal"):
        np.testing.assert_array_equal(ds.index[name], cached.index[name])


def test_workers_share_the_memory_mapped_index(tmp_path):
    ds = InterHand26M(sample_cfg(), "test", mode="train", cache_dir=tmp_path)
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # the arrays are not in the pickle
    clone = pickle.loads(blob)
    assert clone.index.is_memory_mapped and clone.index.directory == ds.index.directory

    def check_worker(_):
        info = torch.utils.data.get_worker_info()
        assert info.dataset.index.is_memory_mapped

    loader = torch.utils.data.DataLoader(
        ds, batch_size=3, num_workers=1, worker_init_fn=check_worker, multiprocessing_context="fork"
    )
    batch = next(iter(loader))
    assert batch["img"].shape == (3, 3, 256, 256) and batch["ann_id"].dtype == torch.int64
    np.testing.assert_array_equal(batch["joint_coord"][1].numpy(), ds[1]["joint_coord"])


# ================================================================================================ layouts, subsets
def test_human_and_machine_subsets_from_an_id_list(tmp_path):
    ids = tmp_path / "aid_human_annot_test.txt"
    ids.write_text("326750\n\n471953\n")
    human = InterHand26M(sample_cfg(annot_subset="human", human_annot_ids=str(ids)), "test", "test", cache_dir=tmp_path)
    machine = InterHand26M(
        sample_cfg(annot_subset="machine", human_annot_ids=str(ids)), "test", "test", cache_dir=tmp_path
    )
    assert sorted(human.eval_targets()["ann_id"].tolist()) == [326750, 471953]
    assert machine.eval_targets()["ann_id"].tolist() == [680801]
    assert [int(human[i]["ann_id"]) for i in range(2)] == [471953, 326750]  # single hand first
    with pytest.raises(ValueError, match="human_annot_ids"):
        InterHand26M(sample_cfg(annot_subset="human"), "test", "test", cache_dir=tmp_path)


def test_v0_layout_with_subset_folders_and_raw_world_lists(tmp_path):
    root = tmp_path / "v0"
    (root / "annotations" / "machine_annot").mkdir(parents=True)
    shutil.copytree(SAMPLE / "images", root / "images")
    for kind in KINDS:
        obj = load_json(SAMPLE, kind)
        if kind == "joint_3d":  # the earliest v0.0 files stored the 42x3 list directly
            obj = {c: {f: e["world_coord"] for f, e in frames.items()} for c, frames in obj.items()}
        with open(root / "annotations" / "machine_annot" / f"InterHand2.6M_test_{kind}.json", "w") as f:
            json.dump(obj, f)
    ds = InterHand26M(Config(data_root=str(root), annot_subset="machine"), "test", "test", cache_dir=tmp_path)
    assert ds.layout == "v0.0" and len(ds) == 3
    ref = InterHand26M(sample_cfg(), "test", "test", cache_dir=tmp_path)
    np.testing.assert_array_equal(ds.index["joint_cam"], ref.index["joint_cam"])
    with pytest.raises(FileNotFoundError, match="all"):
        InterHand26M(Config(data_root=str(root), annot_subset="all"), "test", "test", cache_dir=tmp_path)


def test_rootnet_boxes_and_depths(tmp_path):
    ref = InterHand26M(sample_cfg(), "test", "test", cache_dir=tmp_path).eval_targets()
    entries = [
        {
            "annot_id": int(a),
            "bbox": (b + [5, -3, 10, 10]).tolist(),
            "abs_depth": (d + [7, -9]).tolist(),
            "root_valid": [1, 1],
        }
        for a, b, d in zip(ref["ann_id"], ref["bbox"], ref["abs_depth"])
    ]
    path = tmp_path / "rootnet.json"
    path.write_text(json.dumps(entries[::-1]))  # any order
    ds = InterHand26M(sample_cfg(trans_test="rootnet", rootnet_path=str(path)), "test", "test", cache_dir=tmp_path)
    gt = ds.eval_targets()
    np.testing.assert_allclose(gt["bbox"], ref["bbox"] + [5, -3, 10, 10], atol=1e-4)  # used as is
    np.testing.assert_allclose(gt["abs_depth"], ref["abs_depth"] + [7, -9], atol=1e-3)
    np.testing.assert_array_equal(gt["joint_cam"], ref["joint_cam"])
    box = gt["bbox"][2]
    expect = gen_trans_from_patch_cv(
        float(box[0] + 0.5 * box[2]),
        float(box[1] + 0.5 * box[3]),
        float(box[2]),
        float(box[3]),
        256,
        256,
        1.0,
        0.0,
        inv=True,
    )
    np.testing.assert_allclose(ds[2]["inv_trans"], expect, rtol=1e-6, atol=1e-5)
    # train mode ignores RootNet
    train = InterHand26M(
        sample_cfg(trans_test="rootnet", rootnet_path=str(tmp_path / "none.json")), "test", "train", cache_dir=tmp_path
    )
    assert train.rootnet_bbox is None


def test_build_dataset_dispatch(tmp_path):
    cfg = sample_cfg(test_split="test")
    ds = build_dataset(cfg, mode="test", cache_dir=tmp_path)
    assert isinstance(ds, InterHand26M) and ds.split == "test" and ds.mode == "test"
    ds = build_dataset(cfg, "test", "train", cache_dir=tmp_path)
    assert ds.mode == "train"


def _official_patch(img, bbox, do_flip, scale, rot, out_shape):
    """The official crop: flip and convert the whole image to float32, then one warp."""
    import cv2

    img = np.asarray(img, dtype=np.float32)
    c_x, c_y = bbox[0] + 0.5 * bbox[2], bbox[1] + 0.5 * bbox[3]
    if do_flip:
        img = img[:, ::-1, :]
        c_x = img.shape[1] - c_x - 1
    trans = gen_trans_from_patch_cv(c_x, c_y, bbox[2], bbox[3], out_shape[1], out_shape[0], scale, rot)
    return cv2.warpAffine(np.ascontiguousarray(img), trans, (out_shape[1], out_shape[0]), flags=cv2.INTER_LINEAR)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_windowed_crop_equals_the_whole_image_warp(dtype):
    """generate_patch_image reads only the source window under the patch; every pixel must still equal the
    official whole-image warp, for boxes inside, across and outside the image edges, flips, scales and rotations.
    The shifted sampling map changes float rounding only: 0.05 grey levels (2e-4 in [0, 1]) is 10x under the
    parity fixtures' image tolerance, and a window missing a pixel or a border would miss by whole levels."""
    from internet.geometry.crop import generate_patch_image

    g = np.random.default_rng(7)
    img = (g.random((334, 512, 3)) * 255).astype(dtype)
    cases = [
        ([-300.0, 40.0, 120.0, 120.0], False, 1.0, 0.0),
        ([600.0, 400.0, 80.0, 80.0], True, 1.0, 0.0),
        ([-40.0, -30.0, 100.0, 100.0], True, 1.2, 30.0),
        ([0.0, 0.0, 512.0, 334.0], False, 1.25, -90.0),
    ]
    for _ in range(300):
        w = float(g.uniform(20, 400))
        bbox = [float(g.uniform(-w / 2, 512 - w / 2)), float(g.uniform(-w / 2, 334 - w / 2)), w, w]
        aug = sample_aug_params(g)
        cases.append((bbox, aug.do_flip, aug.scale, aug.rot))
    for bbox, do_flip, scale, rot in cases:
        for out_shape in ((256, 256), (128, 96)):
            patch, _, _ = generate_patch_image(img, bbox, do_flip, scale, rot, out_shape)
            expected = _official_patch(img, bbox, do_flip, scale, rot, out_shape)
            assert patch.dtype == np.float32 and patch.shape == expected.shape
            np.testing.assert_allclose(
                patch, expected, rtol=0, atol=0.05, err_msg=str((bbox, do_flip, scale, rot, out_shape))
            )
