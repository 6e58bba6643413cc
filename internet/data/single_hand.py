"""Single-hand benchmarks (RHD, STB) in InterNet's two-hand sample format: the shared loader.

InterNet's parsed COCO-style files hold one hand per annotation (``joint_img`` 21x2 px, ``joint_cam`` 21x3 mm,
``joint_valid`` 21, ``hand_type`` 'right' | 'left', ``bbox`` [x, y, w, h]) and per image ``cam_param`` {focal,
princpt}. As the official loaders do, each annotation becomes a 42-joint two-hand sample: the 21 joints fill the block
of the GT hand (RHD/STB skeletons: left block 0-20, right block 21-41), the other block is zero and invalid;
hand_type_valid = 1; there is no second hand, so the relative root depth target is 0 mm and root_valid = 0. Joint
validity is used as annotated (no root propagation: RHD/STB give coordinates for every joint). Test-time box and
absolute root depth (one scalar, used for both blocks) come from the GT ('gt') or a RootNet output file ('rootnet').

The annotations are parsed once into column arrays (datalist order = file order, as the official loaders); samples
go through the same augmentation pipeline as InterHand2.6M (:mod:`internet.data.augment`), whose flip swaps the blocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from internet.config import Config
from internet.data.augment import AugParams, EpochAugmented, crop_inv_trans, make_sample
from internet.data.domains import check_value
from internet.data.io import DataFileError, read_image, read_json
from internet.data.records import Records, first_duplicate, join_image_rows, require_mapping
from internet.data.rootnet import load_rootnet
from internet.geometry.codec import HeatmapCodec
from internet.geometry.crop import box_fault, invalid_boxes, process_bboxes
from internet.skeleton import HAND_TYPES, Skeleton

MODES = ("train", "test")
SINGLE_HAND_TYPES = HAND_TYPES[:2]
"""RHD and STB annotations hold one hand each: hand_type codes 0, 1, the first two of
:data:`internet.skeleton.HAND_TYPES` (the same codes as InterHand2.6M's 'right'/'left')."""
JOINTS_PER_HAND = 21
_HAND_TYPE_ARRAYS = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)  # [right, left] presence per code


class SingleHandAnnotations:
    """The columns of one parsed annotation file, in file order.

    ann_id, image_id (N,) int64; file_name (N,) str; seq_name (N,) str or None; width, height (N,) int32;
    focal, princpt (N, 2) float32; bbox (N, 4) float32 [x, y, w, h]; joint_img (N, 21, 2), joint_cam (N, 21, 3)
    float32; joint_valid (N, 21) float32; hand_type (N,) int8 codes of :data:`SINGLE_HAND_TYPES`.
    """

    def __init__(self, path: Path, arrays: Dict[str, np.ndarray]):
        self.path = path
        self.ann_id = arrays["ann_id"]
        self.image_id = arrays["image_id"]
        self.file_name = arrays["file_name"]
        self.seq_name = arrays.get("seq_name")
        self.width = arrays["width"]
        self.height = arrays["height"]
        self.focal = arrays["focal"]
        self.princpt = arrays["princpt"]
        self.bbox = arrays["bbox"]
        self.joint_img = arrays["joint_img"]
        self.joint_cam = arrays["joint_cam"]
        self.joint_valid = arrays["joint_valid"]
        self.hand_type = arrays["hand_type"]

    def __len__(self) -> int:
        return int(self.ann_id.shape[0])


def _joint_valid_shape(anns: Records) -> Tuple[int, ...]:
    """``joint_valid`` as 21 numbers, or 21 one-element lists (the InterHand2.6M style); decided by the first."""
    first = anns.records[0] if anns.records else None
    v = first.get("joint_valid") if isinstance(first, dict) else None
    nested = isinstance(v, list) and bool(v) and isinstance(v[0], list)
    return (JOINTS_PER_HAND, 1) if nested else (JOINTS_PER_HAND,)


