"""Glue between the data (``internet.data.sequences``), a model (``internet.infer.predictor.Predictor``) and the
sequence views (``internet.vis.sequence``) for notebook 06: predictions of a camera's sequence, the player's frames,
per-frame and temporal errors, one frame from every camera of the capture, and the exports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from internet.data.sequences import SequenceIndex, SequenceKey, frame_step
from internet.evaluation.temporal import one_euro_filter, per_frame_mpjpe, pool, temporal_errors
from internet.geometry.camera import at_root_depth, cam2world, world2cam
from internet.skeleton import INTERHAND, Skeleton
from internet.vis.overlay import draw_sources_2d
from internet.vis.player import player_figure, player_png, save_player_html
from internet.vis.plot3d import camera_rig_figure
from internet.vis.sequence import frame_sources, multiview_grid_figure, project
from internet.vis.video_io import write_video


def predict_track(
    predictor: Any,
    seqs: SequenceIndex,
    track: Dict[str, np.ndarray],
    progress: Optional[Callable[[int, int], None]] = None,
) -> Dict[str, np.ndarray]:
    """Run ``predictor`` (an ``internet.infer.predictor.Predictor``) on every frame of ``track`` (from
    :meth:`SequenceIndex.track`) with the annotated box and the camera's intrinsics. Returns ``pred_cam`` (T, 42, 3)
    mm, ``pred_img`` (T, 42, 2) px, ``hand_type`` (T, 2) probabilities, ``pred_valid`` (T, 42) (the joints of the
    hands predicted present; both when none is)."""
    rows = track["rows"]
    n = len(rows)
    out = {
        "pred_cam": np.zeros((n, 42, 3)),
        "pred_img": np.zeros((n, 42, 2)),
        "hand_type": np.zeros((n, 2)),
        "pred_valid": np.ones((n, 42), dtype=bool),
    }
    for t, row in enumerate(rows):
        r = predictor.predict(
            seqs.load_image(int(row)), track["bbox"][t], focal=track["focal"][t], princpt=track["princpt"][t]
        )
        out["pred_cam"][t], out["pred_img"][t], out["hand_type"][t] = r["joint_cam"], r["joint_img"], r["hand_type"]
        present = np.asarray(r["hands_present"], dtype=bool)
        if present.any():
            out["pred_valid"][t] = np.repeat(present, 21)
        if progress is not None:
            progress(t + 1, n)
    return out


def track_curves(
    track: Dict[str, np.ndarray], pred: Dict[str, np.ndarray], skeleton: Skeleton = INTERHAND
) -> Dict[str, np.ndarray]:
    """Per-frame root-aligned MPJPE (mm): 'right', 'left' (that hand's joints) and 'interacting' (all joints of the
    frames annotated as interacting; NaN on the others)."""
    m = per_frame_mpjpe(pred["pred_cam"], track["joint_cam"], track["joint_valid"], skeleton)
    inter = np.where(track["hand_type"] == "interacting", m["all"], np.nan)
    return {"right": m["right"], "left": m["left"], "interacting": inter, "all": m["all"]}


def filtered(
    pred: Dict[str, np.ndarray], track: Dict[str, np.ndarray], fps: float, min_cutoff: float = 1.0, beta: float = 0.0
) -> Dict[str, np.ndarray]:
    """``pred`` with ``pred_cam`` and ``pred_img`` smoothed over time by a One-Euro filter
    (``internet.evaluation.temporal``)."""
    out = dict(pred)
    for key in ("pred_cam", "pred_img"):
        out[key] = one_euro_filter(pred[key], fps, track["frame"], min_cutoff=min_cutoff, beta=beta)
    return out


def player_frames(
    seqs: SequenceIndex,
    track: Dict[str, np.ndarray],
    pred: Optional[Dict[str, np.ndarray]] = None,
    key: Optional[SequenceKey] = None,
    curves: Optional[Dict[str, np.ndarray]] = None,
) -> Callable[[int], Dict[str, Any]]:
    """``get_frame(k)``: the image (read when asked), GT and, if given, the prediction of frame ``k`` of ``track``
    (the frame dicts of ``internet.vis.player``)."""

    def get_frame(k: int) -> Dict[str, Any]:
        k = int(k)
        f: Dict[str, Any] = {
            "joint_img": track["joint_img"][k],
            "joint_cam": track["joint_cam"][k],
            "joint_valid": track["joint_valid"][k],
            "label": str(int(track["frame"][k])),
        }
        title = f"{key or ''} frame {int(track['frame'][k])} ({track['hand_type'][k]}, t = {track['time_s'][k]:.1f} s)"
        if pred is not None:
            f.update(pred_img=pred["pred_img"][k], pred_cam=pred["pred_cam"][k], pred_valid=pred["pred_valid"][k])
            if curves is not None and np.isfinite(curves["all"][k]):
                title += f", MPJPE {curves['all'][k]:.1f} mm"
        f["title"] = title
        f["img"] = seqs.load_image(int(track["rows"][k]))
        return f

    return get_frame


def sequence_player(
    get_frame: Callable[[int], Dict[str, Any]],
    n: int,
    fps: float,
    curves: Optional[Dict[str, np.ndarray]] = None,
    time_axis: Optional[Sequence[float]] = None,
    current: int = 0,
    skeleton: Skeleton = INTERHAND,
):
    """(player figure, its static PNG at frame ``current``, the frames) of frames 0..n-1: every frame read once
    and precomputed, so the player plays in the browser (``internet.vis.player``)."""
    frames = [get_frame(k) for k in range(n)]
    curves = None if curves is None else {k: v for k, v in curves.items() if k != "all"}
    fig = player_figure(frames, fps, curves, time_axis, skeleton)
    return fig, player_png(frames, current, curves, time_axis, skeleton), frames


def track_sources(
    track: Dict[str, np.ndarray], pred: Optional[Dict[str, np.ndarray]] = None, skeleton: Skeleton = INTERHAND
) -> List[dict]:
    """The 3D sources of every frame (without reading images), for the player's fixed axis ranges."""
    out = []
    for k in range(len(track["rows"])):
        f = {"joint_cam": track["joint_cam"][k], "joint_valid": track["joint_valid"][k]}
        if pred is not None:
            f.update(pred_cam=pred["pred_cam"][k], pred_valid=pred["pred_valid"][k])
        out.append(frame_sources(f, skeleton))
    return out


