"""RootNet outputs for test-time boxes and absolute root depths (``trans_test='rootnet'``).

The file is a JSON list of ``{"annot_id", "bbox" [x, y, w, h], "abs_depth" [right_mm, left_mm], ...}`` (InterHand2.6M)
or with a scalar ``abs_depth`` (RHD/STB). The box is used as is: it is already the processed GT box. The official
code looks entries up by annotation id, so a file for the other frame rate (5 fps vs 30 fps) fails there with a bare
KeyError (issue #63); here the missing ids are named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np

from internet.config import Config
from internet.data.domains import DOMAINS, outside_domain
from internet.data.io import DataFileError, read_json


def default_rootnet_path(cfg: Config, split: str) -> Path:
    """``cfg.rootnet_path`` or ``{data_root}/rootnet_output/rootnet_interhand2.6m_output_{split}.json``."""
    if cfg.rootnet_path:
        return Path(cfg.rootnet_path)
    return Path(cfg.data_root) / "rootnet_output" / f"rootnet_interhand2.6m_output_{split}.json"


def load_rootnet(path: str | Path, ann_ids: np.ndarray, depth_dims: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) float32 and absolute root depths (N, depth_dims) float32 (InterHand2.6M: [right, left] in mm;
    RHD/STB: depth_dims=1) for ``ann_ids``, in that order. Errors name the file, the entry and the missing ids."""
    path = Path(path)
    entries = read_json(path, "RootNet output file")
    if not isinstance(entries, list):
        raise DataFileError(
            f"{path}: a RootNet output file must be a JSON list of entries, got {type(entries).__name__}"
        )
    try:  # vectorised fast path; any problem re-parses entry by entry to name the bad one
        ids = np.asarray([e["annot_id"] for e in entries], dtype=np.int64).reshape(-1)
        boxes = np.asarray([e["bbox"] for e in entries], dtype=np.float32).reshape(len(entries), 4)
        depths = np.asarray([e["abs_depth"] for e in entries], dtype=np.float32).reshape(len(entries), depth_dims)
        ok = (
            not outside_domain(boxes, DOMAINS["rootnet.bbox"]).any()
            and np.all(boxes[:, 2:] > 0)
            and not outside_domain(depths, DOMAINS["rootnet.abs_depth"]).any()
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        ok = False
    if not ok:
        ids, boxes, depths = _parse_entries(path, entries, depth_dims)
    ann_ids = np.asarray(ann_ids, dtype=np.int64)
    # later entries win on duplicate ids, as the official dict does
    uniq, last_from_end = np.unique(ids[::-1], return_index=True)
    last = len(ids) - 1 - last_from_end
    pos = np.minimum(np.searchsorted(uniq, ann_ids), max(len(uniq) - 1, 0))
    found = (uniq[pos] == ann_ids) if len(uniq) else np.zeros(len(ann_ids), bool)
    if not np.all(found):
        missing = ann_ids[~found]
        shown = ", ".join(str(int(a)) for a in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DataFileError(
            f"{path} lacks {len(missing)} of the {len(ann_ids)} annotation ids of this split (e.g. {shown}). "
            "Is it the RootNet output for the other frame rate (5 fps vs 30 fps), split or data version?"
        )
    rows = last[pos]
    return boxes[rows], depths[rows]


def _parse_entries(path: Path, entries: list, depth_dims: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entry-by-entry parsing that names the first bad entry."""
    ids = np.empty(len(entries), np.int64)
    boxes = np.empty((len(entries), 4), np.float32)
    depths = np.empty((len(entries), depth_dims), np.float32)
    for k, e in enumerate(entries):
        if not isinstance(e, dict):
            raise DataFileError(f"{path}: entry #{k} is a {type(e).__name__}, not an object")
        for key in ("annot_id", "bbox", "abs_depth"):
            if key not in e:
                raise DataFileError(f"{path}: entry #{k} (annot_id={e.get('annot_id', '?')}) has no key {key!r}")
        try:
            ids[k] = int(e["annot_id"])
            box = np.asarray(e["bbox"], dtype=np.float32)
            depth = np.asarray(e["abs_depth"], dtype=np.float32).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            raise DataFileError(f"{path}: entry #{k} (annot_id={e.get('annot_id')}) has non-numeric values") from None
        if box.shape != (4,) or depth.shape != (depth_dims,):
            raise DataFileError(
                f"{path}: entry #{k} (annot_id={ids[k]}): bbox must have 4 numbers and abs_depth "
                f"{depth_dims}, got {box.size} and {depth.size}"
            )
        if (
            outside_domain(box[None], DOMAINS["rootnet.bbox"])[0]
            or box[2] <= 0
            or box[3] <= 0
            or outside_domain(depth[None], DOMAINS["rootnet.abs_depth"])[0]
        ):
            raise DataFileError(
                f"{path}: entry #{k} (annot_id={ids[k]}): bbox {box.tolist()} or abs_depth "
                f"{depth.tolist()} is not finite or not positive"
            )
        boxes[k], depths[k] = box, depth
    return ids, boxes, depths
