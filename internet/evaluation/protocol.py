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
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from internet.config import Config
from internet.geometry.codec import HeatmapCodec, _as_np
from internet.skeleton import HAND_TYPES, INTERHAND, RHD, Skeleton, get_skeleton

SUBSETS = ("all", "single", "interacting")
PCK_THRESHOLDS_MM = tuple(float(t) for t in np.linspace(20.0, 50.0, 31))
"""Thresholds of the 3D PCK curve whose normalised area is reported for RHD/STB (1 mm steps)."""


# ----------------------------------------------------------------------------------------------------- helpers
def _num(x) -> Optional[float]:
    """A JSON-safe number: None for undefined (NaN/None)."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _fmt(x: Optional[float], digits: int = 2) -> str:
    return "undefined" if x is None else f"{x:.{digits}f}"


def hand_type_codes(hand_type, n: int, allowed: Sequence[str] = HAND_TYPES) -> np.ndarray:
    """(N,) strings -> int codes (index into ``allowed``); a clear error names the first bad value."""
    arr = np.asarray(hand_type)
    if arr.shape != (n,):
        raise ValueError(f"gt['hand_type'] must be ({n},) strings, got shape {arr.shape}")
    codes = np.full(n, -1, dtype=np.int64)
    for k, name in enumerate(allowed):
        codes[arr == name] = k
    if (codes < 0).any():
        i = int(np.nonzero(codes < 0)[0][0])
        raise ValueError(f"gt['hand_type'][{i}] = {arr[i]!r} is not one of {tuple(allowed)}")
    return codes


def handedness_correct(probs: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Official per-sample handedness test: (N,) bool. codes: 0 right, 1 left, 2 interacting."""
    r, l = probs[:, 0], probs[:, 1]
    return np.where(
        codes == 0, (r > 0.5) & (l < 0.5), np.where(codes == 1, (r < 0.5) & (l > 0.5), (r > 0.5) & (l > 0.5))
    )


def average_precision(scores: np.ndarray, labels: np.ndarray) -> Optional[float]:
    """Non-interpolated average precision (as scikit-learn's ``average_precision_score``): sum over distinct score
    thresholds, from high to low, of (recall step) x precision. None when there is no positive label."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(bool)
    if labels.sum() == 0:
        return None
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct threshold
    tps = np.cumsum(y)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def ap_handedness(probs: np.ndarray, codes: np.ndarray, valid: np.ndarray) -> Dict[str, Optional[float]]:
    """AP_h: for each hand class (right, left), the AP of its predicted probability against its presence in the
    GT hand type (right present: 'right' or 'interacting'; left: 'left' or 'interacting'), over hand_type_valid
    samples; 'mean' averages the defined classes. Our definition of the paper's AP_h (its code does not compute it)."""
    keep = valid > 0
    present = {"right": (codes == 0) | (codes == 2), "left": (codes == 1) | (codes == 2)}
    out: Dict[str, Optional[float]] = {}
    for c, name in enumerate(("right", "left")):
        out[name] = average_precision(probs[keep, c], present[name][keep]) if keep.any() else None
    defined = [v for v in out.values() if v is not None]
    out["mean"] = float(np.mean(defined)) if defined else None
    return out


