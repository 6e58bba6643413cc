"""Official InterHand2.6M evaluation at the full test-set size: vectorised protocol vs the per-sample loop.

``python benchmarks/bench_evaluation.py [--quick] [--n 849160] [--loop-n 20000] [--repeats 3] [--threads 1]``

Synthetic, GT-like arrays (no files): joints of two hands about 1 m from a camera with the released intrinsics,
official test-mode boxes, hand types in single/interacting mix, some invalid joints; the predictions are the GT
mapped to heatmap space plus noise of about one voxel. The vectorised evaluator runs on all N samples (median of
``--repeats``); the reference loop runs on the first ``--loop-n`` samples and is extrapolated linearly to N
(labelled). Both are run on the same subset and must agree to 1e-6 on every official number.
Goals: vectorised >= 50x the loop, and < 15 s for 849,160 samples on one core.
"""

from __future__ import annotations

import argparse
import sys
import time

import _common as C

TEST_SIZE = 849_160  # InterHand2.6M v1.0 test (H+M) annotations
METRICS = (
    "handedness_accuracy",
    "mrrpe",
    "mpjpe_all",
    "mpjpe_single",
    "mpjpe_interacting",
    "mpjpe_pooled_all",
    "mpjpe_pooled_single",
    "mpjpe_pooled_interacting",
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="100k samples, 5k in the loop, 1 repeat")
    p.add_argument("--n", type=int, default=None, help=f"samples (default {TEST_SIZE}; quick 100000)")
    p.add_argument(
        "--loop-n", type=int, default=None, help="samples for the loop reference (default 20000; quick 5000)"
    )
    p.add_argument("--repeats", type=int, default=None, help="timed runs of the vectorised evaluator (default 3)")
    p.add_argument("--threads", type=int, default=1, help="numpy/torch threads (default 1: the goal is per core)")
    p.add_argument("--device", default="cpu", choices=["cpu"], help="evaluation runs on arrays on the CPU")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.n = args.n or (100_000 if args.quick else TEST_SIZE)
    args.loop_n = min(args.n, args.loop_n or (5_000 if args.quick else 20_000))
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.n < 10 or args.loop_n < 10 or args.repeats < 1 or args.threads < 1:
        p.error("--n and --loop-n must be >= 10, --repeats and --threads >= 1")
    return args


def make_case(n: int, seed: int = 0):
    """GT-like ground truth and predictions for ``n`` test samples (numpy arrays, as dataset.eval_targets())."""
    import numpy as np

    from internet.config import Config
    from internet.data.augment import crop_inv_trans
    from internet.geometry.crop import process_bboxes

    cfg = Config()
    g = np.random.default_rng(seed)
    # hand type: the official datalist puts single-hand annotations first, then interacting (about half each)
    n_single = int(round(n * 0.55))
    codes = np.concatenate([g.integers(0, 2, n_single), np.full(n - n_single, 2)]).astype(np.int8)
    hand_type = np.asarray(["right", "left", "interacting"])[codes]
    # two hands about 1 m away: roots near the optical axis, joints within ~100 mm of their root
    root = np.stack([g.normal(0, 60, n), g.normal(0, 60, n), g.uniform(900, 1200, n)], axis=1)
    offset_l = np.stack([g.normal(80, 40, n), g.normal(0, 30, n), g.normal(0, 50, n)], axis=1)
    joint_cam = np.empty((n, 42, 3), np.float32)
    joint_cam[:, :21] = root[:, None] + g.normal(0, 45, (n, 21, 3))
    joint_cam[:, 21:] = (root + offset_l)[:, None] + g.normal(0, 45, (n, 21, 3))
    joint_cam[:, 20] = root
    joint_cam[:, 41] = root + offset_l
    valid = (g.random((n, 42)) > 0.04).astype(np.float32)
    valid[codes == 0, 21:] = 0  # the absent hand of a single-hand annotation
    valid[codes == 1, :21] = 0
    valid[:, :21] *= valid[:, 20:21]  # root propagation, as the loader does
    valid[:, 21:] *= valid[:, 41:42]
    focal = np.repeat(g.normal(1260, 15, (n, 1)), 2, axis=1).astype(np.float32)
    princpt = np.stack([g.normal(167, 10, n), g.normal(256, 10, n)], axis=1).astype(np.float32)
    uv = joint_cam[..., :2] / joint_cam[..., 2:3] * focal[:, None] + princpt[:, None]
    lo, hi = uv.min(1), uv.max(1)
    bbox = np.concatenate([lo - 0.1 * (hi - lo), 1.2 * (hi - lo)], axis=1)  # 1.2x tight box, as the release
    bbox = process_bboxes(bbox)
    inv_trans = crop_inv_trans(bbox, cfg.input_img_shape)
    abs_depth = joint_cam[:, [20, 41], 2].copy()
    gt = dict(
        joint_cam=joint_cam,
        joint_valid=valid,
        hand_type=hand_type,
        hand_type_valid=(g.random(n) > 0.02).astype(np.float32),
        focal=focal,
        princpt=princpt,
        abs_depth=abs_depth,
        inv_trans=inv_trans,
    )
    # predictions: the GT in heatmap space (inverse of the test-mode crop) plus noise of about one voxel
    scale = inv_trans[:, 0, 0][:, None]  # crop px -> image px (no rotation at test time)
    x_hm = (uv[..., 0] - inv_trans[:, 0, 2][:, None]) / scale / 4
    y_hm = (uv[..., 1] - inv_trans[:, 1, 2][:, None]) / scale / 4
    rel = np.where(np.arange(42) < 21, joint_cam[..., 2] - abs_depth[:, :1], joint_cam[..., 2] - abs_depth[:, 1:])
    z_hm = (rel + 200) / 400 * 64
    coord = np.stack([x_hm, y_hm, z_hm], axis=-1) + g.normal(0, 1.0, (n, 42, 3))
    root_bin = (abs_depth[:, 1] - abs_depth[:, 0] + 200) / 400 * 64 + g.normal(0, 1.0, n)
    probs = np.clip(np.stack([(codes != 1), (codes != 0)], axis=1) * 0.9 + g.normal(0.05, 0.12, (n, 2)), 0, 1)
    pred = dict(
        joint_coord=coord.astype(np.float32),
        rel_root_depth=root_bin.astype(np.float32),
        hand_type=probs.astype(np.float32),
    )
    return pred, gt


