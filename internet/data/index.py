"""The InterHand2.6M annotations as a compact, cached, memory-mapped array index.

The official loader keeps one Python dict per annotation (about 100 GB of RAM with many workers for the full train
split, issue #60). Here the three JSON files are parsed once, joined and projected with vectorised numpy, and stored
as one ``.npy`` file per field in datalist order (single-hand annotations first, then interacting, each in file
order, as the official datalist). Later runs open the files with ``mmap_mode='r'``; DataLoader workers re-open them
on unpickling, so every process shares the page cache instead of holding a copy.

The cache directory is keyed by a fingerprint of the source files' content (SHA-1 of their bytes, with their
absolute paths and the index format version), so any edit rebuilds it, even one that keeps the size and the
modification time (a restored backup, a copy with preserved times, a coarse-mtime file system). Hashing the 1 GB of
the full train split takes about a second, too long for every start (a cached start takes 0.05 s), so each cache
also records every source file's (device, inode, size, mtime_ns, ctime_ns) as it was when its content was hashed,
and a later start whose files all still show those values uses the cache without reading them. That shortcut is
content-safe because the kernel sets ctime to the current time on every write, rename or ``utime`` and no
user-level tool can set it back (``touch``, ``cp -p``, ``rsync -t`` and ``tar`` all leave a new ctime); a file whose
ctime or mtime lies within :data:`RACY_NS` of the moment it was hashed is not recorded (a later edit in the same
timestamp tick could not be told apart, as in git's "racy clean" rule), so the next start hashes it again. When the
recorded values differ (a touch, a copy), the files are hashed again: the same content reuses the cache, other
content builds a new one. It is written to a temporary directory and renamed into place, so a crash never leaves a
half-written cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from internet.data.domains import DOMAINS, check_column, check_value
from internet.data.io import DataFileError, gc_paused, read_json
from internet.data.json_stream import iter_members
from internet.geometry.camera import check_rotation
from internet.skeleton import HAND_TYPES, INTERHAND
from internet.utils.atomic import atomic_write_text

INDEX_VERSION = 1
"""hand_type codes 0, 1, 2."""
JOINT_NUM = 42
_CHUNK = 1 << 16  # rows per vectorised projection step: bounds the temporaries on the full 1.36 M-row split

# field -> (dtype, trailing shape); the file names blob and offsets are stored beside them.
FIELDS: Dict[str, Tuple[str, Tuple[int, ...]]] = {
    "ann_id": ("int64", ()),
    "image_id": ("int64", ()),
    "capture": ("int64", ()),
    "camera": ("int64", ()),
    "frame": ("int64", ()),
    "subject": ("int64", ()),
    "seq_code": ("int32", ()),
    "width": ("int32", ()),
    "height": ("int32", ()),
    "bbox": ("float32", (4,)),
    "joint_valid": ("uint8", (JOINT_NUM,)),
    "joint_cam": ("float32", (JOINT_NUM, 3)),
    "joint_img": ("float32", (JOINT_NUM, 2)),
    "hand_type": ("int8", ()),
    "hand_type_valid": ("float32", ()),
    "focal": ("float32", (2,)),
    "princpt": ("float32", (2,)),
    "abs_depth": ("float32", (2,)),
}
_STRING_FIELDS = ("file_name_bytes", "file_name_offsets", "seq_names")


@dataclass(frozen=True)
class IndexSources:
    """The three annotation files of one split (and subset directory) of InterHand2.6M."""

    data_json: Path
    camera_json: Path
    joint_3d_json: Path
    name: str
    """Cache name, e.g. 'interhand26m-test-test' (split and annotation directory)."""

    @property
    def paths(self) -> Tuple[Path, Path, Path]:
        return (self.data_json, self.camera_json, self.joint_3d_json)


# ============================================================================================== the index object
class AnnotationIndex:
    """Column arrays of all annotations in datalist order.

    ``index[name]`` gives a field of :data:`FIELDS` (row-major, first axis = datalist position);
    ``index.file_name(row)`` and ``index.seq_name(row)`` give the strings. When opened from a cache directory the
    arrays are read-only memory maps and pickling sends only the directory (workers re-open it).
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], directory: Optional[Path] = None):
        missing = (set(FIELDS) | set(_STRING_FIELDS)) - set(arrays)
        if missing:
            raise ValueError(f"annotation index lacks fields {sorted(missing)}")
        self._arrays = dict(arrays)
        self.directory = directory

    # ---- access
    def __len__(self) -> int:
        return int(self._arrays["ann_id"].shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __contains__(self, name: str) -> bool:
        return name in self._arrays

    def file_name(self, row: int) -> str:
        offsets = self._arrays["file_name_offsets"]
        return bytes(self._arrays["file_name_bytes"][offsets[row] : offsets[row + 1]]).decode("utf-8")

    def seq_name(self, row: int) -> str:
        return str(self._arrays["seq_names"][self._arrays["seq_code"][row]])

    @property
    def is_memory_mapped(self) -> bool:
        return isinstance(self._arrays["joint_cam"], np.memmap)

    # ---- persistence
    def save(self, directory: Path, meta: dict) -> None:
        """Write every array as ``<name>.npy`` and then ``meta.json`` (its presence marks a complete index)."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, arr in self._arrays.items():
            np.save(directory / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
        with open(directory / "meta.json", "w") as f:
            json.dump(meta, f, indent=1)
            f.flush()
            os.fsync(f.fileno())

    @classmethod
    def open(cls, directory: Path) -> "AnnotationIndex":
        """Open a saved index with memory maps (ValueError if incomplete or of another format version)."""
        directory = Path(directory)
        meta = _read_meta(directory)
        if meta is None or meta.get("version") != INDEX_VERSION:
            raise ValueError(f"{directory} is not a complete annotation index of version {INDEX_VERSION}")
        arrays = {}
        for name in list(FIELDS) + list(_STRING_FIELDS):
            arrays[name] = np.load(directory / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        n = meta["count"]
        for name, (dtype, shape) in FIELDS.items():
            a = arrays[name]
            if a.shape != (n,) + shape or a.dtype != np.dtype(dtype):
                raise ValueError(
                    f"{directory}/{name}.npy has shape {a.shape} {a.dtype}, expected {(n,) + shape} {dtype}"
                )
        return cls(arrays, directory)

    def __reduce__(self):
        # Workers re-open the memory maps instead of receiving a pickled copy of every array.
        if self.directory is not None and self.is_memory_mapped:
            return (AnnotationIndex.open, (self.directory,))
        return (AnnotationIndex, ({k: np.asarray(v) for k, v in self._arrays.items()}, None))


def _read_meta(directory: Path) -> Optional[dict]:
    try:
        with open(directory / "meta.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ============================================================================================== parsing helpers
class _Records:
    """A list of JSON objects (images or annotations) with column extraction that reports the offending record."""

    def __init__(self, records: list, what: str, path: Path, first: int = 0):
        """first: the position of ``records[0]`` in the file's list (records may be one piece of it)."""
        self.records = records
        self.what = what
        self.path = path
        self.first = first

    def _where(self, i: int) -> str:
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
                    raise DataFileError(f"{self._where(i)} is a {type(r).__name__}, not an object") from None
                if required and key not in r:
                    raise DataFileError(f"{self._where(i)} has no key {key!r}") from None
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
        return check_column(arr.reshape((len(arr),) + stored), domain, key, self._where, raw=values)

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
                        f"{self._where(i)}: key {key!r} must be numeric of shape {list(shape)}, got {_describe(v)}"
                    ) from None
            raise DataFileError(f"{self.path}: key {key!r} of the {self.what}s could not be read as numbers")
        return arr

    def strings(self, key: str, allow_int: bool = False) -> List[str]:
        values = self.values(key)
        ok = (str, int) if allow_int else (str,)
        for i, v in enumerate(values):
            if not isinstance(v, ok) or isinstance(v, bool):
                raise DataFileError(f"{self._where(i)}: key {key!r} must be a string, got {_describe(v)}")
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
            raise DataFileError(f"{self._where(i)}: {key} {values[i]!r} is not one of {tuple(names)}{note}") from None


