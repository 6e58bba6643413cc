"""Helpers shared by the benchmark scripts: machine description, timing, peak memory and the one-line JSON report.

Each ``benchmarks/bench_*.py`` is run as a script (``python benchmarks/NAME.py``), so this module is imported by its
plain name from the scripts' own folder.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / "tests" / "data" / "shared"
"""The real sample frames and the parity fixtures: the copy of ``../shared`` that the repository carries."""
SAMPLE = SHARED / "data" / "interhand26m_sample"
FIXTURES = SHARED / "reference" / "official_internet"

GPU_GOAL_IMAGES_PER_S = 3000.0
"""The H100 training-throughput goal (bench_train_step) used to size the data loader when no GPU was measured."""


def limit_threads(n: int) -> None:
    """Ask every numeric library for ``n`` threads. Call before numpy/torch/cv2 are imported for the environment
    variables to take effect; the torch and OpenCV calls are made here when they are already imported."""
    for var in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
    ):
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(n)


def _ram_gib() -> Optional[float]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def machine_info(device: str = "cpu") -> Dict[str, object]:
    """What the figures were measured on: CPU model, cores, RAM, date (UTC), device, library versions."""
    from internet.utils.device import cpu_model  # imports torch: not at module import (thread settings come first)

    info: Dict[str, object] = {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "device": device,
    }
    import cv2
    import numpy
    import torch

    for mod in (torch, numpy, cv2):
        info[mod.__name__] = getattr(mod, "__version__", "?")
    info["torch_threads"] = torch.get_num_threads()
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    try:
        info["load_avg_1min"] = round(os.getloadavg()[0], 2)  # how busy the shared machine was
    except OSError:
        pass
    return info


def set_heap(mode: str) -> str:
    """``--malloc``: 'retain' keeps freed C-heap memory in this process as the trainer and a Predictor do
    (internet.utils.runtime); 'default' leaves glibc's adaptive thresholds alone. Returns the JSON ``allocator``."""
    if mode == "default":
        return "glibc default"
    from internet.utils.runtime import retain_freed_memory

    return "retain_freed_memory" if retain_freed_memory() else "default (not glibc: retain had no effect)"


def command(script: str, argv: List[str]) -> str:
    """The command line as the README gives it: ``python benchmarks/SCRIPT ARGS``."""
    return " ".join(["python", f"benchmarks/{script}", *argv])


def emit(result: Dict[str, object]) -> None:
    """Print the result as ONE JSON line on stdout (the benchmark's output contract)."""
    sys.stdout.write(json.dumps(result, allow_nan=False, sort_keys=False) + "\n")
    sys.stdout.flush()


def median(values: List[float]) -> float:
    return float(statistics.median(values))


def time_repeats(
    fn: Callable[[], object], repeats: int, warmup: int = 0, sync: Optional[Callable[[], None]] = None
) -> List[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls (``sync`` waits for
    asynchronous work, e.g. ``torch.cuda.synchronize``)."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return times


# ----------------------------------------------------------------------------------------------------- memory
def rss_mib() -> float:
    """Current resident set size of this process (MiB)."""
    return status_kib("VmRSS") / 1024


def peak_rss_mib() -> float:
    """Peak resident set size of this process since start or the last :func:`reset_peak_rss` (MiB)."""
    hwm = status_kib("VmHWM")
    if hwm:
        return hwm / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS (Linux >= 4.0: ``clear_refs`` 5).
    Returns False where that is not possible: the peak then spans the whole process."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def status_kib(key: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``, ``RssAnon``, ``RssFile``, ...); 0 where absent."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children_peak_rss_mib() -> float:
    """Largest peak RSS among terminated, waited-for child processes (MiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (<malloc.h>): ten ``size_t`` fields."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


def _glibc():
    """This process's glibc (through its own symbols), or None where the C library is another or too old."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


def heap_mib() -> Optional[Dict[str, float]]:
    """glibc's heap of this process, all arenas (``mallinfo2``, glibc >= 2.33), in MiB: ``in_use`` (allocated
    chunks, those served by mmap included: what the program holds) and ``free`` (free chunks the heap keeps: freed
    memory glibc retains on purpose below its trim threshold, and holes it cannot give back or reuse for a larger
    request). None without such a glibc."""
    libc = _glibc()
    if libc is None:
        return None
    info = libc.mallinfo2()
    return {"in_use": round((info.uordblks + info.hblkhd) / 2**20, 1), "free": round(info.fordblks / 2**20, 1)}


def trim_heap() -> bool:
    """glibc's ``malloc_trim(0)``: the pages of every free heap chunk go back to the system, so that the resident
    anonymous memory read next is what the program holds. False without glibc (nothing done)."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
