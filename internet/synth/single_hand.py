"""Synthetic single-hand sets in InterNet's parsed RHD and STB formats (``python -m internet.synth --format rhd|stb``).

The hands come from the same model, poses and renderer as the synthetic InterHand2.6M (``hand_model``, ``scene``,
``render``); only the camera, the backgrounds, the file layout and the joint order differ.

RHD layout under ``out_dir`` (= the loader's ``data_root``)::

    RHD_training.json, RHD_evaluation.json
    training/color/{image_id:05d}.png, evaluation/color/{image_id:05d}.png        320x320 RGB
    rootnet_output/rootnet_rhd_output.json      evaluation only: processed GT box, noisy root depth
    skeleton.txt, synth_info.json

STB layout::

    STB_train.json (sequences B2..B6 Counting/Random), STB_test.json (B1Counting, B1Random)
    images/{seq_name}/SK_color_{frame}.png                                         640x480 RGB
    rootnet_output/rootnet_stb_output.json      test only
    skeleton.txt, synth_info.json

Annotations obey the formats' conventions: one hand per annotation; ``joint_cam`` (21, 3) camera mm in the data
set's joint order (RHD: wrist, then each finger tip -> MCP; STB: palm centre, then pinky..thumb MCP -> tip);
``joint_img`` its projection through ``cam_param``; ``joint_valid`` = visible in the image and not (simulated)
occluded; ``bbox`` = the tight box of the valid 2D joints enlarged 1.2x; ``hand_type`` 'right' or 'left'.
Every random draw comes from a generator keyed by (seed, data set, split, purpose), so a set depends only on its
arguments.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from internet.geometry.camera import pixel2cam
from internet.skeleton import INTERHAND, RHD, STB, Skeleton
from internet.synth import writer as W
from internet.synth.hand_model import POSE_FAMILIES, random_rotations, sample_hand_shape
from internet.synth.render import DEFAULT_LIGHT, encode_image, finish_image, render_hands, sample_style
from internet.synth.rig import rng_for
from internet.synth.scene import sample_single_frames

GENERATOR_VERSION = 1
SPLIT_CODE = {"train": 0, "test": 1}
_DATASET_KEY = {"RHD": 101, "STB": 102}
_PURPOSE = {"subjects": 1, "frames": 2, "background": 3, "image": 4, "rootnet": 5, "camera": 6}

# The within-hand order of each format, as indices into one hand of the InterHand2.6M order (thumb4..1, index4..1,
# middle4..1, ring4..1, pinky4..1, wrist); matched by joint name, so it follows internet.skeleton. STB's palm
# centre is not an InterHand joint: it is computed (-1 here).
_IH_LOCAL = [n[2:] for n in INTERHAND.names[:21]]
RHD_FROM_IH = np.array([_IH_LOCAL.index(n[2:]) for n in RHD.names[:21]])
STB_FROM_IH = np.array([_IH_LOCAL.index(n[2:]) if n[2:] != "palm" else -1 for n in STB.names[:21]])

ROOTNET_NOISE_MM = 15.0
OCCLUSION_PROB = 0.1  # frames with 1-3 joints marked not visible
MIN_VALID_JOINTS = 15


@dataclass(frozen=True)
class FormatSpec:
    """What differs between the formats: image size (W, H), camera intrinsics, depth range of the palm centre
    (mm), number of subjects per split, and the rotation spread of the hands (degrees)."""

    name: str
    skeleton: Skeleton
    size: Tuple[int, int]
    focal: Tuple[float, float]
    princpt: Tuple[float, float]
    focal_jitter: float
    depth_range: Tuple[float, float]
    subjects: Dict[str, int]
    max_rot_deg: float


RHD_SPEC = FormatSpec(
    "RHD", RHD, (320, 320), (299.0, 299.0), (160.0, 160.0), 12.0, (330.0, 650.0), {"train": 16, "test": 4}, 70.0
)
"""RHD: 320x320 renderings, focal about 299 px (varying per image, as in the real files), princpt at the centre,
20 characters (16 train, 4 test)."""
STB_SPEC = FormatSpec(
    "STB",
    STB,
    (640, 480),
    (607.92271, 607.88192),
    (314.78337, 236.42484),
    0.0,
    (420.0, 700.0),
    {"train": 1, "test": 1},
    40.0,
)
"""STB: the SK (RealSense colour) camera of the STB README, one subject."""
STB_TEST_SEQUENCES = ("B1Counting", "B1Random")
STB_TRAIN_SEQUENCES = tuple(f"B{b}{kind}" for b in range(2, 7) for kind in ("Counting", "Random"))


# ============================================================================================== hands
def _rng(spec: FormatSpec, seed: int, split: str, purpose: str, *keys: int) -> np.random.Generator:
    return rng_for(seed, _DATASET_KEY[spec.name], SPLIT_CODE[split], _PURPOSE[purpose], *keys)


def to_format_order(ih_hand: np.ndarray, spec: FormatSpec) -> np.ndarray:
    """(..., 21, 3) joints of one hand in InterHand2.6M order -> the format's order (STB's palm centre = the
    midpoint of wrist and middle MCP, the synthetic hand model's palm centre)."""
    order = RHD_FROM_IH if spec.name == "RHD" else STB_FROM_IH
    out = ih_hand[..., np.maximum(order, 0), :].copy()
    if (order < 0).any():
        palm = 0.5 * (ih_hand[..., _IH_LOCAL.index("wrist"), :] + ih_hand[..., _IH_LOCAL.index("middle1"), :])
        out[..., np.flatnonzero(order < 0), :] = palm[..., None, :]
    return out


