"""The inference path at the official test size: samples/s of ``internet.infer.predict.predict`` with 0, 1 and 2 loader
workers, peak memory, and the projected time of a full pass over 849,160 samples on a 16-core GPU box.

``python benchmarks/bench_inference_scale.py [--quick] [--n 849160] [--pool 300] [--samples 3000]
[--workers 0,1,2] [--batch-size 32] [--data-dir DIR] [--work-dir DIR] [--device cpu|cuda]``

Data: a synthetic test split of ``--n`` annotations whose image entries reuse ``--pool`` rendered JPEG images
(``python -m internet.synth --test N --image-pool K``, generated once under ``--work-dir`` and reused): every sample
is read, decoded and cropped from a real file, at the paper's 256x256 crop. Model: a stand-in network that does
what the main process does per batch on a GPU box (one copy of the batch, as into pinned memory) and computes shaped
outputs from an 8x8 subsample, so the figures are the data side of the path: the DataLoader, its workers, the
hand-over of batches, the decoding and the gathering of predictions. Each worker count runs in a fresh subprocess
(its own peak RSS, workers included) over ``--samples`` samples spread over the whole split; the first batch (worker
start-up) is not timed. The machine's own scaling: one, then two processes building the same samples without a
loader (what the 1 -> 2 worker speedup can reach here). Memory: the 0- and 1-worker runs are repeated on 4x the
samples; reported: the growth of the peak RSS and of the anonymous resident memory at the end (``RssAnon``: not the
memory-mapped index or image pages, which are file-backed), and glibc's heap (``mallinfo2``: in use, free). Checked:
the anonymous memory held (``RssAnon`` after ``malloc_trim(0)``, which gives the free heap's pages back) against the
size of the extra predictions, and the free heap glibc keeps at both sample counts against its own bound (twice the
largest block freed, a batch): a leak grows the first, a fragmenting heap the second (RESULTS.md section 9).
Projection: ``n / (rate with 1 worker x 16)``, the data side of a full pass on a 16-core machine whose GPU is not the
bottleneck, and the same bounded by the main process's CPU per sample.
Goals: the rate grows >= 1.8x from 1 to 2 workers (on a 2-core machine); the projection <= 120 s; the memory held
grows <= 2 x the extra predictions + 32 MiB and the free heap stays <= 2 batches + 32 MiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C

OFFICIAL_TEST = 849_160
GPU_BOX_CORES = 16


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="20,000 annotations, a pool of 50 images, 400 samples")
    p.add_argument("--n", type=int, default=None, help=f"annotations in the split (default {OFFICIAL_TEST:,})")
    p.add_argument("--pool", type=int, default=None, help="rendered images the annotations reuse (default 300)")
    p.add_argument("--samples", type=int, default=None, help="samples timed per worker count (default 3000)")
    p.add_argument("--workers", default="0,1,2", help="loader worker counts to measure (default 0,1,2)")
    p.add_argument("--batch-size", type=int, default=32, help="inference batch (default 32, cfg.test_batch_size)")
    p.add_argument("--data-dir", default=None, help="an existing data root to use (default: generated)")
    p.add_argument(
        "--work-dir",
        default=str(Path(tempfile.gettempdir()) / "internet_bench"),
        help="where the generated split is kept between runs",
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one measurement
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.n = args.n or (20_000 if args.quick else OFFICIAL_TEST)
    args.pool = args.pool or (50 if args.quick else 300)
    args.samples = args.samples or (400 if args.quick else 3000)
    args.workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    if min(args.n, args.pool, args.samples, args.batch_size) < 1 or args.pool > args.n or args.samples > args.n:
        p.error("--n, --pool, --samples and --batch-size must be positive, --pool and --samples at most --n")
    if not args.workers or min(args.workers) < 0:
        p.error("--workers: a comma-separated list of counts >= 0")
    return args


def data_root(args) -> Path:
    """The split to read: --data-dir, or one generated (and kept) under --work-dir."""
    if args.data_dir:
        return Path(args.data_dir)
    root = Path(args.work_dir) / f"inference_test_{args.n}_pool{args.pool}"
    marker = root / "annotations" / "test" / "InterHand2.6M_test_data.json"
    if not marker.is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "internet.synth",
                "--out",
                str(root),
                "--train",
                "0",
                "--val",
                "0",
                "--test",
                str(args.n),
                "--image-pool",
                str(args.pool),
                "--quiet",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=C.REPO,
        )
    return root


def measure(args, workers: int, samples: int) -> dict:
    """One measurement (run in a fresh process): build the split, then time predict() on ``samples`` samples."""
    import numpy as np
    import torch
    from torch import nn

    from internet.config import Config
    from internet.data import InterHand26M
    from internet.infer.predict import predict

    class StandIn(nn.Module):
        """Cheap network with InterNet's output keys: the figures are the data side of the path. On a GPU box the
        main process's CPU work per batch is one copy of it (into pinned memory, for the transfer) while the network
        runs on the GPU; the stand-in does that copy (into a reused buffer) and computes on an 8x8 subsample of it.
        Earlier stand-ins measured themselves: an 8x8 stride-8 convolution of the whole crop cost the main process
        2 ms of CPU per sample, an 8x8 average pooling 0.35 ms (RESULTS.md section 9)."""

        def __init__(self) -> None:
            super().__init__()
            # a 1x1 convolution written as a product: torch's conv2d took 2.9 ms per batch for these few channels
            self.heatmap = nn.Parameter(torch.randn(42 * 8, 3))
            self.staged = torch.empty(0)

        def forward(self, img):
            if self.staged.shape != img.shape:
                self.staged = torch.empty_like(img)
            self.staged.copy_(img)
            step = img.shape[-1] // 8
            f = self.staged[..., step // 2 :: step, step // 2 :: step]  # (B, 3, 8, 8)
            hm = torch.einsum("bchw,oc->bohw", f, self.heatmap).reshape(len(img), 42, 8, 8, 8)
            pooled = f.mean(dim=(2, 3))
            return {
                "joint_heatmap": hm,
                "rel_root_depth": pooled[:, :1],
                "hand_type": torch.sigmoid(pooled[:, :2]),
                "hand_type_logits": pooled[:, :2],
            }

    # The main process's torch runs on one thread: on a GPU box its forward is the GPU's, and on these 2 cores two
    # intra-op threads spinning between the stand-in's ops took CPU from the workers (1.5 -> 0.75 ms per sample)
    torch.set_num_threads(1)
    cfg = Config.paper(
        data_root=str(args.root),
        device=args.device,
        num_workers=workers,
        test_batch_size=args.batch_size,
        channels_last=False,
    )
    t0 = time.perf_counter()
    dataset = InterHand26M(cfg, "test", "test")
    build_s = time.perf_counter() - t0
    rss_ready = C.rss_mib()
    device = torch.device(args.device)
    model = StandIn().to(device).eval()
    idx = np.linspace(0, len(dataset) - 1, samples + args.batch_size).astype(np.int64)
    predict(model, dataset, cfg, indices=idx[: args.batch_size], device=device)  # warm-up: first batch, start-up
    cpu0 = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    t0 = time.perf_counter()
    pred = predict(model, dataset, cfg, indices=idx[args.batch_size :], device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    cpu1 = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    # CPU time per sample (user + system) of this process and of the loader workers (joined when predict returns)
    main_ms, workers_ms = (
        (cpu1[k].ru_utime + cpu1[k].ru_stime - cpu0[k].ru_utime - cpu0[k].ru_stime) * 1e3 / samples for k in (0, 1)
    )
    assert len(pred["index"]) == samples and np.isfinite(pred["joint_coord"]).all()
    # the resident memory at the end, by kind: anonymous (heap, arrays, predictions) can only grow with the samples
    # through a leak or the predictions; file-backed pages (the memory-mapped index, the image files read in this
    # process) and shared memory come and go with what was touched
    resident = {k: round(C.status_kib(k) / 1024, 1) for k in ("RssAnon", "RssFile", "RssShmem")}
    # the heap behind RssAnon: what is held (a leak grows it) and what is free but kept (glibc's retained freed
    # memory, and holes it cannot reuse: a fragmenting heap grows it); then RssAnon without the free heap's pages
    heap = C.heap_mib()
    live_anon = round(C.status_kib("RssAnon") / 1024, 1) if C.trim_heap() else None
    return {
        "workers": workers,
        "samples": samples,
        "seconds": round(seconds, 3),
        "samples_per_s": round(samples / seconds, 1),
        "dataset_ready_s": round(build_s, 2),
        "rss_after_dataset_mib": round(rss_ready, 1),
        "peak_rss_mib": round(C.peak_rss_mib(), 1),
        "main_cpu_ms_per_sample": round(main_ms, 3),
        "workers_cpu_ms_per_sample": round(workers_ms, 3),
        "workers_peak_rss_mib": round(C.children_peak_rss_mib(), 1),
        "resident_at_end_mib": resident,
        "heap_at_end_mib": heap,
        "rss_anon_after_trim_mib": live_anon,
        "batch_mib": round(args.batch_size * 3 * int(np.prod(cfg.input_img_shape)) * 4 / 2**20, 1),
        "prediction_bytes": int(sum(v.nbytes for v in pred.values())),
        "annotations": len(dataset),
    }


def machine_scaling(args, samples: int) -> dict:
    """The machine's own scaling of the workers' job, without a loader (run in a fresh process): samples/s of one
    process building test samples, then of two at once (forked, each on its own half), OpenCV and torch on one
    thread. What the loader's 1 -> 2 worker speedup can at most reach here."""
    import multiprocessing

    import cv2
    import numpy as np
    import torch

    from internet.config import Config
    from internet.data import InterHand26M
    from internet.utils.runtime import retain_freed_memory

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    retain_freed_memory()
    dataset = InterHand26M(Config.paper(data_root=str(args.root), device="cpu"), "test", "test")
    idx = np.linspace(0, len(dataset) - 1, 2 * samples).astype(np.int64)

    def build(part, results) -> None:
        for i in part[:32]:  # warm-up
            dataset[int(i)]
        t0 = time.perf_counter()
        for i in part[32:]:
            dataset[int(i)]
        results.put((len(part) - 32) / (time.perf_counter() - t0))

    ctx = multiprocessing.get_context("fork")
    rates = {}
    for processes in (1, 2):
        results = ctx.Queue()
        procs = [ctx.Process(target=build, args=(idx[k::2][:samples], results)) for k in range(processes)]
        for proc in procs:
            proc.start()
        rates[processes] = sum(results.get() for _ in procs)
        for proc in procs:
            proc.join()
    return {
        "samples_per_s_1_process": round(rates[1], 1),
        "samples_per_s_2_processes": round(rates[2], 1),
        "speedup_1_to_2_processes": round(rates[2] / rates[1], 2),
    }