def temporal_report(
    seqs: SequenceIndex,
    predictor: Any,
    keys: Sequence[SequenceKey],
    one_euro: Optional[dict] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Dict[str, Any]:
    """Acceleration error and jitter (mm/frame^2) of ``predictor`` on each camera sequence of ``keys``, with and (if
    ``one_euro`` = {'min_cutoff', 'beta'} is given) without the One-Euro filter, and MPJPE of the same frames.
    Returns ``{"per_sequence": [rows], "overall": {...}, "overall_filtered": {...}}``."""
    rows, raw, smooth = [], [], []
    for i, key in enumerate(keys):
        track = seqs.track(key.capture, key.seq_name, key.camera)
        pred = predict_track(predictor, seqs, track)
        te = temporal_errors(pred["pred_cam"], track["joint_cam"], track["joint_valid"], track["frame"])
        raw.append(te)
        row = {
            "sequence": str(key),
            "frames": len(track["rows"]),
            "mpjpe": float(np.nanmean(track_curves(track, pred)["all"])),
            **te,
        }
        if one_euro is not None:
            fp = filtered(pred, track, seqs.fps, **one_euro)
            tf = temporal_errors(fp["pred_cam"], track["joint_cam"], track["joint_valid"], track["frame"])
            smooth.append(tf)
            row.update(
                {f"{k}_filtered": v for k, v in tf.items() if k != "count"},
                mpjpe_filtered=float(np.nanmean(track_curves(track, fp)["all"])),
            )
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(keys))
    out = {"per_sequence": rows, "overall": pool(raw)}
    if one_euro is not None:
        out["overall_filtered"] = pool(smooth)
    return out