def _cam_params(images: Records) -> Tuple[np.ndarray, np.ndarray]:
    """focal, princpt (M, 2) float32 from each image's ``cam_param``; errors name the image."""
    params = images.values("cam_param")
    n = len(params)
    try:
        focal = np.asarray([p["focal"] for p in params], dtype=np.float32).reshape(n, 2)
        princpt = np.asarray([p["princpt"] for p in params], dtype=np.float32).reshape(n, 2)
        ok = bool(np.all(np.isfinite(focal)) and np.all(np.isfinite(princpt)) and np.all(focal > 0))
    except (KeyError, TypeError, ValueError, IndexError):
        ok = False
    if ok:
        return focal, princpt
    for i, p in enumerate(params):
        if not isinstance(p, dict):
            raise DataFileError(f"{images.where(i)}: 'cam_param' must be an object with focal and princpt")
        for key in ("focal", "princpt"):
            if key not in p:
                raise DataFileError(f"{images.where(i)}: 'cam_param' has no key {key!r}")
            check_value(p[key], f"camera.{key}", f"{images.where(i)}: cam_param")
    raise DataFileError(f"{images.path}: the images' cam_param could not be read")  # pragma: no cover


def parse_single_hand_file(path: Path, need_seq_name: bool = False) -> SingleHandAnnotations:
    """Parse an RHD/STB annotation file into columns; errors name the file and the annotation or image id."""
    path = Path(path)
    data = require_mapping(read_json(path, "annotation file"), path, "the top level")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise DataFileError(
                f"{path}: top-level key {key!r} must be a list "
                f"({'missing' if key not in data else type(data[key]).__name__})"
            )
    images = Records(data["images"], "image", path)
    anns = Records(data["annotations"], "annotation", path)
    if not anns.records:
        raise DataFileError(f"{path}: 'annotations' is empty")

    ann_id = anns.column("id")
    dup = first_duplicate(ann_id)
    if dup is not None:
        raise DataFileError(f"{path}: annotation id {dup} occurs more than once")
    image_id = anns.column("image_id")
    bbox = anns.column("bbox")
    joint_img = anns.column("joint_img", JOINTS_PER_HAND)
    joint_cam = anns.column("joint_cam", JOINTS_PER_HAND)
    joint_valid = anns.column("joint_valid", JOINTS_PER_HAND, shape=_joint_valid_shape(anns))
    hand_type = anns.codes("hand_type", SINGLE_HAND_TYPES, " (single-hand data sets have one hand per annotation)")

    # images, joined by id
    img_row = join_image_rows(images.column("id"), image_id, path, anns.where)
    width, height = images.column("width"), images.column("height")
    bad = np.flatnonzero(invalid_boxes(bbox, width[img_row], height[img_row]))
    if len(bad):
        i = int(bad[0])
        raise DataFileError(
            f"{anns.where(i)}: bbox {bbox[i].tolist()} (expected [x, y, w, h]) "
            f"{box_fault(bbox[i], int(width[img_row[i]]), int(height[img_row[i]]))}"
        )
    focal, princpt = _cam_params(images)
    file_name = np.asarray(images.strings("file_name"), dtype=object)
    arrays = {
        "ann_id": ann_id,
        "image_id": image_id,
        "bbox": bbox,
        "joint_img": joint_img,
        "joint_cam": joint_cam,
        "joint_valid": joint_valid,
        "hand_type": hand_type,
        "file_name": file_name[img_row],
        "width": width[img_row],
        "height": height[img_row],
        "focal": focal[img_row],
        "princpt": princpt[img_row],
    }
    if need_seq_name:
        arrays["seq_name"] = np.asarray(images.strings("seq_name"), dtype=object)[img_row]
    return SingleHandAnnotations(path, arrays)


def find_rootnet_file(cfg: Config, file_name: str) -> Path:
    """``cfg.rootnet_path``, else ``{data_root}/rootnet_output/{file_name}`` or (the official layout, where
    data_root is ``data/<DATASET>/data``) ``{data_root}/../rootnet_output/{file_name}``, whichever exists."""
    if cfg.rootnet_path:
        return Path(cfg.rootnet_path)
    root = Path(cfg.data_root)
    candidates = [root / "rootnet_output" / file_name, root.parent / "rootnet_output" / file_name]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"RootNet output file not found: tried {candidates[0]} and {candidates[1]}; set "
        "rootnet_path, or trans_test='gt' to use the ground-truth box and root depth"
    )


