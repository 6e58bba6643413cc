"""One full InterNet training step (forward, targets, losses, backward, Adam step): images/s and peak memory, in the
official formulation and in the trainer's fast default, measured in the same run on the same batch.

``python benchmarks/bench_train_step.py [--quick] [--device cpu|cuda] [--batch-size B] [--steps N]
[--malloc retain|default]``

- official: float32, NCHW, dense 42xD^3 target volumes (``render_gaussian_heatmap``) and the dense masked L2;
- fast (``Trainer``'s default): bf16 autocast where the device supports it (CUDA bf16, or a CPU with native bf16;
  ``--cpu-amp`` overrides), channels_last, the separable heatmap loss (no target volume); cudnn.benchmark on CUDA.
  (``torch.compile`` was measured here with no gain on the CPU and removed: benchmarks/RESULTS.md section 1.)
Both run ``Trainer._step`` (the trainer's own step) on a batch of real sample frames with the official training
augmentation, from the same initial weights. Models: the paper's (ResNet-50, 256 px, 64^3 heatmaps) and the CPU
preset (ResNet-18, 96 px, 16x24x24 heatmaps). Batch: the paper's 16 on CUDA; on CPU 2 for the paper model and 16
for the preset
(``--batch-size`` overrides both). Each formulation runs in a fresh subprocess, so its memory is its own: CUDA
``max_memory_allocated``; on CPU the peak RSS of that process (and its rise above the RSS once the model and batch
are built). The loss check compares the two formulations' losses on the same batch and weights: the loss functions
on identical outputs (dense vs separable) and the whole formulations (float32 NCHW vs bf16 channels_last forward).
Both formulations keep freed heap memory as the Trainer does by default (``cfg.retain_freed_memory``;
``--malloc default`` turns it off for both). ``--quick`` measures only the CPU preset (batch 4, 1 warm-up + 2
steps) unless ``--models`` is given: with two subprocesses per model, each loading torch and the model, the paper
model alone takes about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
import tempfile
import time

import _common as C


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="CPU preset only (unless --models), batch 4, 1 warm-up + 2 timed steps"
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=int, default=None, help="batch for every model (default: see above)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per formulation (default 5; quick 2)")
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed steps first, the first step included, so at least 1 (default 2; quick 1)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternating subprocess runs of each formulation "
        "(default 2; quick 1): a busy shared machine then slows both alike",
    )
    p.add_argument("--models", default=None, help="comma list of: paper, cpu_preset (default both; quick: cpu_preset)")
    p.add_argument("--formulations", default="official,fast", help="comma list of: official, fast")
    p.add_argument(
        "--cpu-amp",
        choices=["auto", "on", "off"],
        default="auto",
        help="bf16 autocast on CPU for the fast formulation (auto: if the CPU has native bf16)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument(
        "--malloc",
        default="retain",
        choices=["retain", "default"],
        help="retain: the Trainer's default (cfg.retain_freed_memory, both formulations); default: "
        "glibc's own adaptive heap thresholds",
    )
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: MODEL:FORMULATION in a subprocess
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.models = args.models or ("cpu_preset" if args.quick else "paper,cpu_preset")
    args.steps = args.steps or (2 if args.quick else 5)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.warmup = max(1, args.warmup if args.warmup is not None else (1 if args.quick else 2))
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.formulations = [f.strip() for f in args.formulations.split(",") if f.strip()]
    if set(args.models) - {"paper", "cpu_preset"} or not args.models:
        p.error("--models: choose from paper, cpu_preset")
    if set(args.formulations) - {"official", "fast"} or not args.formulations:
        p.error("--formulations: choose from official, fast")
    if args.steps < 1 or args.rounds < 1 or args.warmup < 0 or (args.batch_size is not None and args.batch_size < 1):
        p.error("--steps, --rounds and --batch-size must be >= 1, --warmup >= 0")
    return args


def default_batch(model: str, device_type: str, quick: bool) -> int:
    if device_type == "cuda":
        return 16  # the paper's batch per GPU
    if model == "paper":
        return 2
    return 4 if quick else 16


def real_batch(cfg, batch_size: int):
    """``batch_size`` training samples (official augmentation) of the three real frames, collated."""
    import torch

    from internet.data import InterHand26M

    if not C.SAMPLE.is_dir():
        raise FileNotFoundError(f"the real sample frames are needed: {C.SAMPLE}")
    ds = InterHand26M(cfg.replace(data_root=str(C.SAMPLE)), "test", "train", cache=False)
    samples = []
    # the interacting frame first (datalist: single-hand frames, then interacting), so that even a batch of 2 has a
    # relative-root-depth target
    order = [len(ds) - 1] + list(range(len(ds) - 1))
    for i in range(batch_size):
        ds.set_epoch(i // len(ds))  # a new augmentation draw for every repeat of a frame
        samples.append(ds[order[i % len(ds)]])
    return torch.utils.data.default_collate(samples)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def loss_check(cfg, model, batch, device, amp_dtype) -> dict:
    """The two formulations' losses on the same batch and weights (train mode, no optimizer step)."""
    import torch

    from internet.model.losses import InterNetLoss
    from internet.utils.device import autocast

    dense = InterNetLoss(cfg.sigma, tuple(cfg.output_hm_shape), fast=False)
    fast = InterNetLoss(cfg.sigma, tuple(cfg.output_hm_shape), fast=True)
    b = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
    net = copy.deepcopy(model).to(device).train()
    with torch.no_grad():
        out32 = {k: v.float() for k, v in net(b["img"]).items()}
    # 1) loss functions on identical outputs, with the gradient they send to the heatmaps
    hm = out32["joint_heatmap"].detach().requires_grad_(True)
    res = {}
    losses = {}
    for name, fn in (("dense", dense), ("fast", fast)):
        out = {**out32, "joint_heatmap": hm}
        losses[name] = fn(out, b)
        (grad,) = torch.autograd.grad(losses[name]["joint_heatmap"], hm)
        losses[name + "_grad"] = grad
    res["same_outputs_rel_diff (fast vs dense loss)"] = {
        k: _rel(float(losses["fast"][k].detach()), float(losses["dense"][k].detach())) for k in losses["dense"]
    }
    g_d, g_f = losses["dense_grad"], losses["fast_grad"]
    res["same_outputs_heatmap_grad_max_rel_diff"] = float((g_f - g_d).abs().max() / g_d.abs().max())
    res["official_losses"] = {k: float(v.detach()) for k, v in losses["dense"].items()}
    del losses, g_d, g_f, hm
    # 2) whole formulations: float32 NCHW + dense vs (bf16 autocast) channels_last + separable
    net_cl = copy.deepcopy(model).to(device).to(memory_format=torch.channels_last).train()
    with torch.no_grad(), autocast(device, amp_dtype):
        out_fast = net_cl(b["img"].contiguous(memory_format=torch.channels_last))
    out_fast = {k: v.float() for k, v in out_fast.items()}
    with torch.no_grad():
        fast_losses = fast(out_fast, b)
        dense_losses = dense(out32, b)
    res["formulation_rel_diff (fast vs official, includes the bf16 forward)"] = {
        k: _rel(float(fast_losses[k]), float(dense_losses[k])) for k in dense_losses
    }
    res["fast_formulation_dtype"] = str(amp_dtype).replace("torch.", "") if amp_dtype else "float32"
    del net, net_cl, out32, out_fast
    return res


