"""The data check (``python -m internet.data.check``) at full size: its image-path comparison on 2.2 M annotation
image paths, on one core.

``python benchmarks/bench_data_check.py [--quick] [--n 2200000] [--repeats 3] [--walk-files 20000]``

1. comparison (measured at full size): a synthetic annotation index of ``--n`` rows (official file-name pattern
   ``Capture{c}/{seq}/cam{camera}/image{frame}.jpg``, 30 captures, about 20 images a camera folder) as the check reads
   it (the file-name blob and its offsets, the capture column), against folder listings of the same images less 1%
   held in memory: :func:`internet.data.check.referenced_images` + :func:`compare_images` (per-capture counts,
   per-row mask), median of ``--repeats``;
2. the file system's part (measured on ``--walk-files`` empty files in the same layout in a temporary folder, the
   per-file time extrapolated linearly to ``--n``, labelled): the same comparison with
   :func:`internet.data.check.folder_lister` (one ``os.listdir`` a folder), less its in-memory time. A cold disk cache
   or a network file system is slower: that part is the file system's, the same for any tool that lists the files.
Goal: the whole check of the image paths within 60 s at full size on one core.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import _common as C

C.limit_threads(1)

import numpy as np  # noqa: E402

from internet.data.check import compare_images, folder_lister, referenced_images  # noqa: E402

FULL = 2_200_000
GOAL_S = 60.0


def synthetic_paths(n: int, seed: int = 0) -> tuple:
    """(paths, capture (n,)) in the release's naming: 30 captures, 40 sequences each, 40 cameras, frames."""
    rng = np.random.default_rng(seed)
    capture = np.sort(rng.integers(0, 30, n))
    folder = np.arange(n) // 20  # about 20 frames a camera folder, as a 5 fps sequence
    seq = folder // 40
    cam = 400000 + folder % 40
    frame = np.arange(n) * 6  # distinct images
    paths = [
        f"Capture{c}/{s:04d}_pose_{s}/cam{k}/image{f}.jpg"
        for c, s, k, f in zip(capture.tolist(), seq.tolist(), cam.tolist(), frame.tolist())
    ]
    return paths, capture


def as_index(paths: list, capture: np.ndarray) -> dict:
    """The columns of an AnnotationIndex that the check reads."""
    encoded = [p.encode() for p in paths]
    offsets = np.zeros(len(paths) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return {
        "file_name_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        "file_name_offsets": offsets,
        "capture": capture,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="100,000 paths, 1 repeat, 2,000 files walked")
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--walk-files", type=int, default=None)
    args = p.parse_args(argv)
    n = args.n or (100_000 if args.quick else FULL)
    repeats = args.repeats or (1 if args.quick else 3)
    walk_n = args.walk_files or (2_000 if args.quick else 20_000)

    paths, capture = synthetic_paths(n)
    index = as_index(paths, capture)
    rng = np.random.default_rng(1)
    keep = rng.random(n) >= 0.01
    listing: dict = {}
    for i in np.flatnonzero(keep).tolist():
        folder, _, name = paths[i].rpartition("/")
        listing.setdefault(folder, set()).add(name)
    del paths
    results = {}

    def compare(lister):
        results["out"] = compare_images(referenced_images(index), index["capture"], lister)

    times = C.time_repeats(lambda: compare(lambda folder: set(listing.get(folder, ()))), repeats)
    here, per_capture = results["out"]
    assert int(here.sum()) == int(keep.sum()) and sum(c["referenced"] for c in per_capture.values()) == n
    del listing, index

    tmp = Path(tempfile.mkdtemp(prefix="bench_data_check_"))
    try:
        walk_paths, walk_capture = synthetic_paths(walk_n, seed=2)
        for rel in walk_paths:
            f = tmp / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.touch()
        index = as_index(walk_paths, walk_capture)
        listing = {}
        for rel in walk_paths:
            folder, _, name = rel.rpartition("/")
            listing.setdefault(folder, set()).add(name)
        t0 = time.perf_counter()
        compare(folder_lister(tmp))
        disk_s = time.perf_counter() - t0
        assert results["out"][0].all()
        t0 = time.perf_counter()
        compare(lambda folder: set(listing.get(folder, ())))
        walk_s = max(disk_s - (time.perf_counter() - t0), 0.0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    compare_s = C.median(times)
    walk_full_s = walk_s / walk_n * n
    total = compare_s + walk_full_s
    C.emit(
        {
            "benchmark": "data_check",
            "machine": C.machine_info("cpu"),
            "command": C.command("bench_data_check.py", list(argv) if argv is not None else __import__("sys").argv[1:]),
            "paths": n,
            "figures": {
                "compare_s (measured, median)": round(compare_s, 3),
                "compare_s (all repeats)": [round(t, 3) for t in times],
                "walk_files": walk_n,
                "listing_s (measured: with os.listdir less in memory)": round(walk_s, 3),
                "listing_s at n (extrapolated linearly, warm disk cache)": round(walk_full_s, 2),
                "total_s at n (compare measured + listing extrapolated)": round(total, 2),
            },
            "goals": {f"image-path check within {GOAL_S:g} s on one core": total <= GOAL_S},
        }
    )


if __name__ == "__main__":
    main()
