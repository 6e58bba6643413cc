"""Batch-1 inference latency: the paper's model (ResNet-50, 256 px) and the CPU preset (ResNet-18, 96 px).

``python benchmarks/bench_inference.py [--quick] [--device cpu|cuda] [--repeats 20] [--threads 2]
[--malloc retain|default]``

Per model: the network forward alone (float32, eval mode, inference_mode; and under bf16 autocast as an extra row),
the decode (hard argmax over the 42 heatmap volumes), and the whole ``Predictor.predict`` on the official demo image
(crop, forward, decode, back-projection). Medians over ``--repeats`` rounds after warm-up rounds; each round runs
every figure once (interleaved), so a busy shared machine slows them alike. Random weights:
latency does not depend on the values. On CUDA every timing waits for the GPU (``torch.cuda.synchronize``).
The process keeps freed heap memory from the start, as a ``Predictor`` does by default (``internet.utils.runtime``;
on CPU glibc's adaptive thresholds can page-fault a forward's buffers in again on every call); ``--malloc default``
leaves glibc's policy alone (and builds the Predictor with ``retain_freed_memory=False``).
"""

from __future__ import annotations

import argparse
import sys
import time

import _common as C

DEMO_BOX = (69, 137, 165, 153)  # the official demo's hard-coded hand box for demo/input.jpg


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="5 repeats, 1 warm-up")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per figure (default 20; quick 5)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 3; quick 1)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--models", default="paper,cpu_preset", help="comma list of: paper, cpu_preset")
    p.add_argument(
        "--malloc",
        default="retain",
        choices=["retain", "default"],
        help="retain: keep freed heap memory, as a Predictor does by default (cfg.retain_freed_memory); "
        "default: glibc's own adaptive heap thresholds (retain_freed_memory=False)",
    )
    args = p.parse_args(argv)
    args.repeats = args.repeats or (5 if args.quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = set(args.models) - {"paper", "cpu_preset"}
    if bad or not args.models:
        p.error(f"--models: unknown {sorted(bad)}; choose from paper, cpu_preset")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        C.limit_threads(args.threads)
    import numpy as np
    import torch

    from internet.config import Config
    from internet.infer.decode import decode_heatmaps
    from internet.infer.predictor import Predictor, load_rgb
    from internet.model import InterNet

    if args.threads:
        torch.set_num_threads(args.threads)
    allocator = C.set_heap(args.malloc)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    demo = C.SAMPLE / "unannotated" / "facebookresearch_demo_input.jpg"
    image = (
        load_rgb(demo) if demo.is_file() else (np.random.default_rng(0).random((512, 334, 3)) * 255).astype(np.uint8)
    )
    figures = {}
    for name in args.models:
        cfg = Config.paper() if name == "paper" else Config.cpu_demo()
        cfg = cfg.replace(device=args.device, retain_freed_memory=args.malloc == "retain")
        torch.manual_seed(0)
        model = InterNet.from_config(cfg).to(dev).eval()
        h, w = cfg.input_img_shape
        x = torch.rand(1, 3, h, w, device=dev)
        row = {
            "resnet": cfg.resnet_type,
            "input": f"{w}x{h}",
            "heatmap": "x".join(map(str, cfg.output_hm_shape)),
            "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        }

        predictor = Predictor(model, cfg, device=args.device)

        def forward_bf16(model=model, x=x):
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
                return model(x)

        with torch.inference_mode():
            hm = model(x)["joint_heatmap"].float()
        tasks = {
            "forward_fp32_ms": lambda model=model, x=x: model(x),
            "forward_bf16_autocast_ms": forward_bf16,
            "decode_argmax_ms": lambda hm=hm: decode_heatmaps(hm),
            "decode_subvoxel_ms": lambda hm=hm: decode_heatmaps(hm, subvoxel=True),
            "predict_end_to_end_ms": lambda predictor=predictor: predictor.predict(image, DEMO_BOX),
        }
        if not (dev.type == "cpu" or torch.cuda.is_bf16_supported()):
            del tasks["forward_bf16_autocast_ms"]
        # interleaved: one run of every task per round, so the load of a shared machine hits all of them alike
        times = {k: [] for k in tasks}
        with torch.inference_mode():
            for r in range(args.warmup + args.repeats):
                for key, fn in tasks.items():
                    t0 = time.perf_counter()
                    fn()
                    if sync:
                        sync()
                    if r >= args.warmup:
                        times[key].append(time.perf_counter() - t0)
        for key, t in times.items():
            row[key] = round(1e3 * C.median(t), 2)
        row["predict_images_per_s"] = round(1.0 / C.median(times["predict_end_to_end_ms"]), 2)
        row["forward_fp32_ms_min"] = round(1e3 * min(times["forward_fp32_ms"]), 1)
        figures[name] = row
        del model, predictor
    return {
        "benchmark": "inference",
        "machine": C.machine_info(args.device),
        "command": C.command("bench_inference.py", sys.argv[1:] if argv is None else argv),
        "quick": args.quick,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "batch_size": 1,
        "allocator": allocator,
        "figures": figures,
        "notes": [
            "medians over repeats; random weights; predict = read-free crop + forward (float32, as the "
            "Predictor runs) + argmax + back-projection on the 334x512 demo image"
        ],
    }


if __name__ == "__main__":
    C.emit(main())
