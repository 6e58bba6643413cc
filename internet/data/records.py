"""Reading lists of JSON records (images, annotations) into checked numpy columns, and joining them by id.

Every error names the file and the record (its id and position) at fault. Used by the InterHand2.6M index
(:mod:`internet.data.index_build`) and the single-hand data sets (:mod:`internet.data.single_hand`).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from internet.data.domains import DOMAINS, check_column
from internet.data.io import DataFileError


class Records:
    """A list of JSON objects (images or annotations) with column extraction that reports the offending record."""

    def __init__(self, records: list, what: str, path: Path, first: int = 0):
        """first: the position of ``records[0]`` in the file's list (records may be one piece of it)."""
        self.records = records
        self.what = what
        self.path = path
        self.first = first

    def where(self, i: int) -> str:
        r = self.records[i]
        rid = r.get("id", "?") if isinstance(r, dict) else "?"
        return f"{self.path}: {self.what} id={rid} (entry #{self.first + i})"

    def values(self, key: str, default=None, required: bool = True) -> list:
        try:
            if required:
                return [r[key] for r in self.records]
            return [r.get(key, default) for r in self.records]
        except (KeyError, TypeError, AttributeError):
            for i, r in enumerate(self.records):
                if not isinstance(r, dict):
                    raise DataFileError(f"{self.where(i)} is a {type(r).__name__}, not an object") from None
                if required and key not in r:
                    raise DataFileError(f"{self.where(i)} has no key {key!r}") from None
            raise

    def column(
        self, key: str, joints: int = 0, shape: Optional[Tuple[int, ...]] = None, default=None, required: bool = True
    ) -> np.ndarray:
        """Column ``key`` as an (N,) + shape array of its domain's type (``DOMAINS[f"{what}.{key}"]``), every value
        checked against that domain. Ints, floats and bools (the real files mix them) are accepted. ``joints``: the
        joints per annotation; ``shape``: the layout in the file when it differs from the domain's (joint_valid as
        one-element lists), with as many values."""
        domain = DOMAINS[f"{self.what}.{key}"]
        stored = domain.resolve_shape(joints)
        values = self.values(key, default, required)
        arr = self._numbers(key, values, stored if shape is None else shape)
        return check_column(arr.reshape((len(arr),) + stored), domain, key, self.where, raw=values)

    def _numbers(self, key: str, values: list, shape: Tuple[int, ...]) -> np.ndarray:
        """Column ``key`` (its ``values``) as read, (N,) + shape of a numeric dtype; DataFileError naming the first
        record that is not numbers of that shape."""
        if not values:
            return np.zeros((0,) + shape)
        arr = None
        try:
            arr = np.asarray(values)
        except (ValueError, TypeError):
            pass
        if arr is None or arr.dtype.kind not in "biuf" or arr.shape[1:] != shape or arr.shape[0] != len(values):
            for i, v in enumerate(values):
                try:
                    a = np.asarray(v)
                except (ValueError, TypeError):
                    a = np.asarray(None)
                if a.dtype.kind not in "biuf" or a.shape != shape:
                    raise DataFileError(
                        f"{self.where(i)}: key {key!r} must be numeric of shape {list(shape)}, got {describe_value(v)}"
                    ) from None
            raise DataFileError(f"{self.path}: key {key!r} of the {self.what}s could not be read as numbers")
        return arr

    def strings(self, key: str, allow_int: bool = False) -> List[str]:
        values = self.values(key)
        ok = (str, int) if allow_int else (str,)
        for i, v in enumerate(values):
            if not isinstance(v, ok) or isinstance(v, bool):
                raise DataFileError(f"{self.where(i)}: key {key!r} must be a string, got {describe_value(v)}")
        return [str(v) for v in values]

    def codes(self, key: str, names: Sequence[str], note: str = "") -> np.ndarray:
        """String column ``key`` as int8 indices into ``names``; an unknown name raises naming its record (``note``
        is appended to that message)."""
        values = self.strings(key)
        code_of = {name: k for k, name in enumerate(names)}
        try:
            return np.array([code_of[v] for v in values], dtype=np.int8)
        except KeyError:
            i = next(i for i, v in enumerate(values) if v not in code_of)
            raise DataFileError(f"{self.where(i)}: {key} {values[i]!r} is not one of {tuple(names)}{note}") from None


def describe_value(v) -> str:
    text = repr(v)
    return f"{type(v).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def require_mapping(obj, path: Path, where: str) -> dict:
    if not isinstance(obj, dict):
        raise DataFileError(f"{path}: {where} must be a JSON object, got {type(obj).__name__}")
    return obj


def join_image_rows(img_id: np.ndarray, image_id: np.ndarray, path: Path, ann_where) -> np.ndarray:
    """Row in ``images`` of each annotation's ``image_id`` (vectorised join by id). Duplicate image ids and
    annotations whose image is missing raise DataFileError naming ``path`` / ``ann_where(i)``."""
    dup = first_duplicate(img_id)
    if dup is not None:
        raise DataFileError(f"{path}: image id {dup} occurs more than once")
    if len(img_id):
        sorter = np.argsort(img_id, kind="stable")
        pos = np.minimum(np.searchsorted(img_id, image_id, sorter=sorter), len(img_id) - 1)
        img_row = sorter[pos]
        found = img_id[img_row] == image_id
    else:
        img_row, found = np.zeros(len(image_id), np.int64), np.zeros(len(image_id), bool)
    if not np.all(found):
        i = int(np.flatnonzero(~found)[0])
        raise DataFileError(f"{ann_where(i)}: image_id {int(image_id[i])} is not in 'images'")
    return img_row


def first_duplicate(ids: np.ndarray) -> Optional[int]:
    if len(ids) < 2:
        return None
    s = np.sort(ids)
    d = np.flatnonzero(s[1:] == s[:-1])
    return int(s[d[0]]) if len(d) else None


def unique_pairs(a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """First row of each unique (a, b) pair and the inverse map (row -> pair number); ids fit in 32 bits."""
    key = (a.astype(np.int64) << 32) | (b.astype(np.int64) & 0xFFFFFFFF)
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    return first, inv.reshape(-1)
