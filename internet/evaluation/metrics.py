"""The statistics the protocols are made of: hand-type codes, the official handedness test, average precision,
per-joint masked means.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from internet.skeleton import HAND_TYPES

PCK_THRESHOLDS_MM = tuple(float(t) for t in np.linspace(20.0, 50.0, 31))
"""Thresholds of the 3D PCK curve whose normalised area is reported for RHD/STB (1 mm steps)."""


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


def masked_sums(err: np.ndarray, mask: np.ndarray):
    """Per-joint sums of the masked errors and their counts."""
    return np.where(mask, err, 0.0).sum(0), mask.sum(0)


def per_joint_means(err: np.ndarray, mask: np.ndarray):
    """Per-joint mean over masked samples (NaN where none) and the pooled mean."""
    return joint_means(*masked_sums(err, mask))


def joint_means(total: np.ndarray, cnt: np.ndarray):
    """Per-joint means from per-joint sums and counts (NaN where none) and the pooled mean."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, total / np.maximum(cnt, 1), np.nan)
    pooled = float(total.sum() / cnt.sum()) if cnt.sum() > 0 else None
    return mean, pooled


def per_sample_mean(err: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(..., J) errors -> (...,) mean over each sample's valid joints, NaN for a sample without one (the per-sample
    MPJPE of :func:`internet.evaluation.protocol.per_sample_mpjpe` and
    :func:`internet.evaluation.temporal.per_frame_mpjpe`)."""
    cnt = valid.sum(axis=-1)
    with np.errstate(invalid="ignore"):
        return np.where(cnt > 0, np.where(valid, err, 0.0).sum(axis=-1) / np.maximum(cnt, 1), np.nan)