def _describe(v) -> str:
    text = repr(v)
    return f"{type(v).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _require_mapping(obj, path: Path, where: str) -> dict:
    if not isinstance(obj, dict):
        raise DataFileError(f"{path}: {where} must be a JSON object, got {type(obj).__name__}")
    return obj


# ============================================================================================== building
def build_interhand_index(sources: IndexSources) -> AnnotationIndex:
    """Parse the three InterHand2.6M JSON files of a split into an in-memory :class:`AnnotationIndex`.

    Per annotation, as the official loader: joint_valid from data.json with a whole hand zeroed when its root is
    invalid; world coordinates from joint_3d.json -> camera (float32 camera parameters) -> pixels; GT root depths.
    data.json and joint_3d.json are read piece by piece (``json_stream``): only numpy columns outlive a piece, so
    the build needs a fraction of the memory of the parsed files. Errors name the file and the annotation id,
    capture, camera or frame at fault.
    """
    with gc_paused():  # the parse creates no reference cycles; the collector would cost several times the parse
        return _build_interhand_index(sources)


def _build_interhand_index(sources: IndexSources) -> AnnotationIndex:
    cameras = _require_mapping(read_json(sources.camera_json, "camera file"), sources.camera_json, "the top level")
    ann_cols, img_cols = _read_data_json(sources.data_json)
    ann_id, image_id, bbox = ann_cols["ann_id"], ann_cols["image_id"], ann_cols["bbox"]
    joint_valid, hand_type, hand_type_valid = (
        ann_cols["joint_valid"],
        ann_cols["hand_type"],
        ann_cols["hand_type_valid"],
    )
    dup = _first_duplicate(ann_id)
    if dup is not None:
        raise DataFileError(f"{sources.data_json}: annotation id {dup} occurs more than once")

    # datalist order (single-hand first, then interacting, each in file order), applied before the projection so
    # the big arrays are built in their final order without copies
    order = np.concatenate([np.flatnonzero(hand_type != 2), np.flatnonzero(hand_type == 2)])
    ann_row = order  # position in data.json of each datalist entry
    ann_id, image_id, bbox, joint_valid = ann_id[order], image_id[order], bbox[order], joint_valid[order]
    hand_type, hand_type_valid = hand_type[order], hand_type_valid[order]
    data_path = sources.data_json
    del ann_cols

    def ann_where(i: int) -> str:  # i: datalist position
        return f"{data_path}: annotation id={int(ann_id[i])} (entry #{int(ann_row[i])})"

    # ---- images, joined to annotations by id
    img_row = join_image_rows(img_cols["id"], image_id, sources.data_json, ann_where)
    width, height = img_cols["width"][img_row], img_cols["height"][img_row]
    capture = img_cols["capture"][img_row]
    frame = img_cols["frame"][img_row]
    subject = img_cols["subject"][img_row]
    camera = img_cols["camera"][img_row]
    cam_str_img, file_names = img_cols["camera_names"], img_cols["file_names"]
    seq_names, seq_code = img_cols["seq_names"], img_cols["seq_code"][img_row]
    del img_cols

    # ---- cameras per unique (capture, camera)
    cam_first, cam_inv = _unique_pairs(capture, camera)
    n_cam = len(cam_first)
    campos = np.zeros((n_cam, 3), np.float32)
    camrot = np.zeros((n_cam, 3, 3), np.float32)
    focal_u = np.zeros((n_cam, 2), np.float32)
    princpt_u = np.zeros((n_cam, 2), np.float32)
    for k, i in enumerate(cam_first):
        cap, cam_name = str(int(capture[i])), cam_str_img[int(img_row[i])]
        campos[k], camrot[k], focal_u[k], princpt_u[k] = _camera_params(cameras, cap, cam_name, sources.camera_json)
    del cameras

    # ---- world joints per unique (capture, frame)
    frame_first, frame_inv = _unique_pairs(capture, frame)
    world_u = _read_world_coords(sources.joint_3d_json, capture[frame_first], frame[frame_first])

    # ---- root propagation, then projection (float32 as the official loader)
    right, left = INTERHAND.root_idx["right"], INTERHAND.root_idx["left"]
    joint_valid[:, INTERHAND.joint_type["right"]] *= joint_valid[:, right : right + 1]
    joint_valid[:, INTERHAND.joint_type["left"]] *= joint_valid[:, left : left + 1]
    n = len(ann_id)
    joint_cam = np.empty((n, JOINT_NUM, 3), np.float32)
    joint_img = np.empty((n, JOINT_NUM, 2), np.float32)
    for s in range(0, n, _CHUNK):
        sl = slice(s, min(n, s + _CHUNK))
        ci = cam_inv[sl]
        cam = np.matmul(world_u[frame_inv[sl]] - campos[ci][:, None, :], camrot[ci].transpose(0, 2, 1))
        joint_cam[sl] = cam
        z = cam[..., 2] + np.float32(1e-8)
        joint_img[sl, :, 0] = cam[..., 0] / z * focal_u[ci, 0:1] + princpt_u[ci, 0:1]
        joint_img[sl, :, 1] = cam[..., 1] / z * focal_u[ci, 1:2] + princpt_u[ci, 1:2]
    bad = np.flatnonzero(~np.isfinite(joint_cam).all(axis=(1, 2)) & (joint_valid > 0).any(axis=1))
    if len(bad):
        raise DataFileError(f"{ann_where(int(bad[0]))}: its camera coordinates are not finite")

    encoded = [file_names[i].encode("utf-8") for i in img_row.tolist()]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    arrays = {
        "ann_id": ann_id,
        "image_id": image_id,
        "capture": capture,
        "camera": camera,
        "frame": frame,
        "subject": subject,
        "seq_code": seq_code,
        "width": width,
        "height": height,
        "bbox": bbox,
        "joint_valid": joint_valid.astype(np.uint8),
        "joint_cam": joint_cam,
        "joint_img": joint_img,
        "hand_type": hand_type,
        "hand_type_valid": hand_type_valid,
        "focal": focal_u[cam_inv],
        "princpt": princpt_u[cam_inv],
        "abs_depth": np.ascontiguousarray(joint_cam[:, [right, left], 2]),
        "file_name_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(),
        "file_name_offsets": offsets,
        "seq_names": np.asarray(seq_names, dtype=str),
    }
    return AnnotationIndex(arrays)


