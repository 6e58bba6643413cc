"""Writing frames as a video: MP4 through OpenCV, an animated GIF where no encoder works; and joining images side
by side. Files appear complete or not at all (temporary name, then rename; ``internet.utils.atomic``)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Union

import cv2
import numpy as np

from internet.utils.atomic import atomic_write_bytes
from internet.vis.overlay import check_image


def write_video(
    frames: Iterable[np.ndarray], path: Union[str, Path], fps: float, gif_max_side: int = 360
) -> Dict[str, Any]:
    """Write RGB uint8 frames (all the same size) as an MP4 (OpenCV's 'mp4v'); where OpenCV has no working MP4
    encoder, as an animated GIF beside it (``path`` with suffix .gif, frames scaled to ``gif_max_side``). Frames are
    consumed one at a time (the MP4 path holds none of them). Returns ``{"path", "format", "frames", "size"}``; the
    file appears complete or not at all (written to a temporary name, then renamed)."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    it = iter(frames)
    try:
        first = check_image(np.asarray(next(it)), "frames[0]")
    except StopIteration:
        raise ValueError("write_video got no frames") from None
    h, w = first.shape[:2]
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix or '.mp4'}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    count = 0
    if writer.isOpened():
        try:
            frame = first
            while True:
                if frame.shape[:2] != (h, w):
                    raise ValueError(f"frame {count} has size {frame.shape[1]}x{frame.shape[0]}, expected {w}x{h}")
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                count += 1
                try:
                    frame = check_image(np.asarray(next(it)), f"frames[{count}]")
                except StopIteration:
                    break
        except BaseException:
            writer.release()
            tmp.unlink(missing_ok=True)
            raise
        writer.release()
        if tmp.is_file() and tmp.stat().st_size > 0:
            tmp.replace(path)
            return {"path": path, "format": "mp4", "frames": count, "size": (w, h)}
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"OpenCV wrote no data to {tmp}")
    writer.release()
    tmp.unlink(missing_ok=True)
    return _write_gif(first, it, path.with_suffix(".gif"), fps, gif_max_side)


def _write_gif(first: np.ndarray, rest: Iterable[np.ndarray], path: Path, fps: float, max_side: int) -> Dict[str, Any]:
    """GIF fallback (Pillow): frames are scaled down and palettised one at a time (a GIF needs them all at the end,
    so they are kept small)."""
    from PIL import Image

    scale = min(1.0, max_side / max(first.shape[:2]))

    def small(img: np.ndarray) -> "Image.Image":
        if scale < 1.0:
            img = cv2.resize(
                img,
                (max(1, int(img.shape[1] * scale)), max(1, int(img.shape[0] * scale))),
                interpolation=cv2.INTER_AREA,
            )
        return Image.fromarray(np.ascontiguousarray(img)).convert("P", palette=Image.Palette.ADAPTIVE)

    images = [small(first)] + [small(check_image(np.asarray(f))) for f in rest]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)

    atomic_write_bytes(path, buf.getvalue())
    return {"path": path, "format": "gif", "frames": len(images), "size": images[0].size}


def side_by_side(*images: np.ndarray, height: Optional[int] = None, gap: int = 4) -> np.ndarray:
    """RGB images scaled to one height (default the first's) and joined left to right with a white gap."""
    height = int(height or images[0].shape[0])
    tiles = []
    for img in images:
        img = check_image(np.asarray(img))
        w = max(1, int(round(img.shape[1] * height / img.shape[0])))
        tiles.append(cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA) if img.shape[0] != height else img)
        tiles.append(np.full((height, gap, 3), 255, dtype=np.uint8))
    return np.concatenate(tiles[:-1], axis=1)