def camera_sequences(seqs: SequenceIndex, min_frames: int = 3) -> List[SequenceKey]:
    """Every (capture, sequence, camera) with at least ``min_frames`` annotated frames."""
    keys = []
    for capture in seqs.captures():
        for seq in seqs.sequences(capture):
            for cam in seqs.cameras(capture, seq):
                if len(seqs.frames(capture, seq, cam)) >= min_frames:
                    keys.append(SequenceKey(capture, seq, cam))
    return keys


# ============================================================================================== every camera
def frame_views(
    seqs: SequenceIndex,
    capture: int,
    seq_name: str,
    frame: int,
    all_cameras: bool = True,
    images: bool = True,
    pred: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """One frame from every camera of the capture: ``views`` (dicts for
    :func:`internet.vis.sequence.multiview_grid_figure`: the image where this split has one, the world joints
    projected with that camera's calibration), ``world`` (42, 3), ``valid`` (42,) and the ``rig``. The world joints
    are the mean over the annotated views that see each joint; every annotated view's own annotation is compared
    with the projection (``max_px``: the largest distance in pixels between its annotated and projected joints).
    ``images=False`` leaves the images out (annotation-only data sets). ``pred``: a prediction of this frame in one
    annotated camera, ``{"camera", "pred_cam" (42, 3) mm, "pred_valid" (42,)}``: taken to world coordinates through
    that camera and projected into every view (``pred_img``), so each tile shows it beside the GT. The prediction's
    absolute depth is a guess from the box (``internet.infer.predictor``), invisible in its own view but a shift in
    every other, so it is first placed at the ground truth's root depth, as the official evaluation does
    (``trans_test='gt'``); ``pred["root_depth"] = "guess"`` keeps the guess."""
    annotated = seqs.views(capture, seq_name, frame)
    rig = seqs.rig(capture)
    # Each annotated view holds the joints it sees (valid = annotated and inside its image): merge them all.
    world_sum, count = np.zeros((42, 3)), np.zeros(42)
    for row in annotated.values():
        ok = seqs.frame(row)["joint_valid"]
        world_sum[ok] += seqs.world_joints(row)[ok]
        count += ok
    valid = count > 0
    world = world_sum / np.maximum(count, 1)[:, None]
    names = rig["names"] if all_cameras else [n for n in rig["names"] if n in annotated]
    pred_world = None if pred is None else _pred_world(pred, rig, world, valid)
    views = []
    for name in names:
        c = rig["names"].index(name)
        uv, z = project(world, rig["campos"][c], rig["camrot"][c], rig["focal"][c], rig["princpt"][c])
        view: Dict[str, Any] = {"name": name, "joint_img": uv, "joint_valid": valid & (z > 0)}
        if pred_world is not None:
            puv, pz = project(pred_world, rig["campos"][c], rig["camrot"][c], rig["focal"][c], rig["princpt"][c])
            view.update(pred_img=puv, pred_valid=np.asarray(pred.get("pred_valid", np.ones(42)), bool) & (pz > 0))
        if name in annotated:
            row = annotated[name]
            f = seqs.frame(row)
            view.update(img=seqs.load_image(row) if images else None, width=f["width"], height=f["height"])
            ok = f["joint_valid"] & valid
            view["max_px"] = float(np.abs(f["joint_img"][ok] - uv[ok]).max()) if ok.any() else float("nan")
            view["note"] = f"annotated, |proj - annot| {view['max_px']:.2f} px"
        else:
            w, h = _image_size(rig["princpt"][c])
            view.update(img=None, width=w, height=h, note="no image in this split")
        views.append(view)
    return {"views": views, "world": world, "valid": valid, "rig": rig, "annotated": sorted(annotated)}


def _pred_world(pred: Dict[str, Any], rig: Dict[str, Any], world: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The prediction of camera ``pred["camera"]`` in world coordinates, at the ground truth's root depth (the right
    hand's root, else the left's, where the ground truth has it) unless ``pred["root_depth"] == "guess"``."""
    c = rig["names"].index(str(pred["camera"]))
    R, campos = rig["camrot"][c], rig["campos"][c]
    pred_cam = np.asarray(pred["pred_cam"], dtype=np.float64)
    if pred.get("root_depth", "gt") == "gt":
        gt_cam = world2cam(world, R, campos)
        root = next((r for r in (INTERHAND.root_idx["right"], INTERHAND.root_idx["left"]) if valid[r]), None)
        if root is not None:
            pred_cam = at_root_depth(pred_cam, root, float(gt_cam[root, 2]), rig["focal"][c], rig["princpt"][c])
    return cam2world(pred_cam, R, campos)


def _image_size(princpt: np.ndarray) -> tuple:
    """A camera's image size guessed from its principal point (the release's 334x512 or 512x334)."""
    return (512, 334) if princpt[0] > princpt[1] else (334, 512)


def multiview_figures(
    seqs: SequenceIndex,
    capture: int,
    seq_name: str,
    frame: int,
    columns: int = 4,
    max_views: int = 16,
    skeleton: Skeleton = INTERHAND,
    pred: Optional[Dict[str, Any]] = None,
):
    """(grid figure, rig figure, info) of one frame from every camera (annotated views first, up to
    ``max_views``); ``pred`` as for :func:`frame_views` draws the prediction in every view."""

    info = frame_views(seqs, capture, seq_name, frame, pred=pred)
    views = sorted(info["views"], key=lambda v: v.get("img") is None)[:max_views]
    grid = multiview_grid_figure(
        views,
        skeleton,
        columns=columns,
        title=f"Capture{capture}/{seq_name} frame {frame}: {len(info['annotated'])} annotated "
        f"of {len(info['rig']['names'])} cameras" + (" (GT solid, prediction dashed)" if pred is not None else ""),
    )
    rig = info["rig"]
    fig = camera_rig_figure(
        rig["campos"],
        rig["camrot"],
        rig["names"],
        hands_world=info["world"],
        valid=info["valid"],
        skeleton=skeleton,
        title=f"the rig of Capture{capture} with the hands of frame {frame}",
    )
    return grid, fig, info


# ============================================================================================== exports
def overlay_frames(get_frame: Callable[[int], Dict[str, Any]], n: int, skeleton: Skeleton = INTERHAND):
    """Yield the 2D overlays (GT solid and translucent under the dashed prediction) of frames 0..n-1, one at a time."""
    for k in range(n):
        f = get_frame(k)
        img = draw_sources_2d(
            np.asarray(f["img"]),
            f.get("joint_img"),
            f.get("pred_img"),
            f.get("joint_valid"),
            skeleton,
            pred_valid=f.get("pred_valid"),
        )
        yield img


def export_sequence(
    get_frame: Callable[[int], Dict[str, Any]],
    n: int,
    fps: float,
    out_dir: Union[str, Path],
    stem: str,
    skeleton: Skeleton = INTERHAND,
    player: Any = None,
) -> Dict[str, Any]:
    """Write ``stem.mp4`` (or ``.gif``) of the 2D overlays and ``stem_player.html`` (the player: image, 2D and 3D
    hands, error curve; self-contained) to ``out_dir``. Returns the paths and the video format."""
    out_dir = Path(out_dir)
    video = write_video(overlay_frames(get_frame, n, skeleton), out_dir / f"{stem}.mp4", fps)
    fig = player if player is not None else player_figure([get_frame(k) for k in range(n)], fps, skeleton=skeleton)
    html = save_player_html(fig, out_dir / f"{stem}_player.html")
    return {"video": video["path"], "video_format": video["format"], "frames": video["frames"], "html": html}


def sequence_step(seqs: SequenceIndex, key: SequenceKey) -> int:
    """The frame_idx step between consecutive frames of a camera sequence."""
    return frame_step(seqs.frames(key.capture, key.seq_name, key.camera))
