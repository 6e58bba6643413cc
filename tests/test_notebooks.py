"""The notebook suite: structure, the helpers notebooks call (internet.app.notebook, internet.app.explore), every
notebook executed with papermill on tiny parameters (through one quick `internet.app.demo` run plus separate runs of 02
and 05), clear parameter errors, and an interrupted training run that resumes from its last checkpoint."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import nbformat
import numpy as np
import papermill
import pytest
from notebook_text import outputs as _outputs
from notebook_text import text as _text
from papermill.exceptions import PapermillExecutionError

from internet.app.notebook import (
    ParameterError,
    archive_previous_run,
    check_bbox,
    check_param,
    params_to_config,
    project_root,
    resolve_checkpoint,
    training_curves_figure,
    zoom_to_box,
)
from internet.config import Config

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = (
    "01_explore_dataset",
    "02_train",
    "03_evaluate",
    "04_visualize_3d",
    "05_your_image",
    "06_sequences",
    "07_your_video",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------ helpers
def _mime_count(nb, mime: str) -> int:
    return sum(mime in out.get("data", {}) for out in _outputs(nb))


def _errors(nb):
    return [out for out in _outputs(nb) if out.output_type == "error"]


def _check_png(path: Path, min_side: int = 100) -> np.ndarray:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and min(img.shape[:2]) >= min_side, f"{path}: {None if img is None else img.shape}"
    assert img.std() > 5, f"{path} is (nearly) a single colour"
    return img


# ------------------------------------------------------------------------------------------------ structure
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_clean_with_one_parameters_cell(name):
    path = REPO / "notebooks" / f"{name}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0], "exactly one parameters cell, the first code cell"
    assert all(c.outputs == [] and c.execution_count is None for c in code), "committed without outputs"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    params = papermill.inspect_notebook(str(path))
    assert "output_dir" in params
    assert nb.cells[0].cell_type == "markdown"


def test_train_notebook_exposes_the_training_parameters():
    params = papermill.inspect_notebook(str(REPO / "notebooks" / "02_train.ipynb"))
    for name in (
        "data_root",
        "epochs",
        "batch_size",
        "backbone",
        "lr",
        "lr_schedule",
        "device",
        "num_gpus",
        "resume",
        "max_iters_per_epoch",
        "preset",
        "ckpt_every_iters",
        "output_dir",
        "dataset",
    ):
        assert name in params, name
    assert params["preset"]["default"] == '"cpu"'


@pytest.mark.parametrize("name", ["01_explore_dataset", "02_train", "03_evaluate"])
def test_dataset_parameter_reaches_the_config(name):
    params = papermill.inspect_notebook(str(REPO / "notebooks" / f"{name}.ipynb"))
    assert params["dataset"]["default"] == '"InterHand2.6M"'
    # the paper preset gives RHD/STB their own schedule; the CPU preset keeps its own
    for dataset in ("RHD", "STB"):
        paper = params_to_config({"dataset": dataset, "epochs": None}, preset="paper")
        assert (paper.dataset, paper.end_epoch, tuple(paper.lr_dec_epoch)) == (dataset, 50, (45, 47))
        assert params_to_config({"dataset": dataset}).end_epoch == Config.cpu_demo().end_epoch
    with pytest.raises(ParameterError, match="dataset='FreiHAND'"):
        params_to_config({"dataset": "FreiHAND"})


# ------------------------------------------------------------------------------------------------ internet.app.notebook
def test_params_to_config_maps_notebook_names_and_presets():
    cfg = params_to_config(
        dict(
            epochs=3,
            batch_size=5,
            backbone="resnet34",
            lr=2e-4,
            lr_schedule=[1, 2],
            resume=True,
            device=None,
            data_root="data/x",
            max_iters_per_epoch=None,
        )
    )
    assert (cfg.end_epoch, cfg.train_batch_size, cfg.resnet_type, cfg.lr) == (3, 5, 34, 2e-4)
    assert tuple(cfg.lr_dec_epoch) == (1, 2) and cfg.continue_train is True
    assert cfg.device == Config.cpu_demo().device  # None keeps the preset's value
    assert Path(cfg.data_root) == project_root() / "data" / "x"  # relative paths from the repository root
    paper = params_to_config({"preset": "paper", "epochs": None})
    assert (paper.resnet_type, paper.end_epoch, tuple(paper.input_img_shape)) == (50, 20, (256, 256))
    assert params_to_config({"backbone": 18}, preset="paper").resnet_type == 18


@pytest.mark.parametrize(
    "params, words",
    [
        (dict(epochs="three"), ["epochs", "end_epoch", "expected an integer"]),
        (dict(lr="fast"), ["lr", "expected a number"]),
        (dict(resume="yes"), ["resume", "true/false"]),
        (dict(backbone="vgg16"), ["backbone", "resnet18"]),
        (dict(backbone="resnet19"), ["resnet_type", "must be one of"]),
        (dict(preset="gpu"), ["preset", "'cpu'"]),
        (dict(epochs=0), ["end_epoch", ">= 1"]),
        (dict(no_such_thing=1), ["unknown config parameter", "no_such_thing"]),
    ],
)
def test_params_to_config_rejects_bad_values_naming_them(params, words):
    with pytest.raises(ParameterError) as e:
        params_to_config(params)
    for w in words:
        assert w in str(e.value)


def test_check_param_and_check_bbox():
    assert check_param("n", 3, int, minimum=1) == 3
    assert check_param("x", 2, float) == 2  # ints pass for floats
    for value, kw, _words in [
        (True, {}, "expected int"),
        (0, {"minimum": 1}, ">= 1"),
        ("a", {}, "expected int"),
        (None, {}, "required"),
    ]:
        with pytest.raises(ParameterError, match="parameter n="):
            check_param("n", value, int, **kw)
    with pytest.raises(ParameterError, match="must be one of"):
        check_param("split", "dev", str, choices=("val", "test"))
    assert check_param("c", None, int, optional=True) is None
    np.testing.assert_array_equal(check_bbox("bbox", [1, 2, 3, 4]), [1, 2, 3, 4])
    for bad in ([1, 2, 3], [1, 2, 0, 4], [1, 2, float("nan"), 4], "box"):
        with pytest.raises(ParameterError, match="parameter bbox="):
            check_bbox("bbox", bad)


def test_resolve_checkpoint_and_archive_previous_run(tmp_path):
    cfg = Config.cpu_demo(output_dir=str(tmp_path / "out"))
    with pytest.raises(ParameterError, match="02_train"):
        resolve_checkpoint("latest", cfg)
    with pytest.raises(ParameterError, match="file not found"):
        resolve_checkpoint("nope.pth.tar", cfg)
    with pytest.raises(ParameterError, match="epoch number or a path"):
        resolve_checkpoint(1.5, cfg)
    assert archive_previous_run(cfg) is None
    cfg.model_dump_dir.mkdir(parents=True, exist_ok=True)
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    for name in ("snapshot_0.pth.tar", "snapshot_3.pth.tar", "snapshot_4_iter2.pth.tar", "notes.txt"):
        (cfg.model_dump_dir / name).write_text(name)
    (cfg.log_dir / "train_log.jsonl").write_text("{}\n")
    assert resolve_checkpoint("latest", cfg).name == "snapshot_4_iter2.pth.tar"
    assert resolve_checkpoint(3, cfg).name == "snapshot_3.pth.tar"
    moved = archive_previous_run(cfg)
    assert sorted(p.name for p in cfg.model_dump_dir.iterdir()) == ["notes.txt"]  # only snapshots move
    assert not (cfg.log_dir / "train_log.jsonl").exists()
    assert (moved / "model_dump" / "snapshot_3.pth.tar").read_text() == "snapshot_3.pth.tar"
    assert (moved / "log" / "train_log.jsonl").is_file()


def test_zoom_to_box_and_training_curves():
    img = np.arange(100 * 80 * 3, dtype=np.uint8).reshape(100, 80, 3)
    pts = np.array([[30.0, 40.0], [50.0, 60.0]])
    cut, moved, none, (x0, y0) = zoom_to_box(img, [20, 30, 40, 40], pts, None, margin=0.25)
    assert (x0, y0) == (10, 20) and cut.shape == (60, 60, 3) and none is None
    np.testing.assert_array_equal(cut, img[20:80, 10:70])
    np.testing.assert_allclose(moved, pts - [10, 20])
    records = [{"step": s, "lr": 1e-3, "loss_a": 1.0 / s, "loss_b": 2.0 / s} for s in range(1, 6)]
    fig = training_curves_figure(records)
    loss_ax, lr_ax = fig.axes
    assert len(loss_ax.lines) == 2 and len(lr_ax.lines) == 1
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), [1.0 / s for s in range(1, 6)])


# ------------------------------------------------------------------------------------------------ internet.app.explore
def test_explore_statistics_match_the_files(tiny_data):
    from internet.app import explore
    from internet.data.interhand import camera_rig

    info = json.loads((tiny_data / "synth_info.json").read_text())
    rows = explore.count_table(tiny_data)
    assert [r["split"] for r in rows] == ["train", "val", "test"]
    for r in rows:
        assert {k: r[k] for k in ("right", "left", "interacting")} == info["splits"][r["split"]]["hand_type"]
        assert r["total"] == info["splits"][r["split"]]["annotations"]
    # H/M subsets from per-split id lists (the synthetic set writes train and test lists, val is machine-only)
    pattern = tiny_data / "annotations" / "aid_human_annot_{split}.txt"
    hm = explore.count_table(tiny_data, human_annot_ids=pattern)
    assert [(r["split"], r["subset"]) for r in hm] == [
        ("train", "human"),
        ("train", "machine"),
        ("val", "all"),
        ("test", "human"),
        ("test", "machine"),
    ]
    for split in ("train", "test"):
        rows_h = [r for r in hm if r["split"] == split]
        assert rows_h[0]["total"] == info["splits"][split]["human_annotated"]
        assert sum(r["total"] for r in rows_h) == info["splits"][split]["annotations"]
        assert sum(r["interacting"] for r in rows_h) == info["splits"][split]["hand_type"]["interacting"]
    index = explore.load_split_index(tiny_data, "train")
    validity = explore.joint_validity(index)
    np.testing.assert_allclose(validity["all"], np.asarray(index["joint_valid"]).mean(axis=0))
    boxes = explore.bbox_stats(index)
    np.testing.assert_allclose(boxes["w"], np.asarray(index["bbox"])[:, 2])
    assert np.all((boxes["outside"] >= 0) & (boxes["outside"] <= 1))
    rig = camera_rig(tiny_data, "train")
    assert rig["campos"].shape == (len(rig["names"]), 3)
    rows_of_capture = np.asarray(index["capture"]) == rig["capture"]
    used = {str(int(c)) for c in np.asarray(index["camera"])[rows_of_capture]}
    assert used <= set(rig["names"])
    # world coordinates back through the camera give the stored camera coordinates
    r = int(np.flatnonzero(rows_of_capture)[0])
    k = rig["names"].index(str(int(index["camera"][r])))
    world = explore.hands_world(index, r, rig["campos"][k], rig["camrot"][k])
    np.testing.assert_allclose((world - rig["campos"][k]) @ rig["camrot"][k].T, index["joint_cam"][r], atol=1e-3)
    with pytest.raises(KeyError, match="capture 99"):
        camera_rig(tiny_data, "train", 99)


def test_mean_pose_baseline_is_the_official_mpjpe_of_the_mean_pose(tiny_data):
    from internet.data import InterHand26M
    from internet.evaluation import baselines
    from internet.evaluation.protocol import per_sample_mpjpe
    from internet.skeleton import INTERHAND as S

    cfg = Config.cpu_demo(data_root=str(tiny_data))
    train, test = InterHand26M(cfg, "train", "test"), InterHand26M(cfg, "test", "test")
    result = baselines.mean_pose_baseline(train, test)
    # independent computation: mean root-relative pose of the training set, error per valid test joint
    tr, te = train.eval_targets(), test.eval_targets()
    mean = np.zeros((42, 3))
    errors = np.full((len(te["joint_cam"]), 42), np.nan)
    for hand in ("right", "left"):
        jt, root = S.joint_type[hand], S.root_idx[hand]
        ok = (tr["joint_valid"][:, jt] > 0) & (tr["joint_valid"][:, [root]] > 0)
        rel = tr["joint_cam"][:, jt] - tr["joint_cam"][:, [root]]
        mean[jt] = np.nansum(np.where(ok[..., None], rel, np.nan), axis=0) / ok.sum(0)[:, None]
        gt_rel = te["joint_cam"][:, jt] - te["joint_cam"][:, [root]]
        e = np.linalg.norm(gt_rel - mean[jt], axis=-1)
        errors[:, jt] = np.where(te["joint_valid"][:, jt] > 0, e, np.nan)
    per_joint = np.nanmean(errors, axis=0)
    assert result.mpjpe_all == pytest.approx(np.nanmean(per_joint), abs=1e-3)
    single = np.isin(te["hand_type"], ("right", "left"))
    assert result.mpjpe_single == pytest.approx(np.nanmean(np.nanmean(errors[single], axis=0)), abs=1e-3)
    per_sample = per_sample_mpjpe(baselines.mean_pose_predictions(tr, te, cfg), te, cfg)
    np.testing.assert_allclose(
        per_sample, np.nanmean(np.where(te["joint_valid"] > 0, np.nan_to_num(errors), np.nan), axis=1), atol=1e-3
    )
    assert result.mpjpe_all > 5.0  # the mean pose is far from every pose


# ------------------------------------------------------------------------------------------------ quick demo (01-04)
# An independent scorer for the demo's summary: the ground truth read from the annotation files, the networks run and
# decoded here, and the official protocol (InterHand2.6M's evaluate()) written out with numpy. Only the test-mode crops
# (image and inv_trans, parity-tested against the official code) come from the data set.
RIGHT_BLOCK, LEFT_BLOCK = np.arange(21), np.arange(21, 42)
ROOTS = {"right": 20, "left": 41}


def _annotations(data_root: Path, split: str) -> dict:
    """{ann_id: dict(joint_cam, joint_valid, hand_type, hand_type_valid, focal, princpt)} from the three JSON files."""
    folder = data_root / "annotations" / split
    data, cams, joints = (
        json.loads((folder / f"InterHand2.6M_{split}_{kind}.json").read_text())
        for kind in ("data", "camera", "joint_3d")
    )
    images = {im["id"]: im for im in data["images"]}
    out = {}
    for ann in data["annotations"]:
        im = images[ann["image_id"]]
        cam = cams[str(im["capture"])]
        name = str(im["camera"])
        rot, pos = np.array(cam["camrot"][name]), np.array(cam["campos"][name])
        world = np.array(joints[str(im["capture"])][str(im["frame_idx"])]["world_coord"])
        valid = np.array(ann["joint_valid"], dtype=np.float64).reshape(42)
        valid[RIGHT_BLOCK] *= valid[20]  # a hand without its root counts for nothing (official)
        valid[LEFT_BLOCK] *= valid[41]
        out[ann["id"]] = dict(
            joint_cam=(world - pos) @ rot.T,
            joint_valid=valid,
            hand_type=ann["hand_type"],
            hand_type_valid=float(ann["hand_type_valid"]),
            focal=np.array(cam["focal"][name]),
            princpt=np.array(cam["princpt"][name]),
        )
    return out


def _official_scores(gt: list, joint_cam_rel, left_root_cam, right_root_cam, hand_probs) -> dict:
    """The official averages. joint_cam_rel (N, 42, 3): predictions aligned at each hand's root; left/right_root_cam
    (N, 3): predicted root positions for MRRPE (None: not defined); hand_probs (N, 2)."""
    errors = {"single": [[] for _ in range(42)], "interacting": [[] for _ in range(42)]}
    mrrpe, correct = [], []
    for n, g in enumerate(gt):
        cam = g["joint_cam"].copy()
        both_roots = g["joint_valid"][20] > 0 and g["joint_valid"][41] > 0
        if g["hand_type"] == "interacting" and both_roots and left_root_cam is not None:
            truth = cam[41] - cam[20]
            mrrpe.append(np.linalg.norm(left_root_cam[n] - right_root_cam[n] - truth))
        for block, root in ((RIGHT_BLOCK, 20), (LEFT_BLOCK, 41)):
            cam[block] = cam[block] - cam[root]
        subset = "interacting" if g["hand_type"] == "interacting" else "single"
        for j in np.flatnonzero(g["joint_valid"] > 0):
            errors[subset][j].append(np.linalg.norm(joint_cam_rel[n, j] - cam[j]))
        if g["hand_type_valid"]:
            right, left = hand_probs[n]
            correct.append(
                {
                    "right": right > 0.5 and left < 0.5,
                    "left": right < 0.5 and left > 0.5,
                    "interacting": right > 0.5 and left > 0.5,
                }[g["hand_type"]]
            )

    def average(lists):  # mean of the per-joint means, joints without any sample left out
        means = [np.mean(e) for e in lists if e]
        return float(np.mean(means)) if means else None

    both = [a + b for a, b in zip(errors["single"], errors["interacting"])]
    return {
        "mpjpe_all_mm": average(both),
        "mpjpe_single_mm": average(errors["single"]),
        "mpjpe_interacting_mm": average(errors["interacting"]),
        "mrrpe_mm": float(np.mean(mrrpe)) if mrrpe else None,
        "handedness_accuracy": float(np.mean(correct)) if correct else None,
    }


def _network_scores(model, crops, inv_trans, gt: list, cfg) -> dict:
    """Run the network on the test-mode crops; hard argmax; the official back-projection with the GT root depths."""
    import torch

    with torch.no_grad():
        out = model.eval()(crops)
    heatmap = out["joint_heatmap"].double().numpy()
    depth, height, width = heatmap.shape[2:]
    flat = heatmap.reshape(*heatmap.shape[:2], -1).argmax(-1)
    z, y, x = np.unravel_index(flat, (depth, height, width))
    in_h, in_w = cfg.input_img_shape
    crop_xy = np.stack([x / width * in_w, y / height * in_h], -1)
    uv = np.einsum("nij,nkj->nki", inv_trans[:, :, :2], crop_xy) + inv_trans[:, None, :, 2]
    z_mm = (z / depth * 2 - 1) * (cfg.bbox_3d_size / 2)
    rel_root_mm = (out["rel_root_depth"].double().numpy()[:, 0] / cfg.output_root_hm_shape * 2 - 1) * (
        cfg.bbox_3d_size_root / 2
    )

    def back_project(n, u, v, depth_mm):
        (fx, fy), (cx, cy) = gt[n]["focal"], gt[n]["princpt"]
        return np.stack([(u - cx) / fx * depth_mm, (v - cy) / fy * depth_mm, depth_mm], -1)

    joint_cam_rel, left_roots, right_roots = np.zeros((len(gt), 42, 3)), np.zeros((len(gt), 3)), np.zeros((len(gt), 3))
    for n, g in enumerate(gt):
        root_depth = {"right": g["joint_cam"][20, 2], "left": g["joint_cam"][41, 2]}
        left_roots[n] = back_project(n, *uv[n, 41], z_mm[n, 41] + root_depth["right"] + rel_root_mm[n])
        right_roots[n] = back_project(n, *uv[n, 20], z_mm[n, 20] + root_depth["right"])
        for hand, block in (("right", RIGHT_BLOCK), ("left", LEFT_BLOCK)):
            cam = back_project(n, uv[n, block, 0], uv[n, block, 1], z_mm[n, block] + root_depth[hand])
            joint_cam_rel[n, block] = cam - cam[-1]  # the root is each block's last joint
    return _official_scores(gt, joint_cam_rel, left_roots, right_roots, out["hand_type"].double().numpy())


def _mean_pose_scores(train: list, gt: list) -> dict:
    """The mean-pose baseline: each hand the training mean of its root-relative pose, at the true root; its relative
    root depth the training mean over interacting samples with both roots valid (so the predicted left root lies on
    the GT left root's ray at that depth behind the GT right root); hand-type probabilities the training frequencies
    of each hand being present."""
    mean = np.zeros((42, 3))
    for block, root in ((RIGHT_BLOCK, 20), (LEFT_BLOCK, 41)):
        for j in block:
            rows = [
                t["joint_cam"][j] - t["joint_cam"][root]
                for t in train
                if t["joint_valid"][j] > 0 and t["joint_valid"][root] > 0
            ]
            mean[j] = np.mean(rows, axis=0) if rows else 0.0
    both = [
        t for t in train if t["hand_type"] == "interacting" and t["joint_valid"][20] > 0 and t["joint_valid"][41] > 0
    ]
    rel_root = np.mean([t["joint_cam"][41, 2] - t["joint_cam"][20, 2] for t in both]) if both else 0.0
    left_roots = np.array([g["joint_cam"][41] / g["joint_cam"][41, 2] * (g["joint_cam"][20, 2] + rel_root) for g in gt])
    right_roots = np.array([g["joint_cam"][20] for g in gt])
    present = [
        np.mean([t["hand_type"] in ("right", "interacting") for t in train]),
        np.mean([t["hand_type"] in ("left", "interacting") for t in train]),
    ]
    return _official_scores(gt, np.tile(mean, (len(gt), 1, 1)), left_roots, right_roots, np.tile(present, (len(gt), 1)))


def test_quick_demo_runs_the_pipeline_and_summarises(demo_run, tiny_data):
    import torch

    from internet.data import InterHand26M
    from internet.model import InterNet
    from internet.utils.device import cpu_has_fast_bf16

    assert demo_run.rc == 0, demo_run.summary
    s = demo_run.summary
    assert s["data"]["status"] == "reused"  # the tiny set has the quick sizes: synth_info.json says complete
    for name in ("data", "01_explore_dataset", "02_train", "03_evaluate", "04_visualize_3d", "06_sequences", "total"):
        assert s["seconds"][name] >= 0
    assert len(s["executed_notebooks"]) == 5 and all(Path(p).is_file() for p in s["executed_notebooks"])
    assert s["evaluated"]["checkpoint"] == str(demo_run.checkpoint)
    # what ran, and where: the iterations the checkpoint records, the precision the trainer picks on this CPU, the CPU
    # model as /proc/cpuinfo names it
    state = torch.load(demo_run.checkpoint, map_location="cpu", weights_only=True)["train_state"]
    training = s["training"]
    assert training["iterations"] == state["global_step"] == 2 and training["images_per_s"] > 0
    assert training["precision"] == ("bf16 autocast" if cpu_has_fast_bf16() else "float32")
    names = [
        ln.split(":", 1)[1].strip()
        for ln in Path("/proc/cpuinfo").read_text().splitlines()
        if ln.startswith("model name")
    ]
    assert s["machine"]["cpu_model"] == names[0] and s["machine"]["cpu_cores"] == os.cpu_count()
    assert s["machine"]["native_bf16"] == cpu_has_fast_bf16()

    # every number of the summary, recomputed independently (see _annotations and _official_scores)
    ckpt = torch.load(demo_run.checkpoint, map_location="cpu", weights_only=True)
    cfg = Config.from_params(ckpt["train_state"]["config"]).replace(data_root=str(tiny_data), trans_test="gt")
    test = InterHand26M(cfg, "test", "test")
    samples = [test[i] for i in range(len(test))]
    annotations = _annotations(tiny_data, "test")
    gt = [annotations[int(smp["ann_id"])] for smp in samples]
    assert s["evaluated"]["samples"] == len(gt) == len(annotations)  # every test annotation has valid joints
    crops = torch.stack([torch.as_tensor(smp["img"]) for smp in samples])
    inv_trans = np.stack([np.asarray(smp["inv_trans"], np.float64) for smp in samples])
    trained = InterNet.from_config(cfg)
    trained.load_state_dict({k.removeprefix("module."): v for k, v in ckpt["network"].items()})
    torch.manual_seed(cfg.seed)  # the initialisation the training run started from
    untrained = InterNet.from_config(cfg)
    train_annotations = list(_annotations(tiny_data, "train").values())
    expected = {
        "after_training": _network_scores(trained, crops, inv_trans, gt, cfg),
        "before_training": _network_scores(untrained, crops, inv_trans, gt, cfg),
        "mean_pose_baseline": _mean_pose_scores(train_annotations, gt),
    }
    assert expected["mean_pose_baseline"]["mrrpe_mm"] is not None  # the tiny test split has interacting hands
    for which, scores in expected.items():
        for key, value in scores.items():
            got = s[key][which]
            if value is None:
                assert got is None, (key, which, got)
            else:
                assert got == pytest.approx(value, rel=1e-5, abs=1e-4), (key, which, got, value)


def test_readme_pictures_from_a_finished_demo(demo_run, tmp_path, capsys):
    """``python -m internet.app.pictures`` (docs/usage.md) after the demo: the README's four pictures, from the demo's
    checkpoint, the typical interacting test sample and notebook 06's default sequence at its worst frame."""
    from internet.app.pictures import main
    from internet.data.sequences import SequenceIndex

    out = tmp_path / "images"
    args = ["--data-root", str(demo_run.data_root), "--output-dir", str(demo_run.output_dir), "--out", str(out)]
    assert main([*args, "--samples", "8", "--png", "matplotlib"]) == 0
    said = capsys.readouterr().out
    for name in ("demo_2d_overlay", "demo_3d_root", "sequence_player", "sequence_multiview"):
        _check_png(out / f"{name}.png", min_side=200)
    key = SequenceIndex(demo_run.data_root, "test").default_sequence()
    assert f"sequence {key} frame " in said and "via matplotlib" in said, said


def test_demo_reuses_complete_data_only(tiny_data, tmp_path):
    from internet.app.demo import QUICK_SIZES, synthetic_data_ready

    q = QUICK_SIZES
    assert synthetic_data_ready(tiny_data, 0, q["train"], q["val"], q["test"])
    assert not synthetic_data_ready(tiny_data, 1, q["train"], q["val"], q["test"])
    assert not synthetic_data_ready(tiny_data, 0, q["train"] + 1, q["val"], q["test"])
    partial = tmp_path / "partial"
    shutil.copytree(tiny_data / "annotations", partial / "annotations")  # an interrupted write: no synth_info.json
    assert not synthetic_data_ready(partial, 0, q["train"], q["val"], q["test"])
    (partial / "synth_info.json").write_text("{not json")
    assert not synthetic_data_ready(partial, 0, q["train"], q["val"], q["test"])
    older = tmp_path / "older"  # complete, but rendered by another generator version: regenerated
    shutil.copytree(tiny_data / "annotations", older / "annotations")
    info = json.loads((tiny_data / "synth_info.json").read_text())
    (older / "synth_info.json").write_text(json.dumps({**info, "version": info["version"] - 1}))
    assert not synthetic_data_ready(older, 0, q["train"], q["val"], q["test"])
    (older / "synth_info.json").write_text(json.dumps(info))
    assert synthetic_data_ready(older, 0, q["train"], q["val"], q["test"])


def test_explore_notebook_outputs(demo_run):
    from internet.app import explore

    nb = nbformat.read(str(demo_run.output_dir / "notebooks" / "01_explore_dataset.ipynb"), as_version=4)
    assert not _errors(nb)
    text = _text(nb)
    lines = [line.split() for line in text.splitlines()]
    for row in explore.count_table(demo_run.data_root):  # the count table shows the real counts
        assert [
            row["split"],
            "all",
            str(row["right"]),
            str(row["left"]),
            str(row["interacting"]),
            str(row["total"]),
        ] in [words[:6] for words in lines], row
    assert "annotations (valid_joints" in text
    assert _mime_count(nb, "image/png") >= 5  # counts, rig (static), validity, boxes, first sample
    assert _mime_count(nb, "application/vnd.plotly.v1+json") >= 1
    assert _mime_count(nb, "application/vnd.jupyter.widget-view+json") >= 1  # the sample browser
    vis = demo_run.output_dir / "vis"
    assert "plotly" in (vis / "01_camera_rig.html").read_text()[:20000].lower()
    for name in ("01_camera_rig", "01_counts", "01_joint_validity", "01_boxes"):
        _check_png(vis / f"{name}.png")


def test_train_notebook_outputs(demo_run):
    nb = nbformat.read(str(demo_run.output_dir / "notebooks" / "02_train.ipynb"), as_version=4)
    assert not _errors(nb)
    text = _text(nb)
    assert "epoch 0 iter 0 (step 1)" in text and "training finished" in text
    records = [json.loads(line) for line in (demo_run.output_dir / "log" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]  # 1 epoch x 2 iterations (quick)
    assert all(np.isfinite(r["loss_total"]) for r in records)
    assert (demo_run.output_dir / "model_dump" / "snapshot_0.pth.tar").is_file()
    assert _mime_count(nb, "image/png") >= 1
    _check_png(demo_run.output_dir / "vis" / "02_training_curves.png")


def test_evaluate_notebook_outputs(demo_run):
    nb = nbformat.read(str(demo_run.output_dir / "notebooks" / "03_evaluate.ipynb"), as_version=4)
    assert not _errors(nb)
    text = _text(nb)
    for words in (
        "== official protocol",
        "MPJPE all hands (mm)",
        "Handedness accuracy",
        "MRRPE",
        "== variants",
        "pooled",
        "untrained",
        "mean pose",
        "best: #",
        "worst: #",
    ):
        assert words in text, words
    assert _mime_count(nb, "image/png") >= 1 + 2 * 3  # per-joint plot, 3 best and 3 worst overlays
    result = demo_run.output_dir / "result"
    saved = json.loads((result / "eval_test.json").read_text())  # internet.evaluation.results: Trainer.test's format
    assert set(saved["baselines"]) == {"untrained", "mean pose"} and saved["meta"]["samples"] == 12
    assert saved["meta"]["flip_test"] is False and "official_protocol" in saved
    pck_3d = saved["extras"]["pck_3d"]  # an extra, labelled as such, beside the official protocol
    assert "not part of the official protocol" in pck_3d["label"] and pck_3d["range_mm"] == [0.0, 50.0]
    assert 0.0 <= pck_3d["auc"] <= 1.0 and len(pck_3d["pck"]) == 51 and "3D PCK AUC over 0-50 mm" in text
    pred = np.load(result / "pred_test.npz")
    assert pred["joint_coord"].shape == (12, 42, 3) and pred["per_sample_mpjpe"].shape == (12,)
    np.testing.assert_array_equal(pred["index"], np.arange(12))
    _check_png(result / "per_joint_test.png")


def test_evaluate_notebook_compares_two_checkpoints(execute_notebook, trained_checkpoint, tiny_data, tmp_path):
    out = tmp_path / "out"
    nb = execute_notebook(
        "03_evaluate", tmp_path / "03.ipynb", data_root=str(tiny_data), output_dir=str(out),
        checkpoint=str(trained_checkpoint), compare_checkpoint=str(trained_checkpoint), compare_baselines=False,
        n_show=0,
    )  # fmt: skip
    assert not _errors(nb)
    text = _text(nb)
    name = f"compared ({trained_checkpoint.name})"
    rows = [line[len(label) :].split() for line in text.splitlines() for label in ("checkpoint ", name + " ")
            if line.startswith(label)]  # fmt: skip
    assert len(rows) == 2 and rows[0] == rows[1], rows  # the same model twice: the same metrics side by side
    saved = json.loads((out / "result" / "eval_test.json").read_text())
    assert not saved.get("baselines") and saved["extras"]["pck_3d"]["auc"] is not None


def test_visualize_notebook_outputs(demo_run):
    nb = nbformat.read(str(demo_run.output_dir / "notebooks" / "04_visualize_3d.ipynb"), as_version=4)
    assert not _errors(nb)
    # each plotly figure is one output that carries its static PNG too (camera space, root-aligned); then the 2D
    # overlay
    assert _mime_count(nb, "application/vnd.plotly.v1+json") >= 2
    assert _mime_count(nb, "image/png") >= 3
    plotly_outputs = [o for o in _outputs(nb) if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert all("image/png" in o["data"] for o in plotly_outputs)
    assert _mime_count(nb, "application/vnd.jupyter.widget-view+json") >= 1
    figs = [
        out["data"]["application/vnd.plotly.v1+json"]
        for out in _outputs(nb)
        if "application/vnd.plotly.v1+json" in out.get("data", {})
    ]
    sources = {t.get("meta", {}).get("source") for f in figs for t in f["data"]}
    assert {"pred", "gt"} <= sources
    # the default shows an interacting sample (the worst browsed), both hands in their own colour families
    text = _text(nb)
    shown = re.search(r"shown: test #(\d+) \((\w+)\)", text)
    assert shown and shown.group(2) == "interacting", text[:2000]
    bone_colours = {h: {t["line"]["color"] for t in figs[0]["data"] if (t.get("meta") or {}).get("hand") == h
                        and t["meta"].get("part") == "bones"} for h in ("right", "left")}  # fmt: skip
    assert bone_colours["right"] and bone_colours["left"] and not bone_colours["right"] & bone_colours["left"]
    # the sample browser leaves a static picture and a line of text, not "VBox(children=..."
    widget_outs = [o for o in _outputs(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widget_outs and all("image/png" in o["data"] for o in widget_outs)
    assert not any(o["data"]["text/plain"].startswith("VBox(") for o in widget_outs)
    vis = demo_run.output_dir / "vis"
    for kind in ("camera", "root"):
        stem = f"04_test_{shown.group(1)}_{kind}"
        assert "plotly" in (vis / f"{stem}.html").read_text()[:20000].lower()
        _check_png(vis / f"{stem}.png")
    _check_png(vis / f"04_test_{shown.group(1)}_overlay.png")


# ------------------------------------------------------------------------------------------------ 05, your image
def test_your_image_notebook_matches_the_predictor(execute_notebook, trained_checkpoint, tiny_data, tmp_path):
    from internet.app import explore
    from internet.app.notebook import load_model
    from internet.infer.predictor import Predictor

    out = tmp_path / "out"
    nb = execute_notebook(
        "05_your_image",
        tmp_path / "05.ipynb",
        data_root=str(tiny_data),
        output_dir=str(out),
        checkpoint=str(trained_checkpoint),
        png_export="matplotlib",
    )
    assert not _errors(nb)
    # the default image is the synthetic set's first interacting image (inside the repository, not ../shared)
    index = explore.load_split_index(tiny_data, "test")
    row = int(np.nonzero(np.asarray(index["hand_type"]) == 2)[0][0])  # code 2: interacting
    image, box = tiny_data / "images" / "test" / index.file_name(row), index["bbox"][row].tolist()
    assert f"image {image}" in _text(nb) and "shared" not in str(image)
    saved_box = json.loads((out / "vis" / "05_your_image.json").read_text())["bbox_given"]
    np.testing.assert_allclose(saved_box, box)  # the box on screen (not moved here) is the one saved
    sliders = [o for o in _outputs(nb) if o.get("data", {}).get("text/plain", "").startswith("<your box")]
    assert len(sliders) == 1 and "image/png" in sliders[0]["data"]  # the box widget leaves its preview
    saved = json.loads((out / "vis" / "05_your_image.json").read_text())
    assert saved["image"] == str(image)
    model, cfg, _ = load_model(trained_checkpoint, Config.cpu_demo())
    expected = Predictor(model, cfg, "cpu").predict(image, box)
    np.testing.assert_allclose(saved["joint_img"], expected["joint_img"], atol=1e-4)
    np.testing.assert_allclose(saved["joint_cam_rel"], expected["joint_cam_rel"], atol=1e-3)
    assert _mime_count(nb, "image/png") >= 2 and _mime_count(nb, "application/vnd.plotly.v1+json") >= 1
    assert _mime_count(nb, "application/vnd.jupyter.widget-view+json") >= 1  # the box sliders
    _check_png(out / "vis" / "05_your_image_2d.png")
    _check_png(out / "vis" / "05_your_image_3d.png")


# ------------------------------------------------------------------------------------------------ parameter errors
@pytest.mark.parametrize(
    "name, params, words",
    [
        ("02_train", {"epochs": "three"}, ["epochs (end_epoch)='three'", "expected an integer"]),
        ("05_your_image", {"bbox": [10, 10, -5, 20]}, ["bbox=", "width and height must be > 0"]),
        ("01_explore_dataset", {"dataset": "FreiHAND"}, ["dataset='FreiHAND'", "must be one of", "'RHD'", "'STB'"]),
        ("03_evaluate", {"dataset": "RHD", "split": "val"}, ["split='val'", "RHD", "'test' split only"]),
    ],
)
def test_wrong_parameter_fails_first_with_a_clear_message(execute_notebook, tiny_data, tmp_path, name, params, words):
    out = tmp_path / "out"
    with pytest.raises(PapermillExecutionError) as e:
        execute_notebook(name, tmp_path / "bad.ipynb", data_root=str(tiny_data), output_dir=str(out), **params)
    assert e.value.ename == "ParameterError"
    for w in words:
        assert w in e.value.evalue
    nb = nbformat.read(str(tmp_path / "bad.ipynb"), as_version=4)
    errors = _errors(nb)
    assert len(errors) == 1
    code = [c for c in nb.cells if c.cell_type == "code"]
    failing = next(i for i, c in enumerate(code) if any(o.output_type == "error" for o in c.outputs))
    assert failing <= 2, "parameters are checked in the first cells"  # parameters, injected parameters, setup
    assert not (out / "model_dump").exists()  # nothing ran


# ------------------------------------------------------------------------------------------------ crash and resume
def test_interrupted_training_keeps_its_outputs_and_resumes(
    execute_notebook, tiny_data, tiny_config_overrides, tmp_path
):
    from internet.data import InterHand26M
    from internet.engine.sampler import EpochBatchSampler

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns(".cache"))
    out = tmp_path / "out"
    params = dict(
        data_root=str(data),
        output_dir=str(out),
        epochs=2,
        batch_size=4,
        max_iters_per_epoch=2,
        ckpt_every_iters=1,
        num_workers=0,
        print_every=1,
        config_overrides=tiny_config_overrides,
    )
    cfg = params_to_config(
        {k: v for k, v in params.items() if k not in ("print_every", "config_overrides")}, **tiny_config_overrides
    )
    train = InterHand26M(cfg, "train", "train")
    batches = EpochBatchSampler(len(train), 4, seed=cfg.seed, max_batches=2).rank_batches(0)
    victim = train.image_path(next(i for i in batches[1] if i not in batches[0]))
    original = victim.read_bytes()
    victim.write_bytes(original[: len(original) // 2])  # a truncated JPEG: the second batch cannot be read

    with pytest.raises(PapermillExecutionError) as e:
        execute_notebook("02_train", tmp_path / "run1.ipynb", **params)
    assert e.value.ename == "DataFileError" and str(victim) in e.value.evalue
    nb = nbformat.read(str(tmp_path / "run1.ipynb"), as_version=4)
    text = _text(nb)
    assert "preset cpu: ResNet-18" in text  # the outputs before the failure are kept
    assert "epoch 0 iter 0 (step 1)" in text and "(step 2)" not in text
    assert "DataFileError" in text and "truncated JPEG" in text
    checkpoint = out / "model_dump" / "snapshot_0_iter1.pth.tar"
    assert checkpoint.is_file()

    victim.write_bytes(original)
    nb = execute_notebook("02_train", tmp_path / "run2.ipynb", **{**params, "resume": True})
    text = _text(nb)
    assert f"resuming from {checkpoint}" in text and "training finished" in text
    assert "(step 2)" in text and "(step 1)" not in text  # continues, does not start over
    steps = [json.loads(line)["step"] for line in (out / "log" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # each iteration exactly once across the two runs
    assert (out / "model_dump" / "snapshot_1.pth.tar").is_file()


def test_load_model_reads_official_snapshots_and_our_config(tmp_path):
    import torch

    from internet.app.notebook import load_model
    from internet.model import InterNet
    from internet.model.checkpoint import official_state_dict, save_checkpoint

    small = dict(input_img_shape=(64, 64), output_hm_shape=(16, 16, 16))
    torch.manual_seed(3)
    net = InterNet.from_config(Config.cpu_demo(**small))
    # official format: epoch, network (DataParallel 'module.' keys), optimizer; no config inside
    official = save_checkpoint(
        tmp_path / "snapshot_20.pth.tar", {"epoch": 20, "network": official_state_dict(net), "optimizer": {}}
    )
    # its depth and its head-input norm come from its keys
    model, cfg, info = load_model(official, Config.cpu_demo(resnet_type=50, fc_input_norm=False, **small))
    assert cfg.resnet_type == 18 and cfg.fc_input_norm and info["epoch"] == 20
    assert info["changed"] == {"resnet_type": (50, 18), "fc_input_norm": (False, True)}
    for (k, a), b in zip(net.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k
    # ours: the training config inside decides the network's shapes
    ours = save_checkpoint(
        tmp_path / "snapshot_1.pth.tar",
        {
            "epoch": 1,
            "network": official_state_dict(net),
            "train_state": {"config": {**Config.cpu_demo(**small).to_dict(), "seed": 7}},
        },
    )
    model, cfg, info = load_model(ours, Config.cpu_demo())
    assert tuple(cfg.input_img_shape) == (64, 64) and tuple(cfg.output_hm_shape) == (16, 16, 16)
    assert info["seed"] == 7
    # ours from before fc_input_norm existed: its saved config lacks it, the keys decide
    old_config = {k: v for k, v in Config.cpu_demo(**small).to_dict().items() if k != "fc_input_norm"}
    plain = InterNet.from_config(Config.cpu_demo(fc_input_norm=False, **small))
    old = save_checkpoint(
        tmp_path / "snapshot_2.pth.tar",
        {"epoch": 2, "network": official_state_dict(plain), "train_state": {"config": old_config}},
    )
    model, cfg, info = load_model(old, Config.cpu_demo())
    assert not cfg.fc_input_norm and model.pose_net.fc_input_norm is None
    from internet.model.checkpoint import CheckpointError

    bad = save_checkpoint(tmp_path / "bad.pth.tar", {"network": {"not_a_layer": torch.zeros(1)}})
    with pytest.raises(CheckpointError, match="missing keys"):
        load_model(bad, Config.cpu_demo())


def test_demo_float32_trains_in_float32_and_says_so(tiny_data, tmp_path, capsys):
    """``--float32`` (the README's way to time a CPU without bf16 on one that has it) reaches the trainer: the
    checkpoint's config has amp off, the log's records and the summary say float32, and so does the printed line."""
    import torch

    from internet.app.demo import main
    from internet.model.checkpoint import latest_checkpoint

    out = tmp_path / "output"
    argv = ["--quick", "--float32", "--data-root", str(tiny_data), "--output-dir", str(out)]
    assert main(argv) == 0
    summary = json.loads((out / "result" / "summary.json").read_text())
    state = torch.load(latest_checkpoint(out / "model_dump"), map_location="cpu", weights_only=True)["train_state"]
    assert state["config"]["amp"] is False and summary["training"]["config_overrides"]["amp"] is False
    assert summary["training"]["precision"] == "float32" and summary["training"]["iterations"] == 2
    assert "images/s in float32 on" in capsys.readouterr().out


def test_make_demo_passes_demo_args_to_the_demo():
    """``make demo DEMO_ARGS=--float32`` (README) runs ``python -m internet.app.demo --float32``: the Makefile's recipe,
    printed by ``make -n`` with its prerequisites taken as done."""
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    makefile = Path(__file__).resolve().parents[1] / "Makefile"
    # not as a sub-make of `make test`: no inherited flags, no "Entering directory" lines
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    proc = subprocess.run(
        ["make", "-n", "-s", "-o", "install", "-o", "browser", "-f", str(makefile), "demo", "DEMO_ARGS=--float32"],
        capture_output=True,
        text=True,
        cwd=makefile.parent,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    commands = [line for line in proc.stdout.splitlines() if "internet.app.demo" in line]
    assert len(commands) == 1 and commands[0].endswith("-m internet.app.demo --float32"), proc.stdout


def test_demo_failure_is_reported_with_a_summary(tmp_path, capsys):
    from internet.app.demo import main

    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file where the data set should go")
    out = tmp_path / "out"
    assert main(["--quick", "--data-root", str(not_a_folder), "--output-dir", str(out)]) == 1
    summary = json.loads((out / "result" / "summary.json").read_text())
    assert str(not_a_folder) in summary["failed"] and summary["executed_notebooks"] == []
    assert summary["mpjpe_all_mm"]["after_training"] is None
    assert "DEMO FAILED" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ RHD and STB
SINGLE_HAND_SIZES = dict(n_train=6, n_test=4)


@pytest.fixture(scope="module")
def single_hand_data(tmp_path_factory):
    """Tiny synthetic RHD and STB sets with images: ``{name: (data_root, writer summary)}``."""
    from internet.synth.single_hand import write_rhd, write_stb

    root = tmp_path_factory.mktemp("single_hand_nb")
    return {
        name: (root / name, write(root / name, seed=5, **SINGLE_HAND_SIZES))
        for name, write in (("RHD", write_rhd), ("STB", write_stb))
    }


@pytest.mark.parametrize("name", ["RHD", "STB"])
def test_explore_statistics_of_single_hand_sets(single_hand_data, name):
    from internet.app import explore
    from internet.data.single_hand import parse_single_hand_file
    from internet.skeleton import get_skeleton

    data_root, summary = single_hand_data[name]
    cfg = Config.cpu_demo(dataset=name, data_root=str(data_root), trans_test="rootnet")
    sets = explore.load_splits(cfg)
    assert list(sets) == ["train", "test"] and all(ds.cfg.trans_test == "gt" for ds in sets.values())
    rows = explore.dataset_count_table(sets)
    for r in rows:
        written = summary["splits"][r["split"]]
        assert (r["right"], r["left"], r["interacting"], r["total"]) == (
            written["right"],
            written["left"],
            0,
            written["annotations"],
        )
    # arrays straight from the annotation file: one 21-joint block filled per sample, in the GT hand's block
    test = sets["test"]
    ann = parse_single_hand_file(test.annotation_path)
    arrays = explore.dataset_arrays(test)
    skeleton = get_skeleton(name)
    valid = np.zeros((len(ann), 42))
    for i, code in enumerate(ann.hand_type):
        valid[i, skeleton.joint_type[("right", "left")[code]]] = ann.joint_valid[i]
    np.testing.assert_array_equal(arrays["joint_valid"], valid)
    np.testing.assert_array_equal(arrays["hand_type"], ann.hand_type)
    validity = explore.joint_validity(arrays)
    np.testing.assert_allclose(validity["all"], valid.mean(axis=0))
    assert np.isnan(validity["interacting"]).all()
    boxes = explore.bbox_stats(arrays)
    np.testing.assert_allclose(boxes["w"], ann.bbox[:, 2])
    np.testing.assert_allclose(boxes["rel_size"], np.sqrt(ann.bbox[:, 2] * ann.bbox[:, 3] / (ann.width * ann.height)))
    fig = explore.validity_figure(validity, skeleton)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(skeleton.names)
    with pytest.raises(TypeError, match="InterHand26M, RHD or STB"):
        explore.dataset_arrays([1, 2, 3])
    with pytest.raises(FileNotFoundError, match=f"no {name} annotation file"):
        explore.load_splits(cfg.replace(data_root=str(data_root / "nowhere")))


def test_dataset_arrays_of_interhand_match_the_index(tiny_data):
    from internet.app import explore
    from internet.data import InterHand26M

    ds = InterHand26M(Config.cpu_demo(data_root=str(tiny_data)), "val", "test")
    index = explore.load_split_index(tiny_data, "val")
    arrays = explore.dataset_arrays(ds)
    for key in ("hand_type", "joint_valid", "bbox", "width", "height"):
        np.testing.assert_array_equal(arrays[key], np.asarray(index[key])[ds.rows if ds.rows is not None else ...])
    rows = explore.dataset_count_table({"val": ds})
    assert rows[0]["total"] == len(ds)


@pytest.mark.parametrize("name", ["RHD", "STB"])
def test_mean_pose_baseline_of_single_hand_sets(single_hand_data, name):
    from internet.app import explore
    from internet.evaluation import baselines
    from internet.evaluation.scores import SingleHandEvalResult
    from internet.skeleton import get_skeleton

    data_root, _ = single_hand_data[name]
    sets = explore.load_splits(Config.cpu_demo(dataset=name, data_root=str(data_root)))
    result = baselines.mean_pose_baseline(sets["train"], sets["test"])
    assert isinstance(result, SingleHandEvalResult)
    # independent: the training mean root-relative pose of each hand against each test GT hand, per joint
    sk = get_skeleton(name)
    tr, te = sets["train"].eval_targets(), sets["test"].eval_targets()
    errors = np.full((len(te["joint_cam"]), 21), np.nan)
    for hand in ("right", "left"):
        jt, root = sk.joint_type[hand], sk.root_idx[hand]
        ok = (tr["joint_valid"][:, jt] > 0) & (tr["joint_valid"][:, [root]] > 0)
        rel = tr["joint_cam"][:, jt] - tr["joint_cam"][:, [root]]
        mean = np.nansum(np.where(ok[..., None], rel, np.nan), axis=0) / ok.sum(0)[:, None]
        rows = te["hand_type"] == hand
        gt_rel = te["joint_cam"][rows][:, jt] - te["joint_cam"][rows][:, [root]]
        errors[rows] = np.where(te["joint_valid"][rows][:, jt] > 0, np.linalg.norm(gt_rel - mean, axis=-1), np.nan)
    assert result.mpjpe == pytest.approx(np.nanmean(np.nanmean(errors, axis=0)), abs=1e-3)
    # always the more frequent training hand
    majority = "right" if np.mean(tr["hand_type"] == "right") > 0.5 else "left"
    assert result.handedness_accuracy == pytest.approx(np.mean(te["hand_type"] == majority))
    fig = explore.per_joint_figure(result)
    bars = fig.axes[0].patches
    assert len(bars) == 21
    np.testing.assert_allclose([b.get_height() for b in bars], list(result.per_joint.values()))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(result.per_joint)


@pytest.mark.parametrize("name", ["RHD", "STB"])
def test_notebooks_01_to_03_run_on_single_hand_sets(
    execute_notebook, single_hand_data, tiny_config_overrides, tmp_path, name
):
    from internet.app import explore
    from internet.app.notebook import load_model
    from internet.data import build_dataset
    from internet.evaluation import baselines
    from internet.evaluation.protocol import evaluate_single_hand
    from internet.infer.predict import predict
    from internet.model.checkpoint import latest_checkpoint, load_checkpoint
    from internet.skeleton import get_skeleton

    data_root, _ = single_hand_data[name]
    out = tmp_path / "out"
    common = dict(dataset=name, data_root=str(data_root), output_dir=str(out))

    # 01: counts from the data set's arrays, the camera-rig section skipped with a note, the browser
    nb = execute_notebook("01_explore_dataset", tmp_path / "01.ipynb", n_browse=3, png_export="matplotlib", **common)
    assert not _errors(nb)
    text = _text(nb)
    words = [line.split() for line in text.splitlines()]
    sets = explore.load_splits(Config.cpu_demo(dataset=name, data_root=str(data_root)))
    for row in explore.dataset_count_table(sets):
        assert [row["split"], "all", str(row["right"]), str(row["left"]), "0", str(row["total"])] in [
            w[:6] for w in words
        ], row
    assert "camera layout is skipped" in text and f"data set: {name}" in text
    assert _mime_count(nb, "application/vnd.jupyter.widget-view+json") >= 1  # the sample browser
    assert _mime_count(nb, "image/png") >= 4  # counts, validity, boxes, first sample
    for stem in ("01_counts", "01_joint_validity", "01_boxes"):
        _check_png(out / "vis" / f"{stem}.png")
    assert not (out / "vis" / "01_camera_rig.html").exists()

    # 02: one tiny iteration; the checkpoint remembers the data set
    nb = execute_notebook(
        "02_train",
        tmp_path / "02.ipynb",
        epochs=1,
        batch_size=2,
        max_iters_per_epoch=1,
        num_workers=0,
        print_every=1,
        config_overrides=tiny_config_overrides,
        **common,
    )
    assert not _errors(nb)
    assert f"data: {name} at {data_root}" in _text(nb) and "training finished" in _text(nb)
    checkpoint = latest_checkpoint(out / "model_dump")
    assert checkpoint is not None and checkpoint.name == "snapshot_0.pth.tar"
    assert load_checkpoint(checkpoint)["train_state"]["config"]["dataset"] == name

    # 03: the single-hand protocol, labelled PCK AUC, per-joint names of the data set, best/worst samples
    nb = execute_notebook(
        "03_evaluate", tmp_path / "03.ipynb", n_show=1, config_overrides=tiny_config_overrides, **common
    )
    assert not _errors(nb)
    text = _text(nb)
    for w in (
        "single-hand evaluation: 4 samples",
        "MPJPE / EPE (mm)",
        "AUC of 3D PCK, 20-50 mm",
        "PCK AUC 20-50 mm (variant)",
        "Handedness accuracy",
        "untrained",
        "mean pose",
        "best: #",
        "worst: #",
    ):
        assert w in text, w
    assert "MRRPE" not in text  # no two-hand metrics for a single-hand set
    saved = json.loads((out / "result" / "eval_test.json").read_text())
    assert saved["meta"]["dataset"] == name and saved["meta"]["samples"] == 4
    assert np.load(out / "result" / "pred_test.npz")["per_sample_mpjpe"].shape == (4,)
    assert set(saved["baselines"]) == {"untrained", "mean pose"}
    names = [n[2:] for n in get_skeleton(name).names[:21]]
    for r in (saved, *saved["baselines"].values()):
        assert list(r["official_protocol"]["per_joint"]) == names
        assert 0.0 <= r["variants"]["auc_pck_20_50mm"] <= 1.0
    # the saved numbers are those of the checkpoint, recomputed here independently
    model, cfg, _ = load_model(checkpoint, Config.cpu_demo(dataset=name, data_root=str(data_root)))
    test = build_dataset(cfg, "test", "test")
    expected = evaluate_single_hand(predict(model, test, cfg), test.eval_targets(), skeleton=test.skeleton, cfg=cfg)
    got = saved
    assert got["official_protocol"]["mpjpe"] == pytest.approx(expected.mpjpe, rel=1e-4)
    assert got["variants"]["auc_pck_20_50mm"] == pytest.approx(expected.auc_pck_20_50, abs=1e-6)
    assert got["official_protocol"]["handedness_accuracy"] == pytest.approx(expected.handedness_accuracy)
    baseline = baselines.mean_pose_baseline(build_dataset(cfg, "train", "test"), test)
    assert saved["baselines"]["mean pose"]["official_protocol"]["mpjpe"] == pytest.approx(baseline.mpjpe, rel=1e-6)
    assert _mime_count(nb, "image/png") >= 1 + 2  # per-joint plot, best and worst overlays
    _check_png(out / "result" / "per_joint_test.png")


def test_notebooks_01_and_04_show_meshes(demo_run):
    """Issue 29: 01 shows the data set's MANO fits and their fitting error; 04 shows the GT fit and the MANO fit to
    the prediction as mesh3d traces and writes the mesh overlay PNG."""
    for name, words in (
        ("01_explore_dataset", ("MANO fit vs annotated joints", "median_mm")),
        ("04_visualize_3d", ("mesh overlay:",)),
    ):
        nb = nbformat.read(str(demo_run.output_dir / "notebooks" / f"{name}.ipynb"), as_version=4)
        assert not _errors(nb)
        text = _text(nb)
        assert all(w in text for w in words), (name, words)
        figs = [o["data"]["application/vnd.plotly.v1+json"] for o in _outputs(nb)
                if "application/vnd.plotly.v1+json" in o.get("data", {})]  # fmt: skip
        meshes = [t for f in figs for t in f["data"] if t.get("type") == "mesh3d"]
        assert {t["name"].split(":")[0] for t in meshes} >= {"right hand", "left hand"} or name == "04_visualize_3d"
        if name == "04_visualize_3d":
            assert any("fit to the prediction" in t["name"] for t in meshes)
    vis = demo_run.output_dir / "vis"
    pngs = sorted(vis.glob("04_*mesh*.png"))
    assert pngs, "04 wrote no mesh overlay"
    for p in pngs + [vis / "01_mesh_overlay.png"]:
        _check_png(p)
