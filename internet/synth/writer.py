"""Writing the annotation files: atomically (temporary file + rename) and streamed, in the released JSON formats.

Big files are written piece by piece from pre-serialised JSON fragments, so the full-scale train split (1.36 M
annotations) never has to exist as one Python object. A file appears under its final name only once complete: an
interrupted run leaves at most a ``*.tmp-<pid>`` file behind, never a half-written JSON.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

import numpy as np

from internet.skeleton import INTERHAND
from internet.utils.atomic import atomic_open


def _tmp_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def write_json(path, obj) -> None:
    """``json.dump`` to ``path`` atomically (default separators, as the released files)."""
    with atomic_open(path) as f:
        json.dump(obj, f)


def write_bytes(path, data: bytes, fsync: bool = True) -> None:
    """Write bytes atomically (images: ``fsync=False``; the rename alone already rules out half files after an
    interruption, and syncing thousands of small files costs a quarter of the rendering time)."""
    with atomic_open(path, "wb", fsync=fsync) as f:
        f.write(data)


class StreamedJson:
    """A JSON document written in pieces to a temporary file and renamed into place by :meth:`close`.

    Use :meth:`write` for raw JSON text and :meth:`items` for comma-separated members of the current container.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _tmp_path(self.path)
        self._f = open(self._tmp, "w", encoding="utf-8")
        self._first = [True]

    def write(self, text: str) -> None:
        self._f.write(text)

    def open(self, bracket: str, key: str = None) -> None:
        """Start a nested container (``key`` inside an object)."""
        self._sep()
        if key is not None:
            self._f.write(json.dumps(key) + ": ")
        self._f.write(bracket)
        self._first.append(True)

    def close_container(self, bracket: str) -> None:
        self._f.write(bracket)
        self._first.pop()

    def items(self, fragments: Iterable[str]) -> None:
        """Append members (each a JSON value, or ``"key": value`` inside an object)."""
        for frag in fragments:
            self._sep()
            self._f.write(frag)

    def _sep(self) -> None:
        if self._first[-1]:
            self._first[-1] = False
        else:
            self._f.write(", ")

    def close(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._f.close()
        self._tmp.unlink(missing_ok=True)


class DataJsonWriter:
    """``InterHand2.6M_{split}_data.json``: ``{"images": [...], "annotations": [...]}`` streamed through two
    temporary parts that :meth:`close` joins (images must come first, but both grow capture by capture)."""

    def __init__(self, path):
        self.path = Path(path)
        self._images = StreamedJson(self.path.with_name(self.path.name + ".images"))
        self._anns = StreamedJson(self.path.with_name(self.path.name + ".annotations"))

    def add(self, images: Sequence[str], annotations: Sequence[str]) -> None:
        self._images.items(images)
        self._anns.items(annotations)

    def close(self) -> None:
        parts = []
        for part in (self._images, self._anns):
            part._f.flush()
            part._f.close()
            parts.append(part._tmp)
        try:
            with atomic_open(self.path) as out:
                out.write('{"images": [')
                with open(parts[0], "r", encoding="utf-8") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
                out.write('], "annotations": [')
                with open(parts[1], "r", encoding="utf-8") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
                out.write("]}")
        finally:
            for p in parts:
                p.unlink(missing_ok=True)

    def abort(self) -> None:
        self._images.abort()
        self._anns.abort()


# ============================================================================================== record formatting
def f32_list(values: np.ndarray) -> list:
    """Numbers as the release stores them: float32 values printed as doubles (e.g. 33.56839370727539)."""
    return np.asarray(values, dtype=np.float32).astype(np.float64).tolist()


class JointValidText:
    """JSON text of a 42x1 validity list (``[[1], [0], ...]`` or ``[[true], ...]``), cached: few patterns repeat."""

    def __init__(self, as_bool: bool):
        self._cache: Dict[bytes, str] = {}
        self._on, self._off = ("[true]", "[false]") if as_bool else ("[1]", "[0]")

    def __call__(self, valid: np.ndarray) -> str:
        key = np.asarray(valid, dtype=bool).tobytes()
        text = self._cache.get(key)
        if text is None:
            text = "[" + ", ".join(self._on if v else self._off for v in np.asarray(valid, dtype=bool)) + "]"
            if len(self._cache) < 100000:
                self._cache[key] = text
        return text


def image_records(ids, file_names, widths, heights, capture, subject, seq_names, cameras, frames) -> List[str]:
    """data.json ``images`` entries, key order as released."""
    return [
        f'{{"id": {i}, "file_name": {json.dumps(fn)}, "width": {w}, "height": {h}, "capture": {capture}, '
        f'"subject": {subject}, "seq_name": {json.dumps(sq)}, "camera": "{cam}", "frame_idx": {fr}}}'
        for i, fn, w, h, sq, cam, fr in zip(ids, file_names, widths, heights, seq_names, cameras, frames)
    ]


def annotation_records(
    ids, bboxes: np.ndarray, joint_valid: np.ndarray, hand_types, hand_type_valid, jv_text: JointValidText
) -> List[str]:
    """data.json ``annotations`` entries (one per image, id == image_id)."""
    boxes = f32_list(bboxes)
    return [
        f'{{"id": {i}, "image_id": {i}, "bbox": {json.dumps(b)}, "joint_valid": {jv_text(v)}, '
        f'"hand_type": "{ht}", "hand_type_valid": {htv}}}'
        for i, b, v, ht, htv in zip(ids, boxes, joint_valid, hand_types, hand_type_valid)
    ]


def joint_3d_records(
    frames, world_coord: np.ndarray, joint_valid: np.ndarray, hand_types, hand_type_valid, jv_text: JointValidText
) -> List[str]:
    """``"frame_idx": {...}`` members of a capture's joint_3d.json object."""
    coords = f32_list(world_coord)
    return [
        f'"{fr}": {{"world_coord": {json.dumps(wc)}, "joint_valid": {jv_text(v)}, "hand_type": "{ht}", '
        f'"hand_type_valid": {"true" if htv else "false"}}}'
        for fr, wc, v, ht, htv in zip(frames, coords, joint_valid, hand_types, hand_type_valid)
    ]


def rootnet_records(ids, bboxes: np.ndarray, abs_depth: np.ndarray) -> List[str]:
    """RootNet output entries: ``annot_id``, processed ``bbox``, ``abs_depth`` [right, left] mm, ``root_valid``."""
    boxes, depths = f32_list(bboxes), f32_list(abs_depth)
    return [
        f'{{"annot_id": {i}, "bbox": {json.dumps(b)}, "abs_depth": {json.dumps(d)}, "root_valid": [1, 1]}}'
        for i, b, d in zip(ids, boxes, depths)
    ]


def camera_json(cameras_by_capture: Dict[int, Sequence]) -> dict:
    """``{capture: {campos|camrot|focal|princpt: {camera: value}}}`` as released."""
    out = {}
    for capture, cameras in cameras_by_capture.items():
        out[str(capture)] = {
            "campos": {c.name: f32_list(c.campos) for c in cameras},
            "camrot": {c.name: f32_list(c.camrot) for c in cameras},
            "focal": {c.name: f32_list(c.focal) for c in cameras},
            "princpt": {c.name: f32_list(c.princpt) for c in cameras},
        }
    return out


def skeleton_text() -> str:
    """``annotations/skeleton.txt`` in the release's 'name id parent_id' format."""
    lines = ["### joint_name joint_id joint_parent_id"]
    lines += [f"{name} {j} {int(p)}" for j, (name, p) in enumerate(zip(INTERHAND.names, INTERHAND.parents))]
    return "\n".join(lines) + "\n"