def _project(cam: np.ndarray, focal: np.ndarray, princpt: np.ndarray) -> np.ndarray:
    """(n, k, 3) -> (n, k, 2) pixels with per-row focal/princpt (n, 2)."""
    z = cam[..., 2:3]
    return cam[..., :2] / z * focal[:, None] + princpt[:, None]


@dataclass
class _Hands:
    ih: np.ndarray  # (n, 21, 3) camera mm, InterHand order of one hand
    elbow: np.ndarray  # (n, 3)
    side: np.ndarray  # (n,) 0 right, 1 left
    subject: np.ndarray  # (n,)
    focal: np.ndarray  # (n, 2)
    princpt: np.ndarray  # (n, 2)


def _place(
    rng: np.random.Generator,
    joints: np.ndarray,
    elbow: np.ndarray,
    spec: FormatSpec,
    focal: np.ndarray,
    princpt: np.ndarray,
) -> Tuple[np.ndarray, np.ndarray]:
    """Turn the arms about the palm centre by a random rotation and move the palm centre to a random depth along
    the ray of a random pixel in the central part of the image."""
    n = len(joints)
    palm = 0.5 * (joints[:, 20] + joints[:, 11])
    R = random_rotations(rng, n, max_deg=spec.max_rot_deg)
    joints = np.einsum("nij,nkj->nki", R, joints - palm[:, None]) + palm[:, None]
    elbow = np.einsum("nij,nj->ni", R, elbow - palm) + palm
    W_img, H_img = spec.size
    u = rng.uniform(0.3, 0.7, size=n) * W_img
    v = rng.uniform(0.3, 0.7, size=n) * H_img
    z = rng.uniform(*spec.depth_range, size=n)
    target = pixel2cam(np.stack([u, v, z], axis=1), focal, princpt)
    t = target - palm
    return joints + t[:, None], elbow + t