def _subset(d: dict, k: int) -> dict:
    return {name: v[:k] for name, v in d.items()}


def max_difference(a, b) -> float:
    """Largest absolute difference over the official numbers and every per-joint mean (None must match None)."""
    worst = 0.0
    pairs = [(getattr(a, m), getattr(b, m)) for m in METRICS]
    for subset in a.per_joint:
        pairs += [(a.per_joint[subset][j], b.per_joint[subset][j]) for j in a.per_joint[subset]]
    for x, y in pairs:
        if (x is None) != (y is None):
            return float("inf")
        if x is not None:
            worst = max(worst, abs(x - y))
    return worst


def main(argv=None) -> dict:
    args = parse_args(argv)
    C.limit_threads(args.threads)  # before numpy / torch are imported
    import torch

    from internet.config import Config
    from internet.evaluation.protocol import evaluate_interhand, evaluate_interhand_loop

    torch.set_num_threads(args.threads)
    paper = Config()  # the case's geometry: 64-bin heatmaps of 256-pixel crops
    t0 = time.perf_counter()
    pred, gt = make_case(args.n, args.seed)
    t_make = time.perf_counter() - t0

    C.reset_peak_rss()
    base_rss = C.rss_mib()
    vec_times, result = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        result = evaluate_interhand(pred, gt, cfg=paper)
        vec_times.append(time.perf_counter() - t0)
    vec_peak = C.peak_rss_mib()

    sub_pred, sub_gt = _subset(pred, args.loop_n), _subset(gt, args.loop_n)
    t0 = time.perf_counter()
    loop_sub = evaluate_interhand_loop(sub_pred, sub_gt, cfg=paper)
    t_loop_sub = time.perf_counter() - t0
    vec_sub_times = []
    for _ in range(max(3, args.repeats)):
        t0 = time.perf_counter()
        vec_sub = evaluate_interhand(sub_pred, sub_gt, cfg=paper)
        vec_sub_times.append(time.perf_counter() - t0)
    diff = max_difference(vec_sub, loop_sub)

    vec_s = C.median(vec_times)
    loop_extrapolated = t_loop_sub * args.n / args.loop_n
    out = {
        "benchmark": "evaluation",
        "machine": C.machine_info("cpu"),
        "command": C.command("bench_evaluation.py", sys.argv[1:] if argv is None else argv),
        "quick": args.quick,
        "threads": args.threads,
        "samples": args.n,
        "loop_samples": args.loop_n,
        "figures": {
            "vectorised_s": round(vec_s, 3),
            "vectorised_s_all_repeats": [round(t, 3) for t in vec_times],
            "vectorised_peak_rss_mib": round(vec_peak, 1),
            "vectorised_rss_before_mib": round(base_rss, 1),
            "loop_s_on_subset": round(t_loop_sub, 3),
            "loop_s_extrapolated_to_n (linear, labelled)": round(loop_extrapolated, 2),
            "vectorised_s_on_subset": round(C.median(vec_sub_times), 4),
            "speedup_at_n (loop extrapolated / vectorised)": round(loop_extrapolated / vec_s, 1),
            "speedup_on_subset (same samples)": round(t_loop_sub / C.median(vec_sub_times), 1),
            "vectorised_samples_per_s": round(args.n / vec_s),
            "max_abs_difference_loop_vs_vectorised": diff,
            "case_generation_s": round(t_make, 2),
        },
        "metrics_at_n": {m: getattr(result, m) for m in METRICS},
        "goals": {
            "speedup >= 50x": loop_extrapolated / vec_s >= 50,
            # judged only at the test-set size on one thread (None: not measured here)
            "vectorised < 15 s for 849,160 samples on one core": (
                vec_s < 15.0 if args.n >= TEST_SIZE and args.threads == 1 else None
            ),
            "identical to 1e-6": diff <= 1e-6,
        },
    }
    return out


if __name__ == "__main__":
    C.emit(main())
