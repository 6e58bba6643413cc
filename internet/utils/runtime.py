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
import os
import sys
from typing import Iterator, Optional

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
    """DataLoader worker start-up (the trainer's and :func:`internet.infer.predict.predict`'s loaders): with ``retain``
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


def shared_memory_free(path: str = "/dev/shm") -> Optional[int]:
    """Bytes of shared memory (``path``, where torch's loader segments live on Linux) this process may use: what is
    free, shared with the other ranks of a distributed run on this machine (``LOCAL_WORLD_SIZE``, set by torchrun).
    None where unknown."""
    try:
        stat = os.statvfs(path)
    except (OSError, AttributeError):
        return None
    try:
        local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local_ranks = 1
    return stat.f_bavail * stat.f_frsize // local_ranks


def check_shared_memory(batch_bytes: int, workers: int, free_bytes: Optional[int] = None) -> None:
    """Raise a clear error when ``workers`` loader workers cannot each hand over one batch of ``batch_bytes``
    through shared memory: a worker that writes past the end of ``/dev/shm`` dies of SIGBUS instead."""
    free_bytes = shared_memory_free() if free_bytes is None else free_bytes
    need = batch_bytes * max(1, workers)
    if free_bytes is not None and free_bytes < need:
        raise RuntimeError(
            f"{workers} loader worker(s) need {need / 2**20:.0f} MiB of shared memory (/dev/shm) for one batch each "
            f"({batch_bytes / 2**20:.1f} MiB per batch), but only {free_bytes / 2**20:.0f} MiB is free for this "
            "process: give the machine or container more (docker run --shm-size), or lower num_workers or "
            "test_batch_size (num_workers=0 loads in this process and needs none)"
        )