def _sample_hands(spec: FormatSpec, seed: int, split: str, n: int) -> _Hands:
    """``n`` posed hands in camera coordinates whose root and at least MIN_VALID_JOINTS joints are in the image."""
    rng_sub = _rng(spec, seed, split, "subjects")
    n_sub = spec.subjects[split]
    # STB has one subject in both splits; RHD's characters differ between splits
    shape_keys = [0] * n_sub if spec.name == "STB" else [SPLIT_CODE[split] * 100 + s for s in range(n_sub)]
    shapes = [
        sample_hand_shape(rng_for(seed, _DATASET_KEY[spec.name], 0, _PURPOSE["subjects"], 1, k)) for k in shape_keys
    ]
    subject = rng_sub.integers(0, n_sub, size=n)
    side = (rng_sub.random(n) < 0.5).astype(np.int64)  # 0 right, 1 left
    princpt = np.broadcast_to(np.asarray(spec.princpt, np.float32).astype(np.float64), (n, 2)).copy()
    focal = np.zeros((n, 2))
    ih = np.full((n, 21, 3), np.nan)
    elbow = np.full((n, 3), np.nan)
    W_img, H_img = spec.size
    for s, h in sorted({(int(a), int(b)) for a, b in zip(subject, side)}):
        todo = np.flatnonzero((subject == s) & (side == h))
        for attempt in range(100):
            if len(todo) == 0:
                break
            rng = _rng(spec, seed, split, "frames", s, h, attempt)
            m = 2 * len(todo) + 4  # oversample: unusable placements are dropped
            # per-image focal (RHD's varies a little), rounded to float32 as the JSON stores it
            f = np.asarray(spec.focal)[None] + rng.normal(0.0, 1.0, size=(m, 1)) * spec.focal_jitter
            f = f.astype(np.float32).astype(np.float64)
            c = princpt[:1].repeat(m, 0)
            fb = sample_single_frames(rng, shapes[s], m, POSE_FAMILIES, ("right", "left")[h], np.zeros(3))
            joints, elb = _place(rng, fb.world[:, 21 * h : 21 * h + 21], fb.elbow[:, h], spec, f, c)
            uv = _project(joints, f, c)
            # a 1 px margin, so that the float32 rounding of the stored joints cannot move a root out of the image
            inside = (uv[..., 0] >= 1) & (uv[..., 0] < W_img - 1) & (uv[..., 1] >= 1) & (uv[..., 1] < H_img - 1)
            # wrist and middle MCP inside: both roots (RHD wrist, STB palm centre between them) are in the image
            ok = (joints[..., 2] > 100.0).all(1) & inside[:, 20] & inside[:, 11] & (inside.sum(1) >= MIN_VALID_JOINTS)
            good = np.flatnonzero(ok)[: len(todo)]
            rows, todo = todo[: len(good)], todo[len(good) :]
            ih[rows], elbow[rows], focal[rows] = joints[good], elb[good], f[good]
        if len(todo):
            raise RuntimeError(f"could not place {len(todo)} {spec.name} {split} hands inside the image")
    return _Hands(ih, elbow, side, subject, focal, princpt)


