"""The evaluation's inputs, read and checked once (errors name the dict, key and index), and the root-aligned joint
errors every protocol starts from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from internet.evaluation.metrics import hand_type_codes
from internet.geometry.camera import root_aligned_errors
from internet.geometry.codec import HeatmapCodec
from internet.skeleton import Skeleton
from internet.utils.arrays import as_array


@dataclass
class EvalInputs:
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


def check_shape(arr: np.ndarray, shape: tuple, name: str) -> np.ndarray:
    """``arr`` of exactly ``shape``; the one other form taken is a column (N, 1) for a per-sample value (N,) (a
    model's (B, 1) output). Nothing is reshaped otherwise: a (2, N) ``hand_type`` read as (N, 2) pairs the wrong
    numbers (issue 30), and any same-size reshape could."""
    if arr.shape == shape:
        return arr
    if len(shape) == 1 and arr.shape == (shape[0], 1):
        return arr[:, 0]
    hint = ""
    if arr.ndim == len(shape) and arr.shape == shape[::-1]:
        hint = " (transposed? pass its .T)"
    elif arr.size == int(np.prod(shape)):
        hint = " (the same values in another layout: refused, as a reshape could pair them wrongly)"
    raise ValueError(f"{name} must have shape {shape}, got {arr.shape}{hint}")


def read_inputs(
    pred: Mapping, gt: Mapping, allowed_types: Sequence[str], single_depth: bool, keep_dtype: bool = False
) -> EvalInputs:
    """Read and check every array; errors name the dict and key. The arrays may alias the inputs: nothing below
    writes into them. ``keep_dtype``: numeric arrays keep their dtype (e.g. float32) instead of being copied to
    float64 up front; the vectorised evaluator then converts chunk by chunk (far less memory at the test set's size,
    benchmarks/RESULTS.md section 4)."""

    def read(x, name: str) -> np.ndarray:
        if keep_dtype:
            arr = as_array(x, name, dtype=None)
            if arr.dtype.kind in "biuf":
                return arr
        return as_array(x, name)

    if "joint_coord" not in pred:
        raise KeyError(f"pred has no 'joint_coord' (keys: {sorted(pred)})")
    coord = read(pred["joint_coord"], "pred['joint_coord']")
    if coord.ndim != 3 or coord.shape[1:] != (42, 3):
        raise ValueError(f"pred['joint_coord'] must be (N, 42, 3), got {coord.shape}")
    n = coord.shape[0]

    def need(key: str, shape: tuple, d: Mapping = gt, dname: str = "gt") -> np.ndarray:
        if key not in d:
            raise KeyError(f"{dname} has no {key!r} (keys: {sorted(d)})")
        arr = read(d[key], f"{dname}[{key!r}]")
        return check_shape(arr, shape, f"{dname}[{key!r}]")

    rel = need("rel_root_depth", (n,), pred, "pred") if pred.get("rel_root_depth") is not None else None
    prob = need("hand_type", (n, 2), pred, "pred") if pred.get("hand_type") is not None else None
    abs_depth = as_array(gt["abs_depth"], "gt['abs_depth']") if "abs_depth" in gt else None
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
    inp = EvalInputs(
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
"""Samples per vectorised step of :func:`internet.evaluation.protocol.evaluate_interhand`: the float64 temporaries
of a step stay in the CPU cache instead of being whole-test-set arrays, whose page faults and memory traffic made
the whole-array version several times slower per sample (benchmarks/RESULTS.md, the evaluation section)."""


def joint_errors(inp: EvalInputs, codec: HeatmapCodec, skeleton: Skeleton, rows: slice = slice(None)) -> np.ndarray:
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
    return root_aligned_errors(pred_cam, inp.joint_cam[rows], skeleton)
