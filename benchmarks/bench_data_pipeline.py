"""Training-pipeline throughput per core: ``InterHand26M`` in train mode (read, decode, official augmentation,
affine crop, targets) on the real sample frames, against the floor of JPEG decode + one warpAffine to 256x256.

``python benchmarks/bench_data_pipeline.py [--quick] [--repeats 200] [--rounds 5] [--malloc retain|default]``

Single process, one thread (OpenCV, numpy and torch limited to 1), so the rates are per core. The pipeline is the data
set's ``__getitem__`` over the three frames, a new augmentation draw each epoch (``set_epoch``). The floor decodes the
same JPEG bytes (already in memory) with ``cv2.imdecode`` and warps once with ``cv2.warpAffine`` (bilinear, 256x256):
the least any pipeline must do per sample (the goal's floor). A second floor pads the decoded image to 4 channels
before the warp, the trick the pipeline itself uses (OpenCV's bilinear warp is vectorised for 4 channels, not 3), and
is reported beside it. All are measured in the same run, interleaved in ``--rounds`` rounds, and
the rates are medians over rounds. Also reported: a breakdown of the pipeline's time (image read+decode vs the rest)
and the loader workers needed to feed a GPU step rate: ``3000 img/s / per-core rate`` (derived from the H100
training-throughput goal of bench_train_step, not measured on a GPU). The process keeps freed heap memory as the
trainer's loader processes do (``--malloc default`` measures glibc's own policy instead).
"""

from __future__ import annotations

import argparse
import sys
import time

import _common as C


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="20 passes over the 3 frames per round, 3 rounds")
    p.add_argument("--repeats", type=int, default=None, help="passes over the 3 frames per round (default 100)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved measurement rounds (default 5)")
    p.add_argument(
        "--gpu-rate",
        type=float,
        default=C.GPU_GOAL_IMAGES_PER_S,
        help="training images/s to feed, for the worker count (default: the H100 goal, 3000)",
    )
    p.add_argument("--device", default="cpu", choices=["cpu"], help="the data pipeline runs on the CPU")
    p.add_argument(
        "--malloc",
        default="retain",
        choices=["retain", "default"],
        help="retain: glibc keeps freed buffers, as the trainer's loader processes set it "
        "(internet.utils.runtime); default: glibc's own adaptive thresholds",
    )
    args = p.parse_args(argv)
    args.repeats = args.repeats or (20 if args.quick else 100)
    args.rounds = args.rounds or (3 if args.quick else 5)
    if args.repeats < 1 or args.rounds < 1 or args.gpu_rate <= 0:
        p.error("--repeats, --rounds and --gpu-rate must be positive")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    C.limit_threads(1)  # before numpy / cv2 / torch are imported: rates per core
    import cv2
    import numpy as np
    import torch

    from internet.config import Config
    from internet.data import InterHand26M
    from internet.data.io import read_image

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    allocator = C.set_heap(args.malloc)
    if not C.SAMPLE.is_dir():
        raise FileNotFoundError(f"the real sample frames are needed: {C.SAMPLE}")
    cfg = Config(data_root=str(C.SAMPLE))
    ds = InterHand26M(cfg, "test", "train", cache=False)
    n_frames = len(ds)
    paths = [ds.image_path(i) for i in range(n_frames)]
    blobs = [np.fromfile(str(p), dtype=np.uint8) for p in paths]
    size = tuple(int(s) for s in cfg.input_img_shape[::-1])
    # a representative crop affine per frame: the test-mode box, no augmentation
    affines = []
    for i in range(n_frames):
        s = ds.get_sample(i)
        inv = np.vstack([s["inv_trans"].astype(np.float64), [0, 0, 1]])
        affines.append(np.linalg.inv(inv)[:2])

    def pipeline_pass(epoch: int) -> None:
        ds.set_epoch(epoch)
        for i in range(n_frames):
            ds[i]

    def floor_pass() -> None:
        for blob, affine in zip(blobs, affines):
            img = cv2.imdecode(blob, cv2.IMREAD_COLOR)
            cv2.warpAffine(img, affine, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def padded_floor_pass() -> None:
        # the floor with the pipeline's own trick: OpenCV's bilinear warp is vectorised for 4 channels, not 3
        for blob, affine in zip(blobs, affines):
            img = cv2.cvtColor(cv2.imdecode(blob, cv2.IMREAD_COLOR), cv2.COLOR_BGR2BGRA)
            cv2.warpAffine(img, affine, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def read_pass() -> None:
        for i in range(n_frames):
            read_image(paths[i], None, np.uint8)  # what the data set's get_sample reads

    pipeline_pass(0)  # warm the page cache and OpenCV
    floor_pass()
    padded_floor_pass()
    pipe_rates, floor_rates, padded_rates, read_rates = [], [], [], []
    epoch = 1
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            pipeline_pass(epoch)
            epoch += 1
        pipe_rates.append(args.repeats * n_frames / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            floor_pass()
        floor_rates.append(args.repeats * n_frames / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            padded_floor_pass()
        padded_rates.append(args.repeats * n_frames / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            read_pass()
        read_rates.append(args.repeats * n_frames / (time.perf_counter() - t0))
    pipe, floor, read = C.median(pipe_rates), C.median(floor_rates), C.median(read_rates)
    padded = C.median(padded_rates)
    per_sample_ms = 1e3 / pipe
    read_ms = 1e3 / read
    workers = args.gpu_rate / pipe
    return {
        "benchmark": "data_pipeline",
        "machine": C.machine_info("cpu"),
        "command": C.command("bench_data_pipeline.py", sys.argv[1:] if argv is None else argv),
        "quick": args.quick,
        "threads": 1,
        "allocator": allocator,
        "samples_per_round": args.repeats * n_frames,
        "rounds": args.rounds,
        "frames": [str(p.relative_to(C.SAMPLE)) for p in paths],
        "figures": {
            "pipeline_samples_per_s_per_core": round(pipe, 1),
            "floor_samples_per_s_per_core (imdecode + 1 warpAffine)": round(floor, 1),
            "ratio_floor_over_pipeline (pipeline time / floor time)": round(floor / pipe, 3),
            "pipeline_ms_per_sample": round(per_sample_ms, 2),
            "of_which_read_image_ms (read + checks + decode + BGR->RGB)": round(read_ms, 2),
            "of_which_rest_ms (augment, windowed float crop, colour, targets)": round(per_sample_ms - read_ms, 2),
            "floor_ms_per_sample": round(1e3 / floor, 2),
            "padded_floor_samples_per_s_per_core (imdecode + pad to 4 channels + 1 warpAffine)": round(padded, 1),
            "ratio_padded_floor_over_pipeline (pipeline time / padded floor time)": round(padded / pipe, 3),
            "pipeline_rates_per_round": [round(r, 1) for r in pipe_rates],
            "floor_rates_per_round": [round(r, 1) for r in floor_rates],
            "padded_floor_rates_per_round": [round(r, 1) for r in padded_rates],
            f"workers_to_feed_{int(args.gpu_rate)}_img_per_s (derived)": round(workers, 1),
        },
        "notes": [
            f"workers = {args.gpu_rate:g} img/s (the H100 training goal of bench_train_step, not a GPU "
            "measurement) / the per-core pipeline rate; assumes one core per worker and linear scaling",
            "the real frames are 334x512 JPEGs of the released (downsampled) data set",
        ],
    }


if __name__ == "__main__":
    C.emit(main())
