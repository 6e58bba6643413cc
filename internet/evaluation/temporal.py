"""Temporal metrics of predicted hand sequences and a One-Euro filter (labelled extras, not the official protocol).

The official protocol (``internet.evaluation.protocol``) scores every image on its own. Over a sequence, a prediction
can be accurate on average and still shake from frame to frame. Two numbers measure that, in mm per frame^2 (the second
difference of the joints over consecutive frames of a sequence, each hand relative to its own root, as MPJPE):

- **acceleration error**: mean ``|| a_pred - a_gt ||`` over joints valid in the three frames of each triple (HMR-video
  / VIBE's definition); zero when the prediction moves exactly as the ground truth;
- **jitter**: mean ``|| a_pred ||``, the prediction's own roughness, reported beside the ground truth's (``jitter_gt``,
  the motion's real acceleration).

Triples are three frames whose ``frame_idx`` are equally spaced by the sequence's frame step (a gap breaks the chain).

:func:`one_euro_filter` smooths a prediction sequence (Casiez, Roussel, Vogel, CHI 2012): a low-pass filter whose
cut-off rises with the speed, so slow motion is smoothed strongly and fast motion follows with little lag.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import numpy as np

from internet.evaluation.metrics import per_sample_mean
from internet.geometry.camera import root_aligned_errors, root_relative
from internet.skeleton import INTERHAND, Skeleton


def _check(pred: np.ndarray, gt: np.ndarray, valid: Optional[np.ndarray]) -> tuple:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[-1] != 3 or pred.shape != gt.shape:
        raise ValueError(f"pred and gt must both have shape (T, J, 3), got {pred.shape} and {gt.shape}")
    if valid is None:
        valid = np.ones(pred.shape[:2], dtype=bool)
    valid = np.asarray(valid).astype(bool)
    if valid.shape != pred.shape[:2]:
        raise ValueError(f"valid must have shape {pred.shape[:2]}, got {valid.shape}")
    return pred, gt, valid


def _check_increasing(frame: np.ndarray, d: np.ndarray) -> None:
    """Frame numbers strictly increasing, else an error naming the first repeated or out-of-order frame."""
    bad = np.flatnonzero(d <= 0)
    if not len(bad):
        return
    i = int(bad[0])
    if d[i] == 0:  # a sorted sequence with a frame twice: a duplicate image, not an ordering mistake
        raise ValueError(
            f"frame {int(frame[i])} appears twice (positions {i} and {i + 1}): one frame per time step expected; "
            "drop the duplicate image of that frame"
        )
    raise ValueError(
        f"frame numbers must be strictly increasing: frame {int(frame[i + 1])} at position {i + 1} follows "
        f"{int(frame[i])} (sort the sequence by frame first)"
    )


def triples(frame: Sequence[int], step: Optional[int] = None) -> np.ndarray:
    """Indices (K, 3) of consecutive triples (t-1, t, t+1) whose frame numbers are ``step`` apart (default: the
    smallest positive difference, i.e. the sequence's frame step). ``frame`` must be increasing."""
    frame = np.asarray(frame, dtype=np.int64)
    if frame.ndim != 1:
        raise ValueError(f"frame must be 1-D, got shape {frame.shape}")
    d = np.diff(frame)
    _check_increasing(frame, d)
    if step is None:
        step = int(d.min()) if len(d) else 1
    t = np.nonzero((d[:-1] == step) & (d[1:] == step))[0] + 1
    return np.stack([t - 1, t, t + 1], axis=1) if len(t) else np.zeros((0, 3), dtype=np.int64)


def temporal_errors(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: Optional[np.ndarray] = None,
    frame: Optional[Sequence[int]] = None,
    skeleton: Skeleton = INTERHAND,
    root_align: bool = True,
    step: Optional[int] = None,
) -> Dict[str, float]:
    """Acceleration error and jitter of one sequence (one camera's view, in time order).

    pred, gt: (T, J, 3) mm; valid: (T, J) GT validity (a triple counts a joint valid in all three frames; a hand
    whose root is invalid in a frame is left out of that frame when ``root_align``); frame: (T,) frame numbers
    (default 0..T-1). Returns ``accel_error``, ``jitter``, ``jitter_gt`` (mm/frame^2; NaN without any triple) and
    ``count`` (joint-triples averaged over).
    """
    pred, gt, valid = _check(pred, gt, valid)
    if root_align:
        valid = valid.copy()
        for hand in ("right", "left"):
            jt = skeleton.joint_type[hand]
            valid[:, jt] &= valid[:, [skeleton.root_idx[hand]]]
        pred, gt = root_relative(pred, skeleton), root_relative(gt, skeleton)
    idx = triples(np.arange(len(pred)) if frame is None else frame, step)
    out = {"accel_error": float("nan"), "jitter": float("nan"), "jitter_gt": float("nan"), "count": 0}
    if len(idx) == 0:
        return out
    ok = valid[idx].all(axis=1) & np.isfinite(pred[idx]).all(axis=(1, 3)) & np.isfinite(gt[idx]).all(axis=(1, 3))
    acc_pred = pred[idx[:, 0]] - 2.0 * pred[idx[:, 1]] + pred[idx[:, 2]]
    acc_gt = gt[idx[:, 0]] - 2.0 * gt[idx[:, 1]] + gt[idx[:, 2]]
    n = int(ok.sum())
    if n == 0:
        return out
    out.update(
        accel_error=float(np.linalg.norm(acc_pred - acc_gt, axis=-1)[ok].mean()),
        jitter=float(np.linalg.norm(acc_pred, axis=-1)[ok].mean()),
        jitter_gt=float(np.linalg.norm(acc_gt, axis=-1)[ok].mean()),
        count=n,
    )
    return out


def pool(per_sequence: Sequence[Dict[str, float]]) -> Dict[str, float]:
    """Overall metrics from per-sequence ones: every joint-triple weighs the same (weights = ``count``)."""
    total = sum(int(r["count"]) for r in per_sequence)
    out = {"count": total}
    for key in ("accel_error", "jitter", "jitter_gt"):
        out[key] = (
            float(sum(r[key] * r["count"] for r in per_sequence if r["count"]) / total) if total else float("nan")
        )
    return out


def per_frame_mpjpe(
    pred: np.ndarray, gt: np.ndarray, valid: Optional[np.ndarray] = None, skeleton: Skeleton = INTERHAND
) -> Dict[str, np.ndarray]:
    """Root-aligned MPJPE (mm) of every frame: ``right``, ``left`` (that hand's joints) and ``all`` (both hands),
    (T,) each, NaN where no joint of that set is valid (and its root valid)."""
    pred, gt, valid = _check(pred, gt, valid)
    valid = valid.copy()
    for hand in ("right", "left"):
        jt = skeleton.joint_type[hand]
        valid[:, jt] &= valid[:, [skeleton.root_idx[hand]]]
    err = root_aligned_errors(pred, gt, skeleton)
    out = {}
    for name, joints in (
        ("right", skeleton.joint_type["right"]),
        ("left", skeleton.joint_type["left"]),
        ("all", np.arange(skeleton.joint_num)),
    ):
        out[name] = per_sample_mean(err[:, joints], valid[:, joints])
    return out


# ============================================================================================== One-Euro filter
def _alpha(cutoff: np.ndarray, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Streaming One-Euro filter of arrays (any shape, every element filtered independently).

    ``fps``: sampling rate; ``min_cutoff`` (Hz): cut-off at rest (lower = smoother, more lag when slow);
    ``beta``: how fast the cut-off rises with the speed (higher = less lag in fast motion); ``d_cutoff`` (Hz): cut-off
    of the speed estimate. Call with each new value; :meth:`reset` forgets the past (after a gap).
    """

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        for name, v in (("fps", fps), ("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff)):
            # inf is refused too: fps=inf makes the time step 0 and every other output NaN (0/0)
            if not (isinstance(v, (int, float)) and 0 < v < math.inf):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        if not (isinstance(beta, (int, float)) and 0 <= beta < math.inf):
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        self.fps, self.min_cutoff = float(fps), float(min_cutoff)
        self.beta, self.d_cutoff = float(beta), float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        self._x: Optional[np.ndarray] = None
        self._dx: Optional[np.ndarray] = None

    def __call__(self, x: np.ndarray, dt_frames: float = 1.0) -> np.ndarray:
        """Filter the next value; ``dt_frames``: frames since the previous one (1 for consecutive frames). Non-finite
        elements pass through and do not update the state."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dt = float(dt_frames) / self.fps
        finite = np.isfinite(x) & np.isfinite(self._x)
        dx = np.where(finite, (x - self._x) / dt, 0.0)
        a_d = _alpha(np.full_like(x, self.d_cutoff), dt)
        dx_hat = a_d * dx + (1.0 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        a = _alpha(cutoff, dt)
        x_hat = np.where(finite, a * x + (1.0 - a) * self._x, x)
        self._x = np.where(np.isfinite(x), x_hat, self._x)
        self._dx = np.where(finite, dx_hat, self._dx)
        return x_hat


def one_euro_filter(
    x: np.ndarray,
    fps: float,
    frame: Optional[Sequence[int]] = None,
    min_cutoff: float = 1.0,
    beta: float = 0.0,
    d_cutoff: float = 1.0,
) -> np.ndarray:
    """Filter a sequence ``x`` (T, ...) in time order with a :class:`OneEuroFilter`; ``frame`` (T,) frame numbers:
    the time step follows their differences in units of the sequence's frame step (default consecutive)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1 or len(x) == 0:
        return x.copy()
    f = OneEuroFilter(fps, min_cutoff, beta, d_cutoff)
    if frame is None:
        dts = np.ones(len(x))
    else:
        frame = np.asarray(frame, dtype=np.int64)
        if frame.shape != (len(x),):
            raise ValueError(f"frame must have shape ({len(x)},), got {frame.shape}")
        d = np.diff(frame)
        _check_increasing(frame, d)
        step = d.min() if len(d) else 1
        dts = np.concatenate([[1.0], d / step])
    return np.stack([f(x[t], dts[t]) for t in range(len(x))])