# ----------------------------------------------------------------------------------------------------- result
@dataclass
class EvalResult:
    """InterHand2.6M metrics. Official protocol: handedness_accuracy, mrrpe, mpjpe_all/single/interacting (mean of
    per-joint means, wrists included) and per_joint[subset][joint name] (mm). Variants: mpjpe_pooled_* (mmpose:
    mean over all valid joints) and ap_h (see :func:`ap_handedness`). None = undefined (see notes)."""

    handedness_accuracy: Optional[float]
    mrrpe: Optional[float]
    mpjpe_all: Optional[float]
    mpjpe_single: Optional[float]
    mpjpe_interacting: Optional[float]
    per_joint: Dict[str, Dict[str, Optional[float]]]
    mpjpe_pooled_all: Optional[float] = None
    mpjpe_pooled_single: Optional[float] = None
    mpjpe_pooled_interacting: Optional[float] = None
    ap_h: Optional[float] = None
    ap_h_per_class: Dict[str, Optional[float]] = field(default_factory=dict)
    counts: Dict[str, int] = field(default_factory=dict)
    excluded_joints: Dict[str, List[str]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-safe dict (None for undefined)."""
        return {
            "official_protocol": {
                "handedness_accuracy": _num(self.handedness_accuracy),
                "mrrpe": _num(self.mrrpe),
                "mpjpe_all": _num(self.mpjpe_all),
                "mpjpe_single": _num(self.mpjpe_single),
                "mpjpe_interacting": _num(self.mpjpe_interacting),
                "per_joint": {s: {k: _num(v) for k, v in d.items()} for s, d in self.per_joint.items()},
            },
            "variants": {
                "mpjpe_pooled_all (mmpose)": _num(self.mpjpe_pooled_all),
                "mpjpe_pooled_single (mmpose)": _num(self.mpjpe_pooled_single),
                "mpjpe_pooled_interacting (mmpose)": _num(self.mpjpe_pooled_interacting),
                "ap_h (paper, average precision of handedness)": _num(self.ap_h),
                "ap_h_per_class": {k: _num(v) for k, v in self.ap_h_per_class.items()},
            },
            "counts": {k: int(v) for k, v in self.counts.items()},
            "excluded_joints": {k: list(v) for k, v in self.excluded_joints.items()},
            "notes": list(self.notes),
        }

    def table(self) -> str:
        """A readable table; the official protocol's numbers first, the variants labelled below."""
        c = self.counts
        lines = [
            f"InterHand2.6M evaluation: {c.get('samples', 0)} samples "
            f"({c.get('single', 0)} single, {c.get('interacting', 0)} interacting)",
            "== official protocol (InterNet evaluate) ==",
            f"  Handedness accuracy          {_fmt(self.handedness_accuracy, 4):>10}   "
            f"(over {c.get('hand_type_valid', 0)} hand_type_valid samples)",
            f"  MRRPE (mm)                   {_fmt(self.mrrpe):>10}   ({c.get('mrrpe', 0)} interacting samples)",
            f"  MPJPE all hands (mm)         {_fmt(self.mpjpe_all):>10}",
            f"  MPJPE single hand (mm)       {_fmt(self.mpjpe_single):>10}",
            f"  MPJPE interacting (mm)       {_fmt(self.mpjpe_interacting):>10}",
            "  per-joint MPJPE (mm)         " + "".join(f"{s:>12}" for s in SUBSETS),
        ]
        names = list(next(iter(self.per_joint.values())).keys()) if self.per_joint else []
        for name in names:
            lines.append(f"    {name:<26}" + "".join(f"{_fmt(self.per_joint[s].get(name)):>12}" for s in SUBSETS))
        lines += [
            "== variants (not the official printout) ==",
            f"  MPJPE pooled all (mmpose)    {_fmt(self.mpjpe_pooled_all):>10}",
            f"  MPJPE pooled single (mmpose) {_fmt(self.mpjpe_pooled_single):>10}",
            f"  MPJPE pooled inter. (mmpose) {_fmt(self.mpjpe_pooled_interacting):>10}",
            f"  AP_h (avg precision, R/L)    {_fmt(self.ap_h, 4):>10}",
        ]
        for s, joints in self.excluded_joints.items():
            if joints:
                lines.append(f"  excluded from the {s} mean (no valid sample): {', '.join(joints)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class SingleHandEvalResult:
    """RHD/STB metrics. Official: handedness_accuracy (all samples) and mpjpe ("EPE": mean of the 21 per-joint means
    of the GT hand, root included). Variants: mpjpe_pooled and the normalised area under the 3D PCK curve over
    ``pck_thresholds`` (20-50 mm), computed over the valid GT-hand joints, root included."""

    handedness_accuracy: Optional[float]
    mpjpe: Optional[float]
    per_joint: Dict[str, Optional[float]]
    mpjpe_pooled: Optional[float] = None
    auc_pck_20_50: Optional[float] = None
    pck_thresholds: List[float] = field(default_factory=list)
    pck: List[float] = field(default_factory=list)
    counts: Dict[str, int] = field(default_factory=dict)
    excluded_joints: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "official_protocol": {
                "handedness_accuracy": _num(self.handedness_accuracy),
                "mpjpe": _num(self.mpjpe),
                "per_joint": {k: _num(v) for k, v in self.per_joint.items()},
            },
            "variants": {
                "mpjpe_pooled": _num(self.mpjpe_pooled),
                "auc_pck_20_50mm": _num(self.auc_pck_20_50),
                "pck_thresholds_mm": [float(t) for t in self.pck_thresholds],
                "pck": [float(p) for p in self.pck],
            },
            "counts": {k: int(v) for k, v in self.counts.items()},
            "excluded_joints": list(self.excluded_joints),
            "notes": list(self.notes),
        }

    def table(self) -> str:
        lines = [
            f"single-hand evaluation: {self.counts.get('samples', 0)} samples",
            "== official protocol (InterNet RHD/STB evaluate) ==",
            f"  Handedness accuracy          {_fmt(self.handedness_accuracy, 4):>10}",
            f"  MPJPE / EPE (mm)             {_fmt(self.mpjpe):>10}",
        ]
        lines += [f"    {k:<26}{_fmt(v):>10}" for k, v in self.per_joint.items()]
        lines += [
            "== variants (not the official printout) ==",
            f"  MPJPE pooled (mm)            {_fmt(self.mpjpe_pooled):>10}",
            f"  AUC of 3D PCK, 20-50 mm      {_fmt(self.auc_pck_20_50, 4):>10}",
        ]
        if self.excluded_joints:
            lines.append(f"  excluded from the mean (no valid sample): {', '.join(self.excluded_joints)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- inputs
@dataclass
class _Inputs:
    joint_coord: np.ndarray
    rel_root_depth: Optional[np.ndarray]
    hand_type_prob: Optional[np.ndarray]
    joint_cam: np.ndarray
    joint_valid: np.ndarray
    codes: np.ndarray
    hand_type_valid: np.ndarray
    focal: np.ndarray
    princpt: np.ndarray
    abs_depth: np.ndarray
    inv_trans: np.ndarray


def _read_inputs(
    pred: Mapping, gt: Mapping, allowed_types: Sequence[str], single_depth: bool, keep_dtype: bool = False
) -> _Inputs:
    """Read and check every array; errors name the dict and key. The arrays may alias the inputs: nothing below
    writes into them. ``keep_dtype``: numeric arrays keep their dtype (e.g. float32) instead of being copied to
    float64 up front; the vectorised evaluator then converts chunk by chunk (1.7 GB less at the test set's size)."""

    def as_array(x, name: str) -> np.ndarray:
        if keep_dtype:
            arr = _as_np(x, name, dtype=None)
            if arr.dtype.kind in "biuf":
                return arr
        return _as_np(x, name)

    if "joint_coord" not in pred:
        raise KeyError(f"pred has no 'joint_coord' (keys: {sorted(pred)})")
    coord = as_array(pred["joint_coord"], "pred['joint_coord']")
    if coord.ndim != 3 or coord.shape[1:] != (42, 3):
        raise ValueError(f"pred['joint_coord'] must be (N, 42, 3), got {coord.shape}")
    n = coord.shape[0]

    def need(key: str, shape: tuple, d: Mapping = gt, dname: str = "gt") -> np.ndarray:
        if key not in d:
            raise KeyError(f"{dname} has no {key!r} (keys: {sorted(d)})")
        arr = as_array(d[key], f"{dname}[{key!r}]")
        if arr.shape != shape:
            try:
                arr = arr.reshape(shape)
            except ValueError:
                raise ValueError(f"{dname}[{key!r}] must have shape {shape}, got {arr.shape}") from None
        return arr

    rel = need("rel_root_depth", (n,), pred, "pred") if pred.get("rel_root_depth") is not None else None
    prob = need("hand_type", (n, 2), pred, "pred") if pred.get("hand_type") is not None else None
    abs_depth = _as_np(gt["abs_depth"], "gt['abs_depth']") if "abs_depth" in gt else None
    if abs_depth is None:
        raise KeyError(f"gt has no 'abs_depth' (keys: {sorted(gt)})")
    if abs_depth.shape in ((n,), (n, 1)):
        abs_depth = np.repeat(abs_depth.reshape(n, 1), 2, axis=1)
    if abs_depth.shape != (n, 2):
        raise ValueError(
            f"gt['abs_depth'] must be (N, 2) [right, left]{' or (N,)' if single_depth else ''}, got {abs_depth.shape}"
        )
    htv = need("hand_type_valid", (n,)) if "hand_type_valid" in gt else np.ones(n)
    if "hand_type" not in gt:
        raise KeyError(f"gt has no 'hand_type' (keys: {sorted(gt)})")
    inp = _Inputs(
        joint_coord=coord,
        rel_root_depth=rel,
        hand_type_prob=prob,
        joint_cam=need("joint_cam", (n, 42, 3)),
        joint_valid=need("joint_valid", (n, 42)),
        codes=hand_type_codes(gt["hand_type"], n, allowed_types),
        hand_type_valid=htv,
        focal=need("focal", (n, 2)),
        princpt=need("princpt", (n, 2)),
        abs_depth=abs_depth,
        inv_trans=need("inv_trans", (n, 2, 3)),
    )
    for name in ("joint_coord", "joint_cam", "focal", "princpt", "abs_depth", "inv_trans"):
        arr = getattr(inp, name)
        bad = ~np.isfinite(arr)
        if name == "joint_cam":  # invalid joints may hold anything
            bad &= (inp.joint_valid > 0)[..., None]
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{'pred' if name == 'joint_coord' else 'gt'}[{name!r}] is not finite at index {idx}")
    return inp


EVAL_CHUNK = 4096
"""Samples per vectorised step of :func:`evaluate_interhand`: the float64 temporaries of a step (~4 MB) stay in
the CPU cache instead of being ~0.9 GB arrays at the test set's 849,160 samples, whose page faults and memory
traffic made the whole-array version several times slower per sample (benchmarks/bench_evaluation.py)."""


def _root_aligned_errors(
    inp: _Inputs, codec: HeatmapCodec, skeleton: Skeleton, rows: slice = slice(None)
) -> np.ndarray:
    """Per-joint errors (n, 42) after per-hand root alignment, for the samples ``rows`` (default all)."""
    pred_cam = codec.to_camera(
        inp.joint_coord[rows],
        None,
        inp.inv_trans[rows],
        inp.focal[rows],
        inp.princpt[rows],
        inp.abs_depth[rows],
        skeleton,
    )
    gt_cam = inp.joint_cam[rows].astype(np.float64, copy=False)
    # (pred - pred_root) - (gt - gt_root), regrouped: one difference, then each hand minus its root's difference
    diff = pred_cam - gt_cam
    for h in ("right", "left"):
        block = np.asarray(skeleton.joint_type[h])
        contiguous = np.array_equal(block, np.arange(block[0], block[0] + len(block)))
        sel = slice(int(block[0]), int(block[0]) + len(block)) if contiguous else block  # a slice: ~3x faster
        root = int(skeleton.root_idx[h])
        diff[:, sel] -= diff[:, root : root + 1].copy()
    return np.sqrt(np.einsum("njk,njk->nj", diff, diff))


def _masked_sums(err: np.ndarray, mask: np.ndarray):
    """Per-joint sums of the masked errors and their counts."""
    return np.where(mask, err, 0.0).sum(0), mask.sum(0)


def _per_joint(err: np.ndarray, mask: np.ndarray):
    """Per-joint mean over masked samples (NaN where none) and the pooled mean."""
    return _means(*_masked_sums(err, mask))


def _means(total: np.ndarray, cnt: np.ndarray):
    """Per-joint means from per-joint sums and counts (NaN where none) and the pooled mean."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, total / np.maximum(cnt, 1), np.nan)
    pooled = float(total.sum() / cnt.sum()) if cnt.sum() > 0 else None
    return mean, pooled


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
    inp = _read_inputs(pred, gt, HAND_TYPES, single_depth=False, keep_dtype=True)
    n = inp.joint_coord.shape[0]
    names = list(skeleton.names)
    notes: List[str] = []
    valid = inp.joint_valid > 0
    single = inp.codes < 2
    inter = inp.codes == 2

    r_root, l_root = skeleton.root_idx["right"], skeleton.root_idx["left"]
    mrrpe_mask = inter & valid[:, r_root] & valid[:, l_root]
    # One pass over chunks of samples: per-joint error sums and counts of the single-hand and interacting
    # subsets ('all' is their union: every sample is one or the other) and the MRRPE sum.
    sums = {s: [np.zeros(42), np.zeros(42, dtype=np.int64)] for s in ("single", "interacting")}
    mrrpe_sum, mrrpe_count = 0.0, 0
    for start in range(0, n, EVAL_CHUNK):
        rows = slice(start, min(n, start + EVAL_CHUNK))
        err = _root_aligned_errors(inp, codec, skeleton, rows)
        for subset, member in (("single", single[rows]), ("interacting", inter[rows])):
            total, cnt = _masked_sums(err, valid[rows] & member[:, None])
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
            mrrpe_count += len(idx)
    sums["all"] = [sums["single"][0] + sums["interacting"][0], sums["single"][1] + sums["interacting"][1]]

    # MRRPE
    mrrpe = None
    if inp.rel_root_depth is None:
        notes.append("no pred['rel_root_depth']: MRRPE undefined")
    elif not mrrpe_mask.any():
        notes.append("no interacting sample with both wrists valid: MRRPE undefined")
    else:
        mrrpe = mrrpe_sum / mrrpe_count

    # MPJPE per subset
    per_joint: Dict[str, Dict[str, Optional[float]]] = {}
    official: Dict[str, Optional[float]] = {}
    pooled: Dict[str, Optional[float]] = {}
    excluded: Dict[str, List[str]] = {}
    for subset, rows in (("all", np.ones(n, dtype=bool)), ("single", single), ("interacting", inter)):
        mean, pooled[subset] = _means(*sums[subset])
        per_joint[subset] = {name: _num(v) for name, v in zip(names, mean)}
        defined = ~np.isnan(mean)
        excluded[subset] = [names[j] for j in np.nonzero(~defined)[0]]
        official[subset] = float(np.mean(mean[defined])) if defined.any() else None
        if not rows.any():
            notes.append(f"no {subset} sample: MPJPE {subset} undefined")
        elif official[subset] is None:
            notes.append(f"no valid joint in the {subset} samples: MPJPE {subset} undefined")
        elif excluded[subset]:
            notes.append(f"MPJPE {subset}: {len(excluded[subset])} joint(s) with no valid sample left out of the mean")

    # handedness
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
    inp = _read_inputs(pred, gt, HAND_TYPES, single_depth=False)
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
    root_of = np.empty(skeleton.joint_num, dtype=np.int64)
    for h in ("right", "left"):
        root_of[skeleton.joint_type[h]] = skeleton.root_idx[h]
    gt_cam = np.asarray(gt["joint_cam"], dtype=np.float64)
    err = np.linalg.norm((cam - cam[:, root_of]) - (gt_cam - gt_cam[:, root_of]), axis=-1)
    valid = np.asarray(gt["joint_valid"]) > 0
    cnt = valid.sum(axis=1)
    with np.errstate(invalid="ignore"):
        return np.where(cnt > 0, np.where(valid, err, 0).sum(axis=1) / np.maximum(cnt, 1), np.nan)


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
    inp = _read_inputs(pred, gt, ("right", "left"), single_depth=True)
    n = inp.joint_coord.shape[0]
    notes: List[str] = []
    err42 = _root_aligned_errors(inp, codec, skeleton)
    blocks = np.stack([skeleton.joint_type["right"], skeleton.joint_type["left"]])  # (2, 21)
    take = blocks[inp.codes]  # (N, 21): the GT hand's joints
    err = np.take_along_axis(err42, take, axis=1)
    valid = np.take_along_axis(inp.joint_valid, take, axis=1) > 0
    mean, pooled = _per_joint(err, valid)
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
        per_joint={nm: _num(v) for nm, v in zip(names, mean)},
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


def evaluate_dataset(pred: Mapping, gt: Mapping, cfg: Config, skeleton: Optional[Skeleton] = None):
    """The official protocol of ``cfg.dataset`` (InterHand2.6M: :func:`evaluate_interhand`; RHD / STB:
    :func:`evaluate_single_hand`) for predictions of :func:`internet.infer.predict.predict`. ``gt``: the whole split's
    ``eval_targets()``; when ``pred['index']`` is a subset, the same rows are scored."""
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be an internet.Config (the geometry of the predictions), got {type(cfg).__name__}")
    n_gt = len(np.asarray(gt["joint_cam"]))
    index = pred.get("index")
    if index is not None and not np.array_equal(np.asarray(index), np.arange(n_gt)):
        rows = np.asarray(index, dtype=np.int64)
        gt = {k: np.asarray(v)[rows] for k, v in gt.items()}
    skeleton = skeleton or get_skeleton(cfg.dataset)
    if cfg.dataset == "InterHand2.6M":
        return evaluate_interhand(pred, gt, skeleton=skeleton, cfg=cfg)
    return evaluate_single_hand(pred, gt, skeleton=skeleton, cfg=cfg)
