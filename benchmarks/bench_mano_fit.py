"""MANO fitted to 21 joints per hand (``internet.mano.fit``) on the synthetic test split: the fit's error and speed.

``python benchmarks/bench_mano_fit.py [--data-root DIR] [--iters 150] [--noise-mm 0,5] [--device cpu] [--threads 1]``

Targets are the annotated camera-space joints of every hand with at least 15 valid joints (plus Gaussian noise of
each ``--noise-mm`` per coordinate, standing in for a prediction's error), fitted in one batch per hand side with the
synthetic data set's MANO-format model. Reported per noise level: the fit's own error (mean distance to its targets,
mm), its distance to the clean joints, and hands per second. Without ``--data-root`` a test split is generated.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import _common as C


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=None)
    p.add_argument("--n-test", type=int, default=400, help="annotations of the generated test split")
    p.add_argument("--iters", type=int, default=150)
    p.add_argument("--noise-mm", default="0,5")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    C.limit_threads(args.threads)
    import torch

    from internet.data.index_cache import load_index
    from internet.data.interhand import resolve_sources
    from internet.mano import mano_layers
    from internet.mano.fit import fit_to_joints
    from internet.synth import generate

    tmp = None
    root = args.data_root
    if root is None:
        tmp = tempfile.TemporaryDirectory()
        root = f"{tmp.name}/InterHand2.6M"
        generate(root, seed=0, n_train=0, n_val=0, n_test=args.n_test, with_images=False)
    index = load_index(resolve_sources(root, "test")[0], root, cache=False)
    layers = mano_layers(f"{root}/mano", device=args.device)
    jc, jv = index["joint_cam"], index["joint_valid"]
    gen = torch.Generator().manual_seed(0)
    rows = []
    for noise in (float(x) for x in args.noise_mm.split(",")):
        hands, err, clean, seconds = 0, 0.0, 0.0, 0.0
        for h, side in enumerate(("right", "left")):
            sel = jv[:, 21 * h : 21 * h + 21].sum(1) >= 15
            X = torch.as_tensor(jc[sel][:, 21 * h : 21 * h + 21], dtype=torch.float32)
            V = torch.as_tensor(jv[sel][:, 21 * h : 21 * h + 21]).bool()
            T = X + noise * torch.randn(X.shape, generator=gen)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            r = fit_to_joints(layers[side], T.to(args.device), V.to(args.device), iters=args.iters)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds += time.perf_counter() - t0
            d = ((r.joints.cpu() - X).norm(dim=-1) * V).sum(1) / V.sum(1)
            hands += len(X)
            err += float(r.error_mm.sum())
            clean += float(d.sum())
        rows.append(
            {
                "noise_mm": noise,
                "hands": hands,
                "fit_error_mm": round(err / hands, 3),
                "to_clean_joints_mm": round(clean / hands, 3),
                "hands_per_s": round(hands / seconds, 2),
            }
        )
    C.emit(
        {
            "benchmark": "mano_fit",
            "command": C.command("bench_mano_fit.py", sys.argv[1:] if argv is None else list(argv)),
            "machine": C.machine_info(args.device),
            "iters": args.iters,
            "results": rows,
        }
    )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