def setup(name: str, args):
    """The model's config, batch size, real batch and initial weights (the same in every process: seeded)."""
    import torch

    from internet.config import Config
    from internet.model import InterNet

    cfg = (Config.paper() if name == "paper" else Config.cpu_demo()).replace(device=args.device)
    bs = args.batch_size or default_batch(name, torch.device(args.device).type, args.quick)
    batch = real_batch(cfg, bs)
    torch.manual_seed(0)
    return cfg, bs, batch, InterNet.from_config(cfg)


def run_formulation(name: str, formulation: str, args) -> dict:
    """In this (fresh) process: time ``Trainer._step`` for one formulation; images/s, step times, peak memory."""
    import torch

    from internet.engine.trainer import Trainer

    cfg, _, batch, model = setup(name, args)
    fast = formulation == "fast"
    out_dir = tempfile.mkdtemp(prefix="bench_train_step_")
    fcfg = cfg.replace(
        amp=fast,
        channels_last=fast,
        fast_loss=fast,
        device=args.device,
        output_dir=out_dir,
        num_workers=0,
        retain_freed_memory=args.malloc == "retain",
    )
    cpu_amp = {"auto": None, "on": True, "off": False}[args.cpu_amp] if fast else False
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    reset_ok = C.reset_peak_rss()
    rss_before = C.rss_mib()
    trainer = Trainer(fcfg, model=model, progress_bar=False, cpu_amp=cpu_amp)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else None
    t0 = time.perf_counter()
    trainer._step(batch)  # first step: Adam state, cudnn autotuning
    if sync:
        sync()
    first = time.perf_counter() - t0
    for _ in range(max(0, args.warmup - 1)):
        trainer._step(batch)
    times, cpu_times, losses = [], [], {}
    for _ in range(args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        losses = trainer._step(batch)
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    row = {
        "precision": "bf16 autocast" if trainer.amp_dtype is not None else "float32",
        "channels_last": fcfg.channels_last,
        "loss": "separable (fast)" if fcfg.fast_loss else "dense target volumes",
        "step_s_all": [round(t, 3) for t in times],
        # CPU seconds of this process per step (all threads): barely affected when other jobs take the cores
        "step_cpu_s_all": [round(t, 3) for t in cpu_times],
        "first_step_s": round(first, 2),
        "losses_after_steps": {k: round(v, 4) for k, v in losses.items()},
    }
    if dev.type == "cuda":
        row["peak_cuda_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    else:
        row["peak_rss_mib"] = round(C.peak_rss_mib(), 1)
        row["rss_with_model_and_batch_mib"] = round(rss_before, 1)
        if reset_ok:  # the high-water mark was reset there; otherwise it also spans the set-up
            row["peak_rss_above_model_and_batch_mib"] = round(C.peak_rss_mib() - rss_before, 1)
    trainer.close()
    shutil.rmtree(out_dir, ignore_errors=True)
    return row


def run_in_subprocess(name: str, formulation: str, args) -> dict:
    """Run one formulation in a fresh interpreter (own memory high-water mark) and read its JSON line."""
    cmd = [sys.executable, __file__, *args.argv, "--worker", f"{name}:{formulation}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}/{formulation} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        C.limit_threads(args.threads)
    import torch

    from internet.utils.device import amp_dtype

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        name, formulation = args.worker.split(":")
        return run_formulation(name, formulation, args)
    dev = torch.device(args.device)
    figures = {}
    for name in args.models:
        cfg, bs, batch, model = setup(name, args)
        row = {
            "resnet": cfg.resnet_type,
            "input": "x".join(map(str, cfg.input_img_shape)),
            "heatmap": "x".join(map(str, cfg.output_hm_shape)),
            "batch_size": bs,
            "timed_steps": args.steps,
            "warmup_steps": args.warmup,
            "rounds": args.rounds,
        }
        fast_dtype = amp_dtype(dev, True, {"auto": None, "on": True, "off": False}[args.cpu_amp])
        row["loss_check"] = loss_check(cfg, model, batch, dev, fast_dtype)
        del model, batch
        runs = {f: [] for f in args.formulations}
        for _ in range(args.rounds):  # alternate the formulations: machine load hits both alike
            for formulation in args.formulations:
                runs[formulation].append(run_in_subprocess(name, formulation, args))
        for formulation, rs in runs.items():
            steps = [t for r in rs for t in r["step_s_all"]]
            merged = dict(rs[-1])
            merged.update(
                images_per_s=round(bs / C.median(steps), 3),
                step_s_median=round(C.median(steps), 3),
                step_s_median_per_round=[round(C.median(r["step_s_all"]), 3) for r in rs],
                step_s_min=round(min(steps), 3),
                images_per_s_at_min_step=round(bs / min(steps), 3),
                step_s_all=steps,
                first_step_s=[r["first_step_s"] for r in rs],
                rounds=len(rs),
            )
            cpu_steps = [t for r in rs for t in r["step_cpu_s_all"]]
            merged.update(step_cpu_s_median=round(C.median(cpu_steps), 3), step_cpu_s_all=cpu_steps)
            for key in ("peak_rss_mib", "peak_rss_above_model_and_batch_mib", "peak_cuda_memory_allocated_mib"):
                if key in merged:
                    merged[key] = max(r[key] for r in rs)
            row[formulation] = merged
        if "official" in row and "fast" in row:
            off, fst = row["official"], row["fast"]
            row["speedup_fast_over_official"] = round(fst["images_per_s"] / off["images_per_s"], 2)
            # on a shared machine other jobs slow whole stretches of steps: the ratio of the fastest steps and the
            # per-round ratios (each round runs official then fast, back to back) show what the medians blur
            row["speedup_fast_over_official (fastest steps)"] = round(off["step_s_min"] / fst["step_s_min"], 2)
            row["speedup_fast_over_official (per round medians)"] = [
                round(a / b, 2) for a, b in zip(off["step_s_median_per_round"], fst["step_s_median_per_round"])
            ]
            row["cpu_time_ratio_official_over_fast (median CPU s per step)"] = round(
                off["step_cpu_s_median"] / fst["step_cpu_s_median"], 2
            )
            key = "peak_cuda_memory_allocated_mib" if dev.type == "cuda" else "peak_rss_above_model_and_batch_mib"
            if key in row["official"] and key in row["fast"]:
                row["memory_ratio_official_over_fast"] = round(row["official"][key] / max(row["fast"][key], 1e-9), 2)
        figures[name] = row
    return {
        "benchmark": "train_step",
        "machine": C.machine_info(args.device),
        "command": C.command("bench_train_step.py", sys.argv[1:] if argv is None else argv),
        "quick": args.quick,
        "allocator": "retain_freed_memory" if args.malloc == "retain" else "glibc default",
        "figures": figures,
        "notes": [
            "images/s = batch / median step time over all rounds (Trainer._step: forward, losses, backward, "
            "Adam step); images_per_s_at_min_step = batch / fastest step",
            "CPU runs use a small batch and few steps (the machine has 2 cores); GPU: batch 16",
        ],
    }


if __name__ == "__main__":
    C.emit(main())
