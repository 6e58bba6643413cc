"""InterHand2.6M's MANO fits (NeuralAnnot): ``annotations/{split}/InterHand2.6M_{split}_MANO_NeuralAnnot.json``.

Layout ``{capture: {frame_idx: {"right": P | null, "left": P | null}}}`` with ``P = {"pose": 48, "shape": 10,
"trans": 3}``: axis-angle radians (root first, then ``hand_pose`` as an offset from ``hands_mean``), shape
coefficients, and the translation in the capture's world frame in **metres**. Frames without a fit are absent and a
hand without one is ``null``; :class:`ManoFits` reports both as invalid.

The file is read one capture at a time (``json_stream``; the train file is large) into compact arrays sorted by
(capture, frame), cached as one ``.npz`` beside the annotation index caches (``{data_root}/.cache`` or
``~/.cache/internet``), keyed by the file's path, size and modification time, written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from internet.data.index_cache import cache_roots, source_stats
from internet.data.io import DataFileError
from internet.data.json_stream import iter_members
from internet.utils.atomic import atomic_write_bytes

HANDS = ("right", "left")
PARAMS = 61  # pose 48, shape 10, trans 3
CACHE_VERSION = 1


def fits_path(data_root, split: str) -> Path:
    return Path(data_root) / "annotations" / split / f"InterHand2.6M_{split}_MANO_NeuralAnnot.json"


class ManoFits:
    """Fits per (capture, frame): ``params`` (N, 2, 61) float64 [right, left] = pose 48, shape 10, trans 3 (m) and
    ``valid`` (N, 2) bool, rows sorted by (``capture``, ``frame``)."""

    def __init__(self, capture: np.ndarray, frame: np.ndarray, params: np.ndarray, valid: np.ndarray, path: str = ""):
        order = np.lexsort((frame, capture))
        self.capture, self.frame = capture[order].astype(np.int64), frame[order].astype(np.int64)
        self.params, self.valid, self.path = params[order].astype(np.float64), valid[order].astype(bool), path
        self._key = self.capture * (1 << 32) + self.frame

    def __len__(self) -> int:
        return len(self.capture)

    def rows(self, capture, frame) -> np.ndarray:
        """Row of each (capture, frame) pair, -1 where the file has no such frame."""
        key = np.asarray(capture, dtype=np.int64) * (1 << 32) + np.asarray(frame, dtype=np.int64)
        pos = np.clip(np.searchsorted(self._key, key), 0, max(len(self) - 1, 0))
        found = (len(self) > 0) & (self._key[pos] == key) if len(self) else np.zeros(key.shape, bool)
        return np.where(found, pos, -1)

    def get(self, capture, frame) -> Tuple[np.ndarray, np.ndarray]:
        """``(params (n, 2, 61), valid (n, 2))`` for arrays of captures and frames; missing frames are invalid."""
        r = self.rows(capture, frame)
        params = np.where((r >= 0)[..., None, None], self.params[np.maximum(r, 0)], 0.0)
        valid = np.where((r >= 0)[..., None], self.valid[np.maximum(r, 0)], False)
        return params, valid

    def lookup(self, capture: int, frame: int, hand: str) -> Optional[Dict[str, np.ndarray]]:
        """``{"pose", "shape", "trans"}`` of one hand, or None (no such frame, or a ``null`` hand)."""
        params, valid = self.get([capture], [frame])
        h = HANDS.index(hand)
        if not valid[0, h]:
            return None
        p = params[0, h]
        return {"pose": p[:48], "shape": p[48:58], "trans": p[58:]}


def _parse_hand(value, where: str) -> Optional[np.ndarray]:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DataFileError(f"{where}: expected an object with pose/shape/trans or null, got {type(value).__name__}")
    out = []
    for key, n in (("pose", 48), ("shape", 10), ("trans", 3)):
        if key not in value:
            raise DataFileError(f"{where}: missing key {key!r}")
        a = np.asarray(value[key], dtype=np.float64).ravel()
        if a.shape != (n,) or not np.isfinite(a).all():
            raise DataFileError(f"{where}: {key!r} must be {n} finite numbers, got {np.asarray(value[key]).shape}")
        out.append(a)
    return np.concatenate(out)


def read_mano_fits(path) -> ManoFits:
    """Parse a NeuralAnnot file one capture at a time (errors name the file, capture, frame and key)."""
    path = Path(path)
    caps, frames, params, valid = [], [], [], []
    for cap, per_capture, _ in iter_members(path, "MANO fit file"):
        if not isinstance(per_capture, dict):
            raise DataFileError(f"{path}: capture {cap}: expected an object of frames")
        for frame, hands in per_capture.items():
            where = f"{path}: capture {cap} frame {frame}"
            if not isinstance(hands, dict):
                raise DataFileError(f"{where}: expected {{'right': ..., 'left': ...}}")
            row, ok = np.zeros((2, PARAMS)), np.zeros(2, bool)
            for h, hand in enumerate(HANDS):
                p = _parse_hand(hands.get(hand), f"{where} {hand}")
                if p is not None:
                    row[h], ok[h] = p, True
            try:
                caps.append(int(cap))
                frames.append(int(frame))
            except ValueError:
                raise DataFileError(f"{where}: capture and frame keys must be integers") from None
            params.append(row)
            valid.append(ok)
    n = len(caps)
    return ManoFits(
        np.array(caps, np.int64),
        np.array(frames, np.int64),
        np.array(params).reshape(n, 2, PARAMS),
        np.array(valid).reshape(n, 2),
        str(path),
    )


def load_mano_fits(path, data_root=None, cache: bool = True, cache_dir=None) -> ManoFits:
    """:func:`read_mano_fits`, through an ``.npz`` cache keyed by the file's resolved path, size and mtime."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MANO fit file not found: {path}")
    if not cache:
        return read_mano_fits(path)
    key = json.dumps([CACHE_VERSION, str(path.resolve()), source_stats([path])[0][2:4]])
    name = f"mano_fits-{hashlib.sha1(key.encode()).hexdigest()[:24]}.npz"
    roots = cache_roots(Path(data_root) if data_root else path.parents[2], Path(cache_dir) if cache_dir else None)
    for root in roots:
        f = root / name
        if f.is_file():
            try:
                with np.load(f) as z:
                    return ManoFits(z["capture"], z["frame"], z["params"], z["valid"], str(path))
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache is rebuilt
    fits = read_mano_fits(path)
    buf = io.BytesIO()
    np.savez(buf, capture=fits.capture, frame=fits.frame, params=fits.params, valid=fits.valid)
    for root in roots:
        try:
            atomic_write_bytes(root / name, buf.getvalue())
            break
        except OSError:
            continue
    return fits
