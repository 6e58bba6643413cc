"""InterHand2.6M as a torch Dataset of sample dicts (docs/design.md), read from the official layout.

Layouts:
- v1.0: ``annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d}.json``; the human (H) / machine (M)
  subsets are defined by a list of human-annotated annotation ids (``cfg.human_annot_ids``).
- v0.0: ``annotations/{all,human_annot,machine_annot}/InterHand2.6M_{split}_*.json`` (``cfg.annot_subset`` picks the
  folder).
Images are ``images/{split}/{file_name}`` in both.

Annotations whose joints are all invalid (after zeroing a hand whose root is invalid) carry no pose target; they are
skipped with a warning that counts them (``keep_unlabelled=True`` keeps them, as the official datalist does: they
still count for handedness).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch

from internet.config import SPLITS, Config
from internet.data.augment import AugParams, EpochAugmented, crop_inv_trans, make_sample
from internet.data.index import AnnotationIndex, IndexSources
from internet.data.index_cache import load_index
from internet.data.io import DataFileError, read_image, read_json
from internet.data.rootnet import default_rootnet_path, load_rootnet
from internet.geometry.crop import box_fault, invalid_boxes, process_bboxes
from internet.skeleton import HAND_TYPES, INTERHAND, Skeleton

MODES = ("train", "test")
_V0_SUBSET_DIRS = {"all": "all", "human": "human_annot", "machine": "machine_annot"}
_HAND_TYPE_ARRAYS = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)  # per HAND_TYPES code


def resolve_sources(data_root: Path, split: str, annot_subset: str = "all") -> Tuple[IndexSources, str]:
    """The annotation files of ``split`` and the layout ('v1.0' or 'v0.0'); FileNotFoundError names the paths
    tried when neither layout is there."""
    ann_root = Path(data_root) / "annotations"

    def files(folder: Path) -> Tuple[Path, Path, Path]:
        return tuple(folder / f"InterHand2.6M_{split}_{kind}.json" for kind in ("data", "camera", "joint_3d"))

    v1 = files(ann_root / split)
    v0_dir = _V0_SUBSET_DIRS[annot_subset]
    v0 = files(ann_root / v0_dir)
    if v1[0].is_file():
        return IndexSources(*v1, name=f"interhand26m-{split}-{split}"), "v1.0"
    if v0[0].is_file():
        return IndexSources(*v0, name=f"interhand26m-{split}-{v0_dir}"), "v0.0"
    raise FileNotFoundError(
        f"InterHand2.6M annotation file not found: tried {v1[0]} (v1.0 layout) and {v0[0]} "
        f"(v0.0 layout); is data_root={str(data_root)!r} right?"
    )


def read_id_list(path: str | Path) -> np.ndarray:
    """Annotation ids, one integer per line (blank lines ignored), as a sorted int64 array."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"human annotation id list not found: {path}")
    ids = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            try:
                ids.append(int(text))
            except ValueError:
                raise DataFileError(f"{path} line {lineno}: {text[:40]!r} is not an annotation id") from None
    return np.unique(np.asarray(ids, dtype=np.int64))


def camera_rig(data_root: Union[str, Path], split: str, capture: Optional[int] = None) -> Dict[str, object]:
    """Cameras of one capture of ``split``, read from its camera JSON: ``capture`` (int), ``names`` (list of str),
    ``campos`` (C, 3) world mm, ``camrot`` (C, 3, 3), ``focal`` (C, 2), ``princpt`` (C, 2). The first capture in the
    file when ``capture`` is None."""
    sources, _ = resolve_sources(Path(data_root), split)
    cams = read_json(sources.camera_json, "camera file")
    if not isinstance(cams, dict) or not cams:
        raise DataFileError(f"{sources.camera_json}: expected an object of captures, got {type(cams).__name__}")
    keys = sorted(cams, key=lambda k: (len(k), k))
    key = keys[0] if capture is None else str(int(capture))
    if key not in cams:
        raise KeyError(f"capture {capture} is not in {sources.camera_json} (captures: {', '.join(keys)})")
    entry = cams[key]
    try:
        names = sorted(entry["campos"], key=lambda k: (len(k), k))
        out = {
            f: np.array([entry[f][n] for n in names], dtype=np.float64)
            for f in ("campos", "camrot", "focal", "princpt")
        }
    except (KeyError, TypeError, ValueError) as e:
        raise DataFileError(f"{sources.camera_json}: capture {key} is malformed ({type(e).__name__}: {e})") from None
    return {"capture": int(key), "names": names, **out}


