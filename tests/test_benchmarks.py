"""The benchmark scripts run (tiny settings) and print one JSON line with their figures; the recorded results in
benchmarks/RESULTS.md are complete. Speed itself is not asserted (shared CI machines are too noisy); what is asserted
is what the figures mean: identical evaluation results, equal losses, the decoding floor, the flip-test error."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from internet.config import Config

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
MACHINE_KEYS = {"cpu_model", "cpu_cores", "ram_gib", "date_utc", "device", "torch"}


def run_bench(name: str, *args: str, tmp_path: Path = None) -> dict:
    """Run ``benchmarks/NAME.py args`` as the README says and parse its single JSON line."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    if tmp_path is not None:
        env["TMPDIR"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout, got {len(lines)}: {proc.stdout[:500]}"
    out = json.loads(lines[0])
    assert out["benchmark"] == name.removeprefix("bench_")
    assert MACHINE_KEYS <= set(out["machine"]), out["machine"]
    assert out["command"].startswith(f"python benchmarks/{name}.py")
    return out


def test_evaluation_vectorised_equals_loop():
    out = run_bench("bench_evaluation", "--n", "3000", "--loop-n", "400", "--repeats", "1")
    f = out["figures"]
    assert out["samples"] == 3000 and out["loop_samples"] == 400 and out["threads"] == 1
    assert f["max_abs_difference_loop_vs_vectorised"] <= 1e-13  # the README: "identical to 1e-13"
    assert out["goals"]["identical to 1e-6"] is True
    assert out["goals"]["vectorised < 15 s for 849,160 samples on one core"] is None  # not at this size
    assert f["vectorised_s"] > 0 and f["loop_s_on_subset"] > 0
    # predictions are the GT plus ~1 voxel of noise: a few mm to a few tens of mm, every metric defined
    m = out["metrics_at_n"]
    assert all(v is not None for v in m.values()), m
    assert 1.0 < m["mpjpe_all"] < 40.0 and m["handedness_accuracy"] > 0.9


def test_decode_floor_subvoxel_and_flip():
    out = run_bench("bench_decode_floor", "--jitters", "1")
    f = out["figures"]
    real = f["real_frames"]
    hard, fine = real["hard_argmax (official)"], real["subvoxel"]
    # deterministic on the real frames: the figures RESULTS.md records (and the README quotes: 2.39 mm, ~1e-5 mm)
    recorded = _recorded_json_lines()["decode_floor"]["figures"]["real_frames"]
    for method in ("hard_argmax (official)", "subvoxel", "exact_coordinates (no decoding)"):
        for metric, value in recorded[method].items():
            assert real[method][metric] == pytest.approx(value, rel=1e-6, abs=1e-7), (method, metric)
    assert fine["mpjpe_all_mm"] < 2e-5 and hard["mpjpe_all_mm"] > 1e5 * fine["mpjpe_all_mm"]
    assert all(out["goals"].values())
    flip = f["flip_test"]
    assert flip["rel_root_depth_bin_gt"] + flip["rel_root_depth_bin_of_flipped_view"] == pytest.approx(64, abs=1e-4)
    err = flip["merged_root_error_mm"]
    assert err["ours: mirrored about the centre (bins - d_flipped)"] < 1e-3
    assert err["mmpose: negated (-d_flipped)"] == pytest.approx(200.0, abs=0.01)  # half of 64 bins of 6.25 mm
    tensor = flip["tensor_flip_mirror_constant"]
    right = tensor["subvoxel / right constant 63.75 (flipped_by='tensor')"]["mean_2d_error_px"]
    wrong = tensor["subvoxel / wrong constant 64 (flipped_by='crop')"]["mean_2d_error_px"]
    assert right < wrong / 5


def test_data_pipeline_reports_rates_and_workers():
    out = run_bench("bench_data_pipeline", "--repeats", "2", "--rounds", "1")
    f = out["figures"]
    assert out["threads"] == 1 and out["samples_per_round"] == 6
    pipe = f["pipeline_samples_per_s_per_core"]
    floor = f["floor_samples_per_s_per_core (imdecode + 1 warpAffine)"]
    assert pipe > 0 and floor > 0
    assert f["ratio_floor_over_pipeline (pipeline time / floor time)"] == pytest.approx(floor / pipe, rel=0.02)
    assert f["workers_to_feed_3000_img_per_s (derived)"] == pytest.approx(3000 / pipe, rel=0.02)
    padded = f["padded_floor_samples_per_s_per_core (imdecode + pad to 4 channels + 1 warpAffine)"]
    assert f["ratio_padded_floor_over_pipeline (pipeline time / padded floor time)"] == pytest.approx(
        padded / pipe, rel=0.02
    )
    assert out["allocator"] in ("retain_freed_memory", "default (not glibc: retain had no effect)")


def test_inference_cpu_preset():
    out = run_bench("bench_inference", "--models", "cpu_preset", "--repeats", "1", "--warmup", "0", "--threads", "1")
    row = out["figures"]["cpu_preset"]
    assert out["batch_size"] == 1 and set(out["figures"]) == {"cpu_preset"}
    assert out["allocator"] in ("retain_freed_memory", "default (not glibc: retain had no effect)")
    h, w = Config.cpu_demo().input_img_shape  # the benchmark measures the preset as it is
    assert row["resnet"] == 18 and row["input"] == f"{h}x{w}"
    for key in ("forward_fp32_ms", "forward_bf16_autocast_ms", "decode_argmax_ms", "predict_end_to_end_ms"):
        assert row[key] > 0, key


def test_train_step_formulations_compute_the_same_losses():
    out = run_bench(
        "bench_train_step",
        "--models",
        "cpu_preset",
        "--batch-size",
        "1",
        "--steps",
        "1",
        "--rounds",
        "1",
        "--threads",
        "1",
    )
    row = out["figures"]["cpu_preset"]
    check = row["loss_check"]
    # the README: "same losses to 7e-8" (batch 16); at batch 1, at most one float32 rounding apart
    for term, rel in check["same_outputs_rel_diff (fast vs dense loss)"].items():
        assert rel <= np.finfo(np.float32).eps, (term, rel)
    assert check["same_outputs_heatmap_grad_max_rel_diff"] < 1e-6
    assert check["formulation_rel_diff (fast vs official, includes the bf16 forward)"]["joint_heatmap"] < 1e-5
    official, fast = row["official"], row["fast"]
    assert out["allocator"] == "retain_freed_memory"  # the Trainer's default, for both formulations
    assert official["loss"] == "dense target volumes" and not official["channels_last"]
    assert official["precision"] == "float32"
    assert fast["loss"] == "separable (fast)" and fast["channels_last"]
    for r in (official, fast):
        assert r["images_per_s"] > 0 and r["peak_rss_mib"] > 0 and len(r["step_s_all"]) == 1 and r["rounds"] == 1
    assert row["speedup_fast_over_official"] > 0


def test_annotation_startup_tiny(tmp_path):
    out = run_bench("bench_annotation_startup", "--n", "1500", "--later", "1", "--work-dir", str(tmp_path))
    f = out["figures"]
    first, later = f["first_load (index build)"], f["later_loads (cached, memory-mapped)"]
    assert first["samples"] == out["annotations"] > 1400  # a few annotations without any valid joint are skipped
    assert later["memory_mapped"] and later["same_cache_dir"]
    assert f["after_touch (re-hash, reuse)"]["reused"]
    edited = f["after_same_size_same_mtime_edit (rebuild)"]
    assert edited["rebuilt"] and edited["old_cache_removed"]
    off = f["official_style_loader"]
    assert off["scale"] == "measured at full size" and off["samples"] == 1500  # the official list keeps all
    assert out["goals"]["cache reused after touch"] is True
    assert out["goals"]["cache rebuilt after a same-size same-mtime edit"] is True
    assert not any(p.name.startswith("cache_") for p in tmp_path.iterdir())  # caches removed afterwards


def test_data_check_quick(tmp_path):
    out = run_bench("bench_data_check", "--n", "20000", "--walk-files", "300", tmp_path=tmp_path)
    f = out["figures"]
    assert out["paths"] == 20000 and f["walk_files"] == 300 and len(f["compare_s (all repeats)"]) == 3
    assert f["compare_s (measured, median)"] > 0 and out["goals"]["image-path check within 60 s on one core"]


# ----------------------------------------------------------------------------------------------------- the record
RESULTS = BENCH / "RESULTS.md"
BENCHMARKS = (
    "train_step",
    "data_pipeline",
    "annotation_startup",
    "evaluation",
    "decode_floor",
    "inference",
    "data_check",
)


def _recorded_json_lines() -> dict:
    text = RESULTS.read_text()
    found = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('{"benchmark"'):
            d = json.loads(line)
            found[d["benchmark"]] = d
    return found


def test_results_md_records_every_benchmark():
    text = RESULTS.read_text()
    found = _recorded_json_lines()
    assert set(BENCHMARKS) <= set(found), f"missing raw JSON lines for {set(BENCHMARKS) - set(found)}"
    for name, d in found.items():
        assert MACHINE_KEYS <= set(d["machine"]), name
        machine = d["machine"]
        # each result says where and when it was measured
        assert isinstance(machine["cpu_model"], str) and machine["cpu_model"].strip(), name
        assert isinstance(machine["cpu_cores"], int) and machine["cpu_cores"] > 0, name
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", machine["date_utc"]), (name, machine["date_utc"])
        assert machine["device"].split(":")[0] in ("cpu", "cuda"), name
        assert d["command"].startswith(f"python benchmarks/bench_{name}.py"), name
        assert f"bench_{name}.py" in text
