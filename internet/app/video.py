"""Your own video: stream its frames through a model with a hand box that follows the hands.

:func:`predict_video` reads a video file frame by frame with OpenCV (never holding more than one frame), predicts
both hands in a box given once for the first frame (:class:`BoxFollower` then re-centres it on the predicted hands
of each frame, damped, keeping its size unless asked to adapt), optionally smooths the predictions over time with a
One-Euro filter, writes the overlay video as it goes (MP4, GIF where no encoder works) and, at the end, the 3D
player (``internet.vis.player``: the frames with the 2D skeletons, the 3D hands; self-contained HTML, at most
``max_html_frames`` frames, read again from the video at a small size) and the per-frame predictions (``.npz``).
Memory holds the per-frame joints (a few hundred bytes a frame) and the player's small frames, not the video.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from internet.evaluation.temporal import OneEuroFilter
from internet.infer.predictor import check_box
from internet.skeleton import INTERHAND, Skeleton
from internet.utils.atomic import atomic_write_bytes, atomic_write_text
from internet.vis.overlay import draw_bbox, draw_skeleton_2d
from internet.vis.player import player_figure, player_png, save_player_html
from internet.vis.video_io import write_video


def video_info(path: Union[str, Path]) -> Dict[str, Any]:
    """``fps``, ``frames`` (as the container says; may be 0 or approximate), ``width``, ``height`` of a video file;
    errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"{path}: OpenCV cannot open this video (unsupported container or codec?)")
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        return {
            "fps": fps if fps > 0 else 30.0,
            "frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        }
    finally:
        cap.release()


def check_stride(every: Any, max_frames: Any) -> None:
    """``every`` an integer >= 1 and ``max_frames`` None or an integer >= 1, else ValueError naming the value."""
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"every={every!r}: must be an integer >= 1 (1 predicts every frame, 2 every other frame)")
    if max_frames is not None and (
        isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1
    ):
        raise ValueError(f"max_frames={max_frames!r}: must be an integer >= 1, or None for the whole video")


def iter_frames(
    path: Union[str, Path], every: int = 1, max_frames: Optional[int] = None
) -> Iterator[Tuple[int, np.ndarray]]:
    """Yield ``(frame number, RGB uint8 image)`` of every ``every``-th frame, up to ``max_frames`` yielded, reading
    one frame at a time."""
    check_stride(every, max_frames)
    info = video_info(path)  # the errors for a missing or unreadable file
    del info
    cap = cv2.VideoCapture(str(path))
    try:
        k = yielded = 0
        while max_frames is None or yielded < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            if k % every == 0:
                yield k, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                yielded += 1
            k += 1
    finally:
        cap.release()


def read_frame(path: Union[str, Path], index: int = 0) -> np.ndarray:
    """Frame ``index`` of a video as RGB uint8 (the capture is opened and closed here)."""
    frame: Optional[np.ndarray] = None
    for k, img in iter_frames(path, 1, index + 1):  # runs to its end: the capture is released
        frame = img if k == index else None
    if frame is None:
        raise ValueError(f"{path}: no frame {index} could be read")
    return frame


