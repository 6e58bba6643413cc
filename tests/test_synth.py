"""The synthetic InterHand2.6M generator: the written files obey the rules the real release obeys (checked with the
same function on the real sample), layout, determinism, the hand model, the renderer, the CLI and atomic writing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from vendored import INTERHAND_SAMPLE as REAL

from internet.geometry.camera import check_rotation
from internet.synth import check_interhand, generate, render_hands, scene
from internet.synth import hand_model as hm
from internet.synth.__main__ import main as cli_main
from internet.synth.render import HandStyle
from internet.synth.writer import atomic_open

SPLITS = ("train", "val", "test")


def _strict_json(path: Path):
    """json.load that refuses NaN/Infinity (not JSON, but json.dump would write them)."""

    def bad(c):
        raise ValueError(f"{path}: non-JSON constant {c}")

    with open(path) as f:
        return json.load(f, parse_constant=bad)


def _ann_files(root: Path, split: str):
    d = root / "annotations" / split
    return (
        _strict_json(d / f"InterHand2.6M_{split}_data.json"),
        _strict_json(d / f"InterHand2.6M_{split}_camera.json"),
        _strict_json(d / f"InterHand2.6M_{split}_joint_3d.json"),
    )


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "InterHand2.6M"
    summary = generate(root, seed=7, n_train=60, n_val=16, n_test=24)
    assert summary["splits"]["train"]["annotations"] == 60
    return root


# ============================================================================================== the checker
def test_checker_passes_on_the_real_sample():
    rep = check_interhand(REAL, "test", max_images=None)
    assert rep.ok, rep.examples
    assert rep.n_annotations == 3 and rep.n_images_read == 3
    assert rep.hand_types == {"right": 1, "left": 1, "interacting": 1}
    assert 0 < rep.max_bbox_error < 1e-3
    assert {"annotations", "cameras+joint_3d", "geometry", "images"} <= set(rep.checked)


def _mutated_copy(src: Path, dst: Path, split: str, mutate) -> Path:
    shutil.copytree(src / "annotations", dst / "annotations")
    if (src / "rootnet_output").is_dir():
        shutil.copytree(src / "rootnet_output", dst / "rootnet_output")
    data, cams, joints = _ann_files(dst, split)
    mutate(data, cams, joints)
    d = dst / "annotations" / split
    for name, obj in (("data", data), ("camera", cams), ("joint_3d", joints)):
        (d / f"InterHand2.6M_{split}_{name}.json").write_text(json.dumps(obj))
    return dst


def _first_interacting(data):
    return next(a for a in data["annotations"] if a["hand_type"] == "interacting" and a["hand_type_valid"] == 1)


def _shift_bbox(data, cams, joints):
    data["annotations"][0]["bbox"][0] += 0.01


def _improper_camrot(data, cams, joints):
    img = data["images"][0]
    R = cams[str(img["capture"])]["camrot"][img["camera"]]
    R[0] = [-x for x in R[0]]


def _wrong_hand_type_valid(data, cams, joints):
    _first_interacting(data)["hand_type_valid"] = 0


def _invalid_in_3d(data, cams, joints):
    ann = data["annotations"][0]
    img = next(i for i in data["images"] if i["id"] == ann["image_id"])
    entry = joints[str(img["capture"])][str(img["frame_idx"])]
    j = next(k for k in range(42) if ann["joint_valid"][k][0] == 1)
    entry["joint_valid"][j] = [False]


def _outside_marked_valid(data, cams, joints):
    ann = data["annotations"][0]
    img = next(i for i in data["images"] if i["id"] == ann["image_id"])
    entry = joints[str(img["capture"])][str(img["frame_idx"])]
    j = next(k for k in range(42) if ann["joint_valid"][k][0] == 1)
    cam = cams[str(img["capture"])]
    R = np.array(cam["camrot"][img["camera"]])
    # Move the joint 1 m sideways in camera x: far outside the image.
    entry["world_coord"][j] = (np.array(entry["world_coord"][j]) + R[0] * 1000.0).tolist()


def _bool_joint_valid(data, cams, joints):
    data["annotations"][0]["joint_valid"] = [[bool(x[0])] for x in data["annotations"][0]["joint_valid"]]


def _extra_key(data, cams, joints):
    data["categories"] = []


@pytest.mark.parametrize(
    "mutate, rule",
    [
        (_shift_bbox, "bbox"),
        (_improper_camrot, "camera"),
        (_wrong_hand_type_valid, "hand_type_valid"),
        (_invalid_in_3d, "valid_3d"),
        (_outside_marked_valid, "valid_inside"),
        (_bool_joint_valid, "fields"),
        (_extra_key, "layout"),
    ],
)
def test_checker_catches_each_broken_rule(synth, tmp_path, mutate, rule):
    root = _mutated_copy(synth, tmp_path / "broken", "test", mutate)
    rep = check_interhand(root, "test", check_images=False)
    assert not rep.ok and rep.violations[rule] > 0, (rule, rep.violations)
    with pytest.raises(ValueError, match=rule):
        rep.raise_if_failed()


def test_checker_catches_colour_mono_image_and_missing_rootnet(synth, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(synth, root)
    data, _, _ = _ann_files(root, "test")
    mono = next(i for i in data["images"] if i["camera"].startswith("41"))
    path = root / "images" / "test" / mono["file_name"]
    img = cv2.imread(str(path))
    img[..., 2] = 255 - img[..., 2]
    cv2.imwrite(str(path), img)
    rn_path = root / "rootnet_output" / "rootnet_interhand2.6m_output_test.json"
    rn = _strict_json(rn_path)
    rn_path.write_text(json.dumps(rn[1:]))
    rep = check_interhand(root, "test", max_images=None)
    assert rep.violations["image"] >= 1 and rep.violations["rootnet"] == 1, rep.examples


# ============================================================================================== the synthetic set
def test_synthetic_set_obeys_the_release_rules(synth):
    for split in SPLITS:
        rep = check_interhand(synth, split, max_images=None)
        assert rep.ok, (split, rep.examples)
        assert rep.n_images_read == rep.n_annotations > 0
        assert rep.max_bbox_error < 1e-3
        assert ("rootnet" in rep.checked) == (split in ("val", "test"))
        assert ("human_ids" in rep.checked) == (split in ("train", "test"))
    train = check_interhand(synth, "train", check_images=False)
    assert set(train.hand_types) == {"right", "left", "interacting"}


def test_layout_and_formats(synth):
    assert (synth / "synth_info.json").is_file() and (synth / "annotations" / "skeleton.txt").is_file()
    info = _strict_json(synth / "synth_info.json")
    assert info["seed"] == 7 and info["arguments"]["n_train"] == 60
    skel = [l.split() for l in (synth / "annotations" / "skeleton.txt").read_text().splitlines() if l[0] != "#"]
    assert len(skel) == 42 and skel[20][1:] == ["20", "-1"] and skel[41][1:] == ["41", "-1"]
    captures = {}
    for split in SPLITS:
        data, cams, joints = _ann_files(synth, split)
        ids = [a["id"] for a in data["annotations"]]
        assert ids == [i["id"] for i in data["images"]] == [a["image_id"] for a in data["annotations"]]
        captures[split] = {(i["capture"], i["subject"]) for i in data["images"]}
        for img in data["images"]:
            assert (synth / "images" / split / img["file_name"]).is_file()
            assert (img["width"], img["height"]) in ((334, 512), (512, 334))
            assert img["camera"][:3] in ("400", "410") and len(img["camera"]) == 6
        for c in cams.values():
            for name in c["camrot"]:
                check_rotation(c["camrot"][name], tol=1e-5)
                assert 1200 <= c["focal"][name][0] <= 1300
        # Absent hands hold the [1, 1, 1] placeholder; present ones look like hands ~1 m from the cameras.
        for frames in joints.values():
            for entry in frames.values():
                wc = np.array(entry["world_coord"])
                v = np.array(entry["joint_valid"]).ravel()
                for h, present in (("right", entry["hand_type"] != "left"), ("left", entry["hand_type"] != "right")):
                    sl = slice(0, 21) if h == "right" else slice(21, 42)
                    if not present:
                        assert np.all(wc[sl] == 1.0) and not v[sl].any()
                    elif v[sl][[11, 20]].all():
                        palm = np.linalg.norm(wc[sl][11] - wc[sl][20])
                        assert 70.0 < palm < 100.0, palm
        rn_path = synth / "rootnet_output" / f"rootnet_interhand2.6m_output_{split}.json"
        assert rn_path.is_file() == (split != "train")
        if rn_path.is_file():
            rn = _strict_json(rn_path)
            assert sorted(e["annot_id"] for e in rn) == sorted(ids)
            for e in rn:
                assert e["root_valid"] == [1, 1] and e["bbox"][2] == pytest.approx(e["bbox"][3])
                assert 600.0 < min(e["abs_depth"]) and max(e["abs_depth"]) < 1600.0
    # Splits hold different subjects (capture ids restart per split, as in the release).
    subjects = {s: {sub for _, sub in captures[s]} for s in SPLITS}
    assert not (subjects["train"] & subjects["val"]) and not (subjects["train"] & subjects["test"])


def test_rootnet_depth_is_noisy_ground_truth(synth):
    data, cams, joints = _ann_files(synth, "val")
    rn = {e["annot_id"]: e for e in _strict_json(synth / "rootnet_output" / "rootnet_interhand2.6m_output_val.json")}
    imgs = {i["id"]: i for i in data["images"]}
    errors = []
    for ann in data["annotations"]:
        img = imgs[ann["image_id"]]
        c = cams[str(img["capture"])]
        entry = joints[str(img["capture"])][str(img["frame_idx"])]
        R, T = np.array(c["camrot"][img["camera"]]), np.array(c["campos"][img["camera"]])
        for h, root in ((0, 20), (1, 41)):
            if entry["joint_valid"][root][0]:
                z = (R @ (np.array(entry["world_coord"][root]) - T))[2]
                errors.append(rn[ann["id"]]["abs_depth"][h] - z)
    errors = np.abs(errors)
    assert len(errors) > 10 and 5.0 < errors.mean() < 80.0


def test_deterministic_and_independent_of_workers(tmp_path):
    kw = dict(seed=11, n_train=10, n_val=3, n_test=5)
    a = tmp_path / "a"
    generate(a, **kw)
    b = tmp_path / "b"
    generate(b, num_workers=2, **kw)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and any(p.suffix == ".jpg" for p in files_a)
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    c = tmp_path / "c"
    generate(c, **dict(kw, seed=12, n_val=0, n_test=0), with_images=False)
    name = "annotations/train/InterHand2.6M_train_data.json"
    assert (a / name).read_bytes() != (c / name).read_bytes()
    assert not (c / "images").exists() and not (c / "annotations" / "val").exists()


def test_annotation_only_mode_is_exact(tmp_path):
    # its speed is measured by benchmarks/bench_annotation_startup.py (which generates the full-size set), not here
    summary = generate(tmp_path / "big", seed=1, n_train=30000, n_val=0, n_test=0, with_images=False)
    assert summary["splits"]["train"]["annotations"] == 30000
    assert summary["splits"]["train"]["captures"] == 27
    data = _strict_json(tmp_path / "big" / "annotations" / "train" / "InterHand2.6M_train_data.json")
    assert len(data["annotations"]) == len(data["images"]) == 30000
    human = (tmp_path / "big" / "annotations" / "aid_human_annot_train.txt").read_text().split()
    assert 0.3 < len(human) / 30000 < 0.5


# ============================================================================================== hand model and scenes
def test_hand_model_kinematics_and_limits():
    rng = np.random.default_rng(0)
    shape = hm.sample_hand_shape(rng)
    angles = hm.sample_poses(rng, list(hm.POSE_FAMILIES) * 4, len(hm.POSE_FAMILIES) * 4)
    lim = np.deg2rad(hm.ANGLE_LIMITS_DEG)
    assert np.all(angles >= lim[:, :, 0] - 1e-12) and np.all(angles <= lim[:, :, 1] + 1e-12)
    J = hm.hand_joints(shape, angles)
    assert J.shape == (len(angles), 21, 3) and np.allclose(J[:, 20], 0.0)
    for d in range(5):  # bone lengths are the shape's, whatever the pose
        chain = J[:, [4 * d + 3, 4 * d + 2, 4 * d + 1, 4 * d]]
        assert np.allclose(np.linalg.norm(np.diff(chain, axis=1), axis=2), shape.seg_len[d])
    assert 75.0 < shape.palm_length < 95.0
    fist, open_ = hm.hand_joints(shape, np.stack([hm.pose_angles("fist"), hm.pose_angles("open")]))
    tips = [4, 8, 12, 16]  # finger tips come back towards the wrist in a fist
    assert np.linalg.norm(fist[tips], axis=1).max() < np.linalg.norm(open_[tips], axis=1).min()
    with pytest.raises(ValueError, match="unknown pose family"):
        hm.sample_poses(rng, "waving", 2)


def _chirality(J21: np.ndarray) -> np.ndarray:
    """Sign of the thumb base's side of the plane (wrist, index MCP, pinky MCP): one sign for right hands, the other
    for left hands, whatever the pose and orientation."""
    w = J21[..., 20, :]
    n = np.cross(J21[..., 7, :] - w, J21[..., 19, :] - w)
    return np.sign(np.sum(n * (J21[..., 3, :] - w), axis=-1))


@pytest.mark.parametrize("interaction", scene.INTERACTIONS)
def test_two_hand_scenes_have_a_right_and_a_left_hand(interaction):
    rng = np.random.default_rng(3)
    shape = hm.sample_hand_shape(rng)
    centre = np.array([0.0, 0.0, 1050.0])
    fb = scene.sample_two_hand_frames(rng, shape, 16, interaction, centre)
    assert fb.present.all() and np.isfinite(fb.world).all() and (fb.hand_type == "interacting").all()
    single = scene.sample_single_frames(rng, shape, 16, ("open",), "right", centre)
    right_sign = _chirality(single.world[:, :21])
    assert np.all(right_sign == right_sign[0])
    assert np.all(_chirality(fb.world[:, :21]) == right_sign[0])
    assert np.all(_chirality(fb.world[:, 21:]) == -right_sign[0])
    # The hands are near each other and near the centre.
    dist = np.linalg.norm(fb.world[:, 20] - fb.world[:, 41], axis=1)
    assert dist.max() < 300.0 and np.abs(fb.world.mean(1) - centre).max() < 250.0
    if interaction == "touch":  # a fingertip touches the other hand
        gap = np.linalg.norm(fb.world[:, None, :21] - fb.world[:, 21:, None], axis=-1).min(axis=(1, 2))
        assert gap.max() < 25.0


# ============================================================================================== rendering
def _open_hand_at(z: float) -> np.ndarray:
    """An open right hand (21, 3) in camera coordinates, palm centre on the optical axis at depth ``z`` mm."""
    J = hm.hand_joints(hm.default_hand_shape(), hm.pose_angles("open")[None])[0]
    return J - J[11] / 2 + np.array([0.0, 0.0, z])


def test_render_draws_hands_where_they_project_and_nearer_hand_wins():
    focal, princpt = (1250.0, 1250.0), (167.0, 256.0)
    joints = np.ones((42, 3))
    joints[:21] = _open_hand_at(1000.0)
    joints[21:] = hm.mirror_x(_open_hand_at(1100.0))  # a left hand 100 mm behind the right one
    red = HandStyle((40.0, 40.0, 230.0), (40.0, 40.0, 230.0), (40.0, 40.0, 230.0))
    green = HandStyle((40.0, 230.0, 40.0), (40.0, 230.0, 40.0), (40.0, 230.0, 40.0))
    blank = np.zeros((512, 334, 3), np.uint8)
    assert not render_hands(blank.copy(), joints, focal, princpt, (False, False)).any()
    img = render_hands(blank.copy(), joints, focal, princpt, (True, True), (red, green))
    uv = joints[:, :2] / joints[:, 2:] * focal + princpt
    px = img[np.round(uv[:21, 1]).astype(int), np.round(uv[:21, 0]).astype(int)]
    assert np.all(px.sum(1) > 60)  # every right-hand joint is covered
    assert np.mean(px[:, 2] > px[:, 1]) > 0.9  # ... by the (nearer) red hand
    img2 = render_hands(blank.copy(), joints, focal, princpt, (False, True), (red, green))
    px2 = img2[np.round(uv[:21, 1]).astype(int), np.round(uv[:21, 0]).astype(int)]
    assert np.mean(px2[:, 1] > px2[:, 2]) > 0.5  # alone, the green hand shows there
    with pytest.raises(ValueError, match="42, 3"):
        render_hands(blank.copy(), joints[:21], focal, princpt)


def test_fingers_show_palm_colour_from_the_front_and_skin_from_the_back():
    """The side of the hand facing the camera is visible (palm colour on the palmar side of the fingers, skin on the
    back), and a mirrored left hand shows the same side as the right hand it mirrors: with the silhouette, this is
    what tells a left hand from a right hand seen from the other side."""
    focal, princpt = (1250.0, 1250.0), (167.0, 256.0)
    style = HandStyle((40.0, 220.0, 40.0), (40.0, 40.0, 220.0), (220.0, 40.0, 40.0))  # back green, palm red (BGR)
    right = _open_hand_at(1000.0)
    centre = right.mean(0)
    turned = (right - centre) * np.array([-1.0, 1.0, -1.0]) + centre  # 180 degrees about the vertical axis

    def palm_fraction(hand: np.ndarray, is_left: bool) -> float:
        joints = np.ones((42, 3))
        joints[21 * is_left : 21 * is_left + 21] = hand
        img = render_hands(
            np.zeros((512, 334, 3), np.uint8), joints, focal, princpt, (not is_left, is_left), (style, style)
        )
        mids = np.stack([(hand[4 * d + 2] + hand[4 * d + 1]) / 2 for d in range(1, 5)])  # middle phalanges
        uv = np.round(mids[:, :2] / mids[:, 2:] * focal + princpt).astype(int)
        px = img[uv[:, 1], uv[:, 0]].astype(int)
        assert np.all(px.max(1) > 100), "a finger is not drawn where it projects"
        return float(np.mean(px[:, 2] > px[:, 1]))

    front = palm_fraction(right, False)
    assert front in (0.0, 1.0)
    assert palm_fraction(turned, False) == 1.0 - front  # the other side shows the other colour
    assert palm_fraction(hm.mirror_x(right), True) == front  # a mirror image shows the same side
    assert palm_fraction(hm.mirror_x(turned), True) == 1.0 - front


def test_monochrome_cameras_write_grey_images(synth):
    data, _, _ = _ann_files(synth, "train")
    kinds = {"grey": 0, "colour": 0}
    for img in data["images"]:
        im = cv2.imread(str(synth / "images" / "train" / img["file_name"]))
        grey = np.array_equal(im[..., 0], im[..., 1]) and np.array_equal(im[..., 1], im[..., 2])
        assert grey == img["camera"].startswith("41"), img["file_name"]
        kinds["grey" if grey else "colour"] += 1
    assert kinds["grey"] > 0 and kinds["colour"] > 0


# ============================================================================================== CLI, errors, atomicity
def test_cli_writes_a_set_and_rejects_bad_arguments(tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        cli_main(
            ["--out", str(out), "--seed", "2", "--train", "6", "--val", "0", "--test", "3", "--no-images", "--quiet"]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["splits"]["train"]["annotations"] == 6 and "val" not in summary["splits"]
    assert check_interhand(out, "test", check_images=False).ok
    for bad in (
        ["--out", str(out), "--train", "-1"],
        ["--out", str(out), "--workers", "0"],
        ["--out", str(out), "--train", "0", "--val", "0", "--test", "0"],
        ["--train", "5"],
        ["--out", str(out), "--seed", "abc"],
        ["--out", str(out / "synth_info.json"), "--train", "1"],
    ):
        with pytest.raises(SystemExit) as e:
            cli_main(bad)
        assert e.value.code == 2
    with pytest.raises(ValueError, match="image_format"):
        generate(out, n_train=1, image_format="bmp")
    with pytest.raises(ValueError, match="n_val"):
        generate(out, n_train=1, n_val=-2)
    with pytest.raises(ValueError, match="num_workers"):
        generate(out, n_train=1, num_workers=0)


def test_interrupted_run_leaves_no_half_written_json(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write('{"half": ')
            raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []

    import internet.synth.interhand as gen

    calls = {"n": 0}
    real = gen.render_job

    def flaky(job):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(gen, "render_job", flaky)
    monkeypatch.setattr(gen, "CHUNK", 4)
    root = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        generate(root, n_train=30, n_val=0, n_test=0)
    leftovers = [p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.suffix != ".jpg"]
    assert leftovers == [Path("synth_info.json")], leftovers  # no data.json, joint_3d.json or temporary part
    assert _strict_json(root / "synth_info.json")["complete"] is False
    monkeypatch.setattr(gen, "render_job", real)
    generate(root, n_train=30, n_val=0, n_test=0)  # an interrupted output may be overwritten
    assert _strict_json(root / "synth_info.json")["complete"] is True


def test_refuses_to_overwrite_a_foreign_data_set_and_drops_stale_splits(tmp_path):
    real_like = tmp_path / "real"
    (real_like / "annotations" / "test").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a data set written by internet.synth"):
        generate(real_like, n_train=0, n_val=0, n_test=2, with_images=False)
    root = tmp_path / "ds"
    generate(root, n_train=4, n_val=2, n_test=2, with_images=False)
    assert (root / "rootnet_output" / "rootnet_interhand2.6m_output_val.json").is_file()
    generate(root, n_train=4, n_val=0, n_test=2, with_images=False)
    assert not (root / "rootnet_output" / "rootnet_interhand2.6m_output_val.json").exists()
    assert not list((root / "annotations" / "val").glob("*.json"))
    with pytest.raises(NotADirectoryError):
        generate(root / "synth_info.json", n_train=1, with_images=False)


def test_checker_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="InterHand2.6M_test_data.json"):
        check_interhand(tmp_path, "test")
    d = tmp_path / "annotations" / "test"
    d.mkdir(parents=True)
    (d / "InterHand2.6M_test_data.json").write_text('{"images": [')
    with pytest.raises(ValueError, match="malformed JSON .*InterHand2.6M_test_data.json"):
        check_interhand(tmp_path, "test")


# ============================================================================================== the project's loader
def test_project_loader_reads_the_synthetic_set(synth, tmp_path):
    from internet.config import Config
    from internet.data import interhand

    cfg = Config(data_root=str(synth))
    train = interhand.InterHand26M(cfg, "train", "train", cache_dir=tmp_path / "cache")
    assert len(train) == 60
    s = train[0]
    assert s["img"].shape == (3, 256, 256) and s["joint_coord"].shape == (42, 3) and s["joint_valid"].sum() > 0
    test = interhand.InterHand26M(
        Config(data_root=str(synth), trans_test="rootnet"), "test", "test", cache_dir=tmp_path / "cache"
    )
    assert len(test) == 24
    sample = test[len(test) - 1]
    assert sample["hand_type"].sum() >= 1 and np.isfinite(sample["img"]).all()
    human = interhand.InterHand26M(
        Config(
            data_root=str(synth),
            annot_subset="human",
            human_annot_ids=str(synth / "annotations" / "aid_human_annot_train.txt"),
        ),
        "train",
        "train",
        cache_dir=tmp_path / "cache",
    )
    n_human = len((synth / "annotations" / "aid_human_annot_train.txt").read_text().split())
    assert len(human) == n_human
