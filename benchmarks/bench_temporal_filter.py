"""The One-Euro filter on the synthetic sequences: its effect on MPJPE, acceleration error and jitter.

``python benchmarks/bench_temporal_filter.py [--quick] [--data-root DIR] [--checkpoint PATH] [--noise-mm 8]
[--settings 0.5:0,1:0,2:0,1:0.05]``

Every camera sequence (>= 3 frames) of the synthetic test split is scored twice per setting (min_cutoff Hz : beta),
raw and filtered, with the metrics of ``internet.evaluation.temporal`` (root-aligned per hand; mm and mm/frame^2):

- **noisy GT** (always; the controlled case): the ground truth plus independent Gaussian noise of ``--noise-mm`` per
  coordinate and frame, as a prediction that is right on average and shakes;
- **checkpoint** (with ``--checkpoint``): the network's predictions (``Predictor.predict`` on each frame with the
  annotated box and the camera's intrinsics).

Without ``--data-root`` a synthetic test split is generated (``--quick``: 120 annotations; else the demo's 400).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import _common as C


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small generated test split, noisy GT only by default")
    p.add_argument("--data-root", default=None, help="synthetic InterHand2.6M set (default: generate its test split)")
    p.add_argument("--checkpoint", default=None, help="also score this checkpoint's predictions")
    p.add_argument("--noise-mm", type=float, default=8.0, help="noise of the controlled case (mm per coordinate)")
    p.add_argument(
        "--settings", default="0.5:0,1:0,2:0,1:0.05", help="One-Euro settings min_cutoff:beta, comma separated"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    try:
        args.settings = [tuple(float(v) for v in s.split(":")) for s in args.settings.split(",")]
        assert all(len(s) == 2 and s[0] > 0 and s[1] >= 0 for s in args.settings)
    except (ValueError, AssertionError):
        p.error("--settings: comma-separated min_cutoff:beta pairs, min_cutoff > 0, beta >= 0")
    if not args.noise_mm > 0:
        p.error("--noise-mm must be > 0")
    return args


def score(tracks, preds, fps, settings):
    """Per setting: pooled raw and filtered metrics over all tracks, and the mean per-frame MPJPE."""
    import numpy as np

    from internet.evaluation.temporal import one_euro_filter, per_frame_mpjpe, pool, temporal_errors

    def mpjpe(p, t):
        m = per_frame_mpjpe(p, t["joint_cam"], t["joint_valid"])["all"]
        return m[np.isfinite(m)]

    raw = pool([temporal_errors(p, t["joint_cam"], t["joint_valid"], t["frame"]) for t, p in zip(tracks, preds)])
    raw_mpjpe = float(np.concatenate([mpjpe(p, t) for t, p in zip(tracks, preds)]).mean())
    out = {"raw": {"mpjpe_mm": round(raw_mpjpe, 3), **{k: round(v, 3) for k, v in raw.items()}}, "filtered": []}
    for min_cutoff, beta in settings:
        filt = [one_euro_filter(p, fps, t["frame"], min_cutoff=min_cutoff, beta=beta) for t, p in zip(tracks, preds)]
        te = pool([temporal_errors(f, t["joint_cam"], t["joint_valid"], t["frame"]) for t, f in zip(tracks, filt)])
        m = float(np.concatenate([mpjpe(f, t) for t, f in zip(tracks, filt)]).mean())
        out["filtered"].append(
            {
                "min_cutoff_hz": min_cutoff,
                "beta": beta,
                "mpjpe_mm": round(m, 3),
                **{k: round(v, 3) for k, v in te.items()},
            }
        )
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    C.limit_threads(args.threads)
    import numpy as np

    from internet.app.replay import camera_sequences, predict_track
    from internet.data.sequences import SequenceIndex

    t0 = time.perf_counter()
    tmp = None
    root = args.data_root
    if root is None:
        from internet.synth import generate

        tmp = tempfile.TemporaryDirectory(prefix="bench_temporal_")
        root = Path(tmp.name) / "InterHand2.6M"
        generate(
            root,
            seed=args.seed,
            n_train=0,
            n_val=0,
            n_test=120 if args.quick else 400,
            with_images=args.checkpoint is not None,
        )
    seqs = SequenceIndex(root, "test")
    keys = camera_sequences(seqs, min_frames=3)
    tracks = [seqs.track(k.capture, k.seq_name, k.camera) for k in keys]
    g = np.random.default_rng(args.seed)
    noisy = [t["joint_cam"] + g.normal(0.0, args.noise_mm, size=t["joint_cam"].shape) for t in tracks]
    result = {
        "benchmark": "temporal_filter",
        "command": C.command("bench_temporal_filter.py", sys.argv[1:] if argv is None else list(argv)),
        "machine": C.machine_info("cpu"),
        "data": {
            "data_root": str(root) if tmp is None else "generated",
            "camera_sequences": len(keys),
            "frames": int(sum(len(t["rows"]) for t in tracks)),
            "fps": seqs.fps,
        },
        "noisy_gt": {"noise_mm_per_coordinate": args.noise_mm, **score(tracks, noisy, seqs.fps, args.settings)},
    }
    if args.checkpoint:
        from internet.app.notebook import load_model
        from internet.config import Config
        from internet.infer.predictor import Predictor

        model, cfg, _ = load_model(args.checkpoint, Config.cpu_demo())
        predictor = Predictor(model, cfg, "cpu")
        preds = [predict_track(predictor, seqs, t)["pred_cam"] for t in tracks]
        result["checkpoint"] = {"path": str(args.checkpoint), **score(tracks, preds, seqs.fps, args.settings)}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    C.emit(result)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
