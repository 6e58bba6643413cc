"""Check a data set in the InterHand2.6M v1.0 layout against the rules the released annotations obey.

The same function checks the real sample (``shared/data/interhand26m_sample``) and the synthetic sets, so the rules
are proven on real data. Rules (each counted separately in :class:`CheckReport`):

* ``layout``: the three annotation files exist; data.json has exactly ``images`` and ``annotations``;
  ``file_name`` == ``Capture{capture}/{seq_name}/cam{camera}/image{frame_idx}.jpg|png``.
* ``fields``: field names and JSON types as released (``camera`` a str, data.json ``joint_valid`` 42x1 ints 0/1,
  joint_3d.json ``joint_valid`` 42x1 bools, ...); unique ids; one annotation per image.
* ``camera``: every image's camera is in camera.json; ``camrot`` is a proper rotation (det +1).
* ``joint_3d``: every image's (capture, frame) is in joint_3d.json with the same ``hand_type``; its
  ``hand_type_valid`` follows the rule with the 3D validity.
* ``valid_3d``: a joint valid in data.json is valid in joint_3d.json.
* ``valid_inside``: a valid joint projects inside the image (W x H) in front of the camera.
* ``valid_complete``: a joint valid in 3D that projects inside the image (with a 1 px margin) is valid in data.json.
* ``hand_type_valid``: 1 for 'right'/'left'; for 'interacting' 1 iff more than 30 valid joints.
* ``bbox``: the box equals the tight box of the valid projected joints enlarged 1.2x (within ``bbox_tol`` px).
* ``image``: the file exists, decodes to width x height; cameras '41xxxx' give grey images (3 equal channels).
* ``rootnet`` (if the split's RootNet file exists): one entry per annotation id with a [right, left] depth and the
  processed GT box (square, x1.25).
* ``human_ids`` (if ``aid_human_annot_{split}.txt`` exists): unique ids of this split's annotations.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np

from internet.geometry.camera import cam2pixel, check_rotation, world2cam
from internet.geometry.crop import tight_bbox
from internet.skeleton import HAND_TYPES

RULES = (
    "layout",
    "fields",
    "camera",
    "joint_3d",
    "valid_3d",
    "valid_inside",
    "valid_complete",
    "hand_type_valid",
    "bbox",
    "image",
    "rootnet",
    "human_ids",
)
_IMAGE_KEYS = {
    "id": int,
    "file_name": str,
    "width": int,
    "height": int,
    "capture": int,
    "subject": int,
    "seq_name": str,
    "camera": str,
    "frame_idx": int,
}
_ANN_KEYS = ("id", "image_id", "bbox", "joint_valid", "hand_type", "hand_type_valid")


@dataclass
class CheckReport:
    """Violations per rule (0 = the rule holds), up to ``max_examples`` messages, and what was checked."""

    root: str
    split: str
    violations: Dict[str, int] = field(default_factory=lambda: {r: 0 for r in RULES})
    examples: List[str] = field(default_factory=list)
    n_images: int = 0
    n_annotations: int = 0
    n_images_read: int = 0
    hand_types: Dict[str, int] = field(default_factory=dict)
    max_bbox_error: float = 0.0
    checked: List[str] = field(default_factory=list)
    max_examples: int = 30

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def add(self, rule: str, message: str, count: int = 1) -> None:
        self.violations[rule] += int(count)
        if len(self.examples) < self.max_examples:
            self.examples.append(f"[{rule}] {message}")

    def raise_if_failed(self) -> "CheckReport":
        if not self.ok:
            bad = {k: v for k, v in self.violations.items() if v}
            raise ValueError(
                f"{self.root} ({self.split}) breaks the InterHand2.6M rules {bad}:\n  " + "\n  ".join(self.examples)
            )
        return self


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _load_json(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    with open(path, "rb") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"malformed JSON {path}: {e.msg} at line {e.lineno} column {e.colno}") from None


def check_interhand(
    root,
    split: str = "test",
    check_images: bool = True,
    max_images: Optional[int] = 200,
    bbox_tol: float = 1e-3,
    max_examples: int = 30,
) -> CheckReport:
    """Check ``root`` (a data set root with ``annotations/`` and ``images/``) for one split; returns a report.

    ``max_images``: how many images (evenly spread over the annotations) to open; None opens all.
    Missing or malformed annotation files raise (FileNotFoundError / ValueError naming the file).
    """
    root = Path(root)
    ann_dir = root / "annotations" / split
    rep = CheckReport(str(root), split, max_examples=max_examples)
    data = _load_json(ann_dir / f"InterHand2.6M_{split}_data.json")
    cameras = _load_json(ann_dir / f"InterHand2.6M_{split}_camera.json")
    joints = _load_json(ann_dir / f"InterHand2.6M_{split}_joint_3d.json")
    if not isinstance(data, dict) or set(data) != {"images", "annotations"}:
        rep.add(
            "layout",
            f"data.json top-level keys are {sorted(data) if isinstance(data, dict) else type(data)}, "
            "expected exactly ['annotations', 'images']",
        )
        return rep
    images, anns = data["images"], data["annotations"]
    rep.n_images, rep.n_annotations = len(images), len(anns)
    rep.checked.append("annotations")

    # ---- images and annotations: fields, ids, layout
    img_by_id = {}
    for img in images:
        keys_ok = set(img) == set(_IMAGE_KEYS) and all(
            isinstance(img[k], t) and (t is not int or _is_int(img[k])) for k, t in _IMAGE_KEYS.items()
        )
        if not keys_ok:
            rep.add(
                "fields", f"image {img.get('id')}: fields/types { ({k: type(v).__name__ for k, v in img.items()}) }"
            )
            continue
        if img["id"] in img_by_id:
            rep.add("fields", f"duplicate image id {img['id']}")
        img_by_id[img["id"]] = img
        m = re.fullmatch(r"Capture(\d+)/([^/]+)/cam([^/]+)/image(\d+)\.(jpg|png)", img["file_name"])
        if not m or (int(m.group(1)), m.group(2), m.group(3), int(m.group(4))) != (
            img["capture"],
            img["seq_name"],
            img["camera"],
            img["frame_idx"],
        ):
            rep.add(
                "layout",
                f"image {img['id']}: file_name {img['file_name']!r} does not match "
                f"Capture{img['capture']}/{img['seq_name']}/cam{img['camera']}/image{img['frame_idx']}",
            )
    rows = []
    seen_ann, ann_per_image = set(), Counter()
    for ann in anns:
        if set(ann) != set(_ANN_KEYS):
            rep.add("fields", f"annotation {ann.get('id')}: keys {sorted(ann)}, expected {sorted(_ANN_KEYS)}")
            continue
        jv = ann["joint_valid"]
        if not (
            isinstance(jv, list)
            and len(jv) == 42
            and all(isinstance(x, list) and len(x) == 1 and _is_int(x[0]) and x[0] in (0, 1) for x in jv)
        ):
            rep.add("fields", f"annotation {ann['id']}: joint_valid is not 42x1 ints 0/1")
            continue
        b = ann["bbox"]
        if not (
            isinstance(b, list)
            and len(b) == 4
            and all(isinstance(x, (int, float)) for x in b)
            and b[2] > 0
            and b[3] > 0
        ):
            rep.add("fields", f"annotation {ann['id']}: bbox {b} is not [x, y, w>0, h>0]")
            continue
        if (
            ann["hand_type"] not in HAND_TYPES
            or not _is_int(ann["hand_type_valid"])
            or ann["hand_type_valid"] not in (0, 1)
        ):
            rep.add(
                "fields",
                f"annotation {ann['id']}: hand_type {ann['hand_type']!r} / hand_type_valid {ann['hand_type_valid']!r}",
            )
            continue
        if ann["id"] in seen_ann:
            rep.add("fields", f"duplicate annotation id {ann['id']}")
        seen_ann.add(ann["id"])
        img = img_by_id.get(ann["image_id"])
        if img is None:
            rep.add("fields", f"annotation {ann['id']}: image_id {ann['image_id']} has no image")
            continue
        ann_per_image[ann["image_id"]] += 1
        rows.append((ann, img))
    for image_id, k in ann_per_image.items():
        if k != 1:
            rep.add("fields", f"image {image_id} has {k} annotations (expected one)")
    missing_ann = len(img_by_id) - len(ann_per_image)
    if missing_ann:
        rep.add("fields", f"{missing_ann} images have no annotation", missing_ann)
    rep.hand_types = dict(Counter(a["hand_type"] for a, _ in rows))

    # ---- gather cameras and 3D joints per annotation
    good = []
    rot_checked = {}
    for ann, img in rows:
        cap, cam, frame = str(img["capture"]), img["camera"], str(img["frame_idx"])
        cdict = cameras.get(cap)
        if cdict is None or any(cam not in cdict.get(k, {}) for k in ("campos", "camrot", "focal", "princpt")):
            rep.add("camera", f"image {img['id']}: camera {cam} of capture {cap} missing in camera.json")
            continue
        if (cap, cam) not in rot_checked:
            try:
                check_rotation(cdict["camrot"][cam], f"camrot of capture {cap} camera {cam}", tol=1e-4)
                rot_checked[(cap, cam)] = True
            except ValueError as e:
                rot_checked[(cap, cam)] = False
                rep.add("camera", str(e))
        if not rot_checked[(cap, cam)]:
            continue
        entry = joints.get(cap, {}).get(frame)
        if entry is None:
            rep.add("joint_3d", f"image {img['id']}: no joint_3d entry for capture {cap} frame {frame}")
            continue
        v3 = entry.get("joint_valid")
        wc = entry.get("world_coord")
        if not (
            isinstance(v3, list)
            and len(v3) == 42
            and all(isinstance(x, list) and len(x) == 1 and isinstance(x[0], bool) for x in v3)
            and isinstance(entry.get("hand_type_valid"), bool)
        ):
            rep.add("fields", f"joint_3d capture {cap} frame {frame}: joint_valid / hand_type_valid are not bools")
            continue
        if np.asarray(wc).shape != (42, 3):
            rep.add("fields", f"joint_3d capture {cap} frame {frame}: world_coord shape {np.asarray(wc).shape}")
            continue
        if entry.get("hand_type") != ann["hand_type"]:
            rep.add(
                "joint_3d",
                f"image {img['id']}: hand_type {ann['hand_type']!r} but joint_3d says {entry.get('hand_type')!r}",
            )
        valid3 = np.array([x[0] for x in v3], dtype=bool)
        expect3 = entry.get("hand_type") in ("right", "left") or int(valid3.sum()) > 30
        if entry["hand_type_valid"] != expect3:
            rep.add(
                "joint_3d",
                f"capture {cap} frame {frame}: hand_type_valid {entry['hand_type_valid']} but "
                f"{int(valid3.sum())} valid 3D joints ({entry.get('hand_type')})",
            )
        good.append((ann, img, cdict, cam, np.asarray(wc, dtype=np.float64), valid3))
    rep.checked.append("cameras+joint_3d")

    # ---- geometry rules, vectorised over annotations
    if good:
        world = np.stack([g[4] for g in good])
        valid3 = np.stack([g[5] for g in good])
        valid = np.array([[x[0] for x in g[0]["joint_valid"]] for g in good], dtype=bool)
        R = np.array([g[2]["camrot"][g[3]] for g in good], dtype=np.float64)
        T = np.array([g[2]["campos"][g[3]] for g in good], dtype=np.float64)
        focal = np.array([g[2]["focal"][g[3]] for g in good], dtype=np.float64)
        princpt = np.array([g[2]["princpt"][g[3]] for g in good], dtype=np.float64)
        wh = np.array([[g[1]["width"], g[1]["height"]] for g in good], dtype=np.float64)
        cam = world2cam(world, R, T)
        z = cam[..., 2]
        u, v = np.moveaxis(cam2pixel(cam, focal, princpt)[..., :2], -1, 0)
        tol = 1e-3
        inside = (z > 0) & (u >= -tol) & (v >= -tol) & (u < wh[:, None, 0] + tol) & (v < wh[:, None, 1] + tol)
        margin = (z > 0) & (u >= 1) & (v >= 1) & (u < wh[:, None, 0] - 1) & (v < wh[:, None, 1] - 1)
        ids = [g[0]["id"] for g in good]
        for rule, bad in (
            ("valid_3d", valid & ~valid3),
            ("valid_inside", valid & ~inside),
            ("valid_complete", valid3 & margin & ~valid),
        ):
            rows_bad = np.nonzero(bad.any(1))[0]
            if len(rows_bad):
                i = rows_bad[0]
                rep.add(
                    rule,
                    f"{len(rows_bad)} annotations, e.g. id {ids[i]} joints {np.nonzero(bad[i])[0].tolist()}",
                    len(rows_bad),
                )
        for i, (ann, _img, *_rest) in enumerate(good):
            ht = ann["hand_type"]
            expect = 1 if ht in ("right", "left") else int(valid[i].sum() > 30)
            if ann["hand_type_valid"] != expect:
                rep.add(
                    "hand_type_valid",
                    f"annotation {ann['id']} ({ht}, {int(valid[i].sum())} valid joints): "
                    f"hand_type_valid {ann['hand_type_valid']}, expected {expect}",
                )
            if not valid[i].any():
                rep.add("bbox", f"annotation {ann['id']}: no valid joint to define the box")
                continue
            tight = tight_bbox(np.stack([u[i], v[i]], 1), valid[i], 1.2)
            err = float(np.max(np.abs(tight - np.asarray(ann["bbox"], dtype=np.float64))))
            rep.max_bbox_error = max(rep.max_bbox_error, err)
            if err > bbox_tol:
                rep.add(
                    "bbox",
                    f"annotation {ann['id']}: bbox {ann['bbox']} vs 1.2x tight box {tight.tolist()} "
                    f"(max error {err:.4g} px)",
                )
        rep.checked.append("geometry")

    # ---- images
    if check_images and rows:
        picks = (
            range(len(rows))
            if max_images is None or max_images >= len(rows)
            else np.unique(np.linspace(0, len(rows) - 1, max_images).round().astype(int))
        )
        for i in picks:
            ann, img = rows[int(i)]
            path = root / "images" / split / img["file_name"]
            if not path.is_file():
                rep.add("image", f"missing image {path}")
                continue
            im = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
            rep.n_images_read += 1
            if im is None:
                rep.add("image", f"undecodable image {path}")
                continue
            if (im.shape[1], im.shape[0]) != (img["width"], img["height"]):
                rep.add("image", f"{path} is {im.shape[1]}x{im.shape[0]}, JSON says {img['width']}x{img['height']}")
            if img["camera"].startswith("41") and not (
                np.array_equal(im[..., 0], im[..., 1]) and np.array_equal(im[..., 1], im[..., 2])
            ):
                rep.add("image", f"{path}: monochrome camera {img['camera']} but the channels differ")
        rep.checked.append("images")

    # ---- RootNet output and human-annotated ids
    rootnet_path = root / "rootnet_output" / f"rootnet_interhand2.6m_output_{split}.json"
    if rootnet_path.is_file():
        rep.checked.append("rootnet")
        entries = _load_json(rootnet_path)
        by_id = {}
        if not isinstance(entries, list):
            rep.add("rootnet", f"{rootnet_path} is not a JSON list")
            entries = []
        for e in entries:
            if not (
                isinstance(e, dict)
                and {"annot_id", "bbox", "abs_depth"} <= set(e)
                and np.asarray(e["abs_depth"]).shape == (2,)
                and np.asarray(e["bbox"]).shape == (4,)
            ):
                rep.add("rootnet", f"malformed RootNet entry {str(e)[:120]}")
                continue
            by_id[e["annot_id"]] = e
        missing = [a["id"] for a, _ in rows if a["id"] not in by_id]
        if missing:
            rep.add("rootnet", f"{len(missing)} annotation ids have no RootNet entry, e.g. {missing[:5]}", len(missing))
        for ann, _ in rows:
            e = by_id.get(ann["id"])
            if e is None:
                continue
            x, y, w, h = ann["bbox"]
            side = max(w, h) * 1.25
            expect = np.array([x + w / 2 - side / 2, y + h / 2 - side / 2, side, side])
            if np.max(np.abs(expect - np.asarray(e["bbox"], dtype=np.float64))) > 1e-2:
                rep.add(
                    "rootnet",
                    f"annotation {ann['id']}: RootNet bbox {e['bbox']} is not the processed GT box {expect.tolist()}",
                )
    human_path = root / "annotations" / f"aid_human_annot_{split}.txt"
    if human_path.is_file():
        rep.checked.append("human_ids")
        text = human_path.read_text().split()
        try:
            hids = [int(t) for t in text]
        except ValueError:
            rep.add("human_ids", f"{human_path} holds a non-integer line")
            hids = []
        if len(set(hids)) != len(hids):
            rep.add("human_ids", f"{human_path} has duplicate ids")
        unknown = set(hids) - seen_ann
        if unknown:
            rep.add(
                "human_ids",
                f"{len(unknown)} ids in {human_path} are not {split} annotations, e.g. {sorted(unknown)[:5]}",
                len(unknown),
            )
    return rep