class InterHand26M(EpochAugmented, torch.utils.data.Dataset):
    """InterHand2.6M annotations of one split as sample dicts.

    Train mode draws the augmentation of sample ``i`` from ``numpy.random.default_rng([cfg.seed, epoch, i])``
    (call :meth:`set_epoch` each epoch); test mode crops without augmentation, with the GT box and root depth
    (``cfg.trans_test='gt'``) or RootNet's (``'rootnet'``).

    Args:
        cfg: data_root, annot_subset, human_annot_ids, trans_test, rootnet_path, seed and the shapes.
        split: 'train' | 'val' | 'test'.
        mode: 'train' (augmented) | 'test'.
        cache: keep the parsed annotations as memory-mapped .npy files (``{data_root}/.cache`` or, if that is
            read-only, ``~/.cache/internet``; :mod:`internet.data.index_cache`).
        cache_dir: put the cache there instead.
        keep_unlabelled: keep annotations without any valid joint (default: skip them with a warning).
    """

    skeleton: Skeleton = INTERHAND

    def __init__(
        self,
        cfg: Config,
        split: str,
        mode: str = "train",
        *,
        cache: bool = True,
        cache_dir: Optional[str | Path] = None,
        keep_unlabelled: bool = False,
    ):
        if split not in SPLITS:
            raise ValueError(f"split={split!r} must be one of {SPLITS}")
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} must be one of {MODES}")
        self.cfg, self.split, self.mode = cfg, split, mode
        self.data_root = Path(cfg.data_root)
        self.image_root = self.data_root / "images" / split
        self.sources, self.layout = resolve_sources(self.data_root, split, cfg.annot_subset)
        self.index: AnnotationIndex = load_index(
            self.sources, self.data_root, cache=cache, cache_dir=None if cache_dir is None else Path(cache_dir)
        )
        self.epoch = 0
        keep = self._subset_mask()
        keep &= self._labelled_mask(keep, keep_unlabelled)
        self.rows: Optional[np.ndarray] = None if keep.all() else np.flatnonzero(keep)
        self._check_boxes()
        self.rootnet_bbox: Optional[np.ndarray] = None
        self.rootnet_abs_depth: Optional[np.ndarray] = None
        if mode == "test" and cfg.trans_test == "rootnet":
            self.rootnet_path = default_rootnet_path(cfg, split)
            self.rootnet_bbox, self.rootnet_abs_depth = load_rootnet(self.rootnet_path, self._column("ann_id"))

    # ------------------------------------------------------------------------------------------- selection
    def _subset_mask(self) -> np.ndarray:
        n = len(self.index)
        subset = self.cfg.annot_subset
        if subset == "all" or self.layout == "v0.0":  # v0.0: the folder already is the subset
            return np.ones(n, dtype=bool)
        if not self.cfg.human_annot_ids:
            raise ValueError(
                f"annot_subset={subset!r} needs cfg.human_annot_ids (a file of human-annotated annotation ids, one "
                "per line, e.g. InterWild's aid_human_annot_{train,test}.txt): the v1.0 release ships only 'all'"
            )
        human = np.isin(self.index["ann_id"], read_id_list(self.cfg.human_annot_ids))
        return human if subset == "human" else ~human

    def _labelled_mask(self, keep: np.ndarray, keep_unlabelled: bool) -> np.ndarray:
        labelled = _rows_any(np.asarray(self.index["joint_valid"]))
        dropped = int((keep & ~labelled).sum())
        if dropped and not keep_unlabelled:
            warnings.warn(
                f"InterHand2.6M {self.split}: skipping {dropped} of {int(keep.sum())} annotations that "
                "have no valid joint (keep_unlabelled=True keeps them, as the official datalist does)",
                stacklevel=2,
            )
            return labelled
        return np.ones_like(labelled)

    def _check_boxes(self) -> None:
        """A box that cannot be cropped (geometry.invalid_boxes: degenerate, absurdly large, outside its image):
        error naming the annotation."""
        bbox = self._column("bbox")
        width, height = self._column("width"), self._column("height")
        bad = np.flatnonzero(invalid_boxes(bbox, width, height))
        if len(bad):
            i = int(bad[0])
            why = box_fault(bbox[i], int(width[i]), int(height[i]))
            raise DataFileError(
                f"{self.sources.data_json}: annotation id={int(self._column('ann_id')[i])} has bbox "
                f"{bbox[i].tolist()} that {why} ({len(bad)} such annotation(s) in this split)"
            )

    def _row(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample index {i} out of range for {n} samples")
        i = i % n
        return i if self.rows is None else int(self.rows[i])

    def _column(self, name: str) -> np.ndarray:
        """A field in datalist order (a copy when a subset is selected)."""
        col = self.index[name]
        return np.asarray(col) if self.rows is None else np.asarray(col[self.rows])

    # ------------------------------------------------------------------------------------------- samples
    def __len__(self) -> int:
        return len(self.index) if self.rows is None else len(self.rows)

    def image_path(self, i: int) -> Path:
        return self.image_root / self.index.file_name(self._row(i))

    def load_image(self, i: int, dtype: type = np.float32) -> np.ndarray:
        """The full image of sample ``i``, RGB (H, W, 3) in [0, 255], float32 (or ``dtype=np.uint8``)."""
        r = self._row(i)
        return read_image(
            self.image_root / self.index.file_name(r),
            (int(self.index["width"][r]), int(self.index["height"][r])),
            dtype,
        )

    def crop_bbox(self, i: int) -> np.ndarray:
        """The crop box of sample ``i`` before augmentation: RootNet's (test, 'rootnet') or the processed GT box."""
        if self.rootnet_bbox is not None:
            return self.rootnet_bbox[i % len(self)].copy()
        aspect = self.cfg.input_img_shape[1] / self.cfg.input_img_shape[0]
        return process_bboxes(self.index["bbox"][self._row(i)], aspect)

    def get_sample(self, i: int, aug: Optional[AugParams] = None) -> Dict[str, np.ndarray]:
        """Sample ``i`` with the given augmentation (None: identity), as the sample dict of docs/design.md."""
        r = self._row(i)
        idx = self.index
        img = self.load_image(i, np.uint8)  # the crop converts only the pixels it reads to float32
        joint_coord = np.concatenate([idx["joint_img"][r], idx["joint_cam"][r][:, 2:3]], axis=1)
        sample = make_sample(
            img,
            self.crop_bbox(i),
            joint_coord,
            idx["joint_valid"][r].astype(np.float32),
            _HAND_TYPE_ARRAYS[idx["hand_type"][r]],
            aug or AugParams.identity(),
            self.skeleton,
            self.cfg,
        )
        sample["hand_type_valid"] = np.asarray(idx["hand_type_valid"][r], dtype=np.float32)
        sample["capture"] = np.asarray(idx["capture"][r], dtype=np.int64)
        sample["cam"] = np.asarray(idx["camera"][r], dtype=np.int64)
        sample["frame"] = np.asarray(idx["frame"][r], dtype=np.int64)
        sample["ann_id"] = np.asarray(idx["ann_id"][r], dtype=np.int64)
        sample["index"] = np.asarray(i % len(self), dtype=np.int64)
        return sample

    # ------------------------------------------------------------------------------------------- evaluation
    def eval_targets(self) -> Dict[str, np.ndarray]:
        """Ground truth for evaluation, in datalist order (copies; nothing stored is modified).

        joint_cam (N, 42, 3) camera mm (not root-aligned); joint_valid (N, 42) annotation validity after root
        propagation (no crop check); hand_type (N,) str and hand_type_code (N,) int8 (codes of HAND_TYPES);
        hand_type_valid (N,); focal, princpt (N, 2); abs_depth (N, 2) [right, left] root depth in mm (GT or
        RootNet); bbox (N, 4) crop box; inv_trans (N, 2, 3) test-mode crop -> image affine; ann_id, capture, cam,
        frame (N,) int64.
        """
        codes = self._column("hand_type").astype(np.int8)
        bbox = (
            self.rootnet_bbox.copy()
            if self.rootnet_bbox is not None
            else process_bboxes(self._column("bbox"), self.cfg.input_img_shape[1] / self.cfg.input_img_shape[0])
        )
        abs_depth = (
            self.rootnet_abs_depth.copy()
            if self.rootnet_abs_depth is not None
            else self._column("abs_depth").astype(np.float32, copy=True)
        )
        return {
            "joint_cam": self._column("joint_cam").astype(np.float32, copy=True),
            "joint_valid": self._column("joint_valid").astype(np.float32),
            "hand_type": np.asarray(HAND_TYPES)[codes],
            "hand_type_code": codes,
            "hand_type_valid": self._column("hand_type_valid").astype(np.float32, copy=True),
            "focal": self._column("focal").astype(np.float32, copy=True),
            "princpt": self._column("princpt").astype(np.float32, copy=True),
            "abs_depth": abs_depth,
            "bbox": bbox,
            "inv_trans": crop_inv_trans(bbox, self.cfg.input_img_shape),
            "ann_id": self._column("ann_id").astype(np.int64, copy=True),
            "capture": self._column("capture").astype(np.int64, copy=True),
            "cam": self._column("camera").astype(np.int64, copy=True),
            "frame": self._column("frame").astype(np.int64, copy=True),
        }

    def __repr__(self) -> str:
        return (
            f"InterHand26M(split={self.split!r}, mode={self.mode!r}, layout={self.layout}, "
            f"subset={self.cfg.annot_subset!r}, samples={len(self)}, trans_test={self.cfg.trans_test!r})"
        )


def _rows_any(a: np.ndarray) -> np.ndarray:
    """``a.any(axis=1)`` for a 2-D uint8 array. Comparing each row's bytes with zero bytes is about ten times faster
    than numpy's reduction along rows of 42, a visible share of a cached start (benchmarks/RESULTS.md section 3)."""
    a = np.ascontiguousarray(a)
    if a.dtype != np.uint8 or a.ndim != 2 or a.shape[1] == 0:
        return a.any(axis=1)
    return a.view(np.dtype((np.void, a.shape[1]))).reshape(-1) != np.void(bytes(a.shape[1]))
