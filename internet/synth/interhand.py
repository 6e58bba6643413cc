"""Write a synthetic InterHand2.6M v1.0 data set: official layout, JSON formats and annotation rules.

Layout under ``out_dir`` (as the release)::

    images/{split}/Capture{c}/{seq_name}/cam{camera}/image{frame_idx}.jpg
    annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d,MANO_NeuralAnnot}.json
    mano/MANO_{RIGHT,LEFT}.pkl                        a MANO-format model of the synthetic hand (not MANO)
    annotations/aid_human_annot_{train,test}.txt      human-annotated annotation ids (defines H and M)
    annotations/skeleton.txt
    rootnet_output/rootnet_interhand2.6m_output_{val,test}.json
    synth_info.json                                   the arguments and seed

Rules the annotations obey (the same as the real sample; ``internet.synth.check`` verifies them):
``joint_valid`` (data.json) = 3D annotation valid and projected inside the image; the box is the tight box of the
valid projected joints enlarged 1.2x; ``hand_type_valid`` = 1 for 'right'/'left', and for 'interacting' only with
more than 30 valid joints; joint_3d.json holds per frame the world joints (placeholder [1, 1, 1] for a hand that is
absent or not annotated), 3D validity and hand type. Annotation gaps are simulated: a few random joints in some
frames, and occasionally a whole hand of an interacting frame.

Sequences: each ``seq_name`` of a capture is one continuous motion (``internet.synth.motion``: hands moving, touching,
separating and articulating smoothly) recorded at ``SEQUENCE_FPS`` (5 fps: ``frame_idx`` advances by ``FRAME_STEP``
= 6 frames of the 30 fps capture between consecutive frames, and skips a frame that no camera sees usably). The rig
(cameras) is fixed per capture; every frame is seen by several cameras. ``synth_info.json`` records the rates.

Everything depends only on the seed and the arguments (not on ``num_workers``): every random draw comes from a
generator keyed by what it is for (capture, sequence, image id, ...).
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np

from internet.geometry.camera import cam2pixel, world2cam
from internet.geometry.crop import process_bboxes
from internet.synth import writer as W
from internet.synth.mano import fit_records, write_mano_files
from internet.synth.motion import SmoothMotionRng
from internet.synth.render import (
    DEFAULT_LIGHT,
    encode_image,
    finish_image,
    render_background,
    render_hands,
    sample_style,
)
from internet.synth.rig import (
    HUMAN_FRACTION,
    SPLIT_CODE,
    Capture,
    plan_split,
    purpose,
    rng_for,
    views_per_frame,
)
from internet.synth.scene import FrameBatch, sample_single_frames, sample_two_hand_frames

GENERATOR_VERSION = 4  # 3: one continuous motion per sequence; 4: MANO-format model and fits, linear hand shapes
CAPTURE_FPS = 30  # frame_idx counts frames of a 30 fps capture, as the release's
FRAME_STEP = 6  # consecutive frames of a sequence are 6 capture frames apart:
SEQUENCE_FPS = CAPTURE_FPS / FRAME_STEP  # 5 fps, as the 5 fps release
SMOOTH_FRAMES = 3.0  # correlation length of the motion, in sequence frames (0.6 s)
RANDOM_GAP_PROB = 0.06  # frames with 1-3 unannotated joints
MISSING_HAND_PROB = 0.03  # interacting frames with one hand not annotated at all
ROOTNET_NOISE_MM = 30.0
MIN_VALID_JOINTS = 6
CHUNK = 48  # images per rendering job
IMAGE_FORMATS = ("jpg", "png")


@dataclass
class _CaptureOutput:
    images: List[str] = field(default_factory=list)
    annotations: List[str] = field(default_factory=list)
    joint_3d: List[str] = field(default_factory=list)
    mano: List[str] = field(default_factory=list)
    rootnet: List[str] = field(default_factory=list)
    human_ids: List[int] = field(default_factory=list)
    render: List[dict] = field(default_factory=list)
    frames: int = 0
    hand_types: Dict[str, int] = field(default_factory=lambda: {"right": 0, "left": 0, "interacting": 0})

    @property
    def count(self) -> int:
        return len(self.annotations)


def _check_args(out_dir, seed, n_train, n_val, n_test, image_format, num_workers, jpeg_quality) -> None:
    if out_dir is None or str(out_dir) == "":
        raise ValueError("out_dir must be a directory path")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {n!r}")
    if n_train + n_val + n_test == 0:
        raise ValueError("n_train, n_val and n_test are all 0: nothing to generate")
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 1:
        raise ValueError(f"num_workers must be an integer >= 1, got {num_workers!r}")
    if (
        isinstance(jpeg_quality, bool)
        or not isinstance(jpeg_quality, (int, np.integer))
        or not 1 <= jpeg_quality <= 100
    ):
        raise ValueError(f"jpeg_quality must be an integer in 1..100, got {jpeg_quality!r}")


def generate(
    out_dir,
    seed: int = 0,
    n_train: int = 2000,
    n_val: int = 200,
    n_test: int = 400,
    with_images: bool = True,
    image_format: str = "jpg",
    num_workers: int = 1,
    jpeg_quality: int = 92,
    verbose: bool = False,
) -> dict:
    """Write a synthetic InterHand2.6M data set to ``out_dir`` and return a summary dict.

    ``n_train``, ``n_val``, ``n_test``: annotations (= images) per split; 0 skips a split. ``with_images=False``
    writes only the annotation files (fast enough for the full official scale). ``image_format``: 'jpg' (as the
    release) or 'png'. ``num_workers``: rendering processes (results do not depend on it). Files are replaced
    atomically. ``out_dir`` must be new, empty or an earlier output of this generator (a directory holding another
    data set is refused); annotation files of splits skipped in this run are removed, older images are left.
    """
    _check_args(out_dir, seed, n_train, n_val, n_test, image_format, num_workers, jpeg_quality)
    seed, num_workers = int(seed), int(num_workers)
    root = Path(out_dir)
    _prepare_out_dir(root)
    t0 = time.perf_counter()
    opts = dict(seed=seed, with_images=bool(with_images), image_format=image_format, jpeg_quality=int(jpeg_quality))
    info = {
        "generator": "internet.synth",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "arguments": {
            "n_train": int(n_train),
            "n_val": int(n_val),
            "n_test": int(n_test),
            "with_images": bool(with_images),
            "image_format": image_format,
            "jpeg_quality": int(jpeg_quality),
        },
        "complete": False,
        "splits": {},
        "sequences": {
            "fps": SEQUENCE_FPS,
            "capture_fps": CAPTURE_FPS,
            "frame_step": FRAME_STEP,
            "smooth_frames": SMOOTH_FRAMES,
        },
    }
    # Written first so that an interrupted run is recognisable (and may be overwritten by the next one).
    W.write_json(root / "synth_info.json", info)
    pool = None
    if with_images and num_workers > 1:
        pool = ProcessPoolExecutor(
            num_workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
        )
    splits = {}
    try:
        for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
            if n > 0:
                splits[split] = _write_split(root, split, int(n), opts, pool, num_workers, verbose)
            else:
                _remove_split_annotations(root, split)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    W.write_bytes(root / "annotations" / "skeleton.txt", W.skeleton_text().encode())
    write_mano_files(root / "mano")
    info.update(complete=True, splits=splits)
    W.write_json(root / "synth_info.json", info)
    seconds = time.perf_counter() - t0
    return {
        "out_dir": str(root),
        "seed": seed,
        "with_images": bool(with_images),
        "splits": splits,
        "num_workers": num_workers,
        "seconds": round(seconds, 3),
    }


def _prepare_out_dir(root: Path) -> None:
    """Create ``root``; refuse a directory that holds a data set this generator did not write (a real
    InterHand2.6M copy must never be overwritten by synthetic files)."""
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"out_dir {root} exists and is not a directory")
    foreign = [p for p in ("annotations", "images", "rootnet_output") if (root / p).exists()]
    if foreign and not (root / "synth_info.json").is_file():
        raise FileExistsError(
            f"out_dir {root} already holds {foreign} but no synth_info.json: it is not a data set "
            "written by internet.synth; choose an empty or new directory"
        )
    root.mkdir(parents=True, exist_ok=True)


def _remove_split_annotations(root: Path, split: str) -> None:
    """A split skipped in this run must not keep the annotation files of an earlier run in the same directory."""
    for p in (
        (root / "annotations" / split).glob(f"InterHand2.6M_{split}_*.json")
        if (root / "annotations" / split).is_dir()
        else []
    ):
        p.unlink()
    for p in (
        root / "rootnet_output" / f"rootnet_interhand2.6m_output_{split}.json",
        root / "annotations" / f"aid_human_annot_{split}.txt",
    ):
        p.unlink(missing_ok=True)


# ============================================================================================== one split
def _write_split(root: Path, split: str, n: int, opts: dict, pool, num_workers: int, verbose: bool) -> dict:
    captures = plan_split(opts["seed"], split, n)
    ann_dir = root / "annotations" / split
    data = W.DataJsonWriter(ann_dir / f"InterHand2.6M_{split}_data.json")
    joint_3d = W.StreamedJson(ann_dir / f"InterHand2.6M_{split}_joint_3d.json")
    joint_3d.open("{")
    mano = W.StreamedJson(ann_dir / f"InterHand2.6M_{split}_MANO_NeuralAnnot.json")
    mano.open("{")
    rootnet = None
    if split in ("val", "test"):
        rootnet = W.StreamedJson(root / "rootnet_output" / f"rootnet_interhand2.6m_output_{split}.json")
        rootnet.open("[")
    jv_int, jv_bool = W.JointValidText(as_bool=False), W.JointValidText(as_bool=True)
    human_ids: List[int] = []
    pending: deque = deque()
    stats = {
        "annotations": 0,
        "captures": len(captures),
        "cameras": 0,
        "frames": 0,
        "hand_type": {"right": 0, "left": 0, "interacting": 0},
    }
    next_id = 0
    try:
        for cap in captures:
            out = _capture_annotations(cap, opts, next_id, jv_int, jv_bool, rootnet is not None)
            data.add(out.images, out.annotations)
            joint_3d.open("{", key=str(cap.index))
            joint_3d.items(out.joint_3d)
            joint_3d.close_container("}")
            mano.open("{", key=str(cap.index))
            mano.items(out.mano)
            mano.close_container("}")
            if rootnet is not None:
                rootnet.items(out.rootnet)
            human_ids += out.human_ids
            next_id += out.count
            stats["annotations"] += out.count
            stats["cameras"] += len(cap.cameras)
            stats["frames"] += out.frames
            for k, v in out.hand_types.items():
                stats["hand_type"][k] += v
            if opts["with_images"]:
                _render_capture(root, split, cap, out.render, opts, pool, num_workers, pending)
            if verbose:
                print(
                    f"[synth] {split} Capture{cap.index}: {out.count} annotations, {out.frames} frames, "
                    f"{len(cap.cameras)} cameras",
                    flush=True,
                )
        while pending:
            pending.popleft().result()
        joint_3d.close_container("}")
        joint_3d.close()
        mano.close_container("}")
        mano.close()
        data.close()
        if rootnet is not None:
            rootnet.close_container("]")
            rootnet.close()
    except BaseException:
        data.abort()
        joint_3d.abort()
        mano.abort()
        if rootnet is not None:
            rootnet.abort()
        raise
    W.write_json(
        ann_dir / f"InterHand2.6M_{split}_camera.json", W.camera_json({cap.index: cap.cameras for cap in captures})
    )
    if split in ("train", "test"):
        with W.atomic_open(root / "annotations" / f"aid_human_annot_{split}.txt") as f:
            f.write("".join(f"{i}\n" for i in human_ids))
        stats["human_annotated"] = len(human_ids)
    return stats


# ============================================================================================== annotations
def _annotation_gaps(rng: np.random.Generator, fb: FrameBatch) -> tuple:
    """3D validity (n, 42) and the mask of joints whose coordinates are replaced by the [1, 1, 1] placeholder."""
    n = len(fb)
    present = np.repeat(fb.present, 21, axis=1)
    valid = present.copy()
    placeholder = ~present
    # Occasionally a whole hand of an interacting frame has no annotation (it is still in the images).
    missing = (fb.hand_type == "interacting") & (rng.random(n) < MISSING_HAND_PROB)
    side = rng.integers(0, 2, size=n)
    for f in np.nonzero(missing)[0]:
        sl = slice(21 * side[f], 21 * side[f] + 21)
        valid[f, sl] = False
        placeholder[f, sl] = True
    # A few random joints without annotation; some keep their coordinates (as in the release: mask, never guess
    # validity from the numbers).
    gaps = rng.random(n) < RANDOM_GAP_PROB
    for f in np.nonzero(gaps)[0]:
        candidates = np.nonzero(valid[f])[0]
        if len(candidates) == 0:
            continue
        k = rng.choice(candidates, size=min(int(rng.integers(1, 4)), len(candidates)), replace=False)
        valid[f, k] = False
        placeholder[f, k] = rng.random(len(k)) < 0.5
    return valid, placeholder


def _sample_frames(rng, cap: Capture, seq, n: int) -> FrameBatch:
    if seq.kind == "interacting":
        return sample_two_hand_frames(rng, cap.shape, n, seq.interaction, cap.centre)
    return sample_single_frames(rng, cap.shape, n, seq.families, seq.kind, cap.centre)


def _capture_annotations(
    cap: Capture, opts: dict, first_id: int, jv_int, jv_bool, with_rootnet: bool
) -> _CaptureOutput:
    """All annotations of one capture: frames per sequence, projected into every camera, usable views selected
    until each sequence's quota is met; returns the JSON fragments and the rendering work."""
    seed, code = opts["seed"], SPLIT_CODE[cap.split]
    ext = opts["image_format"]
    cams = cap.cameras
    R = np.stack([c.camrot for c in cams])
    T = np.stack([c.campos for c in cams])
    focal = np.stack([c.focal for c in cams])
    princpt = np.stack([c.princpt for c in cams])
    width = np.array([c.width for c in cams])
    height = np.array([c.height for c in cams])
    C = len(cams)
    out = _CaptureOutput()
    cursor = int(rng_for(seed, purpose("capture"), code, cap.index, 1).integers(0, 3000))
    next_id = first_id
    for s_idx, seq in enumerate(cap.sequences):
        if seq.quota == 0:
            continue
        # One continuous motion per sequence, long enough for the quota with some frames left without a usable
        # view; a motion that still falls short is drawn again, longer.
        n_frames = max(math.ceil(seq.quota / views_per_frame(cap.quota, C)), min(seq.quota, 8))
        per_frame = math.ceil(seq.quota / n_frames)
        for attempt in range(12):
            rng = rng_for(seed, purpose("frames"), code, cap.index, s_idx, attempt)
            length = math.ceil(n_frames * 1.25 * 1.5**attempt) + 2
            fb = _sample_frames(SmoothMotionRng(rng, length, SMOOTH_FRAMES), cap, seq, length)
            valid3d, placeholder = _annotation_gaps(rng, fb)
            world = fb.world.astype(np.float32).astype(np.float64)  # what the JSON stores
            cam = world2cam(world[:, None], R, T)  # (F, C, 42, 3): camera c of every frame
            z = cam[..., 2]
            u, v = np.moveaxis(cam2pixel(cam, focal, princpt)[..., :2], -1, 0)
            with np.errstate(invalid="ignore"):
                inside = (
                    np.isfinite(u)
                    & np.isfinite(v)
                    & (z > 0)
                    & (u >= 0)
                    & (v >= 0)
                    & (u < width[None, :, None])
                    & (v < height[None, :, None])
                )
            valid = inside & valid3d[:, None, :]
            n_valid = valid.sum(-1)
            u_min = np.where(valid, u, np.inf).min(-1)
            u_max = np.where(valid, u, -np.inf).max(-1)
            v_min = np.where(valid, v, np.inf).min(-1)
            v_max = np.where(valid, v, -np.inf).max(-1)
            need = np.maximum(MIN_VALID_JOINTS, np.ceil(0.5 * valid3d.sum(-1)))[:, None]
            with np.errstate(invalid="ignore"):
                usable = (n_valid >= need) & (u_max - u_min >= 4.0) & (v_max - v_min >= 4.0)
            # Frames in time order each take up to per_frame usable cameras until the quota is met; the motion ends
            # there. The cameras are preferred in one random order per sequence, so a camera that sees the hands keeps
            # seeing them (a camera's view of a sequence is a video). A frame without a usable view is a gap in
            # frame_idx, as in the release.
            order = np.broadcast_to(np.argsort(rng.random(C)), (length, C))
            usable_perm = np.take_along_axis(usable, order, axis=1)
            rank = np.cumsum(usable_perm, axis=1) - 1
            take = np.zeros_like(usable)
            np.put_along_axis(take, order, usable_perm & (rank < per_frame), axis=1)
            if take.sum() >= seq.quota:
                break
        else:
            raise RuntimeError(
                f"could not find enough usable views for {cap.split} Capture{cap.index} "
                f"{seq.name} ({seq.quota - int(take.sum())} missing)"
            )
        f_idx, c_idx = np.nonzero(take)  # row-major: frames in time order
        f_idx, c_idx = f_idx[: seq.quota], c_idx[: seq.quota]
        motion_frames = int(f_idx[-1]) + 1
        kept_frames, f_local = np.unique(f_idx, return_inverse=True)
        frame_ids = cursor + FRAME_STEP * kept_frames  # the motion's time: frame_idx counts capture frames
        n_ann = len(f_idx)
        ids = np.arange(next_id, next_id + n_ann)
        next_id += n_ann
        # --- data.json
        vsel = valid[f_idx, c_idx]
        cx = (u_min[f_idx, c_idx] + u_max[f_idx, c_idx]) / 2
        cy = (v_min[f_idx, c_idx] + v_max[f_idx, c_idx]) / 2
        bw = (u_max[f_idx, c_idx] - u_min[f_idx, c_idx]) * 1.2
        bh = (v_max[f_idx, c_idx] - v_min[f_idx, c_idx]) * 1.2
        bbox = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1)
        hand_type = fb.hand_type[f_idx]
        htv = np.where(hand_type == "interacting", vsel.sum(1) > 30, True).astype(int)
        frames_of_ann = frame_ids[f_local]
        cam_names = [cams[c].name for c in c_idx]
        file_names = [
            f"Capture{cap.index}/{seq.name}/cam{cn}/image{fr}.{ext}"
            for cn, fr in zip(cam_names, frames_of_ann.tolist())
        ]
        out.images += W.image_records(
            ids.tolist(),
            file_names,
            width[c_idx].tolist(),
            height[c_idx].tolist(),
            cap.index,
            cap.subject,
            [seq.name] * n_ann,
            cam_names,
            frames_of_ann.tolist(),
        )
        out.annotations += W.annotation_records(ids.tolist(), bbox, vsel, hand_type.tolist(), htv.tolist(), jv_int)
        for ht in ("right", "left", "interacting"):
            out.hand_types[ht] += int(np.sum(hand_type == ht))
        # --- joint_3d.json (frames with at least one annotation)
        wc = np.where(placeholder[kept_frames][..., None], 1.0, world[kept_frames])
        v3 = valid3d[kept_frames]
        ht3 = fb.hand_type[kept_frames]
        htv3 = np.where(ht3 == "interacting", v3.sum(1) > 30, True)
        out.joint_3d += W.joint_3d_records(frame_ids.tolist(), wc, v3, ht3.tolist(), htv3.tolist(), jv_bool)
        out.mano += fit_records(frame_ids.tolist(), world[kept_frames], fb.present[kept_frames], cap.shape.betas)
        out.frames += len(kept_frames)
        # --- human-annotated frames
        human = rng.random(len(kept_frames)) < HUMAN_FRACTION[cap.split]
        out.human_ids += ids[human[f_local]].tolist()
        # --- RootNet output: the processed GT box and noisy root depths
        root_z = cam[f_idx, c_idx][:, [20, 41], 2]
        if with_rootnet:
            noisy = root_z + rng.normal(0.0, ROOTNET_NOISE_MM, size=root_z.shape)
            for h in (0, 1):  # an absent hand gets the other hand's depth (RootNet always answers both)
                absent = ~np.isfinite(noisy[:, h])
                noisy[absent, h] = noisy[absent, 1 - h] + rng.normal(0.0, 40.0, size=int(absent.sum()))
            out.rootnet += W.rootnet_records(ids.tolist(), process_bboxes(bbox), noisy)
        # --- rendering work
        elbow_cam = np.einsum("cij,fchj->fchi", R, fb.elbow[:, None] - T[None, :, None])[f_idx, c_idx]
        out.render.append(
            dict(
                ids=ids,
                cam=c_idx,
                joint_cam=cam[f_idx, c_idx].astype(np.float32),
                elbow_cam=elbow_cam.astype(np.float32),
                present=fb.present[f_idx],
                file_names=file_names,
            )
        )
        cursor += FRAME_STEP * motion_frames + int(
            rng_for(seed, purpose("capture"), code, cap.index, 2, s_idx).integers(300, 3000)
        )
    return out


