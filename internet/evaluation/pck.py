"""3D PCK curve and its AUC: an extra beside the official protocol (not part of InterHand2.6M's official metrics).

The percentage of correct keypoints (PCK) at threshold t is the fraction of valid joints whose root-aligned 3D error
is at most t mm; the AUC is the area under the PCK curve over a threshold range divided by the range's length, so a
perfect model scores 1. Zimmermann and Brox (ICCV 2017) report the AUC over 20-50 mm on STB and RHD; the default here
is 0-50 mm, and every result carries its range.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from internet.skeleton import INTERHAND, Skeleton

PCK_RANGE_MM = (0.0, 50.0)
PCK_STEPS = 51  # 1 mm apart over 0-50 mm
LABEL = "extra: 3D PCK of root-aligned joint errors, not part of the official protocol"


def root_aligned_joint_errors(
    pred_cam: np.ndarray, gt_cam: np.ndarray, joint_valid: Optional[np.ndarray] = None, skeleton: Skeleton = INTERHAND
) -> np.ndarray:
    """(N, J) Euclidean errors (mm) of each joint after aligning each hand at its root (per source), as the per-hand
    MPJPE does; NaN where ``joint_valid`` is 0 or a coordinate is not finite. pred_cam, gt_cam: (N, J, 3) mm."""
    pred = np.asarray(pred_cam, dtype=np.float64)
    gt = np.asarray(gt_cam, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[1:] != (skeleton.joint_num, 3):
        raise ValueError(f"pred_cam and gt_cam must both be (N, {skeleton.joint_num}, 3), got {pred.shape}, {gt.shape}")
    root_of = np.empty(skeleton.joint_num, dtype=np.int64)
    for h in ("right", "left"):
        root_of[skeleton.joint_type[h]] = skeleton.root_idx[h]
    err = np.linalg.norm((pred - pred[:, root_of]) - (gt - gt[:, root_of]), axis=-1)
    if joint_valid is not None:
        err = np.where(np.asarray(joint_valid).reshape(err.shape) > 0, err, np.nan)
    return np.where(np.isfinite(err), err, np.nan)


def pck_curve(errors: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """PCK (fractions in [0, 1]) at each threshold of the finite entries of ``errors`` (any shape; NaN: not
    counted). An empty set gives NaN."""
    e = np.asarray(errors, dtype=np.float64).reshape(-1)
    e = np.sort(e[np.isfinite(e)])
    t = np.asarray(thresholds, dtype=np.float64)
    if len(e) == 0:
        return np.full(t.shape, np.nan)
    return np.searchsorted(e, t, side="right") / len(e)


def auc(thresholds: np.ndarray, pck: np.ndarray) -> float:
    """Area under a PCK curve (trapezoids) divided by the threshold range: 1.0 for a perfect model."""
    t = np.asarray(thresholds, dtype=np.float64)
    p = np.asarray(pck, dtype=np.float64)
    if len(t) < 2 or not np.isfinite(p).all():
        return float("nan")
    return float(np.sum((p[1:] + p[:-1]) * np.diff(t)) / 2.0 / (t[-1] - t[0]))


def pck_report(
    errors: np.ndarray, range_mm: tuple = PCK_RANGE_MM, steps: int = PCK_STEPS, hand_type: Optional[np.ndarray] = None
) -> Dict[str, Any]:
    """The JSON-ready PCK block: ``label``, ``range_mm``, ``thresholds_mm``, ``pck``, ``auc``, ``joints`` counted,
    and, with ``hand_type`` (N,) of ``errors`` (N, J), the same per hand type (``by_hand_type``)."""
    lo, hi = (float(v) for v in range_mm)
    if not hi > lo or steps < 2:
        raise ValueError(f"range_mm must rise and steps be >= 2, got {range_mm}, {steps}")
    t = np.linspace(lo, hi, int(steps))
    e = np.asarray(errors, dtype=np.float64)

    def block(sub: np.ndarray) -> Dict[str, Any]:
        p = pck_curve(sub, t)
        a = auc(t, p)
        return {
            "pck": [None if not np.isfinite(v) else round(float(v), 6) for v in p],
            "auc": None if not np.isfinite(a) else round(a, 6),
            "joints": int(np.isfinite(sub).sum()),
        }

    out: Dict[str, Any] = {"label": LABEL, "range_mm": [lo, hi], "thresholds_mm": [float(v) for v in t], **block(e)}
    if hand_type is not None:
        ht = np.asarray(hand_type).astype(str)
        out["by_hand_type"] = {h: block(e[ht == h]) for h in ("right", "left", "interacting") if (ht == h).any()}
    return out
