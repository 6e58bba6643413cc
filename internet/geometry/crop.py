"""Hand boxes and the affine crop transform, as the official InterNet code defines them (pixels)."""

from __future__ import annotations

from typing import Any, Sequence, Tuple

import cv2
import numpy as np

# ----------------------------------------------------------------------------------------------------- boxes
MIN_BOX_SIDE = 1.0
"""Smallest hand-box side in pixels. Below it the crop magnifies hundreds of times and collapses: every joint of the
hand lands on one heatmap cell and would still count as a valid target."""
MAX_BOX_SCALE = 10.0
"""Largest hand-box side as a multiple of the image's longer side; beyond it the box is a mistake, and at float32's
range the crop transform collapses to a point."""


def invalid_boxes(bbox: np.ndarray, width: Any, height: Any) -> np.ndarray:
    """(N,) bool: which [x, y, w, h] boxes of ``bbox`` (N, 4) cannot be cropped from their width x height images
    (scalars or (N,)): not finite (in float32, the crop's type), a side under :data:`MIN_BOX_SIDE` px or over
    :data:`MAX_BOX_SCALE` times the image's longer side, or no overlap with the image. The one box rule of the data
    sets and of :class:`internet.infer.predictor.Predictor`; :func:`box_fault` says what is wrong with one."""
    b = np.asarray(bbox)
    b = (b if b.dtype == np.float32 else b.astype(np.float64)).reshape(-1, 4)  # a float32 column stays float32
    x, y, w, h = np.array(b.T, order="C")  # a copy (written below); numpy is slow along rows of 4: use columns
    # No separate finiteness test: NaN fails every comparison, and a value that is inf in float32 (beyond 3.4e38)
    # fails the size limit or the overlap test.
    with np.errstate(invalid="ignore", over="ignore"):
        ok = np.minimum(w, h) >= MIN_BOX_SIDE
        longest_side = np.maximum(w, h)
        longest_side *= 1.0 / MAX_BOX_SCALE  # in place, in the boxes' type (no float64 temporaries)
        ok &= longest_side <= np.maximum(width, height)
        ok &= x < width
        ok &= y < height
        x += w  # the copies' right and bottom edges
        y += h
        ok &= x > 0
        ok &= y > 0
    return ~ok


def box_fault(box: Sequence[float], width: float, height: float) -> str:
    """Why one [x, y, w, h] box fails :func:`invalid_boxes` ('' when it does not)."""
    b = np.asarray(box, dtype=np.float64).reshape(4)
    if not invalid_boxes(b, width, height)[0]:
        return ""
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.isfinite(b.astype(np.float32)).all()
    if not finite:
        return "is not four finite numbers (in float32)"
    if b[2] < MIN_BOX_SIDE or b[3] < MIN_BOX_SIDE:
        return f"has a side under {MIN_BOX_SIDE:g} px (width and height must be >= {MIN_BOX_SIDE:g})"
    if max(b[2], b[3]) > MAX_BOX_SCALE * max(width, height):
        return (
            f"has a side over {MAX_BOX_SCALE:g} times the longer side of the {width:g}x{height:g} (WxH) image "
            f"({MAX_BOX_SCALE * max(width, height):g} px)"
        )
    return f"lies entirely outside the {width:g}x{height:g} (WxH) image"


