"""Continuous motion for the synthetic sequences: a random generator whose draws vary smoothly over frames.

The scene samplers (``scene.sample_single_frames``, ``scene.sample_two_hand_frames``) draw every random quantity of
``n`` frames as arrays whose first axis is the frame: palm targets, forearm roll, wrist flexion, finger angles, ...
Given :class:`SmoothMotionRng` instead of a ``numpy.random.Generator``, the same code produces one continuous motion:

- continuous draws (``normal``, ``uniform``) come from a stationary Gaussian process over the frames (white noise
  smoothed by a Gaussian kernel of ``smooth_frames`` frames and rescaled to unit variance), mapped to the requested
  marginal (``loc + scale * z``; ``low + (high - low) * Phi(z)``). Each frame's value therefore has exactly the
  distribution of the independent draw it replaces (the data set's pose statistics stay those of the independent
  frames), while consecutive frames differ little;
- discrete draws (``integers``, ``choice``, ``random``, which the samplers compare with a threshold) are drawn once per
  sequence and repeated over the frames, so a sequence keeps its pose family, its touching hand, its crossing side.

Every pose is a continuous function of these draws, so the joints move continuously.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np

Size = Union[int, Sequence[int], None]
_erf = np.frompyfunc(math.erf, 1, 1)


def normal_cdf(z: np.ndarray) -> np.ndarray:
    """Phi(z), the standard normal distribution function, elementwise."""
    return 0.5 * (1.0 + _erf(np.asarray(z, dtype=np.float64) / math.sqrt(2.0)).astype(np.float64))


def smooth_kernel(smooth_frames: float) -> np.ndarray:
    """Gaussian kernel of standard deviation ``smooth_frames`` (frames), unit L2 norm (unit-variance output)."""
    half = max(1, int(math.ceil(3.0 * smooth_frames)))
    t = np.arange(-half, half + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / smooth_frames) ** 2)
    return k / np.sqrt(np.sum(k**2))


class SmoothMotionRng:
    """Stands in for ``numpy.random.Generator`` in the scene samplers: ``n`` frames become one continuous motion.

    ``rng``: the generator the draws come from (deterministic for a given seed); ``n``: frames; ``smooth_frames``:
    correlation length of the continuous draws, in frames (larger = slower motion). Every draw must have the frames
    as its first axis (``size=n`` or ``size=(n, ...)``).
    """

    def __init__(self, rng: np.random.Generator, n: int, smooth_frames: float) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1 frames, got {n}")
        if not smooth_frames > 0:
            raise ValueError(f"smooth_frames must be > 0, got {smooth_frames}")
        self.rng, self.n, self.smooth_frames = rng, int(n), float(smooth_frames)
        self._kernel = smooth_kernel(self.smooth_frames)

    def _size(self, size: Size) -> Tuple[int, ...]:
        shape = (size,) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in (size or ()))
        if not shape or shape[0] != self.n:
            raise ValueError(f"SmoothMotionRng draws need the {self.n} frames as the first axis, got size={size!r}")
        return shape

    def _z(self, size: Size) -> np.ndarray:
        """Unit-variance Gaussian process of the given size, smooth along axis 0."""
        shape = self._size(size)
        k = self._kernel
        white = self.rng.standard_normal((self.n + len(k) - 1, int(np.prod(shape[1:], dtype=np.int64))))
        z = np.lib.stride_tricks.sliding_window_view(white, len(k), axis=0) @ k  # 'valid' convolution over frames
        return z.reshape(shape)

    def _constant(self, values: np.ndarray, size: Size) -> np.ndarray:
        shape = self._size(size)
        return np.broadcast_to(values, shape).copy()

    # ------------------------------------------------------------------ continuous draws: smooth over the frames
    def normal(self, loc=0.0, scale=1.0, size: Size = None) -> np.ndarray:
        return np.asarray(loc, dtype=np.float64) + np.asarray(scale, dtype=np.float64) * self._z(size)

    def standard_normal(self, size: Size = None) -> np.ndarray:
        return self._z(size)

    def uniform(self, low=0.0, high=1.0, size: Size = None) -> np.ndarray:
        low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        return low + (high - low) * normal_cdf(self._z(size))

    # ------------------------------------------------------------------ discrete draws: one per sequence
    def random(self, size: Size = None) -> np.ndarray:
        shape = self._size(size)
        return self._constant(self.rng.random(shape[1:]), size)

    def integers(self, low, high=None, size: Size = None) -> np.ndarray:
        shape = self._size(size)
        return self._constant(self.rng.integers(low, high, size=shape[1:]), size)

    def choice(self, a, size: Size = None, replace: bool = True, p: Optional[Sequence[float]] = None) -> np.ndarray:
        shape = self._size(size)
        return self._constant(self.rng.choice(a, size=shape[1:], replace=replace, p=p), size)