_PIECE = 8192
"""Records per piece of data.json: bounds the Python objects alive at once (about 5 KB per annotation)."""


def _read_data_json(path: Path) -> Tuple[Dict[str, np.ndarray], Dict[str, object]]:
    """The annotation and image columns of data.json, read piece by piece. Annotations: ann_id, image_id, bbox,
    joint_valid (float32), hand_type (codes), hand_type_valid, in file order. Images: id, width, height, capture,
    frame, subject, camera (numbers), camera_names and file_names (lists of str), seq_names (sorted unique) and
    seq_code, in file order."""
    ann_pieces: Dict[str, list] = {
        k: [] for k in ("ann_id", "image_id", "bbox", "joint_valid", "hand_type_valid", "hand_type")
    }
    img_pieces: Dict[str, list] = {k: [] for k in ("id", "width", "height", "capture", "frame", "subject", "camera")}
    camera_names: List[str] = []
    file_names: List[str] = []
    seq_code_of: Dict[str, int] = {}
    seq_codes: List[int] = []
    found: Dict[str, str] = {}
    nested: Optional[bool] = None
    for key, value, first in iter_members(path, "annotation file", stream=("images", "annotations"), batch_size=_PIECE):
        if key not in ("images", "annotations"):
            continue
        if first is None:  # not a list
            found[key] = type(value).__name__
            continue
        found[key] = "list"
        if key == "annotations":
            anns = _Records(value, "annotation", path, first)
            if nested is None and value:
                nested = _nested_valid(anns)
            for name, column in _annotation_columns(anns, bool(nested)).items():
                ann_pieces[name].append(column)
        else:
            numbers, strings = _image_columns(_Records(value, "image", path, first))
            for name, column in numbers.items():
                img_pieces[name].append(column)
            camera_names.extend(strings["camera"])
            file_names.extend(strings["file_name"])
            seq_codes.extend(seq_code_of.setdefault(name, len(seq_code_of)) for name in strings["seq_name"])
    for key in ("images", "annotations"):
        if found.get(key) != "list":
            raise DataFileError(f"{path}: top-level key {key!r} must be a list ({found.get(key, 'missing')})")
    if not any(len(a) for a in ann_pieces["ann_id"]):
        raise DataFileError(f"{path}: 'annotations' is empty")
    ann_cols = {name: np.concatenate(pieces) for name, pieces in ann_pieces.items()}
    img_cols: Dict[str, object] = {name: np.concatenate(pieces) for name, pieces in img_pieces.items()}
    # sequence names sorted (np.unique of the distinct names in first-seen order maps each old code to its new one)
    seq_names, new_code = np.unique(np.array(list(seq_code_of), dtype=str), return_inverse=True)
    img_cols["seq_names"] = seq_names
    img_cols["seq_code"] = new_code.reshape(-1).astype(np.int32)[np.array(seq_codes, dtype=np.int64)]
    img_cols["camera_names"], img_cols["file_names"] = camera_names, file_names
    return ann_cols, img_cols