# ============================================================================================== images
def _render_capture(
    root: Path, split: str, cap: Capture, work: List[dict], opts: dict, pool, num_workers: int, pending: deque
) -> None:
    """Cut a capture's images into jobs (sorted by camera, so a job needs few backgrounds) and run them."""
    if not work:
        return
    ids = np.concatenate([w["ids"] for w in work])
    cam = np.concatenate([w["cam"] for w in work])
    joint_cam = np.concatenate([w["joint_cam"] for w in work])
    elbow_cam = np.concatenate([w["elbow_cam"] for w in work])
    present = np.concatenate([w["present"] for w in work])
    names = [fn for w in work for fn in w["file_names"]]
    order = np.lexsort((ids, cam))
    base = dict(
        root=str(root / "images" / split),
        seed=opts["seed"],
        split_code=SPLIT_CODE[split],
        capture=cap.index,
        subject=cap.subject,
        cameras=cap.cameras,
        backdrop=cap.backdrop,
        image_format=opts["image_format"],
        jpeg_quality=opts["jpeg_quality"],
    )
    for start in range(0, len(order), CHUNK):
        sel = order[start : start + CHUNK]
        job = dict(
            base,
            ids=ids[sel],
            cam=cam[sel],
            joint_cam=joint_cam[sel],
            elbow_cam=elbow_cam[sel],
            present=present[sel],
            file_names=[names[i] for i in sel],
        )
        if pool is None:
            render_job(job)
        else:
            pending.append(pool.submit(render_job, job))
            while len(pending) > 4 * num_workers:
                pending.popleft().result()


