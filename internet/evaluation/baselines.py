"""The mean-pose baseline: the official-protocol score of always predicting the training set's mean root-relative
pose of each hand, a floor that a trained model must beat (notebook 03, the demo's summary).

The predictions are written in heatmap space (the evaluation's input) with the data set's
:class:`~internet.geometry.codec.HeatmapCodec`, then scored by :mod:`internet.evaluation.protocol` like any model's.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Union

import numpy as np

from internet.config import Config
from internet.data import dataset_evaluator
from internet.evaluation.scores import EvalResult, SingleHandEvalResult
from internet.geometry.camera import cam2pixel, root_relative
from internet.geometry.codec import HeatmapCodec
from internet.skeleton import INTERHAND, Skeleton


def mean_root_relative_pose(gt: Dict[str, np.ndarray], skeleton: Skeleton = INTERHAND) -> np.ndarray:
    """(42, 3) mean root-relative camera coordinates (mm) of each hand over the samples where the joint and its
    root are valid (zero where never valid). ``gt`` as from ``dataset.eval_targets()``."""
    cam = np.asarray(gt["joint_cam"], dtype=np.float64)
    valid = np.asarray(gt["joint_valid"]) > 0
    mean = np.zeros((skeleton.joint_num, 3))
    rel_all = root_relative(cam, skeleton)
    for hand in ("right", "left"):
        jt, root = skeleton.joint_type[hand], skeleton.root_idx[hand]
        ok = valid[:, jt] & valid[:, root : root + 1]
        rel = rel_all[:, jt]
        cnt = ok.sum(axis=0)
        mean[jt] = np.where(cnt[:, None] > 0, np.where(ok[..., None], rel, 0).sum(0) / np.maximum(cnt, 1)[:, None], 0)
    return mean


def mean_pose_predictions(
    train_gt: Mapping,
    test_gt: Mapping,
    cfg: Union[Config, HeatmapCodec],
    skeleton: Skeleton = INTERHAND,
) -> Dict[str, np.ndarray]:
    """Heatmap-space predictions (the evaluation's input format) of the mean-pose predictor.

    Each test hand is the training set's mean root-relative pose placed at the GT root's pixel position and the
    evaluation's root depth (``abs_depth``): after the official back-projection and root alignment its error is
    exactly |mean pose - GT pose| per joint. Relative root depth: the training mean over interacting samples with both
    roots valid; hand type: the training frequency of each hand being present. ``cfg``: the geometry to encode with
    (Config or HeatmapCodec), required.
    """
    codec = HeatmapCodec.from_config(cfg)
    mean = mean_root_relative_pose(train_gt, skeleton)
    cam = np.asarray(test_gt["joint_cam"], dtype=np.float64)
    focal = np.asarray(test_gt["focal"], dtype=np.float64)
    princpt = np.asarray(test_gt["princpt"], dtype=np.float64)
    abs_depth = np.asarray(test_gt["abs_depth"], dtype=np.float64).reshape(len(cam), -1)
    if abs_depth.shape[1] == 1:
        abs_depth = np.repeat(abs_depth, 2, axis=1)
    inv_trans = np.asarray(test_gt["inv_trans"], dtype=np.float64)
    n = len(cam)
    pred_cam = np.zeros((n, skeleton.joint_num, 3))
    for h, hand in enumerate(("right", "left")):
        jt, root = skeleton.joint_type[hand], skeleton.root_idx[hand]
        z_root = abs_depth[:, h]
        z_gt = cam[:, root, 2]
        # the GT root's pixel; a hand without a valid root is masked in the evaluation, any finite place will do
        usable = np.isfinite(cam[:, root]).all(axis=1) & (np.abs(z_gt) > 1e-6)
        uv = np.where(usable[:, None], cam[:, root, :2] / np.where(usable, z_gt, 1.0)[:, None], 0.0)
        root_cam = np.concatenate([uv * z_root[:, None], z_root[:, None]], axis=1)
        pred_cam[:, jt] = root_cam[:, None, :] + mean[jt][None]
    # camera -> pixels -> crop pixels -> heatmap; z -> root-relative bins
    z = pred_cam[..., 2]
    safe = np.concatenate([pred_cam[..., :2], np.where(np.abs(z) > 1e-6, z, 1e-6)[..., None]], axis=-1)
    uv = cam2pixel(safe, focal, princpt)[..., :2]
    full = np.concatenate([inv_trans, np.tile(np.array([[[0.0, 0.0, 1.0]]]), (n, 1, 1))], axis=1)
    trans = np.linalg.inv(full)[:, :2]  # image -> crop
    crop = np.einsum("nij,nkj->nki", trans[:, :, :2], uv) + trans[:, None, :, 2]
    z_rel = mean[:, 2][None].repeat(n, 0)
    coord, _ = codec.encode_joints(np.concatenate([crop, z_rel[..., None]], axis=-1))

    # relative root depth and hand type from the training set
    train_cam = np.asarray(train_gt["joint_cam"], dtype=np.float64)
    train_valid = np.asarray(train_gt["joint_valid"]) > 0
    train_types = np.asarray(train_gt["hand_type"])
    r, l = skeleton.root_idx["right"], skeleton.root_idx["left"]
    inter = (train_types == "interacting") & train_valid[:, r] & train_valid[:, l]
    rel_mm = float(np.mean(train_cam[inter, l, 2] - train_cam[inter, r, 2])) if inter.any() else 0.0
    rel_bin = float(codec.encode_root_depth(rel_mm)[0])
    present = (
        np.array(
            [
                np.mean(np.isin(train_types, ("right", "interacting"))),
                np.mean(np.isin(train_types, ("left", "interacting"))),
            ]
        )
        if len(train_types)
        else np.full(2, 0.5)
    )
    return {"joint_coord": coord, "rel_root_depth": np.full(n, rel_bin), "hand_type": np.tile(present, (n, 1))}


def mean_pose_baseline(
    train_set,
    test_set,
    skeleton: Optional[Skeleton] = None,
) -> Union[EvalResult, SingleHandEvalResult]:
    """The official-protocol metrics of always predicting the training set's mean root-relative pose per hand.

    ``train_set``, ``test_set``: data sets with ``eval_targets()`` (InterHand26M, RHD or STB); the test set's config
    (``.cfg``, required) gives the heatmap/crop geometry and its ``trans_test`` the root depths. RHD/STB test sets
    are scored with the evaluator registered for the test set's ``cfg.dataset`` (``internet.config.DATASETS``)."""
    for name, ds in (("train_set", train_set), ("test_set", test_set)):
        if not hasattr(ds, "eval_targets"):
            raise TypeError(
                f"{name} must have eval_targets() (an InterHand26M, RHD or STB data set), got {type(ds).__name__}"
            )
    skeleton = skeleton or getattr(test_set, "skeleton", INTERHAND)
    cfg = getattr(test_set, "cfg", None)
    if not isinstance(cfg, Config):
        raise TypeError(
            f"test_set must carry its Config as .cfg (the crop and heatmap geometry), got {type(cfg).__name__}"
        )
    test_gt = test_set.eval_targets()
    pred = mean_pose_predictions(train_set.eval_targets(), test_gt, cfg, skeleton)
    evaluate = dataset_evaluator(cfg.dataset)
    return evaluate(pred, test_gt, skeleton=skeleton, cfg=cfg)