def _annotation_columns(anns: _Records, nested: bool) -> Dict[str, np.ndarray]:
    return {
        "ann_id": anns.column("id"),
        "image_id": anns.column("image_id"),
        "bbox": anns.column("bbox"),
        "joint_valid": anns.column("joint_valid", JOINT_NUM, shape=(JOINT_NUM, 1) if nested else None),
        "hand_type_valid": anns.column("hand_type_valid"),
        "hand_type": anns.codes("hand_type", HAND_TYPES),
    }


def _image_columns(images: _Records) -> Tuple[Dict[str, np.ndarray], Dict[str, List[str]]]:
    """(numeric columns, string columns) of one piece of the images."""
    img_id, width, height = images.column("id"), images.column("width"), images.column("height")
    cams = images.strings("camera", allow_int=True)
    try:
        camera = np.array([int(c) for c in cams], dtype=np.int64)
    except ValueError:
        i = next(i for i, c in enumerate(cams) if not c.strip().lstrip("-").isdigit())
        raise DataFileError(f"{images._where(i)}: camera {cams[i]!r} is not a numeric camera name") from None
    numbers = {
        "id": img_id,
        "width": width,
        "height": height,
        "capture": images.column("capture"),
        "frame": images.column("frame_idx"),
        "subject": images.column("subject", default=-1, required=False),
        "camera": camera,
    }
    return numbers, {"camera": cams, "file_name": images.strings("file_name"), "seq_name": images.strings("seq_name")}


