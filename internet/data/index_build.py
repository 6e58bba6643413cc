"""Building the InterHand2.6M annotation index from the three JSON files of a split, vectorised and piece by piece."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from internet.data.domains import check_value
from internet.data.index import JOINT_NUM, AnnotationIndex, IndexSources
from internet.data.io import DataFileError, gc_paused, read_json
from internet.data.json_stream import iter_members
from internet.data.records import Records, first_duplicate, join_image_rows, require_mapping, unique_pairs
from internet.geometry.camera import cam2pixel, check_rotation, world2cam
from internet.skeleton import HAND_TYPES, INTERHAND

_CHUNK = 1 << 16  # rows per vectorised projection step: bounds the temporaries on the full 1.36 M-row split


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
    cameras = require_mapping(read_json(sources.camera_json, "camera file"), sources.camera_json, "the top level")
    ann_cols, img_cols = read_data_json(sources.data_json)
    ann_id, image_id, bbox = ann_cols["ann_id"], ann_cols["image_id"], ann_cols["bbox"]
    joint_valid, hand_type, hand_type_valid = (ann_cols[k] for k in ("joint_valid", "hand_type", "hand_type_valid"))
    dup = first_duplicate(ann_id)
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

    # ---- cameras per unique (capture, camera), world joints per unique (capture, frame)
    cam_first, cam_inv = unique_pairs(capture, camera)
    cam_names = [cam_str_img[int(img_row[i])] for i in cam_first]
    campos, camrot, focal_u, princpt_u = _cameras(cameras, capture[cam_first], cam_names, sources.camera_json)
    del cameras
    frame_first, frame_inv = unique_pairs(capture, frame)
    world_u = _read_world_coords(sources.joint_3d_json, capture[frame_first], frame[frame_first])

    # ---- root propagation, then projection (float32 as the official loader)
    right, left = INTERHAND.root_idx["right"], INTERHAND.root_idx["left"]
    joint_valid[:, INTERHAND.joint_type["right"]] *= joint_valid[:, right : right + 1]
    joint_valid[:, INTERHAND.joint_type["left"]] *= joint_valid[:, left : left + 1]
    joint_cam, joint_img = _project(world_u, frame_inv, campos, camrot, focal_u, princpt_u, cam_inv)
    bad = np.flatnonzero(~np.isfinite(joint_cam).all(axis=(1, 2)) & (joint_valid > 0).any(axis=1))
    if len(bad):
        raise DataFileError(f"{ann_where(int(bad[0]))}: its camera coordinates are not finite")

    n = len(ann_id)
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


def _cameras(cameras: dict, captures: np.ndarray, names: List[str], path: Path) -> tuple:
    """(campos, camrot, focal, princpt) float32 arrays of each (capture, camera name) pair, checked."""
    n_cam = len(names)
    campos = np.zeros((n_cam, 3), np.float32)
    camrot = np.zeros((n_cam, 3, 3), np.float32)
    focal = np.zeros((n_cam, 2), np.float32)
    princpt = np.zeros((n_cam, 2), np.float32)
    for k, (cap, cam_name) in enumerate(zip(captures.tolist(), names)):
        campos[k], camrot[k], focal[k], princpt[k] = _camera_params(cameras, str(int(cap)), cam_name, path)
    return campos, camrot, focal, princpt


def _project(world, frame_inv, campos, camrot, focal, princpt, cam_inv) -> Tuple[np.ndarray, np.ndarray]:
    """Every annotation's joints in camera mm and image pixels (float32, as the official loader), chunk by chunk:
    ``world[frame_inv]`` seen by camera ``cam_inv`` of the camera tables."""
    n = len(frame_inv)
    joint_cam = np.empty((n, JOINT_NUM, 3), np.float32)
    joint_img = np.empty((n, JOINT_NUM, 2), np.float32)
    for s in range(0, n, _CHUNK):
        sl = slice(s, min(n, s + _CHUNK))
        ci = cam_inv[sl]
        cam = world2cam(world[frame_inv[sl]], camrot[ci], campos[ci])
        joint_cam[sl] = cam
        joint_img[sl] = cam2pixel(cam, focal[ci], princpt[ci])[..., :2]
    return joint_cam, joint_img


_PIECE = 8192
"""Records per piece of data.json: bounds the Python objects alive at once (about 5 KB per annotation)."""


def read_data_json(path: Path) -> Tuple[Dict[str, np.ndarray], Dict[str, object]]:
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
            anns = Records(value, "annotation", path, first)
            if nested is None and value:
                nested = _nested_valid(anns)
            for name, column in _annotation_columns(anns, bool(nested)).items():
                ann_pieces[name].append(column)
        else:
            numbers, strings = _image_columns(Records(value, "image", path, first))
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


def _annotation_columns(anns: Records, nested: bool) -> Dict[str, np.ndarray]:
    return {
        "ann_id": anns.column("id"),
        "image_id": anns.column("image_id"),
        "bbox": anns.column("bbox"),
        "joint_valid": anns.column("joint_valid", JOINT_NUM, shape=(JOINT_NUM, 1) if nested else None),
        "hand_type_valid": anns.column("hand_type_valid"),
        "hand_type": anns.codes("hand_type", HAND_TYPES),
    }


def _image_columns(images: Records) -> Tuple[Dict[str, np.ndarray], Dict[str, List[str]]]:
    """(numeric columns, string columns) of one piece of the images."""
    img_id, width, height = images.column("id"), images.column("width"), images.column("height")
    cams = images.strings("camera", allow_int=True)
    try:
        camera = np.array([int(c) for c in cams], dtype=np.int64)
    except ValueError:
        i = next(i for i, c in enumerate(cams) if not c.strip().lstrip("-").isdigit())
        raise DataFileError(f"{images.where(i)}: camera {cams[i]!r} is not a numeric camera name") from None
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


def _nested_valid(anns: Records) -> bool:
    """data.json stores joint_valid as 42 one-element lists; accept a flat list of 42 as well."""
    first = anns.records[0] if anns.records else None
    v = first.get("joint_valid") if isinstance(first, dict) else None
    return not (isinstance(v, list) and v and not isinstance(v[0], list))


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