class BoxFollower:
    """A hand box carried along a video: given once, then moved towards the box of each frame's predicted joints.

    ``bbox`` [x, y, w, h] px; ``momentum`` in [0, 1): how much of the old box is kept each frame (0 = jump to the
    new one); ``adapt_size``: also follow the hands' size (else the box keeps its size, only its centre moves);
    ``margin``: the joints' tight box is enlarged this much before use. :meth:`set_box` replaces the box (adjust it
    by hand at any time). With ``adapt_size`` a side changes by at most :attr:`MAX_GROWTH` times a frame and never
    exceeds the image's longer side (a warning says when that bound held the box back).
    """

    MAX_GROWTH = 1.25
    """Largest change of a box side in one frame with ``adapt_size``: predictions spread over the whole crop (a
    missed hand) would otherwise grow the box x1.4 a frame, each crop bigger than the last, until no box is valid."""

    def __init__(
        self,
        bbox: Sequence[float],
        width: int,
        height: int,
        momentum: float = 0.5,
        adapt_size: bool = False,
        margin: float = 1.4,
    ) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if not margin > 0:
            raise ValueError(f"margin must be > 0, got {margin}")
        self.width, self.height = int(width), int(height)
        self.momentum, self.adapt_size, self.margin = float(momentum), bool(adapt_size), float(margin)
        self.box = check_box(bbox, self.width, self.height)
        self.bounded = 0
        """How many updates the growth bound held back (``adapt_size``)."""

    def set_box(self, bbox: Sequence[float]) -> None:
        self.box = check_box(bbox, self.width, self.height)

    def update(self, joint_img: np.ndarray, present: np.ndarray, skeleton: Skeleton = INTERHAND) -> np.ndarray:
        """Move the box towards the predicted joints of the hands present (both when none is); returns it."""
        mask = np.zeros(skeleton.joint_num, dtype=bool)
        for hand, p in zip(("right", "left"), present):
            if p:
                mask[skeleton.joint_type[hand]] = True
        if not mask.any():
            mask[:] = True
        pts = np.asarray(joint_img, dtype=np.float64)[mask]
        pts = pts[np.isfinite(pts).all(axis=1)]
        if len(pts) < 2:
            return self.box
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        centre = (lo + hi) / 2.0
        size = self._bounded_size(np.maximum((hi - lo) * self.margin, 8.0)) if self.adapt_size else self.box[2:]
        target = np.concatenate([centre - size / 2.0, size])
        new = self.momentum * self.box + (1.0 - self.momentum) * target
        # keep the box overlapping the image (a hand leaving the frame must not push it out of reach)
        new[0] = np.clip(new[0], -new[2] + 1.0, self.width - 1.0)
        new[1] = np.clip(new[1], -new[3] + 1.0, self.height - 1.0)
        self.box = new
        return self.box

    def _bounded_size(self, size: np.ndarray) -> np.ndarray:
        old = self.box[2:]
        limit = np.minimum(old * self.MAX_GROWTH, float(max(self.width, self.height)))
        bounded = np.clip(size, old / self.MAX_GROWTH, np.maximum(limit, old / self.MAX_GROWTH))
        if np.any(size > limit + 1e-9):
            if not self.bounded:
                warnings.warn(
                    f"adapt_size: the predicted hands asked for a box of {size[0]:.0f}x{size[1]:.0f} px from "
                    f"{old[0]:.0f}x{old[1]:.0f} px; growth is bounded to x{self.MAX_GROWTH:g} a frame and to the "
                    f"image's longer side ({max(self.width, self.height)} px). The model may be missing the hands: "
                    "check the overlay, give a better first box, or use adapt_size=False",
                    stacklevel=3,
                )
            self.bounded += 1
        return bounded


def predict_video(
    predictor: Any,
    path: Union[str, Path],
    bbox: Sequence[float],
    out_dir: Union[str, Path],
    stem: str = "video",
    every: int = 1,
    max_frames: Optional[int] = None,
    follow: bool = True,
    momentum: float = 0.5,
    adapt_size: bool = False,
    one_euro: Optional[Dict[str, float]] = None,
    focal: Optional[Sequence[float]] = None,
    max_html_frames: int = 300,
    progress: Optional[Callable[[int, int, float], None]] = None,
    skeleton: Skeleton = INTERHAND,
) -> Dict[str, Any]:
    """Predict both hands in every ``every``-th frame of the video at ``path`` (up to ``max_frames``) and write to
    ``out_dir``: ``{stem}_overlay.mp4`` (or .gif), ``{stem}_player.html``, ``{stem}_pred.npz`` and ``{stem}.json``.

    predictor: an ``internet.infer.predictor.Predictor``; bbox: the hand box [x, y, w, h] of the first frame; follow:
    carry the box along with the predicted hands (:class:`BoxFollower` with ``momentum`` and ``adapt_size``), else keep
    it fixed; one_euro: {'min_cutoff', 'beta'} to smooth the predicted joints over time (None: raw); focal: [fx, fy] if
    known; progress(done, total, seconds): called after each frame (total is the container's frame count / every,
    capped by max_frames; it may be approximate).
    Returns the paths, ``frames`` (predicted), ``fps`` and the per-frame arrays ``joint_img`` (N, 42, 2),
    ``joint_cam_rel`` (N, 42, 3), ``hand_type`` (N, 2), ``bbox`` (N, 4), ``frame`` (N,), and ``player`` (the figure)
    with ``player_png`` (its static picture) for :func:`internet.vis.player.show_player`.
    """
    check_stride(every, max_frames)  # before any division by every or a read of the video
    info = video_info(path)
    fps, total = info["fps"] / every, _frame_total(info["frames"], every, max_frames)
    check_box(bbox, info["width"], info["height"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    follower: Optional[BoxFollower] = None
    filt_img = OneEuroFilter(fps, **one_euro) if one_euro else None
    filt_cam = OneEuroFilter(fps, **one_euro) if one_euro else None
    record: Dict[str, list] = {"joint_img": [], "joint_cam_rel": [], "hand_type": [], "bbox": [], "frame": []}
    t0 = time.perf_counter()

    def overlays() -> Iterator[np.ndarray]:
        nonlocal follower
        for k, img in iter_frames(path, every, max_frames):
            if follower is None:
                follower = BoxFollower(bbox, img.shape[1], img.shape[0], momentum, adapt_size)
            box = follower.box.copy()
            r = predictor.predict(img, box, focal=focal)
            joint_img, joint_rel = r["joint_img"], r["joint_cam_rel"]
            if filt_img is not None:
                joint_img, joint_rel = filt_img(joint_img), filt_cam(joint_rel)
            shown = [h for h, p in zip(("right", "left"), r["hands_present"]) if p] or ["right", "left"]
            canvas = draw_bbox(img, box, label="box")
            canvas = draw_skeleton_2d(canvas, joint_img, hands=shown)
            row = dict(joint_img=joint_img, joint_cam_rel=joint_rel, hand_type=r["hand_type"], bbox=box, frame=k)
            for key, value in row.items():
                record[key].append(np.asarray(value, dtype=np.float32 if key != "frame" else np.int64))
            if follow:
                follower.update(r["joint_img"], r["hands_present"], skeleton)
            if progress is not None:
                progress(len(record["frame"]), total, time.perf_counter() - t0)
            yield canvas

    video = _write_overlays(overlays(), out_dir / f"{stem}_overlay.mp4", fps, path)
    arrays = {k: np.stack(v) for k, v in record.items()}
    npz = _write_npz(out_dir / f"{stem}_pred.npz", arrays)
    n = len(arrays["frame"])
    pick = np.unique(np.linspace(0, n - 1, min(n, max_html_frames)).round().astype(int))
    frames = player_frames(path, arrays, pick, every, max_frames, info["fps"])
    player = player_figure(frames, fps * n / max(len(pick), 1), skeleton=skeleton)
    html = save_player_html(player, out_dir / f"{stem}_player.html")
    summary = dict(video=str(path), bbox_first=[float(v) for v in bbox], follow=follow, every=every, frames=n,
                   box_growth_bounded=follower.bounded if follower is not None else 0, fps=fps,
                   one_euro=one_euro, overlay=str(video["path"]), overlay_format=video["format"], html=str(html),
                   npz=str(npz), seconds=round(time.perf_counter() - t0, 2))  # fmt: skip
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(summary, indent=1))
    picture = player_png(frames, 0, skeleton=skeleton)
    return {**summary, "overlay": video["path"], "html": html, "npz": npz, "player": player, "player_png": picture,
            **arrays}  # fmt: skip


def _write_npz(path: Path, arrays: Dict[str, np.ndarray]) -> Path:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _frame_total(frames: int, every: int, max_frames: Optional[int]) -> int:
    """Frames a run will predict as far as the container says (0: unknown), capped by ``max_frames``."""
    total = (frames + every - 1) // every if frames > 0 else 0
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    return total


def _write_overlays(frames: Iterator[np.ndarray], out: Path, fps: float, source: Union[str, Path]) -> Dict[str, Any]:
    try:
        return write_video(frames, out, fps)
    except ValueError as e:
        if "no frames" in str(e):
            raise ValueError(f"{source}: no frame could be read") from None
        raise


def player_frames(
    path: Union[str, Path],
    arrays: Dict[str, np.ndarray],
    pick: np.ndarray,
    every: int,
    max_frames: Optional[int],
    video_fps: float,
    max_side: int = 360,
) -> list:
    """The player's frames (``internet.vis.player``) of the predicted frames ``pick`` (indices into ``arrays`` of
    :func:`predict_video`): the video read again, each picked frame scaled to ``max_side`` with its predicted 2D
    joints scaled alike, the root-relative 3D joints, the hands predicted present."""
    want = {int(arrays["frame"][i]): int(i) for i in pick}
    frames = []
    for k, img in iter_frames(path, every, max_frames):
        i = want.get(k)
        if i is None:
            continue
        scale = min(1.0, max_side / max(img.shape[:2]))
        if scale < 1.0:
            size = (max(1, int(round(img.shape[1] * scale))), max(1, int(round(img.shape[0] * scale))))
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        present = arrays["hand_type"][i] > 0.5
        frames.append(
            {
                "img": img,
                "pred_img": arrays["joint_img"][i].astype(np.float64) * scale,
                "pred_cam": arrays["joint_cam_rel"][i].astype(np.float64),
                "pred_valid": np.repeat(present, 21) if present.any() else np.ones(42, dtype=bool),
                "label": str(k),
                "title": f"frame {k} (t = {k / video_fps:.2f} s)",
            }
        )
    return frames


class ProgressPrinter:
    """``progress(done, total, seconds)`` that prints a line every ``every`` frames (and at the end)."""

    def __init__(self, every: int = 25) -> None:
        self.every = max(1, int(every))

    def __call__(self, done: int, total: int, seconds: float) -> None:
        if done % self.every == 0 or done == total:
            rate = done / seconds if seconds > 0 else float("nan")
            of = f"/{total}" if total else ""
            print(f"frame {done}{of}  {rate:.1f} frames/s", flush=True)


def video_from_sequence(
    seqs: Any, key: Any, path: Union[str, Path], fps: Optional[float] = None
) -> Tuple[Path, np.ndarray]:
    """Write one camera's view of a sequence (``internet.data.sequences.SequenceIndex`` and ``SequenceKey``) as a video
    (a stand-in for your own, with known ground truth); returns (the path written, the annotated box of its first
    frame). MP4, or GIF where OpenCV has no encoder."""
    rows = seqs.rows(key.capture, key.seq_name, key.camera)
    written = write_video((seqs.load_image(int(r)) for r in rows), path, fps or seqs.fps)
    return Path(written["path"]), np.asarray(seqs.frame(int(rows[0]))["bbox"], dtype=np.float64)


def suggested_box(width: int, height: int) -> list:
    """A starting hand box for a video without one: the centre half of the frame, [x, y, w, h] in whole pixels."""
    return [int(width // 4), int(height // 4), int(width // 2), int(height // 2)]


def box_prompt_png(img: np.ndarray, box: Sequence[float], step: int = 50) -> bytes:
    """PNG of ``img`` with a pixel grid every ``step`` px (labelled) and ``box`` drawn: what to read a box from."""
    out = img.copy()
    h, w = out.shape[:2]
    for x in range(0, w, step):
        cv2.line(out, (x, 0), (x, h - 1), (255, 255, 255), 1)
        cv2.putText(out, str(x), (x + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 0), 1, cv2.LINE_AA)
    for y in range(0, h, step):
        cv2.line(out, (0, y), (w - 1, y), (255, 255, 255), 1)
        cv2.putText(out, str(y), (2, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 0), 1, cv2.LINE_AA)
    out = cv2.addWeighted(out, 0.35, img, 0.65, 0.0)
    out = draw_bbox(out, box, label="suggested box")
    return cv2.imencode(".png", out[:, :, ::-1])[1].tobytes()
