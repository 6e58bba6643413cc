"""Result files of an evaluation: one format, written atomically, read back by the demo and the notebooks.

For a split and a tag (``""``, or ``"_snapshot_9"`` when ``Trainer.test`` was given a checkpoint) the folder
``output_dir/result/`` holds

- ``pred_{split}{tag}.npz``: the predictions (``internet.infer.predict.PREDICTION_KEYS``: ``index``, ``joint_coord``,
  ``rel_root_depth``, ``hand_type``, ``inv_trans``; ``ann_id`` when the data set has annotation ids; anything else
  the caller adds, e.g. ``per_sample_mpjpe``);
- ``eval_{split}{tag}.json``: ``{"meta": {...}, "official_protocol": ..., "variants": ..., "counts": ...,
  "baselines": {name: the same metric blocks}, "extras": {...}}`` (``EvalResult.to_dict()`` plus ``meta``,
  ``baselines`` and ``extras``: labelled measures beside the official protocol, e.g. ``pck_3d`` of
  ``internet.evaluation.pck``).

Both are written to a temporary file beside the target, fsynced and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np

from internet.utils.atomic import atomic_write_bytes

PathLike = Union[str, Path]


def result_paths(result_dir: PathLike, split: str, tag: str = "") -> Dict[str, Path]:
    """``{"pred": .../pred_{split}{tag}.npz, "eval": .../eval_{split}{tag}.json}``."""
    folder = Path(result_dir)
    return {"pred": folder / f"pred_{split}{tag}.npz", "eval": folder / f"eval_{split}{tag}.json"}


def write_results(
    result_dir: PathLike,
    split: str,
    pred: Mapping[str, np.ndarray],
    result: Any,
    meta: Mapping[str, Any],
    tag: str = "",
    baselines: Optional[Mapping[str, Any]] = None,
    extras: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Path]:
    """Write ``pred`` (arrays) and ``result`` (an EvalResult / SingleHandEvalResult, or its ``to_dict()``) with
    ``meta`` (data set, split, checkpoint, options), optional ``baselines`` (name -> result) and ``extras`` (name ->
    JSON-ready block, each with its own ``label``; not part of the official protocol) atomically.
    Returns the two paths."""
    paths = result_paths(result_dir, split, tag)
    paths["pred"].parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in pred.items()})
    doc = {"meta": dict(meta), **_as_dict(result)}
    if baselines:
        doc["baselines"] = {name: _as_dict(r) for name, r in baselines.items()}
    if extras:
        doc["extras"] = dict(extras)
    text = json.dumps(doc, indent=1, allow_nan=False)  # NaN is not JSON: results carry None for undefined
    atomic_write_bytes(paths["pred"], buf.getvalue())
    atomic_write_bytes(paths["eval"], text.encode())
    return paths


def read_results(result_dir: PathLike, split: str, tag: str = "") -> Dict[str, Any]:
    """The evaluation JSON written by :func:`write_results` (``{}`` when there is none)."""
    path = result_paths(result_dir, split, tag)["eval"]
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a valid result file ({e})") from None


def read_predictions(result_dir: PathLike, split: str, tag: str = "") -> Dict[str, np.ndarray]:
    """The prediction arrays written by :func:`write_results`."""
    path = result_paths(result_dir, split, tag)["pred"]
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _as_dict(result: Any) -> dict:
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)
