"""``make demo`` = ``python -m internet.app.demo``: the whole pipeline on a CPU, headless, in under 15 minutes.

1. Writes the synthetic InterHand2.6M data set once (``data/synthetic/InterHand2.6M``; skipped when its
   ``synth_info.json``, written last by the generator, records the same generator version, seed and sizes).
2. Runs notebooks 01 to 04 and 06 with papermill in the CPU preset: explore the data, train, evaluate (the trained
   network, the untrained one and the mean-pose baseline), visualise in 3D, play sequences across cameras. Executed
   notebooks go to
   ``output/notebooks/``, figures to ``output/vis/``, metrics to ``output/result/``, checkpoints to
   ``output/model_dump/``.
3. Writes ``output/result/summary.json``: MPJPE before and after training, the mean-pose baseline, handedness
   accuracy and MRRPE, and the time each step took; then prints where to look.

``--quick`` shrinks everything (a few images, a tiny network, two iterations) to check the plumbing in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import papermill

from internet.app.notebook import project_path, project_root
from internet.evaluation.results import read_results, result_paths
from internet.synth import generate
from internet.synth.interhand import GENERATOR_VERSION
from internet.utils.atomic import atomic_write_text
from internet.utils.cli import non_negative_int, positive_int
from internet.utils.device import cpu_has_fast_bf16, cpu_model
from internet.utils.logs import JSONL_LOG, read_jsonl

NOTEBOOKS = ("01_explore_dataset", "02_train", "03_evaluate", "04_visualize_3d", "06_sequences")
DEFAULT_DATA_ROOT = "data/synthetic/InterHand2.6M"
QUICK_SIZES = dict(train=24, val=4, test=12)
DEFAULT_SIZES = dict(train=3200, val=200, test=400)
DEFAULT_MAX_ITERS = 200
"""Iterations per epoch of the demo's training (200 = whole epochs of the 3200-image set at batch 16; x 10 epochs of
the CPU preset = 2000 iterations: about 8 minutes on a 2-core CPU with native bf16, 10-12 in float32)."""
QUICK_CONFIG = {
    "input_img_shape": [64, 64],
    "output_hm_shape": [16, 16, 16],
    "sigma": 1.0,
    "head_channels": 32,
    "test_batch_size": 8,
}


class DemoError(RuntimeError):
    """A demo step failed; the message says which and where its output is."""


# ------------------------------------------------------------------------------------------------ steps
def synthetic_data_ready(data_root: Path, seed: int, n_train: int, n_val: int, n_test: int) -> bool:
    """Whether ``data_root`` holds a complete synthetic set made with these arguments: the generator writes
    ``synth_info.json`` last, so its presence with matching arguments means every file is there; a set written by
    another generator version (other images) is not reused."""
    info_path = data_root / "synth_info.json"
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return False
    args = info.get("arguments", {}) if isinstance(info, dict) else {}

    return (
        info.get("version") == GENERATOR_VERSION
        and info.get("seed") == seed
        and args.get("n_train") == n_train
        and args.get("n_val") == n_val
        and args.get("n_test") == n_test
        and args.get("with_images") is True
    )


def prepare_data(data_root: Path, seed: int, n_train: int, n_val: int, n_test: int, workers: int) -> str:
    """Generate the synthetic data set unless it is already complete; returns 'reused' or 'generated'."""
    if synthetic_data_ready(data_root, seed, n_train, n_val, n_test):
        print(f"[data] synthetic data set already complete in {data_root} (synth_info.json): reusing it", flush=True)
        return "reused"

    print(
        f"[data] writing the synthetic data set to {data_root} ({n_train} train, {n_val} val, {n_test} test "
        f"images, seed {seed}) ...",
        flush=True,
    )
    generate(data_root, seed=seed, n_train=n_train, n_val=n_val, n_test=n_test, with_images=True, num_workers=workers)
    return "generated"


def run_notebook(name: str, parameters: Dict[str, Any], out_dir: Path, echo: bool = True) -> Path:
    """Execute ``notebooks/{name}.ipynb`` with papermill into ``out_dir``; the notebook's printed output is echoed
    live. A failing cell raises :class:`DemoError` naming the executed notebook, which keeps the error and all
    outputs up to it."""
    from papermill.exceptions import PapermillExecutionError

    src = project_root() / "notebooks" / f"{name}.ipynb"
    if not src.is_file():
        raise DemoError(f"notebook not found: {src} (run the demo from a checkout of the repository)")
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / f"{name}.ipynb"
    print(f"[{name}] running -> {dst}", flush=True)
    try:
        papermill.execute_notebook(
            str(src),
            str(dst),
            parameters=parameters,
            progress_bar=False,
            stdout_file=sys.stdout if echo else None,
            cwd=str(project_root()),
        )
    except PapermillExecutionError as e:
        raise DemoError(
            f"notebook {name} failed in cell {e.exec_count}: {e.ename}: {e.evalue}\n"
            f"the executed notebook with the error is {dst}"
        ) from None
    return dst


def _metrics(d: Optional[dict]) -> Optional[dict]:
    if not d:
        return None
    off = d.get("official_protocol", {})
    return {k: off.get(k) for k in ("mpjpe_all", "mpjpe_single", "mpjpe_interacting", "mrrpe", "handedness_accuracy")}


def training_speed(log_dir: Path) -> Dict[str, Any]:
    """What the training run did, from its ``train_log.jsonl``: ``iterations``, ``seconds`` (summed iteration
    times), ``images_per_s`` over the whole run and the ``precision`` it ran in (None where there is no log)."""
    try:
        records = read_jsonl(log_dir / JSONL_LOG)
    except (OSError, ValueError):
        records = []
    records = [r for r in records if isinstance(r.get("time"), (int, float))]
    if not records:
        return {"iterations": None, "seconds": None, "images_per_s": None, "precision": None}
    iters = [int(r.get("iters", 1)) for r in records]
    seconds = [float(r["time"]) * n for r, n in zip(records, iters)]  # "time" is the window's mean per iteration
    images = sum(float(r.get("images_per_s", 0.0)) * t for r, t in zip(records, seconds))
    total = sum(seconds)
    return {
        "iterations": sum(iters),
        "seconds": round(total, 1),
        "images_per_s": round(images / total, 1) if total > 0 else None,
        "precision": records[-1].get("precision"),
    }


def machine() -> Dict[str, Any]:
    """The CPU the demo ran on: its model, cores and whether it has native bf16 (which decides the precision)."""
    return {"cpu_model": cpu_model(), "cpu_cores": os.cpu_count(), "native_bf16": cpu_has_fast_bf16()}


def build_summary(output_dir: Path, split: str, seconds: Dict[str, float], extra: Dict[str, Any]) -> dict:
    """The demo summary from ``result/eval_{split}.json`` (written by 03_evaluate, :mod:`internet.evaluation.results`)
    and the timings."""
    evaluation = read_results(output_dir / "result", split)
    path = result_paths(output_dir / "result", split)["eval"]
    baselines = evaluation.get("baselines", {})
    after = _metrics(evaluation)
    before, mean_pose = (_metrics(baselines.get(k)) for k in ("untrained", "mean pose"))
    meta = evaluation.get("meta", {})

    def pick(key: str) -> dict:
        return {
            name: (m or {}).get(key)
            for name, m in (("before_training", before), ("after_training", after), ("mean_pose_baseline", mean_pose))
        }

    return {
        "mpjpe_all_mm": pick("mpjpe_all"),
        "mpjpe_single_mm": pick("mpjpe_single"),
        "mpjpe_interacting_mm": pick("mpjpe_interacting"),
        "mrrpe_mm": pick("mrrpe"),
        "handedness_accuracy": pick("handedness_accuracy"),
        "evaluated": {
            "split": split,
            "samples": meta.get("samples"),
            "checkpoint": meta.get("checkpoint"),
            "trans_test": meta.get("trans_test"),
            "details": str(path),
        },
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        **extra,
    }


# ------------------------------------------------------------------------------------------------ command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m internet.app.demo",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-root", default=DEFAULT_DATA_ROOT, help=f"synthetic data set folder ({DEFAULT_DATA_ROOT})")
    p.add_argument("--output-dir", default="output", help="output folder (output)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="data and training seed (0)")
    p.add_argument(
        "--train-size", type=positive_int, default=None, help=f"synthetic training images ({DEFAULT_SIZES['train']})"
    )
    p.add_argument("--val-size", type=non_negative_int, default=None, help="synthetic validation images (200)")
    p.add_argument("--test-size", type=positive_int, default=None, help="synthetic test images (400)")
    p.add_argument("--epochs", type=positive_int, default=None, help="training epochs (the CPU preset's)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="training batch (the CPU preset's)")
    p.add_argument(
        "--max-iters-per-epoch",
        type=non_negative_int,
        default=None,
        help=f"cap on iterations per epoch, 0 for whole epochs ({DEFAULT_MAX_ITERS}: whole epochs of the default set)",
    )
    p.add_argument("--num-workers", type=non_negative_int, default=None, help="data-loading processes (preset's)")
    p.add_argument("--synth-workers", type=positive_int, default=2, help="image rendering processes (2)")
    p.add_argument(
        "--png-export",
        choices=("auto", "matplotlib"),
        default="auto",
        help="PNG of 3D figures: 'auto' uses a headless Chromium when installed (auto)",
    )
    p.add_argument(
        "--float32",
        action="store_true",
        help="train in float32 even where the CPU has native bf16 (the precision of CPUs without it)",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo training run")
    p.add_argument(
        "--quick", action="store_true", help="a plumbing check in seconds: tiny data set and network, two iterations"
    )
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    t_start = time.perf_counter()
    sizes = dict(QUICK_SIZES) if args.quick else dict(DEFAULT_SIZES)
    for key, value in (("train", args.train_size), ("val", args.val_size), ("test", args.test_size)):
        if value is not None:
            sizes[key] = value
    data_root = project_path(args.data_root)
    output_dir = project_path(args.output_dir)
    nb_dir = output_dir / "notebooks"
    png_export = "matplotlib" if args.quick and args.png_export == "auto" else args.png_export

    train_params: Dict[str, Any] = {
        "data_root": str(data_root),
        "output_dir": str(output_dir),
        "preset": "cpu",
        "resume": bool(args.resume),
        "print_every": 2 if args.quick else 10,
    }
    if args.quick:
        train_params.update(
            epochs=1, batch_size=4, max_iters_per_epoch=2, num_workers=0, config_overrides=dict(QUICK_CONFIG)
        )
    else:
        train_params["max_iters_per_epoch"] = DEFAULT_MAX_ITERS
    for key, value in (
        ("epochs", args.epochs),
        ("batch_size", args.batch_size),
        ("max_iters_per_epoch", args.max_iters_per_epoch),
        ("num_workers", args.num_workers),
    ):
        if value is not None:
            train_params[key] = value
    train_params.update({"max_iters_per_epoch": None} if train_params.get("max_iters_per_epoch") == 0 else {})
    train_params["config_overrides"] = {**train_params.get("config_overrides", {}), "seed": args.seed}
    if args.float32:
        train_params["config_overrides"]["amp"] = False  # the trainer's bf16 autocast needs cfg.amp
    common = {"data_root": str(data_root), "output_dir": str(output_dir)}
    plan = [
        ("01_explore_dataset", {**common, "png_export": png_export, "n_browse": 20}),
        ("02_train", train_params),
        ("03_evaluate", {**common, "split": "test", "compare_baselines": True}),
        ("04_visualize_3d", {**common, "png_export": png_export, "split": "test", "n_browse": 20}),
        ("06_sequences", {**common, "png_export": png_export, "split": "test"}),  # sequences, views, video export
    ]

    seconds: Dict[str, float] = {}
    extra: Dict[str, Any] = {
        "data": {"data_root": str(data_root), "seed": args.seed, "sizes": sizes},
        "training": {k: v for k, v in train_params.items() if k not in ("data_root", "output_dir")},
        "executed_notebooks": [],
        "quick": bool(args.quick),
    }
    failure: Optional[str] = None
    try:
        t0 = time.perf_counter()
        extra["data"]["status"] = prepare_data(
            data_root, args.seed, sizes["train"], sizes["val"], sizes["test"], args.synth_workers
        )
        seconds["data"] = time.perf_counter() - t0
        for name, params in plan:
            t0 = time.perf_counter()
            try:
                # only the training notebook's printout (its progress lines) is echoed
                extra["executed_notebooks"].append(str(run_notebook(name, params, nb_dir, echo=name == "02_train")))
            finally:
                seconds[name] = time.perf_counter() - t0
            print(f"[{name}] done in {seconds[name]:.0f} s", flush=True)
    except (DemoError, OSError, ValueError) as e:
        failure = str(e)
    seconds["total"] = time.perf_counter() - t_start
    extra.update({"failed": failure} if failure else {}, machine=machine())
    extra["training"].update(training_speed(output_dir / "log"))
    summary = build_summary(output_dir, "test", seconds, extra)
    summary_path = output_dir / "result" / "summary.json"
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(summary_path, json.dumps(summary, indent=1))  # a reader never sees half a summary
    _report(summary, summary_path, output_dir, failure)
    return 1 if failure else 0


def _fmt(v: Any, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _training_line(summary: dict) -> str:
    training, cpu = summary.get("training", {}), summary.get("machine", {})
    return (
        f"  trained {training.get('iterations') or 'n/a'} iterations at {_fmt(training.get('images_per_s'))} images/s"
        f" in {training.get('precision') or 'n/a'} on {cpu.get('cpu_model', 'n/a')} ({cpu.get('cpu_cores', '?')} cores,"
        f" native bf16: {'yes' if cpu.get('native_bf16') else 'no'})"
    )


def _report(summary: dict, summary_path: Path, output_dir: Path, failure: Optional[str]) -> None:
    m = summary["mpjpe_all_mm"]
    acc = summary["handedness_accuracy"]
    lines = ["", "=" * 78]
    if failure:
        lines.append(f"DEMO FAILED: {failure}")
    lines += [
        "InterNet demo (synthetic InterHand2.6M, CPU preset), test split, official protocol:",
        f"  MPJPE all hands   before training {_fmt(m['before_training'])} mm  |  after {_fmt(m['after_training'])} mm"
        f"  |  mean-pose baseline {_fmt(m['mean_pose_baseline'])} mm",
        f"  handedness acc.   before {_fmt(acc['before_training'], 3)}  |  after {_fmt(acc['after_training'], 3)}"
        f"  |  mean-pose baseline {_fmt(acc['mean_pose_baseline'], 3)}",
        "  time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in summary["seconds"].items()),
        _training_line(summary),
        "where to look:",
        f"  executed notebooks  {output_dir / 'notebooks'}/",
        f"  figures             {output_dir / 'vis'}/  (HTML opens in any browser)",
        f"  metrics             {output_dir / 'result'}/  (eval_test.json, pred_test.npz, per_joint_test.png)",
        f"  checkpoints         {output_dir / 'model_dump'}/    training log {output_dir / 'log'}/",
        f"  summary             {summary_path}",
        "  interactive:        .venv/bin/jupyter lab notebooks/",
        "=" * 78,
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