def as_box(bbox: Any, name: str = "bbox") -> np.ndarray:
    """``bbox`` as a float64 (4,) [x, y, w, h] of finite numbers, else ValueError naming ``name`` (the parsing step
    of :func:`check_box`, for a box given before its image is known, e.g. a notebook parameter)."""
    try:
        box = np.asarray(bbox, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        box = None
    if box is None or box.shape != (4,) or not np.isfinite(box).all():
        raise ValueError(f"{name}={bbox!r}: expected [x, y, w, h], four finite numbers in pixels")
    return box


def check_box(bbox: Any, width: int, height: int, name: str = "bbox") -> np.ndarray:
    """``bbox`` as a float64 [x, y, w, h] that :func:`invalid_boxes` accepts for a width x height image, else
    ValueError naming ``name``, the box and what is wrong."""
    box = as_box(bbox, name)
    fault = box_fault(box, width, height)
    if fault:
        raise ValueError(f"{name}={box.tolist()} {fault}")
    return box


BOX_SCALE = 1.25
"""Enlargement of the GT box (made to the input's aspect ratio) before cropping (official ``process_bbox``)."""


def process_bboxes(bbox: np.ndarray, aspect_ratio: float = 1.0) -> np.ndarray:
    """Official GT-box processing for (N, 4) or (4,) [x, y, w, h] boxes: keep the centre, widen the short side to
    ``aspect_ratio`` (w / h), multiply both sides by :data:`BOX_SCALE`. float32 steps as the official code (it works
    on float32 arrays in place); the input is not modified. The one implementation: the data sets, the Predictor and
    the synthetic RootNet files all use it."""
    b = np.asarray(bbox, dtype=np.float32)
    if b.shape == (4,):  # one box (a training sample): the same float32 steps on scalars, 3x cheaper
        x, y, w, h = b
        new_h = w / aspect_ratio if w > aspect_ratio * h else h
        new_w = h * aspect_ratio if w < aspect_ratio * h else w
        out_w, out_h = new_w * BOX_SCALE, new_h * BOX_SCALE
        return np.array([x + w / 2.0 - out_w / 2.0, y + h / 2.0 - out_h / 2.0, out_w, out_h], dtype=np.float32)
    w, h = b[..., 2], b[..., 3]
    c_x = b[..., 0] + w / 2.0
    c_y = b[..., 1] + h / 2.0
    wider = w > aspect_ratio * h
    taller = w < aspect_ratio * h
    new_h = np.where(wider, w / aspect_ratio, h)
    new_w = np.where(taller, h * aspect_ratio, w)
    out_w = new_w * BOX_SCALE
    out_h = new_h * BOX_SCALE
    return np.stack([c_x - out_w / 2.0, c_y - out_h / 2.0, out_w, out_h], axis=-1).astype(np.float32)


def tight_bbox(points_2d: np.ndarray, valid: np.ndarray, enlarge: float = 1.2) -> np.ndarray:
    """The released data's box rule: the tight box of the valid 2D points, enlarged ``enlarge`` times about its
    centre, as [x, y, w, h]."""
    pts = np.asarray(points_2d)[np.asarray(valid) > 0]
    if len(pts) == 0:
        raise ValueError("no valid joint to build a box from")
    x0, y0 = pts[:, 0].min(), pts[:, 1].min()
    x1, y1 = pts[:, 0].max(), pts[:, 1].max()
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * enlarge, (y1 - y0) * enlarge
    return np.array([cx - w / 2, cy - h / 2, w, h], dtype=np.float64)


# ----------------------------------------------------------------------------------------------------- affine crop
def _rotate_2d(pt: np.ndarray, rot_rad: float) -> np.ndarray:
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    return np.array([pt[0] * cs - pt[1] * sn, pt[0] * sn + pt[1] * cs], dtype=np.float32)


def gen_trans_from_patch_cv(
    c_x: float,
    c_y: float,
    src_width: float,
    src_height: float,
    dst_width: float,
    dst_height: float,
    scale: float,
    rot: float,
    inv: bool = False,
) -> np.ndarray:
    """The 2x3 affine that maps a (scaled, rotated by ``rot`` degrees) box centred at (c_x, c_y) onto a
    dst_width x dst_height patch; ``inv=True`` gives patch -> image. Three point correspondences, float32, as the
    official code computes them (so results match to float32 rounding)."""
    src, dst = _patch_triplets(c_x, c_y, src_width, src_height, dst_width, dst_height, scale, rot)
    trans = cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)
    return trans.astype(np.float32)


def _patch_triplets(
    c_x: float,
    c_y: float,
    src_width: float,
    src_height: float,
    dst_width: float,
    dst_height: float,
    scale: float,
    rot: float,
) -> Tuple[np.ndarray, np.ndarray]:
    """The three float32 point correspondences (image, patch) of ``gen_trans_from_patch_cv``: centre, centre + half
    the (scaled, rotated) height down, centre + half the width right."""
    src_w, src_h = src_width * scale, src_height * scale
    rot_rad = np.pi * rot / 180.0
    src_center = np.array([c_x, c_y], dtype=np.float32)
    src_down = _rotate_2d(np.array([0, src_h * 0.5], dtype=np.float32), rot_rad)
    src_right = _rotate_2d(np.array([src_w * 0.5, 0], dtype=np.float32), rot_rad)
    dst_center = np.array([dst_width * 0.5, dst_height * 0.5], dtype=np.float32)
    src = np.stack([src_center, src_center + src_down, src_center + src_right]).astype(np.float32)
    dst = np.stack(
        [
            dst_center,
            dst_center + np.array([0, dst_height * 0.5], dtype=np.float32),
            dst_center + np.array([dst_width * 0.5, 0], dtype=np.float32),
        ]
    ).astype(np.float32)
    return src, dst


