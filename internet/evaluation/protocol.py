"""Evaluation on arrays: the official InterHand2.6M protocol (vectorised), labelled variants, and RHD/STB.

Official protocol (InterNet ``Dataset.evaluate``, spec section 5), for predictions in heatmap space:
- back-projection: x, y x4 -> original image via inv_trans; z -> (z/64*2-1)*200 mm + the hand's absolute root depth;
  pixel -> camera with focal/princpt;
- MRRPE: interacting samples whose two wrists are valid; the left root is anchored at abs_depth_right + predicted
  left-minus-right depth; error = |(L - R)_pred - (L - R)_gt|;
- MPJPE: each hand aligned at its own wrist (prediction and GT), error per valid joint, split by the GT hand type into
  single ('right'/'left') and interacting; per-joint means; the reported number is the mean of the 42 per-joint means
  (the wrists, error 0, included); 'all' pools both lists per joint;
- handedness accuracy over hand_type_valid samples (right: p_r > .5 and p_l < .5; left: the reverse; interacting:
  both > .5).
Where the official code would crash (a subset with no sample, a joint with no valid sample), the metric is undefined
(None) or the joint is left out of the mean, and a note says so. Inputs are never modified.

Variants (labelled, not the official printout): mmpose's pooled MPJPE (mean over all valid joints, wrists included)
and AP_h (the paper's average precision of handedness, defined in :func:`average_precision`).
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from internet.config import Config
from internet.data import dataset_evaluator
from internet.evaluation.inputs import EVAL_CHUNK, joint_errors, read_inputs
from internet.evaluation.metrics import (
    PCK_THRESHOLDS_MM,
    ap_handedness,
    handedness_correct,
    joint_means,
    masked_sums,
    per_joint_means,
    per_sample_mean,
)
from internet.evaluation.scores import EvalResult, SingleHandEvalResult, num
from internet.geometry.camera import root_aligned_errors
from internet.geometry.codec import HeatmapCodec
from internet.skeleton import HAND_TYPES, INTERHAND, RHD, Skeleton, get_skeleton


# ----------------------------------------------------------------------------------------------------- InterHand
def evaluate_interhand(
    pred: Mapping,
    gt: Mapping,
    skeleton: Skeleton = INTERHAND,
    *,
    cfg: Union[Config, HeatmapCodec],
) -> EvalResult:
    """The official InterHand2.6M evaluation, vectorised, plus the labelled variants.

    pred: ``joint_coord`` (N,42,3) heatmap space, ``rel_root_depth`` (N,) or (N,1) bins, ``hand_type`` (N,2)
    probabilities [right, left] (the last two may be None: their metrics are then undefined).
    gt: ``joint_cam`` (N,42,3) mm, ``joint_valid`` (N,42) (root-propagated), ``hand_type`` (N,) 'right' / 'left' /
    'interacting', ``hand_type_valid`` (N,), ``focal`` (N,2), ``princpt`` (N,2), ``abs_depth`` (N,2) [right, left]
    mm, ``inv_trans`` (N,2,3). ``cfg``: the predictions' geometry (the model's Config, or its
    :class:`~internet.geometry.codec.HeatmapCodec`), required."""
    codec = HeatmapCodec.from_config(cfg)
    inp = read_inputs(pred, gt, HAND_TYPES, single_depth=False, keep_dtype=True)
    n = inp.joint_coord.shape[0]
    notes: List[str] = []
    valid, single, inter = inp.joint_valid > 0, inp.codes < 2, inp.codes == 2
    r_root, l_root = skeleton.root_idx["right"], skeleton.root_idx["left"]
    mrrpe_mask = inter & valid[:, r_root] & valid[:, l_root]
    sums, mrrpe_sum = _interhand_sums(inp, codec, skeleton, valid, mrrpe_mask)
    mrrpe = None
    if inp.rel_root_depth is None:
        notes.append("no pred['rel_root_depth']: MRRPE undefined")
    elif not mrrpe_mask.any():
        notes.append("no interacting sample with both wrists valid: MRRPE undefined")
    else:
        mrrpe = mrrpe_sum / int(mrrpe_mask.sum())
    subsets = (("all", np.ones(n, dtype=bool)), ("single", single), ("interacting", inter))
    per_joint, official, pooled, excluded = _subset_means(sums, subsets, list(skeleton.names), notes)
    htv = inp.hand_type_valid > 0
    acc, ap = None, {"right": None, "left": None, "mean": None}
    if inp.hand_type_prob is None:
        notes.append("no pred['hand_type']: handedness accuracy and AP_h undefined")
    elif not htv.any():
        notes.append("no hand_type_valid sample: handedness accuracy and AP_h undefined")
    else:
        acc = float(handedness_correct(inp.hand_type_prob, inp.codes)[htv].mean())
        ap = ap_handedness(inp.hand_type_prob, inp.codes, inp.hand_type_valid)
    return EvalResult(
        handedness_accuracy=acc,
        mrrpe=mrrpe,
        mpjpe_all=official["all"],
        mpjpe_single=official["single"],
        mpjpe_interacting=official["interacting"],
        per_joint=per_joint,
        mpjpe_pooled_all=pooled["all"],
        mpjpe_pooled_single=pooled["single"],
        mpjpe_pooled_interacting=pooled["interacting"],
        ap_h=ap["mean"],
        ap_h_per_class={"right": ap["right"], "left": ap["left"]},
        counts={
            "samples": n,
            "single": int(single.sum()),
            "interacting": int(inter.sum()),
            "mrrpe": int(mrrpe_mask.sum()) if inp.rel_root_depth is not None else 0,
            "hand_type_valid": int(htv.sum()),
            "valid_joints": int(valid.sum()),
        },
        excluded_joints=excluded,
        notes=notes,
    )


def _interhand_sums(inp, codec: HeatmapCodec, skeleton: Skeleton, valid: np.ndarray, mrrpe_mask: np.ndarray) -> tuple:
    """One pass over chunks of samples: ``({subset: [per-joint error sums, counts]}, MRRPE sum)`` for the
    single-hand and interacting subsets and 'all' (their union: every sample is one or the other)."""
    n = inp.joint_coord.shape[0]
    r_root, l_root = skeleton.root_idx["right"], skeleton.root_idx["left"]
    members = {"single": inp.codes < 2, "interacting": inp.codes == 2}
    sums = {s: [np.zeros(42), np.zeros(42, dtype=np.int64)] for s in members}
    mrrpe_sum = 0.0
    for start in range(0, n, EVAL_CHUNK):
        rows = slice(start, min(n, start + EVAL_CHUNK))
        err = joint_errors(inp, codec, skeleton, rows)
        for subset, member in members.items():
            total, cnt = masked_sums(err, valid[rows] & member[rows, None])
            sums[subset][0] += total
            sums[subset][1] += cnt
        m = mrrpe_mask[rows]
        if inp.rel_root_depth is not None and m.any():
            idx = np.flatnonzero(m) + start
            cam = codec.to_camera(
                inp.joint_coord[idx],
                inp.rel_root_depth[idx],
                inp.inv_trans[idx],
                inp.focal[idx],
                inp.princpt[idx],
                inp.abs_depth[idx],
                skeleton,
            )
            pred_rel = cam[:, l_root] - cam[:, r_root]
            gt_roots = inp.joint_cam[idx][:, [r_root, l_root]].astype(np.float64)
            gt_rel = gt_roots[:, 1] - gt_roots[:, 0]
            mrrpe_sum += float(np.sum(np.sqrt(np.sum((pred_rel - gt_rel) ** 2, axis=-1))))
    sums["all"] = [sums["single"][0] + sums["interacting"][0], sums["single"][1] + sums["interacting"][1]]
    return sums, mrrpe_sum


def _subset_means(sums: Mapping, subsets: Sequence, names: List[str], notes: List[str]) -> tuple:
    """Per subset: the per-joint means, the official MPJPE (mean of the defined per-joint means), the pooled one and
    the joints left out; the notes say what is undefined."""
    per_joint: Dict[str, Dict[str, Optional[float]]] = {}
    official: Dict[str, Optional[float]] = {}
    pooled: Dict[str, Optional[float]] = {}
    excluded: Dict[str, List[str]] = {}
    for subset, rows in subsets:
        mean, pooled[subset] = joint_means(*sums[subset])
        per_joint[subset] = {name: num(v) for name, v in zip(names, mean)}
        defined = ~np.isnan(mean)
        excluded[subset] = [names[j] for j in np.nonzero(~defined)[0]]
        official[subset] = float(np.mean(mean[defined])) if defined.any() else None
        if not rows.any():
            notes.append(f"no {subset} sample: MPJPE {subset} undefined")
        elif official[subset] is None:
            notes.append(f"no valid joint in the {subset} samples: MPJPE {subset} undefined")
        elif excluded[subset]:
            notes.append(f"MPJPE {subset}: {len(excluded[subset])} joint(s) with no valid sample left out of the mean")
    return per_joint, official, pooled, excluded


def evaluate_interhand_loop(
    pred: Mapping,
    gt: Mapping,
    skeleton: Skeleton = INTERHAND,
    *,
    cfg: Union[Config, HeatmapCodec],
) -> EvalResult:
    """The same official numbers as :func:`evaluate_interhand`, computed sample by sample in plain Python, following
    the official loop step by step (the reference for tests and for the speed benchmark). Pooled variants included;
    AP_h is shared with the vectorised path (it is not a per-sample statistic); so are the heatmap -> crop pixel
    and bin -> mm conversions (``cfg``'s :class:`~internet.geometry.codec.HeatmapCodec`, required)."""
    codec = HeatmapCodec.from_config(cfg)
    inp = read_inputs(pred, gt, HAND_TYPES, single_depth=False)
    n = inp.joint_coord.shape[0]
    jt = {h: list(skeleton.joint_type[h]) for h in ("right", "left")}
    rr, lr = skeleton.root_idx["right"], skeleton.root_idx["left"]
    mpjpe_sh: List[List[float]] = [[] for _ in range(42)]
    mpjpe_ih: List[List[float]] = [[] for _ in range(42)]
    mrrpe: List[float] = []
    acc, cnt = 0, 0

    def p2c(u, v, z, f, c):
        return [(u - c[0]) / f[0] * z, (v - c[1]) / f[1] * z, z]

    for i in range(n):
        htype = HAND_TYPES[inp.codes[i]]
        f, c, t = inp.focal[i], inp.princpt[i], inp.inv_trans[i]
        img = []
        crop = codec.heatmap_to_crop(inp.joint_coord[i])  # (42, 3): crop pixels, root-relative mm
        for j in range(42):
            x, y, z = crop[j]
            u = t[0, 0] * x + t[0, 1] * y + t[0, 2]
            v = t[1, 0] * x + t[1, 1] * y + t[1, 2]
            img.append([u, v, z])
        valid = inp.joint_valid[i]
        gt_cam = [list(map(float, p)) for p in inp.joint_cam[i]]
        if htype == "interacting" and valid[lr] and valid[rr] and inp.rel_root_depth is not None:
            rel = codec.root_bins_to_mm(inp.rel_root_depth[i])[0]
            left = p2c(img[lr][0], img[lr][1], img[lr][2] + inp.abs_depth[i, 0] + rel, f, c)
            right = p2c(img[rr][0], img[rr][1], img[rr][2] + inp.abs_depth[i, 0], f, c)
            d = [(left[k] - right[k]) - (gt_cam[lr][k] - gt_cam[rr][k]) for k in range(3)]
            mrrpe.append(math.sqrt(sum(e * e for e in d)))
        cam = [None] * 42
        for hand, col in (("right", 0), ("left", 1)):
            for j in jt[hand]:
                cam[j] = p2c(img[j][0], img[j][1], img[j][2] + inp.abs_depth[i, col], f, c)
        for hand in ("right", "left"):
            root = skeleton.root_idx[hand]
            pr, gr = list(cam[root]), list(gt_cam[root])
            for j in jt[hand]:
                cam[j] = [cam[j][k] - pr[k] for k in range(3)]
                gt_cam[j] = [gt_cam[j][k] - gr[k] for k in range(3)]
        for j in range(42):
            if valid[j]:
                e = math.sqrt(sum((cam[j][k] - gt_cam[j][k]) ** 2 for k in range(3)))
                (mpjpe_ih if htype == "interacting" else mpjpe_sh)[j].append(e)
        if inp.hand_type_valid[i] and inp.hand_type_prob is not None:
            p = inp.hand_type_prob[i]
            if htype == "right" and p[0] > 0.5 and p[1] < 0.5:
                acc += 1
            elif htype == "left" and p[0] < 0.5 and p[1] > 0.5:
                acc += 1
            elif htype == "interacting" and p[0] > 0.5 and p[1] > 0.5:
                acc += 1
            cnt += 1

    names = list(skeleton.names)
    per_joint, official, pooled, excluded = {}, {}, {}, {}
    for subset, lists in (
        ("all", [a + b for a, b in zip(mpjpe_sh, mpjpe_ih)]),
        ("single", mpjpe_sh),
        ("interacting", mpjpe_ih),
    ):
        means = [sum(v) / len(v) if v else None for v in lists]
        per_joint[subset] = dict(zip(names, means))
        defined = [m for m in means if m is not None]
        official[subset] = sum(defined) / len(defined) if defined else None
        flat = [e for v in lists for e in v]
        pooled[subset] = sum(flat) / len(flat) if flat else None
        excluded[subset] = [nm for nm, m in zip(names, means) if m is None]
    ap = (
        ap_handedness(inp.hand_type_prob, inp.codes, inp.hand_type_valid)
        if inp.hand_type_prob is not None and cnt
        else {"right": None, "left": None, "mean": None}
    )
    return EvalResult(
        handedness_accuracy=acc / cnt if cnt else None,
        mrrpe=sum(mrrpe) / len(mrrpe) if mrrpe else None,
        mpjpe_all=official["all"],
        mpjpe_single=official["single"],
        mpjpe_interacting=official["interacting"],
        per_joint=per_joint,
        mpjpe_pooled_all=pooled["all"],
        mpjpe_pooled_single=pooled["single"],
        mpjpe_pooled_interacting=pooled["interacting"],
        ap_h=ap["mean"],
        ap_h_per_class={"right": ap["right"], "left": ap["left"]},
        counts={
            "samples": n,
            "single": sum(1 for k in inp.codes if k < 2),
            "interacting": sum(1 for k in inp.codes if k == 2),
            "mrrpe": len(mrrpe),
            "hand_type_valid": cnt,
            "valid_joints": int(sum(1 for v in inp.joint_valid.reshape(-1) if v > 0)),
        },
        excluded_joints=excluded,
        notes=["computed by the per-sample reference loop"],
    )


# ----------------------------------------------------------------------------------------------------- per sample
def per_sample_mpjpe(
    pred: Mapping, gt: Mapping, cfg: Union[Config, HeatmapCodec], skeleton: Skeleton = INTERHAND
) -> np.ndarray:
    """(N,) mean root-aligned joint error (mm) of each sample over its valid joints, wrists included as in the
    official averages (NaN for a sample without valid joints). ``pred`` in heatmap space (``joint_coord``); ``gt``
    from ``eval_targets()``, rows matching ``pred`` (select them with ``pred['index']`` first if needed); ``cfg``: the
    predictions' geometry (Config or HeatmapCodec), required."""
    codec = HeatmapCodec.from_config(cfg)
    coord = np.asarray(pred["joint_coord"], dtype=np.float64)
    cam = codec.to_camera(coord, None, gt["inv_trans"], gt["focal"], gt["princpt"], gt["abs_depth"], skeleton)
    return per_sample_mean(root_aligned_errors(cam, gt["joint_cam"], skeleton), np.asarray(gt["joint_valid"]) > 0)


# ----------------------------------------------------------------------------------------------------- RHD / STB
def evaluate_single_hand(
    pred: Mapping,
    gt: Mapping,
    skeleton: Skeleton = RHD,
    *,
    cfg: Union[Config, HeatmapCodec],
    pck_thresholds: Sequence[float] = PCK_THRESHOLDS_MM,
) -> SingleHandEvalResult:
    """The official RHD/STB evaluation (both hands root-aligned with one absolute depth, then only the GT hand's 21
    joints kept; MPJPE = mean of the 21 per-joint means, root included; handedness accuracy over all samples), plus
    the normalised area under the 3D PCK curve over ``pck_thresholds`` (mm; labelled variant).

    pred: ``joint_coord`` (N,42,3) heatmap space, ``hand_type`` (N,2) [right, left] probabilities (optional).
    gt: ``joint_cam`` (N,42,3), ``joint_valid`` (N,42), ``hand_type`` (N,) 'right'/'left', ``focal``, ``princpt``
    (N,2), ``abs_depth`` (N,) (or (N,2) [right, left]), ``inv_trans`` (N,2,3). Hand blocks and roots come from
    ``skeleton`` (RHD/STB: left first). ``cfg``: the predictions' geometry (Config or HeatmapCodec), required."""
    codec = HeatmapCodec.from_config(cfg)
    inp = read_inputs(pred, gt, ("right", "left"), single_depth=True)
    n = inp.joint_coord.shape[0]
    notes: List[str] = []
    err42 = joint_errors(inp, codec, skeleton)
    blocks = np.stack([skeleton.joint_type["right"], skeleton.joint_type["left"]])  # (2, 21)
    take = blocks[inp.codes]  # (N, 21): the GT hand's joints
    err = np.take_along_axis(err42, take, axis=1)
    valid = np.take_along_axis(inp.joint_valid, take, axis=1) > 0
    mean, pooled = per_joint_means(err, valid)
    first = skeleton.joint_type[skeleton.first_hand]
    names = [skeleton.names[j][2:] for j in first]  # the hand-neutral name ('wrist', 'thumb4', ...)
    defined = ~np.isnan(mean)
    excluded = [names[k] for k in np.nonzero(~defined)[0]]
    if excluded:
        notes.append(f"{len(excluded)} joint(s) with no valid sample left out of the MPJPE mean")
    thresholds = np.asarray(pck_thresholds, dtype=np.float64)
    pck, auc = [], None
    if valid.any():
        e = err[valid]
        pck = [float(np.mean(e <= t)) for t in thresholds]
        if len(thresholds) > 1:
            p = np.asarray(pck)
            area = np.sum((p[1:] + p[:-1]) / 2 * np.diff(thresholds))  # trapezoid rule
            auc = float(area / (thresholds[-1] - thresholds[0]))
    else:
        notes.append("no valid joint: MPJPE and PCK undefined")
    acc = None
    if inp.hand_type_prob is None:
        notes.append("no pred['hand_type']: handedness accuracy undefined")
    elif n:
        acc = float(handedness_correct(inp.hand_type_prob, inp.codes).mean())
    return SingleHandEvalResult(
        handedness_accuracy=acc,
        mpjpe=float(np.mean(mean[defined])) if defined.any() else None,
        per_joint={nm: num(v) for nm, v in zip(names, mean)},
        mpjpe_pooled=pooled,
        auc_pck_20_50=auc,
        pck_thresholds=[float(t) for t in thresholds],
        pck=pck,
        counts={
            "samples": n,
            "right": int((inp.codes == 0).sum()),
            "left": int((inp.codes == 1).sum()),
            "valid_joints": int(valid.sum()),
        },
        excluded_joints=excluded,
        notes=notes,
    )


def check_index(index, n_gt: int, n_pred: int) -> np.ndarray:
    """``pred['index']`` as int64 rows of the ground truth: 1-D, one per prediction, whole numbers in
    [0, ``n_gt``), each once (a repeated row, e.g. from badly merged shards, would score predictions against the
    wrong ground truth); else ValueError naming the first fault."""
    raw = np.asarray(index)
    if raw.ndim != 1 or raw.shape[0] != n_pred:
        raise ValueError(f"pred['index'] must be ({n_pred},), one row per prediction, got shape {raw.shape}")
    if raw.size and not (np.issubdtype(raw.dtype, np.integer) or np.array_equal(raw, np.round(raw))):
        raise ValueError(f"pred['index'] must hold whole numbers (ground-truth rows), got dtype {raw.dtype}")
    rows = raw.astype(np.int64)
    out = np.flatnonzero((rows < 0) | (rows >= n_gt))
    if out.size:
        i = int(out[0])
        raise ValueError(f"pred['index'][{i}] = {rows[i]} is not a row of the {n_gt} ground-truth samples")
    order = np.argsort(rows, kind="stable")
    repeated = np.flatnonzero(np.diff(rows[order]) == 0)
    if repeated.size:
        a, b = sorted((int(order[repeated[0]]), int(order[repeated[0] + 1])))
        raise ValueError(
            f"pred['index'] lists ground-truth row {rows[a]} twice (positions {a} and {b}; {repeated.size} repeat(s) "
            "in all): each prediction must score a different sample. Were shards merged twice or out of step?"
        )
    return rows


def evaluate_dataset(pred: Mapping, gt: Mapping, cfg: Config, skeleton: Optional[Skeleton] = None):
    """The official protocol registered for ``cfg.dataset`` (``internet.config.DATASETS``; InterHand2.6M:
    :func:`evaluate_interhand`, RHD / STB: :func:`evaluate_single_hand`) for predictions of
    :func:`internet.infer.predict.predict`. ``gt``: the whole split's ``eval_targets()``; when ``pred['index']`` is a
    subset, the same rows are scored."""
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be an internet.Config (the geometry of the predictions), got {type(cfg).__name__}")
    n_gt = len(np.asarray(gt["joint_cam"]))
    index = pred.get("index")
    if index is not None:
        rows = check_index(index, n_gt, len(np.asarray(pred["joint_coord"])))
        if not np.array_equal(rows, np.arange(n_gt)):
            gt = {k: np.asarray(v)[rows] for k, v in gt.items()}
    evaluate = dataset_evaluator(cfg.dataset)
    return evaluate(pred, gt, skeleton=skeleton or get_skeleton(cfg.dataset), cfg=cfg)