class SingleHandDataset(EpochAugmented, torch.utils.data.Dataset):
    """One split of a single-hand data set as sample dicts (docs/design.md); subclasses give the file layout.

    Train mode draws the augmentation of sample ``i`` from ``numpy.random.default_rng([cfg.seed, epoch, i])`` (call
    :meth:`set_epoch` each epoch); test mode crops without augmentation, with the GT box and root depth
    (``cfg.trans_test='gt'``) or RootNet's (``'rootnet'``).
    """

    name: str = ""
    skeleton: Skeleton
    splits: Sequence[str] = ("train", "test")
    rootnet_file: str = ""
    need_seq_name: bool = False

    def __init__(self, cfg: Config, split: str, mode: str = "train"):
        """cfg: data_root, trans_test, rootnet_path, seed and the shapes; split: 'train' | 'test';
        mode: 'train' (augmented) | 'test'."""
        if split not in self.splits:
            raise ValueError(f"{self.name} has no split {split!r}: use one of {tuple(self.splits)}")
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} must be one of {MODES}")
        self.cfg, self.split, self.mode = cfg, split, mode
        self.data_root = Path(cfg.data_root)
        self.annotation_path = self.annotation_file(split)
        self.ann = parse_single_hand_file(self.annotation_path, self.need_seq_name)
        self.epoch = 0
        n = len(self.ann)
        # the GT hand's block in the 42-joint layout: rows (N, 21) of joint indices
        codes = self.ann.hand_type.astype(np.int64)
        self._blocks = np.stack([self.skeleton.joint_type[h] for h in SINGLE_HAND_TYPES])[codes]  # (N, 21)
        root_local = np.array(
            [self.skeleton.root_idx[h] - int(self.skeleton.joint_type[h][0]) for h in SINGLE_HAND_TYPES]
        )
        self.gt_abs_depth = self.ann.joint_cam[np.arange(n), root_local[codes], 2].astype(np.float32)
        bad = np.flatnonzero(~(self.gt_abs_depth > 0))  # the root depth places the hand: it must be in front
        if len(bad):
            raise DataFileError(
                f"{self.annotation_path}: annotation id={int(self.ann.ann_id[bad[0]])} has root depth "
                f"{float(self.gt_abs_depth[bad[0]])} mm in joint_cam, not in front of the camera"
            )
        self.ids = self.id_columns()
        self.rootnet_bbox: Optional[np.ndarray] = None
        self.rootnet_abs_depth: Optional[np.ndarray] = None
        self.rootnet_path: Optional[Path] = None
        if mode == "test" and cfg.trans_test == "rootnet":
            self.rootnet_path = find_rootnet_file(cfg, self.rootnet_file)
            boxes, depths = load_rootnet(self.rootnet_path, self.ann.ann_id, depth_dims=1)
            self.rootnet_bbox, self.rootnet_abs_depth = boxes, depths.reshape(-1)

    # ------------------------------------------------------------------------------------------- layout
    def annotation_file(self, split: str) -> Path:  # pragma: no cover - subclasses define it
        raise NotImplementedError

    @property
    def image_root(self) -> Path:  # pragma: no cover - subclasses define it
        """The folder that image paths are relative to."""
        raise NotImplementedError

    def image_path(self, i: int) -> Path:  # pragma: no cover - subclasses define it
        raise NotImplementedError

    def _row(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample index {i} out of range for {n} samples")
        return i % n

    # ------------------------------------------------------------------------------------------- two-hand layout
    def joints_42(self, rows=None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """joint_img (n, 42, 2), joint_cam (n, 42, 3), joint_valid (n, 42) of ``rows`` (default all) in the 42-joint
        layout: the GT hand's block filled, the other zero and invalid."""
        sel = slice(None) if rows is None else rows
        blocks = self._blocks[sel]
        n = len(blocks)
        idx = np.arange(n)[:, None]
        img = np.zeros((n, 2 * JOINTS_PER_HAND, 2), np.float32)
        cam = np.zeros((n, 2 * JOINTS_PER_HAND, 3), np.float32)
        valid = np.zeros((n, 2 * JOINTS_PER_HAND), np.float32)
        img[idx, blocks] = self.ann.joint_img[sel]
        cam[idx, blocks] = self.ann.joint_cam[sel]
        valid[idx, blocks] = self.ann.joint_valid[sel]
        return img, cam, valid

    def hand_type_name(self, i: int) -> str:
        return SINGLE_HAND_TYPES[int(self.ann.hand_type[self._row(i)])]

    def id_columns(self) -> Dict[str, np.ndarray]:
        """The sample dict's id fields for every sample, (N,) int64 each: capture (0 here; STB: the sequence),
        cam (0: one camera) and frame (the image id)."""
        n = len(self.ann)
        return {
            "capture": np.zeros(n, np.int64),
            "cam": np.zeros(n, np.int64),
            "frame": self.ann.image_id.astype(np.int64, copy=True),
        }

    # ------------------------------------------------------------------------------------------- samples
    def __len__(self) -> int:
        return len(self.ann)

    def load_image(self, i: int, dtype: type = np.float32) -> np.ndarray:
        """The full image of sample ``i``, RGB (H, W, 3) in [0, 255], float32 (or ``dtype=np.uint8``)."""
        r = self._row(i)
        return read_image(self.image_path(r), (int(self.ann.width[r]), int(self.ann.height[r])), dtype)

    def crop_bbox(self, i: int) -> np.ndarray:
        """The crop box of sample ``i`` before augmentation: RootNet's (test, 'rootnet') or the processed GT box."""
        r = self._row(i)
        if self.rootnet_bbox is not None:
            return self.rootnet_bbox[r].copy()
        return process_bboxes(self.ann.bbox[r], self.cfg.input_img_shape[1] / self.cfg.input_img_shape[0])

    def get_sample(self, i: int, aug: Optional[AugParams] = None) -> Dict[str, np.ndarray]:
        """Sample ``i`` with the given augmentation (None: identity), as the sample dict of docs/design.md."""
        r = self._row(i)
        img = self.load_image(r, np.uint8)  # the crop converts only the pixels it reads to float32
        joint_img, joint_cam, joint_valid = self.joints_42([r])
        joint_coord = np.concatenate([joint_img[0], joint_cam[0, :, 2:3]], axis=1)
        sample = make_sample(
            img,
            self.crop_bbox(r),
            joint_coord,
            joint_valid[0],
            _HAND_TYPE_ARRAYS[self.ann.hand_type[r]],
            aug or AugParams.identity(),
            self.skeleton,
            self.cfg,
        )
        # One hand: the official target is a relative root depth of 0 mm (masked by root_valid = 0).
        codec = HeatmapCodec.from_config(self.cfg)
        sample["rel_root_depth"] = codec.encode_root_depth(np.zeros(1, dtype=np.float32))[0]
        sample["root_valid"] = np.zeros(1, dtype=np.float32)
        sample["hand_type_valid"] = np.asarray(1.0, dtype=np.float32)
        for key, column in self.ids.items():
            sample[key] = np.asarray(column[r], dtype=np.int64)
        sample["ann_id"] = np.asarray(self.ann.ann_id[r], dtype=np.int64)
        sample["index"] = np.asarray(r, dtype=np.int64)
        return sample

    # ------------------------------------------------------------------------------------------- evaluation
    def eval_targets(self) -> Dict[str, np.ndarray]:
        """Ground truth for :func:`internet.evaluation.protocol.evaluate_single_hand`, in datalist order (copies).

        joint_cam (N, 42, 3) camera mm (GT block filled, other block zero); joint_valid (N, 42) annotation validity;
        hand_type (N,) 'right'/'left' and hand_type_code (N,) int8; hand_type_valid (N,) ones; focal, princpt
        (N, 2); abs_depth (N,) the one root depth (mm) used for both blocks (GT root depth or RootNet's); bbox
        (N, 4) crop box; inv_trans (N, 2, 3) test-mode crop -> image affine; ann_id, image_id, capture, cam,
        frame (N,) int64.
        """
        n = len(self)
        _, joint_cam, joint_valid = self.joints_42()
        bbox = (
            self.rootnet_bbox.copy()
            if self.rootnet_bbox is not None
            else process_bboxes(self.ann.bbox, self.cfg.input_img_shape[1] / self.cfg.input_img_shape[0])
        )
        abs_depth = self.rootnet_abs_depth.copy() if self.rootnet_abs_depth is not None else self.gt_abs_depth.copy()
        codes = self.ann.hand_type.astype(np.int8, copy=True)
        return {
            "joint_cam": joint_cam,
            "joint_valid": joint_valid,
            "hand_type": np.asarray(SINGLE_HAND_TYPES)[codes],
            "hand_type_code": codes,
            "hand_type_valid": np.ones(n, dtype=np.float32),
            "focal": self.ann.focal.copy(),
            "princpt": self.ann.princpt.copy(),
            "abs_depth": abs_depth.astype(np.float32),
            "bbox": bbox,
            "inv_trans": crop_inv_trans(bbox, self.cfg.input_img_shape),
            "ann_id": self.ann.ann_id.copy(),
            "image_id": self.ann.image_id.copy(),
            **{key: column.copy() for key, column in self.ids.items()},
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(split={self.split!r}, mode={self.mode!r}, samples={len(self)}, "
            f"trans_test={self.cfg.trans_test!r}, file={str(self.annotation_path)!r})"
        )