def _worker_init() -> None:
    cv2.setNumThreads(1)  # the pool already uses every core


def render_job(job: dict) -> int:
    """Render and write a list of images of one capture (runs in a worker process). Returns the number written."""
    seed, code, capture = job["seed"], job["split_code"], job["capture"]
    style = sample_style(rng_for(seed, purpose("style"), job["subject"]))
    backgrounds: Dict[int, tuple] = {}
    root = Path(job["root"])
    for k, image_id in enumerate(job["ids"].tolist()):
        ci = int(job["cam"][k])
        camera = job["cameras"][ci]
        if ci not in backgrounds:
            rng_bg = rng_for(seed, purpose("background"), code, capture, ci)
            gains = (1.0, 1.0, 1.0) if camera.grey else tuple(rng_bg.uniform(0.9, 1.1, size=3))
            backgrounds[ci] = (render_background(camera, job["backdrop"], style.skin, rng_bg), gains)
        bg, gains = backgrounds[ci]
        rng = rng_for(seed, purpose("image"), code, image_id)
        light = DEFAULT_LIGHT + rng.normal(0.0, 0.25, size=3)
        light[2] = -abs(light[2]) - 0.2  # always from the camera's side
        img = render_hands(
            bg.copy(),
            np.nan_to_num(job["joint_cam"][k], nan=1.0),
            camera.focal,
            camera.princpt,
            job["present"][k],
            (style, style),
            light,
            job["elbow_cam"][k],
        )
        img = finish_image(img, rng, camera.grey, gains)
        W.write_bytes(
            root / job["file_names"][k], encode_image(img, job["image_format"], job["jpeg_quality"]), fsync=False
        )
    return len(job["ids"])