def run_worker(args, workers, samples: int) -> dict:
    """One measurement in a fresh process: ``workers`` loader workers, or ``"machine"`` for :func:`machine_scaling`."""
    cmd = [sys.executable, __file__, *args.argv, "--data-dir", str(args.root), "--worker", f"{workers}:{samples}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=C.REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement with {workers} worker(s) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_check(args, runs: dict) -> dict:
    """Each of 0 and 1 workers (in-process loading; the main process of a run with workers) again on 4x the samples:
    the growth of the peak RSS, of the anonymous memory at the end (as read, and held: after ``malloc_trim``), and
    the free heap glibc keeps at both sample counts."""
    memory = {}
    for w in [w for w in (0, 1) if w in runs] or [args.workers[0]]:
        small, bigger = runs[w], run_worker(args, w, min(args.n, 4 * args.samples))
        extra_predictions = round((bigger["prediction_bytes"] - small["prediction_bytes"]) / 2**20, 1)
        memory[f"workers_{w}"] = {
            "samples": [small["samples"], bigger["samples"]],
            "peak_rss_mib": [small["peak_rss_mib"], bigger["peak_rss_mib"]],
            "peak_rss_growth_mib": round(bigger["peak_rss_mib"] - small["peak_rss_mib"], 1),
            "resident_at_end_mib": [small["resident_at_end_mib"], bigger["resident_at_end_mib"]],
            "anonymous_growth_mib": round(
                bigger["resident_at_end_mib"]["RssAnon"] - small["resident_at_end_mib"]["RssAnon"], 1
            ),
            "extra_prediction_mib": extra_predictions,
            "heap_at_end_mib": [small["heap_at_end_mib"], bigger["heap_at_end_mib"]],
            "live_anonymous_growth_mib": (
                round(bigger["rss_anon_after_trim_mib"] - small["rss_anon_after_trim_mib"], 1)
                if small["rss_anon_after_trim_mib"] is not None
                else None
            ),
            # glibc keeps freed memory up to twice the largest block it freed (its adaptive trim threshold): here a
            # batch of crops; more, or growing with the samples, is a heap that fragments
            "free_heap_bound_mib": round(2 * small["batch_mib"] + 32, 1),
        }
    return memory


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.root = data_root(args)
    if args.worker:
        workers, samples = args.worker.split(":")
        run = machine_scaling(args, int(samples)) if workers == "machine" else measure(args, int(workers), int(samples))
        print(json.dumps(run))
        return {}
    runs = {w: run_worker(args, w, args.samples) for w in args.workers}
    memory = memory_check(args, runs)
    figures = {f"workers_{w}": r for w, r in runs.items()}
    figures["machine_scaling_without_loader"] = run_worker(args, "machine", min(args.samples, args.n // 2))
    per_worker = runs[1]["samples_per_s"] if 1 in runs else None
    projection = round(args.n / (per_worker * GPU_BOX_CORES), 2) if per_worker else None
    # the main process receives every batch: with enough workers its own CPU per sample bounds the rate
    main_ms = runs[1]["main_cpu_ms_per_sample"] if 1 in runs else None
    main_bound = round(1e3 / main_ms, 1) if main_ms else None
    projection_main_bound = round(args.n / min(per_worker * GPU_BOX_CORES, main_bound), 2) if main_bound else None
    figures.update(
        {
            "speedup_1_to_2_workers": (
                round(runs[2]["samples_per_s"] / runs[1]["samples_per_s"], 2) if {1, 2} <= set(runs) else None
            ),
            "projected_full_pass_data_side_s_on_16_cores": projection,
            "main_process_bound_samples_per_s": main_bound,
            "projected_full_pass_s_on_16_cores_with_main_process_bound": projection_main_bound,
            "memory_check": memory,
        }
    )
    goals = {
        "rate grows >= 1.8x from 1 to 2 workers": (
            figures["speedup_1_to_2_workers"] >= 1.8 if figures["speedup_1_to_2_workers"] else None
        ),
        "data side of a full pass <= 120 s on 16 cores": projection <= 120 if projection else None,
        # held anonymous memory (free heap pages given back first): what a leak or a per-sample buffer would grow;
        # slack for the heap's own rounding
        "anonymous memory held grows <= 2 x the extra predictions + 32 MiB": (
            all(m["live_anonymous_growth_mib"] <= 2 * m["extra_prediction_mib"] + 32 for m in memory.values())
            if all(m["live_anonymous_growth_mib"] is not None for m in memory.values())
            else None
        ),
        # the free heap glibc keeps: bounded by its trim threshold, at both sample counts (a fragmenting heap grows)
        "free heap <= 2 batches + 32 MiB at both sample counts": (
            all(h["free"] <= m["free_heap_bound_mib"] for m in memory.values() for h in m["heap_at_end_mib"])
            if all(h is not None for m in memory.values() for h in m["heap_at_end_mib"])
            else None
        ),
    }
    result = {
        "benchmark": "inference_scale",
        "machine": C.machine_info(args.device),
        "command": C.command(Path(__file__).name, args.argv),
        "annotations": runs[args.workers[0]]["annotations"],
        "image_pool": args.pool,
        "batch_size": args.batch_size,
        "crop": "256x256 (paper)",
        "model": "stand-in (a copy of the batch, as into pinned memory, and a 1x1 convolution of an 8x8 subsample)",
        "figures": figures,
        "goals": goals,
    }
    C.emit(result)
    return result


if __name__ == "__main__":
    main()