def _read_world_coords(path: Path, captures: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(len(captures), 42, 3) world coordinates of each (capture, frame) pair from joint_3d.json, read one capture
    at a time."""
    wanted: Dict[str, List[Tuple[int, str]]] = {}
    for k, (cap, frame) in enumerate(zip(captures.tolist(), frames.tolist())):
        wanted.setdefault(str(cap), []).append((k, str(frame)))
    world = np.zeros((len(captures), JOINT_NUM, 3), np.float32)
    seen = set()
    for cap, per_capture, _ in iter_members(path, "joint file"):
        if cap not in wanted:
            continue
        seen.add(cap)
        for k, frame in wanted[cap]:
            world[k] = _world_coord(per_capture, cap, frame, path)
    unseen = [(pairs[0], cap) for cap, pairs in wanted.items() if cap not in seen]
    if unseen:
        (_, frame), cap = min(unseen)
        raise DataFileError(f"{path}: capture {cap} is missing (needed by capture {cap} frame {frame})")
    return world


def _nested_valid(anns: _Records) -> bool:
    """data.json stores joint_valid as 42 one-element lists; accept a flat list of 42 as well."""
    first = anns.records[0] if anns.records else None
    v = first.get("joint_valid") if isinstance(first, dict) else None
    return not (isinstance(v, list) and v and not isinstance(v[0], list))


def join_image_rows(img_id: np.ndarray, image_id: np.ndarray, path: Path, ann_where) -> np.ndarray:
    """Row in ``images`` of each annotation's ``image_id`` (vectorised join by id). Duplicate image ids and
    annotations whose image is missing raise DataFileError naming ``path`` / ``ann_where(i)``."""
    dup = _first_duplicate(img_id)
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


def _first_duplicate(ids: np.ndarray) -> Optional[int]:
    if len(ids) < 2:
        return None
    s = np.sort(ids)
    d = np.flatnonzero(s[1:] == s[:-1])
    return int(s[d[0]]) if len(d) else None


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """First row of each unique (a, b) pair and the inverse map (row -> pair number); ids fit in 32 bits."""
    key = (a.astype(np.int64) << 32) | (b.astype(np.int64) & 0xFFFFFFFF)
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    return first, inv.reshape(-1)


def _camera_params(cameras: dict, cap: str, cam: str, path: Path):
    if cap not in cameras:
        raise DataFileError(f"{path}: capture {cap} is missing (needed by capture {cap} camera {cam})")
    entry = cameras[cap]
    if not isinstance(entry, dict):
        raise DataFileError(f"{path}: capture {cap} must map to an object of camera fields")
    out = []
    for field_name in ("campos", "camrot", "focal", "princpt"):
        table = entry.get(field_name)
        if not isinstance(table, dict):
            raise DataFileError(f"{path}: capture {cap} has no {field_name!r} table")
        if cam not in table:
            raise DataFileError(f"{path}: capture {cap} camera {cam} is missing from {field_name!r}")
        out.append(check_value(table[cam], f"camera.{field_name}", f"{path}: capture {cap} camera {cam}"))
    try:
        check_rotation(out[1], name=f"camrot of capture {cap} camera {cam} in {path}")
    except ValueError as e:
        raise DataFileError(str(e)) from None
    return out


def _world_coord(per_capture, cap: str, frame: str, path: Path) -> np.ndarray:
    if not isinstance(per_capture, dict):
        raise DataFileError(f"{path}: capture {cap} is missing (needed by capture {cap} frame {frame})")
    if frame not in per_capture:
        raise DataFileError(f"{path}: capture {cap} frame {frame} is missing")
    entry = per_capture[frame]
    # v1.0 and later v0.0: {'world_coord': 42x3, ...}; the earliest v0.0 files stored the 42x3 list directly
    value = entry.get("world_coord") if isinstance(entry, dict) else entry
    if isinstance(entry, dict) and "world_coord" not in entry:
        raise DataFileError(f"{path}: capture {cap} frame {frame} has no key 'world_coord'")
    try:  # the usual case, once per (capture, frame): one conversion (the domain allows any float32 value)
        world = np.array(value, dtype=np.float32)
        if world.shape == (JOINT_NUM, 3):
            return world
    except (ValueError, TypeError):
        pass
    return check_value(value, "joint_3d.world_coord", f"{path}: capture {cap} frame {frame}", joints=JOINT_NUM)


# ============================================================================================== caching
RACY_NS = 2_000_000_000
"""A source file changed this close (ns) before it was hashed is hashed again on the next start (timestamps of coarse
file systems: FAT 2 s)."""
_HASH_CHUNK = 1 << 22


def source_stats(paths: Iterable[Path]) -> List[list]:
    """Each file's [device, inode, size, mtime_ns, ctime_ns]."""
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append([st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
    return out


def fingerprint(paths: Iterable[Path]) -> Tuple[str, list]:
    """A digest of the index version and of each file's absolute path and content (SHA-1 of its bytes), and the
    per-file items hashed (path, size, sha1)."""
    items = []
    for p in paths:
        h = hashlib.sha1()
        size = 0
        with open(p, "rb", buffering=0) as f:
            while chunk := f.read(_HASH_CHUNK):
                h.update(chunk)
                size += len(chunk)
        items.append({"path": str(Path(p).resolve()), "size": size, "sha1": h.hexdigest()})
    digest = hashlib.sha256(json.dumps([INDEX_VERSION, items]).encode()).hexdigest()
    return digest, items


def _settled(stats: List[list], hashed_at_ns: int) -> List[Optional[list]]:
    """The stats worth recording: None for a file changed within RACY_NS of the moment its hashing began."""
    return [st if max(st[3], st[4]) < hashed_at_ns - RACY_NS else None for st in stats]


def _stats_unchanged(meta: dict, stats: List[list]) -> bool:
    recorded = meta.get("source_stats")
    return (
        isinstance(recorded, list)
        and len(recorded) == len(stats)
        and None not in recorded
        and [list(r) for r in recorded] == stats
    )


def _record_stats(directory: Path, meta: dict, stats: List[Optional[list]]) -> None:
    """Store ``stats`` in the cache's meta.json (atomically; best effort: a read-only cache is hashed each time)."""
    if meta.get("source_stats") == stats or not _marked_writable(directory):
        return
    meta = {**meta, "source_stats": stats}
    with contextlib.suppress(OSError):
        atomic_write_text(directory / "meta.json", json.dumps(meta, indent=1))


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/internet`` or ``~/.cache/internet``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "internet"


def _marked_writable(directory: Path) -> bool:
    """Whether we may create files under ``directory``: its nearest existing ancestor must be writable by us and
    carry a write bit. The mode-bit test keeps root from writing into folders that are deliberately read-only."""
    d = directory
    while not d.exists():
        if d.parent == d:
            return False
        d = d.parent
    try:
        mode = d.stat().st_mode
    except OSError:
        return False
    return bool(mode & 0o222) and os.access(d, os.W_OK | os.X_OK)


def cache_roots(data_root: Path, cache_dir: Optional[Path]) -> List[Path]:
    """Where an index cache may live, in order of preference."""
    if cache_dir is not None:
        return [Path(cache_dir)]
    return [Path(data_root) / ".cache", user_cache_dir()]


def load_index(
    sources: IndexSources,
    data_root: Path,
    cache: bool = True,
    cache_dir: Optional[Path] = None,
) -> AnnotationIndex:
    """The index of ``sources``: from a matching cache (memory-mapped) if there is one, otherwise built, saved
    atomically to the first writable cache root and re-opened memory-mapped. ``cache=False`` builds in memory."""
    for p in sources.paths:
        if not p.is_file():
            raise FileNotFoundError(f"annotation file not found: {p}")
    if not cache:
        return build_interhand_index(sources)
    roots = cache_roots(data_root, cache_dir)
    stats = source_stats(sources.paths)
    # a cache whose files still show the stats recorded when their content was hashed (see the module docstring)
    for root in roots:
        for candidate in sorted(root.glob(f"{sources.name}-*")) if root.is_dir() else ():
            meta = _read_meta(candidate)
            if meta is not None and meta.get("version") == INDEX_VERSION and _stats_unchanged(meta, stats):
                index = _open_or_discard(candidate)
                if index is not None:
                    return index
    hashed_at = time.time_ns()
    digest, items = fingerprint(sources.paths)
    settled = _settled(stats, hashed_at)
    dirname = f"{sources.name}-{digest[:24]}"
    for root in roots:
        candidate = root / dirname
        meta = _read_meta(candidate)
        if meta is not None and meta.get("fingerprint") == digest:
            index = _open_or_discard(candidate)
            if index is not None:
                _record_stats(candidate, meta, settled)  # same content, new stats (a touch, a copy)
                return index
    index = build_interhand_index(sources)
    meta = {
        "version": INDEX_VERSION,
        "fingerprint": digest,
        "sources": items,
        "source_stats": settled,
        "count": len(index),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    for root in roots:
        if not _marked_writable(root):
            continue
        try:
            return _save_atomically(index, root, dirname, sources.name, meta)
        except OSError as e:
            warnings.warn(f"could not write the annotation cache under {root}: {e}", stacklevel=2)
    warnings.warn(
        f"no writable cache directory among {[str(r) for r in roots]}: the annotation index stays in "
        "memory and DataLoader workers receive copies of it",
        stacklevel=2,
    )
    return index


def _open_or_discard(candidate: Path) -> Optional[AnnotationIndex]:
    """The cache in ``candidate``, or None after warning about (and removing) a damaged one."""
    try:
        return AnnotationIndex.open(candidate)
    except (OSError, ValueError) as e:
        warnings.warn(f"ignoring a damaged annotation cache {candidate}: {e}; rebuilding it", stacklevel=2)
        if _marked_writable(candidate):
            shutil.rmtree(candidate, ignore_errors=True)
        return None


def _save_atomically(index: AnnotationIndex, root: Path, dirname: str, name: str, meta: dict) -> AnnotationIndex:
    root.mkdir(parents=True, exist_ok=True)
    final = root / dirname
    tmp = Path(tempfile.mkdtemp(prefix=f".{dirname}.tmp-", dir=root))
    try:
        index.save(tmp, meta)
        if final.exists():  # a damaged copy, or one that a concurrent process just finished
            if _complete(final, meta):
                shutil.rmtree(tmp, ignore_errors=True)
                return AnnotationIndex.open(final)
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not _complete(final, meta):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale(root, name, keep=dirname)
    return AnnotationIndex.open(final)


def _complete(directory: Path, meta: dict) -> bool:
    m = _read_meta(directory)
    return m is not None and m.get("fingerprint") == meta["fingerprint"] and m.get("version") == meta["version"]


def _remove_stale(root: Path, name: str, keep: str, max_tmp_age_s: float = 86400.0) -> None:
    """Remove caches of the same split built from older versions of the files, and temporary directories left by
    crashed builds (only old ones: a concurrent build may own a fresh one). Best effort."""
    now = time.time()
    for d in root.glob(f"{name}-*"):
        if d.name != keep and d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
    for d in root.glob(f".{name}-*.tmp-*"):
        try:
            if now - d.stat().st_mtime > max_tmp_age_s:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass
