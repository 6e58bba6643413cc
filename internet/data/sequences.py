"""Sequences and views of InterHand2.6M: annotations by capture / sequence / camera / frame.

InterHand2.6M is not a bag of photos: each capture (one subject in the camera dome) holds sequences (``seq_name``) of
consecutive frames (``frame_idx``), and every frame is seen by many calibrated cameras at once. :class:`SequenceIndex`
gives that structure on top of the cached annotation index (``internet.data.index``), for the release's layout
(v1.0 or v0.0) and for the synthetic sets (``internet.synth``), which share it:

- ``captures()``, ``sequences(capture)``, ``cameras(capture, seq_name)``, ``frames(capture, seq_name, camera)``;
- ``rows(...)``: index rows of one camera's view of a sequence in time order, ``views(capture, seq_name, frame)``:
  the row of every camera that sees a frame;
- ``frame(row)``: one annotated image (its path and ground truth), ``track(...)``: a camera's sequence as arrays,
  ``rig(capture)``: the capture's cameras, ``world_joints(row)``: the joints in the rig's world coordinates.

It holds only integer arrays sorted by (capture, sequence, camera, frame); the joints stay in the memory-mapped index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from internet.data.index import AnnotationIndex
from internet.data.index_cache import load_index
from internet.data.interhand import camera_rig, resolve_sources
from internet.data.io import read_image
from internet.geometry.camera import cam2world
from internet.skeleton import HAND_TYPES

DEFAULT_FPS = 5.0
"""Frame rate of a sequence when the data set does not record one (the 5 fps release)."""


@dataclass(frozen=True)
class SequenceKey:
    """One camera's view of one sequence."""

    capture: int
    seq_name: str
    camera: str

    def __str__(self) -> str:
        return f"Capture{self.capture}/{self.seq_name}/cam{self.camera}"


def _camera_name(code: int) -> str:
    return str(int(code))


class SequenceIndex:
    """The annotations of one split of an InterHand2.6M-layout data set, by capture / sequence / camera / frame.

    ``data_root``: the data set folder (``annotations/``, ``images/``); ``split``: 'train', 'val' or 'test';
    ``annot_subset``: the v0.0 subset folder ('all' for v1.0); ``cache``: keep the parsed index as memory maps (see
    ``internet.data.index``); ``fps``: frames per second of a sequence (default: ``synth_info.json``'s rate for a
    synthetic set, else :data:`DEFAULT_FPS`).
    """

    def __init__(
        self,
        data_root: Union[str, Path],
        split: str = "test",
        annot_subset: str = "all",
        cache: bool = True,
        fps: Optional[float] = None,
    ) -> None:
        self.data_root = Path(data_root)
        if not self.data_root.is_dir():
            raise FileNotFoundError(f"data_root not found: {self.data_root}")
        self.split = split
        self.sources, self.layout = resolve_sources(self.data_root, split, annot_subset)
        self.index: AnnotationIndex = load_index(self.sources, self.data_root, cache=cache)
        self.image_root = self.data_root / "images" / split
        self.fps = float(fps) if fps is not None else self._recorded_fps()
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        idx = self.index
        capture = np.asarray(idx["capture"], dtype=np.int64)
        seq = np.asarray(idx["seq_code"], dtype=np.int64)
        camera = np.asarray(idx["camera"], dtype=np.int64)
        frame = np.asarray(idx["frame"], dtype=np.int64)
        self.seq_names: List[str] = [str(s) for s in np.asarray(idx["seq_names"])]
        order = np.lexsort((frame, camera, seq, capture))
        self._order = order
        self._capture, self._seq, self._camera, self._frame = capture[order], seq[order], camera[order], frame[order]
        self._check_unique_views()
        self._rig_cache: Dict[int, dict] = {}

    def _check_unique_views(self) -> None:
        """One image per capture / sequence / camera / frame: a second one would make ``track()`` list the frame
        twice, ``views()`` keep one of them, and the temporal metrics refuse the sorted sequence."""
        same = (
            (np.diff(self._capture) == 0)
            & (np.diff(self._seq) == 0)
            & (np.diff(self._camera) == 0)
            & (np.diff(self._frame) == 0)
        )
        if not same.any():
            return
        k = int(np.flatnonzero(same)[0])
        a, b = int(self._order[k]), int(self._order[k + 1])
        image_id = np.asarray(self.index["image_id"])
        raise ValueError(
            f"{self.sources.data_json}: Capture{int(self._capture[k])}/{self.seq_names[int(self._seq[k])]}/"
            f"cam{_camera_name(self._camera[k])} frame {int(self._frame[k])} has two images: image id "
            f"{int(image_id[a])} ({self.index.file_name(a)}) and image id {int(image_id[b])} "
            f"({self.index.file_name(b)}); {int(same.sum())} duplicate frame(s) in {self.split}. Remove one image of "
            "each from the annotation file"
        )

    def _recorded_fps(self) -> float:
        info = self.data_root / "synth_info.json"
        try:
            fps = json.loads(info.read_text()).get("sequences", {}).get("fps")
        except (OSError, ValueError, AttributeError):
            fps = None
        return float(fps) if isinstance(fps, (int, float)) and fps > 0 else DEFAULT_FPS

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return (
            f"SequenceIndex({str(self.data_root)!r}, split={self.split!r}, captures={len(self.captures())}, "
            f"annotations={len(self)}, fps={self.fps:g})"
        )

    # ------------------------------------------------------------------------------------------------ structure
    def _seq_code(self, seq_name: str) -> int:
        try:
            return self.seq_names.index(seq_name)
        except ValueError:
            raise KeyError(f"sequence {seq_name!r} is not in {self.split} of {self.data_root}") from None

    def _mask(self, capture: int, seq_name: Optional[str] = None, camera: Optional[str] = None) -> np.ndarray:
        mask = self._capture == int(capture)
        if not mask.any():
            raise KeyError(
                f"capture {capture} is not in {self.split} of {self.data_root} (captures: {self.captures()})"
            )
        if seq_name is not None:
            mask &= self._seq == self._seq_code(seq_name)
            if not mask.any():
                raise KeyError(f"Capture{capture} has no sequence {seq_name!r} (sequences: {self.sequences(capture)})")
        if camera is not None:
            mask &= self._camera == int(camera)
            if not mask.any():
                where = f"Capture{capture}" + (f"/{seq_name}" if seq_name else "")
                raise KeyError(f"{where} has no camera {camera!r} (cameras: {self.cameras(capture, seq_name)})")
        return mask

    def captures(self) -> List[int]:
        return [int(c) for c in np.unique(self._capture)]

    def sequences(self, capture: int) -> List[str]:
        """Sequence names of a capture, sorted."""
        codes = np.unique(self._seq[self._mask(capture)])
        return sorted(self.seq_names[c] for c in codes)

    def cameras(self, capture: int, seq_name: Optional[str] = None) -> List[str]:
        """Names of the cameras with annotations in a capture (or one of its sequences), sorted as numbers."""
        return [_camera_name(c) for c in np.unique(self._camera[self._mask(capture, seq_name)])]

    def frames(self, capture: int, seq_name: str, camera: Optional[str] = None) -> np.ndarray:
        """Sorted ``frame_idx`` values of a sequence (seen by ``camera``, or by any camera)."""
        return np.unique(self._frame[self._mask(capture, seq_name, camera)])

    def rows(self, capture: int, seq_name: str, camera: str) -> np.ndarray:
        """Index rows of ``camera``'s view of a sequence, in time order."""
        return self._order[self._mask(capture, seq_name, camera)]

    def views(self, capture: int, seq_name: str, frame: int) -> Dict[str, int]:
        """Camera name -> index row for every annotated view of one frame."""
        mask = self._mask(capture, seq_name) & (self._frame == int(frame))
        if not mask.any():
            raise KeyError(f"Capture{capture}/{seq_name} has no frame {frame}")
        return {_camera_name(c): int(r) for c, r in zip(self._camera[mask], self._order[mask])}

    def row(self, capture: int, seq_name: str, camera: str, frame: int) -> int:
        views = self.views(capture, seq_name, frame)
        if str(camera) not in views:
            raise KeyError(
                f"camera {camera} has no annotation of Capture{capture}/{seq_name} frame {frame} "
                f"(cameras: {sorted(views)})"
            )
        return views[str(camera)]

    def hand_types(self, capture: int, seq_name: str) -> Dict[str, int]:
        codes = np.asarray(self.index["hand_type"])[self._order[self._mask(capture, seq_name)]]
        return {name: int(np.sum(codes == k)) for k, name in enumerate(HAND_TYPES)}

    def default_sequence(self) -> SequenceKey:
        """The first interacting sequence (by capture, then name) and the camera that sees most of its frames; the
        first sequence when none is interacting."""
        first: Optional[Tuple[int, str]] = None
        for capture in self.captures():
            for seq in self.sequences(capture):
                first = first or (capture, seq)
                if self.hand_types(capture, seq)["interacting"]:
                    return SequenceKey(capture, seq, self.busiest_camera(capture, seq))
        if first is None:
            raise ValueError(f"{self.split} of {self.data_root} has no annotations")
        return SequenceKey(first[0], first[1], self.busiest_camera(*first))

    def busiest_camera(self, capture: int, seq_name: str) -> str:
        """The camera with the most annotated frames of a sequence (the lowest name on a tie)."""
        cams, counts = np.unique(self._camera[self._mask(capture, seq_name)], return_counts=True)
        return _camera_name(cams[int(np.argmax(counts))])

    def summary(self) -> List[Dict[str, object]]:
        """One row per sequence: capture, seq_name, frames, cameras, annotations, hand types, duration (s)."""
        rows = []
        for capture in self.captures():
            for seq in self.sequences(capture):
                frames = self.frames(capture, seq)
                rows.append(
                    {
                        "capture": capture,
                        "seq_name": seq,
                        "frames": int(len(frames)),
                        "cameras": len(self.cameras(capture, seq)),
                        "annotations": int(self._mask(capture, seq).sum()),
                        **self.hand_types(capture, seq),
                    }
                )
        return rows

    # ------------------------------------------------------------------------------------------------ contents
    def frame(self, row: int) -> Dict[str, object]:
        """One annotated image: ``capture``, ``seq_name``, ``camera``, ``frame``, ``ann_id``, ``file_name``,
        ``image_path``, ``width``, ``height``, ``hand_type`` (str), ``joint_img`` (42, 2) px, ``joint_cam`` (42, 3)
        camera mm, ``joint_valid`` (42,) bool, ``bbox`` (4,) annotated box, ``focal``, ``princpt`` (2,)."""
        idx = self.index
        row = int(row)
        if not 0 <= row < len(idx):
            raise IndexError(f"row {row} is outside [0, {len(idx) - 1}]")
        file_name = idx.file_name(row)
        return {
            "row": row,
            "capture": int(idx["capture"][row]),
            "seq_name": idx.seq_name(row),
            "camera": _camera_name(idx["camera"][row]),
            "frame": int(idx["frame"][row]),
            "ann_id": int(idx["ann_id"][row]),
            "file_name": file_name,
            "image_path": self.image_root / file_name,
            "width": int(idx["width"][row]),
            "height": int(idx["height"][row]),
            "hand_type": HAND_TYPES[int(idx["hand_type"][row])],
            "joint_img": np.asarray(idx["joint_img"][row], dtype=np.float64),
            "joint_cam": np.asarray(idx["joint_cam"][row], dtype=np.float64),
            "joint_valid": np.asarray(idx["joint_valid"][row]).astype(bool),
            "bbox": np.asarray(idx["bbox"][row], dtype=np.float64),
            "focal": np.asarray(idx["focal"][row], dtype=np.float64),
            "princpt": np.asarray(idx["princpt"][row], dtype=np.float64),
        }

    def load_image(self, row: int) -> np.ndarray:
        """The image of index row ``row`` as uint8 RGB (H, W, 3)."""
        idx = self.index
        img = read_image(
            self.image_root / idx.file_name(int(row)), (int(idx["width"][row]), int(idx["height"][row])), np.uint8
        )
        return np.asarray(img, dtype=np.uint8)

    def track(self, capture: int, seq_name: str, camera: str) -> Dict[str, np.ndarray]:
        """A camera's view of a sequence as arrays in time order: ``rows``, ``frame`` (T,), ``time_s`` (T,) seconds
        from the first frame, ``joint_cam`` (T, 42, 3), ``joint_img`` (T, 42, 2), ``joint_valid`` (T, 42) bool,
        ``bbox`` (T, 4), ``hand_type`` (T,) str, ``focal``, ``princpt`` (T, 2)."""
        rows = self.rows(capture, seq_name, camera)
        idx = self.index
        frame = np.asarray(idx["frame"][rows], dtype=np.int64)
        step = frame_step(frame)
        return {
            "rows": rows,
            "frame": frame,
            "time_s": (frame - frame[0]) / step / self.fps,
            "joint_cam": np.asarray(idx["joint_cam"][rows], dtype=np.float64),
            "joint_img": np.asarray(idx["joint_img"][rows], dtype=np.float64),
            "joint_valid": np.asarray(idx["joint_valid"][rows]).astype(bool),
            "bbox": np.asarray(idx["bbox"][rows], dtype=np.float64),
            "hand_type": np.asarray(HAND_TYPES)[np.asarray(idx["hand_type"][rows], dtype=np.int64)],
            "focal": np.asarray(idx["focal"][rows], dtype=np.float64),
            "princpt": np.asarray(idx["princpt"][rows], dtype=np.float64),
        }

    def rig(self, capture: int) -> Dict[str, object]:
        """The capture's cameras from its camera JSON: ``names``, ``campos`` (C, 3) world mm, ``camrot`` (C, 3, 3)
        world -> camera, ``focal``, ``princpt`` (C, 2). Cameras without annotations in this split are included."""
        capture = int(capture)
        if capture not in self._rig_cache:
            self._rig_cache[capture] = camera_rig(self.data_root, self.split, capture)
        return self._rig_cache[capture]

    def world_joints(self, row: int) -> np.ndarray:
        """Joints (42, 3) of index row ``row`` in the rig's world mm: X_world = R^T X_cam + campos."""
        f = self.frame(row)
        rig = self.rig(f["capture"])
        if f["camera"] not in rig["names"]:
            raise KeyError(f"camera {f['camera']} of Capture{f['capture']} is not in {self.sources.camera_json}")
        c = rig["names"].index(f["camera"])
        return cam2world(f["joint_cam"], rig["camrot"][c], rig["campos"][c])


def frame_step(frame: np.ndarray) -> int:
    """The step between consecutive frames of a sequence: the smallest positive difference of ``frame_idx`` (1 for
    a single frame)."""
    diffs = np.diff(np.unique(np.asarray(frame, dtype=np.int64)))
    return int(diffs.min()) if len(diffs) else 1