def trans_points_2d(points: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to (N,2) points (or (...,2)); returns the same shape."""
    points = np.asarray(points)
    trans = np.asarray(trans)
    return points @ trans[:, :2].T + trans[:, 2]


def generate_patch_image(
    img: np.ndarray,
    bbox: Sequence[float],
    do_flip: bool,
    scale: float,
    rot: float,
    out_shape: Tuple[int, int],
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop ``bbox`` (x, y, w, h) from ``img`` (H,W,C, uint8 or float32) into an ``out_shape`` (h, w) patch with
    scale, rotation and an optional horizontal flip. Returns (float32 patch, trans, inv_trans); bilinear, zero border.
    A 3-channel patch is a view of a 4-channel buffer (pixel stride 16 bytes): the faster warp, see below.

    The official code flips and converts the whole image to float32 before one warp. Only the pixels under the patch
    matter, so this flips and converts just the source window the patch reads (its footprint plus a bilinear margin)
    and shifts the affine by the window's integer offset: the same source pixels are read with the same weights and
    border, so the patch is the official one up to the float rounding of the shifted map (at most a few hundredths of
    a grey level, tested), at a cost that follows the box, not the image."""
    img_height, img_width = img.shape[:2]
    c_x = float(bbox[0] + 0.5 * bbox[2])
    c_y = float(bbox[1] + 0.5 * bbox[3])
    w, h = float(bbox[2]), float(bbox[3])
    if do_flip:
        c_x = img_width - c_x - 1
    out_h, out_w = int(out_shape[0]), int(out_shape[1])
    src_pts, dst_pts = _patch_triplets(c_x, c_y, w, h, out_w, out_h, scale, rot)  # = gen_trans_from_patch_cv's
    trans = cv2.getAffineTransform(src_pts, dst_pts).astype(np.float32)
    inv_trans = cv2.getAffineTransform(dst_pts, src_pts).astype(np.float32)
    # warpAffine samples the source at inverse(trans) applied to each patch pixel; invert it as warpAffine does
    # (same double arithmetic), so shifting it by the window's integer offset moves every sample by that offset.
    sample_map = cv2.invertAffineTransform(trans.astype(np.float64))
    window = _source_window(sample_map, out_w, out_h, img_width, img_height)
    if window is None:  # the patch lies wholly outside the image: all border
        return np.zeros((out_h, out_w) + tuple(img.shape[2:]), np.float32), trans, inv_trans
    x0, y0, x1, y1 = window  # in the (flipped, when do_flip) image's columns
    src = img[y0:y1, img_width - x1 : img_width - x0] if do_flip else img[y0:y1, x0:x1]
    rgb = src.ndim == 3 and src.shape[2] == 3
    if rgb:
        # OpenCV's bilinear warp is vectorised for 1 and 4 channels but not 3: a padding channel halves its time and
        # leaves the three real channels bit-identical (each channel is interpolated on its own)
        src = cv2.cvtColor(src, cv2.COLOR_RGB2RGBA)
    if do_flip:
        # cv2.flip, then convert: numpy's conversion of a reversed (negative-stride) view is ~8x slower
        src = cv2.flip(src, 1)
    src = src.astype(np.float32)
    sample_map[0, 2] -= x0
    sample_map[1, 2] -= y0
    patch = cv2.warpAffine(src, sample_map, (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    return (patch[:, :, :3] if rgb else patch), trans, inv_trans


_WINDOW_MARGIN = 2
"""Pixels kept around the patch footprint: bilinear reads floor(x) and floor(x) + 1."""


def _source_window(sample_map: np.ndarray, out_w: int, out_h: int, img_width: int, img_height: int):
    """(x0, y0, x1, y1) integer bounds, clipped to the image, of the source pixels that bilinear sampling at
    ``sample_map`` (patch -> image, 2x3) can read for an (out_h, out_w) patch; None when they miss the image."""
    corners = np.array([[0, 0, 1], [out_w, 0, 1], [0, out_h, 1], [out_w, out_h, 1]], dtype=np.float64)
    src = corners @ np.asarray(sample_map, dtype=np.float64).T
    if not np.isfinite(src).all():
        return 0, 0, img_width, img_height
    x0 = max(0, int(np.floor(src[:, 0].min())) - _WINDOW_MARGIN)
    y0 = max(0, int(np.floor(src[:, 1].min())) - _WINDOW_MARGIN)
    x1 = min(img_width, int(np.ceil(src[:, 0].max())) + _WINDOW_MARGIN + 1)
    y1 = min(img_height, int(np.ceil(src[:, 1].max())) + _WINDOW_MARGIN + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1
