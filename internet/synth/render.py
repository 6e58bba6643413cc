"""Fast 2D rendering of posed hands with numpy + OpenCV (no 3D renderer).

A hand is drawn from its 21 joints alone (InterHand2.6M order, camera coordinates in mm), so any data set's joints can
be rendered after reordering them: tapered capsules for the finger segments, a capsule for the thenar (wrist ->
thumb1), a thick filled polygon for the palm, nails on the fingertips whose back faces the camera, and the forearm
(bare or in a sleeve). The palm and the palmar side of the fingers are lighter than the back of the hand, so the
side facing the camera shows, and with it the hand's chirality. Each piece gets one Lambert shade (plus a narrower
highlight strip towards the light for the capsules), and all pieces of both hands are painted far-to-near by their
mean depth, so fingers and hands occlude each other as seen from the camera. Backgrounds imitate the real studio: a
black dome with bright LEDs, the subject's torso (plain, striped or plaid shirt) and head, a little rig clutter;
colour or monochrome cameras, mild blur and noise.

Everything is deterministic given the numpy Generator passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel accurate drawing
_ONE = float(1 << _SHIFT)
_AMBIENT, _DIFFUSE = 0.55, 0.55
DEFAULT_LIGHT = np.array([-0.3, -0.55, -0.78]) / np.linalg.norm([-0.3, -0.55, -0.78])
"""Towards the light, camera frame (x right, y down, z forward): upper left, in front of the hand."""

# Radius (mm, for a palm length of 85 mm) at each digit's base, middle joints and tip: thumb, index..pinky.
_RADII_MM = np.array(
    [
        [12.0, 10.5, 9.5, 8.5],
        [9.5, 8.6, 7.8, 7.0],
        [10.0, 9.0, 8.0, 7.2],
        [9.3, 8.4, 7.6, 6.9],
        [8.3, 7.4, 6.8, 6.2],
    ]
)
SKIN_TONES_RGB = np.array(
    [
        [255, 224, 196],
        [241, 194, 160],
        [224, 172, 135],
        [198, 140, 100],
        [161, 110, 75],
        [120, 78, 52],
        [92, 58, 38],
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class HandStyle:
    """How a subject's hands look: BGR colours in 0-255 of the back of the hand (``skin``), the palm, the nails and
    the sleeve (None: bare forearm), the fraction of the forearm left bare, and a finger thickness factor."""

    skin: Tuple[float, float, float]
    palm: Tuple[float, float, float]
    nail: Tuple[float, float, float]
    sleeve: Optional[Tuple[float, float, float]] = None
    sleeve_start: float = 0.5
    thickness: float = 1.0


def sample_style(rng: np.random.Generator) -> HandStyle:
    """A random subject look: a skin tone between the palette's neighbours, a lighter, pinker palm (the darker the
    skin, the larger the difference), pale nails, and a sleeve half of the time."""
    k = rng.uniform(0, len(SKIN_TONES_RGB) - 1)
    i = int(k)
    rgb = SKIN_TONES_RGB[i] * (1 - (k - i)) + SKIN_TONES_RGB[min(i + 1, len(SKIN_TONES_RGB) - 1)] * (k - i)
    rgb = np.clip(rgb * rng.uniform(0.9, 1.05) + rng.normal(0, 6, 3), 0, 255)
    skin = rgb[::-1]
    # Palms (and the palmar side of the fingers) carry less melanin: much lighter than the back on dark skin, a
    # little lighter and pinker on light skin. This side cue is also what lets a network tell a left hand from a
    # right one seen from the other side (their silhouettes are mirror images).
    palm = np.clip(skin + (255.0 - skin) * 0.3 + np.array([0.0, 4.0, 14.0]), 0, 255)
    nail = np.clip(skin * 0.5 + np.array([200.0, 205.0, 225.0]) * 0.5, 0, 255)
    sleeve = None
    if rng.random() < 0.5:
        sleeve = tuple(float(v) for v in rng.uniform(10, 150, size=3) * rng.uniform(0.3, 1.0))
    return HandStyle(
        tuple(map(float, skin)),
        tuple(map(float, palm)),
        tuple(map(float, nail)),
        sleeve,
        float(rng.uniform(0.15, 0.9)),
        float(rng.uniform(0.92, 1.1)),
    )


# ============================================================================================== primitives
def _fx(p: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(p) * _ONE).astype(np.int32)


def _capsule(img: np.ndarray, p0, p1, r0: float, r1: float, color) -> None:
    """A tapered capsule: two discs joined by their (approximate) common tangents. Scalar math: this is the
    innermost drawing call."""
    x0, y0, x1, y1 = float(p0[0]), float(p0[1]), float(p1[0]), float(p1[1])
    dx, dy = x1 - x0, y1 - y0
    length = math.hypot(dx, dy)
    if length > 1e-3:
        nx, ny = -dy / length, dx / length
        quad = (
            np.array(
                [
                    [x0 + nx * r0, y0 + ny * r0],
                    [x1 + nx * r1, y1 + ny * r1],
                    [x1 - nx * r1, y1 - ny * r1],
                    [x0 - nx * r0, y0 - ny * r0],
                ]
            )
            * _ONE
        )
        cv2.fillConvexPoly(img, np.round(quad).astype(np.int32), color, cv2.LINE_AA, _SHIFT)
    cv2.circle(img, (round(x0 * _ONE), round(y0 * _ONE)), max(round(r0 * _ONE), 1), color, -1, cv2.LINE_AA, _SHIFT)
    cv2.circle(img, (round(x1 * _ONE), round(y1 * _ONE)), max(round(r1 * _ONE), 1), color, -1, cv2.LINE_AA, _SHIFT)


def _color(rgb: np.ndarray, k: float) -> Tuple[float, float, float]:
    c = np.clip(np.asarray(rgb) * k, 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _project(points: np.ndarray, focal, princpt) -> np.ndarray:
    z = np.maximum(points[..., 2], 1e-3)
    return np.stack([points[..., 0] / z * focal[0] + princpt[0], points[..., 1] / z * focal[1] + princpt[1]], -1)


def _hand_primitives(
    J: np.ndarray, is_left: bool, style: HandStyle, focal, princpt, light: np.ndarray, elbow: Optional[np.ndarray]
) -> list:
    """Primitives (depth, draw function) of one hand from its 21 camera-frame joints (InterHand order)."""
    prims = []
    f = float(focal[0])
    wrist = J[20]
    along = J[11] - wrist
    size = float(np.linalg.norm(along))
    if not np.isfinite(size) or size < 1e-3 or np.any(J[:, 2] < 10.0):
        return prims  # degenerate or behind the camera: nothing sensible to draw
    along = along / size
    lat = J[7] - J[19]
    lat = _unit(lat - (lat @ along) * along)  # towards the thumb side
    sign = -1.0 if is_left else 1.0
    palm_n = sign * np.cross(lat, along)  # out of the palm
    scale = size / 85.0 * style.thickness
    skin, palm_col, nail_col = np.array(style.skin), np.array(style.palm), np.array(style.nail)
    l2 = light[:2]

    def shade(normal):
        return _AMBIENT + _DIFFUSE * max(float(normal @ light), 0.0)

    def back_normal(direction):
        """Unit normal out of the back of a finger segment pointing along ``direction`` (unit)."""
        return _unit(sign * np.cross(direction, lat))

    def side_color(a3, b3):
        """Back-of-hand colour when the segment's back faces the camera, palm colour when its front does, blended
        over the edge-on views."""
        facing = float(back_normal(_unit(b3 - a3)) @ _unit(-(a3 + b3) / 2))
        t = float(np.clip(0.5 - 2.0 * facing, 0.0, 1.0))
        return skin * (1.0 - t) + palm_col * t

    def capsule_prim(a3, b3, ra_mm, rb_mm, col):
        mid = (a3 + b3) / 2
        d = _unit(b3 - a3)
        v = _unit(-mid)
        n = _unit(v - (v @ d) * d)
        k = shade(n)
        pa, pb = _project(np.stack([a3, b3]), focal, princpt)
        ra, rb = f * ra_mm / a3[2], f * rb_mm / b3[2]
        d2 = pb - pa
        n2 = np.array([-d2[1], d2[0]]) / max(float(np.hypot(*d2)), 1e-6)
        off = n2 * float(n2 @ l2) * 0.3  # highlight strip shifted towards the light
        base, hi = _color(col, k * 0.84), _color(col, min(k * 1.02 + 0.04, 1.5))

        def draw(img):
            _capsule(img, pa, pb, ra, rb, base)
            _capsule(img, pa + off * ra, pb + off * rb, ra * 0.55, rb * 0.55, hi)

        return float(mid[2]), draw

    # Fingers and thumb: segments base -> j2 -> j3 -> tip (joint ids 4d+3, 4d+2, 4d+1, 4d).
    radii = _RADII_MM * scale
    for d in range(5):
        ids = [4 * d + 3, 4 * d + 2, 4 * d + 1, 4 * d]
        for s in range(3):
            a3, b3 = J[ids[s]], J[ids[s + 1]]
            prims.append(capsule_prim(a3, b3, radii[d, s], radii[d, s + 1], side_color(a3, b3)))
        # Nail: on the back of the last segment, when that side faces the camera.
        tip, dip = J[ids[3]], J[ids[2]]
        seg = tip - dip
        seg_len = float(np.linalg.norm(seg))
        dvec = seg / max(seg_len, 1e-6)
        nail_n = back_normal(dvec)
        view = _unit(-tip)
        facing = float(nail_n @ view)
        if facing > 0.25 and seg_len > 1e-3:
            c3 = tip - dvec * 0.42 * seg_len + nail_n * 0.55 * radii[d, 3]
            c2 = _project(c3, focal, princpt)
            t2 = _project(c3 + dvec * 5.0, focal, princpt) - c2
            ang = float(np.degrees(np.arctan2(t2[1], t2[0])))
            fore = np.sqrt(max(1.0 - float(dvec @ view) ** 2, 0.05))
            ax_len = f * 0.3 * seg_len * fore / c3[2]
            ax_wid = f * 0.62 * radii[d, 3] * facing / c3[2]
            col = _color(nail_col, shade(nail_n) * 1.05)
            depth = float((tip[2] + dip[2]) / 2) - 1e-3

            def draw_nail(img, c2=c2, ax=(ax_len, ax_wid), ang=ang, col=col):
                cv2.ellipse(
                    img,
                    tuple(_fx(c2)),
                    (max(int(ax[0] * _ONE), 1), max(int(ax[1] * _ONE), 1)),
                    ang,
                    0,
                    360,
                    col,
                    -1,
                    cv2.LINE_AA,
                    _SHIFT,
                )

            prims.append((depth, draw_nail))
    # Thenar (wrist -> thumb1) and palm.
    thenar0 = wrist + lat * 8.0 * scale
    prims.append(capsule_prim(thenar0, J[3], 15.0 * scale, radii[0, 0], side_color(thenar0, J[3])))
    corners = np.stack([wrist - lat * 23.0 * scale, wrist + lat * 19.0 * scale, J[3], J[7], J[11], J[15], J[19]])
    view_c = _unit(-corners.mean(0))
    palm_visible = float(palm_n @ view_c) > 0
    normal = palm_n if palm_visible else -palm_n
    pcol = _color(palm_col if palm_visible else skin, shade(normal) * 0.95)
    poly = _project(corners, focal, princpt)
    thick = max(int(round(2 * f * 9.0 * scale / float(corners[:, 2].mean()))), 1)

    def draw_palm(img, poly=poly, pcol=pcol, thick=thick):
        pts = _fx(poly).reshape(-1, 1, 2)
        cv2.fillPoly(img, [pts], pcol, cv2.LINE_AA, _SHIFT)
        cv2.polylines(img, [pts], True, pcol, thick, cv2.LINE_AA, _SHIFT)

    prims.append((float(corners[:, 2].mean()), draw_palm))
    # Forearm: bare from the wrist, then the sleeve.
    if elbow is not None and np.all(np.isfinite(elbow)) and elbow[2] > 10.0:
        r_w, r_e = 24.0 * scale, 36.0 * scale
        cut = style.sleeve_start if style.sleeve is not None else 1.0
        mid3 = wrist + (elbow - wrist) * cut
        r_mid = r_w + (r_e - r_w) * cut
        prims.append(capsule_prim(wrist, mid3, r_w, r_mid, skin))
        if style.sleeve is not None:
            prims.append(capsule_prim(mid3, elbow, r_mid * 1.12, r_e * 1.12, np.array(style.sleeve)))
    return prims


def render_hands(
    image: np.ndarray,
    joint_cam: np.ndarray,
    focal: Sequence[float],
    princpt: Sequence[float],
    hands: Sequence[bool] = (True, True),
    styles: Optional[Sequence[HandStyle]] = None,
    light: Optional[np.ndarray] = None,
    elbow_cam: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Draw hands onto ``image`` (H, W, 3) uint8 BGR, in place, and return it.

    ``joint_cam`` (42, 3): camera-frame joints in mm, InterHand2.6M order (right 0-20, left 21-41); ``hands``:
    which of [right, left] to draw; ``styles``: one :class:`HandStyle` per hand (default: a neutral skin);
    ``light``: unit vector towards the light in camera coordinates; ``elbow_cam`` (2, 3): elbow positions (mm) to
    draw forearms, or None. Pieces of both hands are painted far to near.
    """
    joint_cam = np.asarray(joint_cam, dtype=np.float64)
    if joint_cam.shape != (42, 3):
        raise ValueError(f"joint_cam must be (42, 3), got {joint_cam.shape}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if styles is None:
        styles = (HandStyle((150.0, 172.0, 224.0), (160.0, 180.0, 235.0), (200.0, 205.0, 230.0)),) * 2
    light = DEFAULT_LIGHT if light is None else _unit(np.asarray(light, dtype=np.float64))
    prims = []
    for h in (0, 1):
        if hands[h]:
            elbow = None if elbow_cam is None else np.asarray(elbow_cam[h], dtype=np.float64)
            prims += _hand_primitives(joint_cam[21 * h : 21 * h + 21], h == 1, styles[h], focal, princpt, light, elbow)
    prims.sort(key=lambda p: -p[0])
    for _, draw in prims:
        draw(image)
    return image


# ============================================================================================== backgrounds
@lru_cache(maxsize=4)
def _glare_sprite(radius: int) -> np.ndarray:
    """A bright LED: a saturated core, a soft halo and four thin spikes, as float32 (2r+1, 2r+1) in [0, 1]."""
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float32)
    rr = np.sqrt(xx**2 + yy**2)
    core = np.clip(1.8 - rr / (radius * 0.28), 0, 1)
    halo = 0.35 * np.exp(-((rr / (radius * 0.35)) ** 2))
    spikes = 0.5 * np.exp(-(np.minimum(np.abs(xx), np.abs(yy)) ** 2) / 0.6) * np.exp(-rr / (radius * 0.45))
    diag = 0.25 * np.exp(-(np.minimum(np.abs(xx - yy), np.abs(xx + yy)) ** 2) / 0.8) * np.exp(-rr / (radius * 0.3))
    return np.clip(core + halo + spikes + diag, 0, 1)


