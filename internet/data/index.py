"""The InterHand2.6M annotations as a compact, memory-mapped array index: :class:`AnnotationIndex`.

The official loader keeps one Python dict per annotation (about 100 GB of RAM with many workers for the full train
split, issue #60). Here the three JSON files are parsed once, joined and projected with vectorised numpy
(:mod:`internet.data.index_build`), and stored as one ``.npy`` file per field in datalist order (single-hand
annotations first, then interacting, each in file order, as the official datalist). Later runs open the files with
``mmap_mode='r'`` (:mod:`internet.data.index_cache` finds and keeps them); DataLoader workers re-open them on
unpickling, so every process shares the page cache instead of holding a copy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

INDEX_VERSION = 1
"""hand_type codes 0, 1, 2."""
JOINT_NUM = 42

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
STRING_FIELDS = ("file_name_bytes", "file_name_offsets", "seq_names")


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
        missing = (set(FIELDS) | set(STRING_FIELDS)) - set(arrays)
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
        meta = read_meta(directory)
        if meta is None or meta.get("version") != INDEX_VERSION:
            raise ValueError(f"{directory} is not a complete annotation index of version {INDEX_VERSION}")
        arrays = {}
        for name in list(FIELDS) + list(STRING_FIELDS):
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


def read_meta(directory: Path) -> Optional[dict]:
    try:
        with open(directory / "meta.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
