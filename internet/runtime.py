"""Process-level runtime settings: keep the C heap's freed memory in the processes that load data or run the model.

Every sample and every CPU forward allocates and frees multi-megabyte buffers (decoded image, crop window, warped
patch, activations). glibc serves them with fresh ``mmap`` pages or trims the freed top of its heap, so each new
buffer page-faults again; raising the mmap and trim thresholds keeps them in the heap, reused, at the cost of up to
``trim_threshold`` bytes of freed memory kept per process. What it buys is measured in benchmarks/RESULTS.md
(sections 2 and 6, ``--malloc retain|default``).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
from typing import Iterator

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 1024 * 1024
"""Allocations below this come from the heap: glibc's largest allowed value on 64-bit systems."""
TRIM_THRESHOLD = 256 * 1024 * 1024
"""Freed memory kept at the top of the heap before glibc returns it to the system."""


def retain_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Set glibc's mmap and trim thresholds for this process (the trainer's, a data-loader worker's, a Predictor's:
    see ``cfg.retain_freed_memory``). Returns True when applied, False where the C library is not glibc (nothing
    changes there). Fixed thresholds also switch off glibc's own adaptive thresholds, which is the point."""
    if mmap_threshold <= 0 or trim_threshold <= 0:
        raise ValueError(
            f"thresholds must be positive, got mmap_threshold={mmap_threshold}, trim_threshold={trim_threshold}"
        )
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
        mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))
    )


def _glibc_mallopt():
    if not sys.platform.startswith("linux"):
        return None
    try:
        # the process's own symbols, libc's among them: ctypes.util.find_library would run ldconfig in a
        # subprocess in every loader worker at start-up
        libc = ctypes.CDLL(None)
        getattr(libc, "gnu_get_libc_version")  # noqa: B009 - present in glibc only (musl: mallopt is a no-op stub)
    except (OSError, AttributeError):
        return None
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


def init_loader_worker(worker_id: int, retain: bool = True, opencv_one_thread: bool = False) -> None:
    """DataLoader worker start-up (the trainer's and :func:`internet.inference.predict`'s loaders): with ``retain``
    the freed sample buffers stay in the heap (:func:`retain_freed_memory`); workers forked from a process that set
    it inherit the setting, spawned ones need this call. ``opencv_one_thread``: set OpenCV to one thread here, for
    workers that were not forked (spawn, forkserver). A forked worker must not: setting OpenCV's thread count in a
    process forked from one whose OpenCV pool has run deadlocks; it inherits one thread from
    :func:`opencv_one_thread_while` around the fork instead."""
    if retain:
        retain_freed_memory()
    if opencv_one_thread:
        import cv2

        cv2.setNumThreads(1)


def loader_worker_init(retain: bool, start_method: str = "fork"):
    """The ``worker_init_fn`` for a loader whose workers start with ``start_method``: :func:`init_loader_worker`
    with ``retain`` (picklable, for spawned workers), and OpenCV on one thread where the workers are not forked."""
    return functools.partial(init_loader_worker, retain=bool(retain), opencv_one_thread=start_method != "fork")


@contextlib.contextmanager
def opencv_one_thread_while() -> Iterator[None]:
    """OpenCV on one thread in this process for the duration, then back to its previous count: loader workers forked
    inside inherit one thread. Each worker is one process on one core; with OpenCV's own pool a worker also kept a
    second thread about a third busy (its warps), CPU that the other workers and the main process need
    (benchmarks/RESULTS.md section 9)."""
    import cv2

    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)