def render_background(camera, backdrop, skin_bgr: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """The static view of one camera without the hands (H, W, 3) uint8: dark studio, LEDs of the dome, the subject's
    torso (with its shirt pattern) and head, some rig clutter."""
    H, W = int(camera.height), int(camera.width)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    level = rng.uniform(2.0, 10.0)
    grad = level + rng.uniform(-5, 5) * (xx / W - 0.5) + rng.uniform(-5, 5) * (yy / H - 0.5)
    low = cv2.resize(
        rng.normal(0.0, rng.uniform(1.0, 3.5), size=(5, 4)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC
    )
    tint = rng.uniform(0.8, 1.2, size=3).astype(np.float32)
    img = np.clip((grad + low)[..., None] * tint, 0, 255).astype(np.float32)
    R, T = camera.camrot, camera.campos
    focal, princpt = camera.focal, camera.princpt

    def to_cam(p):
        return (np.asarray(p) - T) @ R.T

    # LEDs of the dome (behind the subject, as seen from the cameras).
    lc = to_cam(backdrop.lights)
    front = lc[:, 2] > 100.0
    uv = _project(lc[front], focal, princpt)
    for (u, v), z in zip(uv, lc[front, 2]):
        r = int(np.clip(16000.0 / z * rng.uniform(0.8, 1.3), 5, 14))
        if -r <= u < W + r and -r <= v < H + r:
            sprite = _glare_sprite(r) * rng.uniform(150, 255)
            x0, y0 = int(round(u)) - r, int(round(v)) - r
            xs, ys = max(x0, 0), max(y0, 0)
            xe, ye = min(x0 + 2 * r + 1, W), min(y0 + 2 * r + 1, H)
            if xe > xs and ye > ys:
                patch = sprite[ys - y0 : ye - y0, xs - x0 : xe - x0, None] * rng.uniform(0.85, 1.0, size=3)
                img[ys:ye, xs:xe] = np.maximum(img[ys:ye, xs:xe], patch)
    # Rig clutter: thin dark-grey bars (camera mounts, cables).
    for _ in range(int(rng.integers(0, 4))):
        p = rng.uniform([0, 0], [W, H], size=(2, 2))
        cv2.line(
            img,
            tuple(_fx(p[0])),
            tuple(_fx(p[1])),
            (float(rng.uniform(10, 35)),) * 3,
            int(rng.integers(1, 5)),
            cv2.LINE_AA,
            _SHIFT,
        )
    # Torso and head of the subject.
    tc = to_cam(backdrop.torso)
    if np.all(tc[:, 2] > 100.0):
        poly = _project(tc, focal, princpt)
        mask = np.zeros((H, W), np.uint8)
        cv2.fillPoly(mask, [_fx(poly).reshape(-1, 1, 2)], 255, cv2.LINE_AA, _SHIFT)
        normal = _unit(np.cross(tc[1] - tc[0], tc[3] - tc[0]))
        k = 0.45 + 0.4 * abs(float(normal @ DEFAULT_LIGHT))
        cloth = np.empty((H, W, 3), np.float32)
        cloth[:] = np.array(backdrop.shirt, np.float32) * k
        if backdrop.pattern != "plain":
            period = backdrop.pattern_period * focal[0] / float(tc[:, 2].mean())
            ang = rng.uniform(-0.2, 0.2)
            a = (xx * np.cos(ang) + yy * np.sin(ang)) / period
            stripes = (a - np.floor(a)) < 0.3
            if backdrop.pattern == "plaid":
                b = (-xx * np.sin(ang) + yy * np.cos(ang)) / period
                stripes |= (b - np.floor(b)) < 0.3
            cloth[stripes] = np.array(backdrop.shirt2, np.float32) * k
        alpha = (mask.astype(np.float32) / 255.0)[..., None]
        img = img * (1 - alpha) + cloth * alpha
    hc = to_cam(backdrop.head_centre[None])[0]
    if hc[2] > 200.0:
        c = _project(hc, focal, princpt)
        r = focal[0] * backdrop.head_radius / hc[2]
        cv2.circle(img, tuple(_fx(c)), max(int(r * _ONE), 1), _color(np.array(skin_bgr), 0.6), -1, cv2.LINE_AA, _SHIFT)
        cv2.ellipse(
            img,
            tuple(_fx(c - [0, 0.25 * r])),
            (int(r * 1.02 * _ONE), int(r * 0.8 * _ONE)),
            0,
            180,
            360,
            (12.0, 14.0, 18.0),
            -1,
            cv2.LINE_AA,
            _SHIFT,
        )
    return np.clip(img, 0, 255).astype(np.uint8)


# ============================================================================================== finishing
@lru_cache(maxsize=1)
def _noise_field() -> np.ndarray:
    """A fixed field of Gaussian noise around 128 (sd 16) as uint8; images take a random window of it (much cheaper
    than fresh noise) and scale it."""
    noise = np.random.default_rng(12345).normal(128.0, 16.0, size=(640, 640, 3))
    return np.clip(np.round(noise), 0, 255).astype(np.uint8)


def finish_image(
    img: np.ndarray, rng: np.random.Generator, grey: bool, gains: Sequence[float] = (1.0, 1.0, 1.0)
) -> np.ndarray:
    """Camera effects: exposure and white balance, slight blur, sensor noise; monochrome cameras give a grey image
    with three equal channels. uint8 in, uint8 out (OpenCV's saturating arithmetic, no float copies)."""
    H, W = img.shape[:2]
    gain = np.asarray(gains, np.float64) * rng.uniform(0.9, 1.1)
    lut = np.clip(np.arange(256)[:, None] * gain[None, :], 0, 255).astype(np.uint8).reshape(256, 1, 3)
    out = cv2.LUT(img, lut)
    out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.45, 1.0)))
    field = _noise_field()
    oy, ox = int(rng.integers(0, field.shape[0] - H + 1)), int(rng.integers(0, field.shape[1] - W + 1))
    k = float(rng.uniform(1.0, 3.0)) / 16.0  # noise sd 1-3 grey levels
    out = cv2.addWeighted(out, 1.0, field[oy : oy + H, ox : ox + W], k, -128.0 * k)
    if grey:
        g = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
        out = cv2.merge([g, g, g])
    return out


def encode_image(img: np.ndarray, image_format: str = "jpg", jpeg_quality: int = 92) -> bytes:
    """Encode to JPEG (baseline, like the release) or PNG bytes."""
    if image_format == "jpg":
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    elif image_format == "png":
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {img.shape} image as {image_format}")
    return buf.tobytes()