# ============================================================================================== images
def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A cluttered scene (H, W, 3) uint8 BGR: a smooth colour field, random shapes and a little texture."""
    gh, gw = int(rng.integers(2, 6)), int(rng.integers(2, 6))
    field = cv2.resize(
        rng.uniform(0, 255, size=(gh, gw, 3)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
    )
    img = np.clip(field * 0.75 + 30.0, 0, 255)  # muted: a saturated field makes the hand too easy to find
    for _ in range(int(rng.integers(3, 10))):
        color = tuple(float(c) for c in rng.uniform(0, 255, size=3))
        kind = rng.integers(0, 3)
        p = rng.uniform([0, 0], [width, height], size=(2, 2)).astype(np.int32)
        if kind == 0:
            cv2.rectangle(img, tuple(int(v) for v in p[0]), tuple(int(v) for v in p[1]), color, -1, cv2.LINE_AA)
        elif kind == 1:
            axes = (int(rng.integers(5, width // 3)), int(rng.integers(5, height // 3)))
            cv2.ellipse(
                img, tuple(int(v) for v in p[0]), axes, float(rng.uniform(0, 180)), 0, 360, color, -1, cv2.LINE_AA
            )
        else:
            cv2.line(
                img,
                tuple(int(v) for v in p[0]),
                tuple(int(v) for v in p[1]),
                color,
                int(rng.integers(1, 8)),
                cv2.LINE_AA,
            )
    texture = cv2.GaussianBlur(rng.normal(0.0, 12.0, size=(height, width)).astype(np.float32), (0, 0), 1.5)
    return np.clip(img + texture[..., None], 0, 255).astype(np.uint8)


def _render(
    spec: FormatSpec, seed: int, split: str, hands: _Hands, k: int, background: np.ndarray, styles: Sequence
) -> np.ndarray:
    """Image ``k``: the hand (and its forearm) drawn over ``background``, then camera effects."""
    rng = _rng(spec, seed, split, "image", k)
    h = int(hands.side[k])
    joints = np.zeros((42, 3))
    joints[21 * h : 21 * h + 21] = hands.ih[k]
    elbows = np.zeros((2, 3))
    elbows[h] = hands.elbow[k]
    light = DEFAULT_LIGHT + rng.normal(0.0, 0.25, size=3)
    light[2] = -abs(light[2]) - 0.2  # from the camera's side
    style = styles[int(hands.subject[k])]
    present = (h == 0, h == 1)
    img = render_hands(
        background.copy(), joints, hands.focal[k], hands.princpt[k], present, (style, style), light, elbows
    )
    return finish_image(img, rng, False, tuple(rng.uniform(0.9, 1.1, size=3)))


# ============================================================================================== annotations
def _annotations(spec: FormatSpec, seed: int, split: str, hands: _Hands) -> Dict[str, np.ndarray]:
    """joint_cam (n, 21, 3) and joint_img (n, 21, 2) in the format's order (float32 as stored), joint_valid
    (n, 21), bbox (n, 4) and the root depth (n,)."""
    n = len(hands.ih)
    joint_cam = to_format_order(hands.ih, spec).astype(np.float32)
    cam64 = joint_cam.astype(np.float64)
    joint_img = _project(cam64, hands.focal, hands.princpt).astype(np.float32)
    W_img, H_img = spec.size
    u, v = joint_img[..., 0], joint_img[..., 1]
    valid = (u >= 0) & (u < W_img) & (v >= 0) & (v < H_img) & (joint_cam[..., 2] > 0)
    rng = _rng(spec, seed, split, "frames", 999)
    occluded = rng.random(n) < OCCLUSION_PROB
    for i in np.flatnonzero(occluded):  # a few (non-root) joints hidden, e.g. behind the palm
        cand = np.flatnonzero(valid[i, 1:]) + 1
        k = rng.choice(cand, size=min(int(rng.integers(1, 4)), len(cand)), replace=False)
        valid[i, k] = False
    lo = np.where(valid[..., None], joint_img, np.inf).min(1)
    hi = np.where(valid[..., None], joint_img, -np.inf).max(1)
    centre, size = (lo + hi) / 2.0, (hi - lo) * 1.2
    bbox = np.concatenate([centre - size / 2.0, size], axis=1)
    return {
        "joint_cam": joint_cam,
        "joint_img": joint_img,
        "joint_valid": valid.astype(np.int64),
        "bbox": bbox,
        "root_depth": cam64[:, 0, 2],
    }


def _processed_bbox(bbox: np.ndarray) -> np.ndarray:
    """The GT box made square and enlarged 1.25x (what a RootNet output file stores)."""
    w, h = bbox[:, 2], bbox[:, 3]
    cx, cy = bbox[:, 0] + w / 2.0, bbox[:, 1] + h / 2.0
    side = np.maximum(w, h) * 1.25
    return np.stack([cx - side / 2.0, cy - side / 2.0, side, side], axis=1)


def _skeleton_text(skeleton: Skeleton) -> str:
    lines = ["### joint_name joint_id joint_parent_id"]
    lines += [f"{name} {j} {int(p)}" for j, (name, p) in enumerate(zip(skeleton.names, skeleton.parents))]
    return "\n".join(lines) + "\n"


# ============================================================================================== writing
def _check_args(out_dir, seed, n_train, n_test) -> None:
    if out_dir is None or str(out_dir) == "":
        raise ValueError("out_dir must be a directory path")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {n!r}")
    if n_train + n_test == 0:
        raise ValueError("n_train and n_test are both 0: nothing to generate")


def _write_split(spec: FormatSpec, root: Path, seed: int, split: str, n: int, with_images: bool) -> dict:
    hands = _sample_hands(spec, seed, split, n)
    ann = _annotations(spec, seed, split, hands)
    styles = [
        sample_style(rng_for(seed, _DATASET_KEY[spec.name], SPLIT_CODE[split], _PURPOSE["subjects"], 2, s))
        for s in range(spec.subjects[split])
    ]
    W_img, H_img = spec.size
    ids = np.arange(n)
    if spec.name == "RHD":
        folder = {"train": "training", "test": "evaluation"}[split]
        file_names = [f"{i:05d}.png" for i in ids]
        seq_names: Optional[List[str]] = None
        image_dirs = [root / folder / "color"] * n
        ann_path = _split_files(spec, root, split)[0]
        scene_of = ids  # RHD: a new scene behind every image
    else:
        seqs = STB_TRAIN_SEQUENCES if split == "train" else STB_TEST_SEQUENCES
        seq_of = (ids * len(seqs)) // max(n, 1)  # contiguous blocks of frames per sequence
        frame = ids - np.searchsorted(seq_of, seq_of)  # frame number within its sequence
        seq_names = [seqs[s] for s in seq_of]
        file_names = [f"SK_color_{f}.png" for f in frame]
        image_dirs = [root / "images" / s for s in seq_names]
        ann_path = _split_files(spec, root, split)[0]
        scene_of = seq_of  # STB: one scene per sequence
    focal, princpt = W.f32_list(hands.focal), W.f32_list(hands.princpt)
    images = []
    for i in range(n):
        img = {
            "id": int(ids[i]),
            "file_name": file_names[i],
            "width": W_img,
            "height": H_img,
            "cam_param": {"focal": focal[i], "princpt": princpt[i]},
        }
        if seq_names is not None:
            img["seq_name"] = seq_names[i]
        images.append(img)
    joint_img, joint_cam, bbox = W.f32_list(ann["joint_img"]), W.f32_list(ann["joint_cam"]), W.f32_list(ann["bbox"])
    annotations = [
        {
            "id": int(ids[i]),
            "image_id": int(ids[i]),
            "bbox": bbox[i],
            "joint_img": joint_img[i],
            "joint_cam": joint_cam[i],
            "joint_valid": ann["joint_valid"][i].tolist(),
            "hand_type": ("right", "left")[int(hands.side[i])],
        }
        for i in range(n)
    ]
    if with_images:
        backgrounds: Dict[int, np.ndarray] = {}
        for i in range(n):
            key = int(scene_of[i])
            if key not in backgrounds:
                backgrounds[key] = _background(_rng(spec, seed, split, "background", key), W_img, H_img)
            img = _render(spec, seed, split, hands, i, backgrounds[key], styles)
            W.write_bytes(image_dirs[i] / file_names[i], encode_image(img, "png"))
            if i + 1 < n and scene_of[i + 1] != key:
                backgrounds.pop(key)  # scenes are contiguous: this one is done
    W.write_json(ann_path, {"images": images, "annotations": annotations})
    stats = {
        "annotations": n,
        "right": int((hands.side == 0).sum()),
        "left": int((hands.side == 1).sum()),
        "file": ann_path.name,
    }
    if split == "test":
        rng = _rng(spec, seed, split, "rootnet")
        depth = ann["root_depth"] + rng.normal(0.0, ROOTNET_NOISE_MM, size=n)
        boxes = W.f32_list(_processed_bbox(np.asarray(ann["bbox"], np.float64)))
        entries = [
            {"annot_id": int(ids[i]), "bbox": boxes[i], "abs_depth": float(np.float32(depth[i]))} for i in range(n)
        ]
        W.write_json(_split_files(spec, root, split)[1], entries)
    return stats


def _split_files(spec: FormatSpec, root: Path, split: str) -> List[Path]:
    """The annotation (and, for test, RootNet) files of a split."""
    name = f"RHD_{'training' if split == 'train' else 'evaluation'}.json" if spec.name == "RHD" else f"STB_{split}.json"
    files = [root / name]
    if split == "test":
        files.append(root / "rootnet_output" / f"rootnet_{spec.name.lower()}_output.json")
    return files


def _prepare_out_dir(spec: FormatSpec, root: Path) -> None:
    """Create ``root``; refuse a directory holding a data set this generator did not write (a real RHD/STB copy
    must never be overwritten by synthetic files)."""
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"out_dir {root} exists and is not a directory")
    entries = (
        [p.name for s in ("train", "test") for p in _split_files(spec, root, s)[:1]]
        + (["training", "evaluation"] if spec.name == "RHD" else ["images"])
        + ["rootnet_output"]
    )
    foreign = [p for p in entries if (root / p).exists()]
    if foreign and not (root / "synth_info.json").is_file():
        raise FileExistsError(
            f"out_dir {root} already holds {foreign} but no synth_info.json: it is not a data set "
            "written by internet.synth; choose an empty or new directory"
        )
    root.mkdir(parents=True, exist_ok=True)


def _write(spec: FormatSpec, out_dir, seed: int, n_train: int, n_test: int, with_images: bool) -> dict:
    _check_args(out_dir, seed, n_train, n_test)
    seed = int(seed)
    root = Path(out_dir)
    _prepare_out_dir(spec, root)
    t0 = time.perf_counter()
    splits = {}
    for split, n in (("train", int(n_train)), ("test", int(n_test))):
        if n > 0:
            splits[split] = _write_split(spec, root, seed, split, n, bool(with_images))
        else:  # a split skipped now must not keep the files of an earlier run here
            for p in _split_files(spec, root, split):
                p.unlink(missing_ok=True)
    W.write_bytes(root / "skeleton.txt", _skeleton_text(spec.skeleton).encode())
    info = {
        "generator": "internet.synth.single_hand",
        "format": spec.name,
        "version": GENERATOR_VERSION,
        "seed": seed,
        "arguments": {"n_train": int(n_train), "n_test": int(n_test), "with_images": bool(with_images)},
        "complete": True,
        "splits": splits,
    }
    W.write_json(root / "synth_info.json", info)
    return {
        "out_dir": str(root),
        "format": spec.name,
        "seed": seed,
        "with_images": bool(with_images),
        "splits": splits,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def write_rhd(out_dir, seed: int = 0, n_train: int = 200, n_test: int = 50, with_images: bool = True) -> dict:
    """Write a synthetic RHD set in InterNet's parsed format to ``out_dir`` (use it as ``data_root``); returns a
    summary. ``n_train`` / ``n_test``: annotations (= images) of the training / evaluation split (0 skips one)."""
    return _write(RHD_SPEC, out_dir, seed, n_train, n_test, with_images)


def write_stb(out_dir, seed: int = 0, n_train: int = 200, n_test: int = 50, with_images: bool = True) -> dict:
    """Write a synthetic STB set in InterNet's parsed format to ``out_dir`` (use it as ``data_root``); returns a
    summary. ``n_train`` / ``n_test``: annotations (= images) of the train (B2-B6) / test (B1) split."""
    return _write(STB_SPEC, out_dir, seed, n_train, n_test, with_images)


WRITERS = {"rhd": write_rhd, "stb": write_stb}
