"""The one inference path (internet.infer.predict) and the GPU-path fixes around it: the flip test merged correctly in
every route (data set, Trainer.test, Predictor, notebook 03), checkpoints evaluated with their own weights
(``python -m internet.engine.train --test``, under torchrun too), resumption across machines (CUDA RNG states, fused
Adam state), the precision and device choice, scalable logs, and the official-size test split of the generator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from standins import RandomHands, TinyInterNet
from torch import nn
from torch.utils.data import Dataset

from internet.config import Config
from internet.data import InterHand26M
from internet.evaluation.protocol import evaluate_interhand
from internet.infer.predict import infer_batch, place_predictions, predict
from internet.skeleton import INTERHAND

REPO = Path(__file__).resolve().parents[1]
POSE_RNG = np.random.default_rng(5)
POSE = np.stack(
    [POSE_RNG.integers(6, 58, 42), POSE_RNG.integers(6, 58, 42), POSE_RNG.integers(6, 58, 42)], axis=1
).astype(np.float64)
REL_ROOT, HAND = 40.0, np.array([0.9, 0.2])


# ------------------------------------------------------------------------------------------------ flip test
def _gaussians(coords: torch.Tensor, size: int = 64, sigma: float = 1.5) -> torch.Tensor:
    """(B, J, 3) continuous (x, y, z) -> (B, J, size, size, size) Gaussian volumes (z, y, x)."""
    grid = torch.arange(size, dtype=torch.float32)
    g = [torch.exp(-((grid - coords[..., a, None]) ** 2) / (2 * sigma**2)) for a in range(3)]
    return g[2][..., :, None, None] * g[1][..., None, :, None] * g[0][..., None, None, :]


class MirrorModel(nn.Module):
    """Sees whether its input is the test pattern (bright left half) or its mirror image and answers like a network
    that is exactly equivariant to the flip: for the mirror image the pose mirrored (x -> c - x, hands swapped),
    the hand-type bits swapped and the relative root bin mirrored (``flipped_*`` override that answer)."""

    def __init__(self, flipped_hand=None, flipped_rel_root=None):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # a parameter, so the model has a device
        c = (256 - 1) / 4  # img.flip(-1) maps crop pixel u to 255 - u; heatmap x = u / 4 -> 63.75 - x
        mirrored = POSE[INTERHAND.flip_perm].copy()
        mirrored[:, 0] = c - mirrored[:, 0]
        self.pose = torch.tensor(POSE, dtype=torch.float32)
        self.mirrored = torch.tensor(mirrored, dtype=torch.float32)
        self.flipped_hand = torch.tensor(
            HAND[::-1].copy() if flipped_hand is None else flipped_hand, dtype=torch.float32
        )
        self.flipped_rel_root = 64 - REL_ROOT if flipped_rel_root is None else flipped_rel_root

    def forward(self, img):
        w = img.shape[-1]
        flipped = img[..., : w // 2].mean((1, 2, 3)) < img[..., w // 2 :].mean((1, 2, 3))
        coords = torch.where(flipped[:, None, None], self.mirrored, self.pose)
        hand = torch.where(flipped[:, None], self.flipped_hand, torch.tensor(HAND, dtype=torch.float32))
        rel = torch.where(flipped, torch.tensor(self.flipped_rel_root), torch.tensor(REL_ROOT)).float()
        # the mirrored view answers louder, so the merged peak follows its un-flipped position: a missing hand swap
        # or a wrong mirror constant moves it
        loudness = torch.where(flipped, 1.0, 0.5)[:, None, None, None, None]
        return {
            "joint_heatmap": loudness * _gaussians(coords) + self.anchor,
            "rel_root_depth": rel[:, None],
            "hand_type": hand,
            "hand_type_logits": torch.logit(hand),
        }


def _pattern() -> np.ndarray:
    img = np.zeros((3, 256, 256), np.float32)
    img[..., :128] = 1.0
    return img


class PatternImages(Dataset):
    """A real test set whose crops are replaced by the test pattern (its ground truth and ids stay)."""

    def __init__(self, dataset):
        self.dataset, self.skeleton, self.split = dataset, dataset.skeleton, dataset.split

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return {**self.dataset[i], "img": _pattern()}

    def eval_targets(self):
        return self.dataset.eval_targets()


@pytest.fixture(scope="module")
def paper_cfg(tiny_data, tmp_path_factory):
    return Config.paper(
        data_root=str(tiny_data),
        device="cpu",
        num_workers=0,
        test_batch_size=4,
        output_dir=str(tmp_path_factory.mktemp("flip_out")),
        subvoxel=True,
    )


@pytest.fixture(scope="module")
def pattern_set(paper_cfg):
    return PatternImages(InterHand26M(paper_cfg, "test", "test"))


def test_flip_test_merges_an_equivariant_network_back_to_its_own_pose(paper_cfg, pattern_set):
    """A network exactly equivariant to the flip must give the same pose with and without the flip test; a wrong
    mirror constant (64 instead of 63.75) moves x by 0.125 voxel, a missing hand swap by many voxels."""
    for flip in (False, True):
        out = predict(MirrorModel(), pattern_set, paper_cfg.replace(flip_test=flip), indices=[0, 3])
        np.testing.assert_allclose(out["joint_coord"], np.broadcast_to(POSE, (2, 42, 3)), atol=0.03)
        np.testing.assert_allclose(out["hand_type"], np.broadcast_to(HAND, (2, 2)), atol=1e-6)
        np.testing.assert_allclose(out["rel_root_depth"], [REL_ROOT, REL_ROOT], atol=1e-5)


def test_flip_test_changes_the_prediction_when_the_views_disagree(paper_cfg, pattern_set):
    model = MirrorModel(flipped_hand=[0.7, 0.6], flipped_rel_root=30.0)
    plain = predict(model, pattern_set, paper_cfg, indices=[1])
    merged = predict(model, pattern_set, paper_cfg.replace(flip_test=True), indices=[1])
    np.testing.assert_allclose(plain["hand_type"][0], HAND, atol=1e-6)
    # the mirrored view's [right, left] is its [left, right]; its root bin mirrors about the centre (64 - 30)
    np.testing.assert_allclose(merged["hand_type"][0], (HAND + [0.6, 0.7]) / 2, atol=1e-6)
    np.testing.assert_allclose(merged["rel_root_depth"][0], (REL_ROOT + 64 - 30.0) / 2, atol=1e-5)


def test_trainer_test_and_predictor_use_the_same_flip_merge(paper_cfg, pattern_set):
    from internet.engine.trainer import Trainer
    from internet.evaluation.results import read_predictions, read_results
    from internet.infer.predictor import Predictor

    cfg = paper_cfg.replace(flip_test=True)
    model = MirrorModel(flipped_hand=[0.7, 0.6], flipped_rel_root=30.0)
    trainer = Trainer(cfg, model=model, train_set=None)
    try:
        result = trainer.test("test", test_set=pattern_set)
    finally:
        trainer.close()
    saved = read_predictions(cfg.result_dir, "test")
    np.testing.assert_allclose(saved["joint_coord"], np.broadcast_to(POSE, saved["joint_coord"].shape), atol=0.03)
    np.testing.assert_allclose(
        saved["hand_type"], np.broadcast_to((HAND + [0.6, 0.7]) / 2, (len(pattern_set), 2)), atol=1e-6
    )
    assert read_results(cfg.result_dir, "test")["meta"]["flip_test"] is True
    expected = evaluate_interhand(predict(model, pattern_set, cfg), pattern_set.eval_targets(), cfg=cfg)
    assert result.mpjpe_all == pytest.approx(expected.mpjpe_all) and result.mrrpe == pytest.approx(expected.mrrpe)
    # Predictor: one crop (h, w, 3) in [0, 255], the same step
    one = Predictor(model, cfg, "cpu").infer(_pattern().transpose(1, 2, 0) * 255.0)
    np.testing.assert_allclose(one["joint_coord"][0], POSE, atol=0.03)
    np.testing.assert_allclose(one["hand_type"][0], (HAND + [0.6, 0.7]) / 2, atol=1e-6)


def test_decoding_happens_on_the_model_device_and_returns_only_coordinates(paper_cfg):
    x = torch.from_numpy(_pattern())[None].repeat(2, 1, 1, 1)
    out = infer_batch(MirrorModel(), x, paper_cfg)
    assert set(out) == {"joint_coord", "rel_root_depth", "hand_type"}
    assert out["joint_coord"].shape == (2, 42, 3) and out["rel_root_depth"].shape == (2,)


def test_predict_needs_the_config_and_checks_indices(paper_cfg, pattern_set):
    with pytest.raises(TypeError, match="Config"):
        predict(MirrorModel(), pattern_set, None)
    with pytest.raises(IndexError, match="indices"):
        predict(MirrorModel(), pattern_set, paper_cfg, indices=[len(pattern_set)])


def test_predict_with_workers_equals_predict_in_process(tiny_data):
    cfg = Config.cpu_demo(data_root=str(tiny_data), input_img_shape=(64, 64), output_hm_shape=(16, 16, 16))
    torch.manual_seed(0)
    from internet.model import InterNet

    model = InterNet.from_config(cfg).eval()
    ds = InterHand26M(cfg, "test", "test")
    a = predict(model, ds, cfg, num_workers=0, batch_size=5)
    b = predict(model, ds, cfg, num_workers=2, batch_size=3)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    placed = place_predictions(a, ds.eval_targets(), cfg)
    assert placed["pred_cam"].shape == (len(ds), 42, 3)


@pytest.mark.parametrize("retain", [True, False])
def test_predict_workers_keep_freed_memory_as_the_config_says(paper_cfg, pattern_set, tmp_path, monkeypatch, retain):
    """``cfg.retain_freed_memory`` reaches predict's loader workers (as it does the trainer's): each forked worker
    calls ``runtime.retain_freed_memory`` at start-up when it is on, and not when it is off."""
    import internet.utils.runtime as runtime

    def mark() -> bool:
        (tmp_path / f"worker_{os.getpid()}").touch()
        return True

    monkeypatch.setattr(runtime, "retain_freed_memory", mark)  # the forked workers inherit the patched module
    cfg = paper_cfg.replace(retain_freed_memory=retain)
    out = predict(MirrorModel(), pattern_set, cfg, indices=[0, 1, 2, 3], num_workers=2, batch_size=1)
    assert len(out["index"]) == 4
    marks = sorted(tmp_path.glob("worker_*"))
    assert len(marks) == (2 if retain else 0) and f"worker_{os.getpid()}" not in [m.name for m in marks]


# ------------------------------------------------------------------------------------------------ notebook 03
def test_notebook_03_flip_test_equals_trainer_test_with_flip(demo_run, execute_notebook, tmp_path):
    """03's flip_test parameter reaches the inference, and 03 and Trainer.test compute the same numbers."""
    from internet.engine.trainer import Trainer
    from internet.evaluation.results import read_predictions, read_results
    from internet.model.load import load_model

    out = tmp_path / "out"
    nb = execute_notebook(
        "03_evaluate",
        tmp_path / "03.ipynb",
        data_root=str(demo_run.data_root),
        output_dir=str(out),
        checkpoint=str(demo_run.checkpoint),
        flip_test=True,
        compare_baselines=False,
        n_show=0,
    )
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "inference on cpu (CPU), float32" in text and "flip test True" in text
    from_nb = read_results(out / "result", "test")
    assert from_nb["meta"]["flip_test"] is True
    cfg = Config.cpu_demo(
        data_root=str(demo_run.data_root), output_dir=str(tmp_path / "trainer"), flip_test=True, num_workers=0
    )
    _, cfg, _ = load_model(demo_run.checkpoint, cfg)
    trainer = Trainer(cfg, train_set=None)
    try:
        trainer.test("test", checkpoint=demo_run.checkpoint)
    finally:
        trainer.close()
    tag = "_" + demo_run.checkpoint.name.split(".pth")[0]
    from_trainer = read_results(cfg.result_dir, "test", tag)
    for key in ("mpjpe_all", "mpjpe_single", "mpjpe_interacting", "mrrpe", "handedness_accuracy"):
        assert from_nb["official_protocol"][key] == pytest.approx(from_trainer["official_protocol"][key]), key
    # and the flip test changed the predictions of the demo's own (flip-free) evaluation
    plain = read_predictions(demo_run.output_dir / "result", "test")
    flipped = read_predictions(out / "result", "test")
    assert not np.allclose(plain["hand_type"], flipped["hand_type"])


# ------------------------------------------------------------------------------------------------ command line
def _train_flags(data_root, out):
    return [
        "--preset",
        "cpu",
        "--data_root",
        str(data_root),
        "--output_dir",
        str(out),
        "--end_epoch",
        "1",
        "--max_iters_per_epoch",
        "2",
        "--num_workers",
        "0",
        "--train_batch_size",
        "2",
        "--input_img_shape",
        "[64,64]",
        "--output_hm_shape",
        "[16,16,16]",
        "--sigma",
        "1.0",
        "--head_channels",
        "32",
    ]


def _independent_eval(checkpoint, data_root):
    from internet.model.load import load_model

    model, cfg, _ = load_model(checkpoint, Config.cpu_demo(data_root=str(data_root)))
    test = InterHand26M(cfg, "test", "test")
    return evaluate_interhand(predict(model, test, cfg, num_workers=0), test.eval_targets(), cfg=cfg), cfg


def test_train_main_test_scores_the_trained_weights(tiny_data, tmp_path, capsys):
    from internet.engine.train import main
    from internet.model import InterNet

    out = tmp_path / "out"
    main(_train_flags(tiny_data, out) + ["--test"])
    printed = capsys.readouterr().out
    checkpoint = out / "model_dump" / "snapshot_0.pth.tar"
    expected, cfg = _independent_eval(checkpoint, tiny_data)
    saved = json.loads((out / "result" / "eval_test_snapshot_0.json").read_text())
    assert saved["official_protocol"]["mpjpe_all"] == pytest.approx(expected.mpjpe_all, rel=1e-6)
    assert f"{expected.mpjpe_all:.2f}" in printed and "official protocol" in printed
    torch.manual_seed(cfg.seed)  # the weights training started from: what the old --test scored
    test = InterHand26M(cfg, "test", "test")
    untrained = evaluate_interhand(predict(InterNet.from_config(cfg), test, cfg), test.eval_targets(), cfg=cfg)
    assert untrained.mpjpe_all != pytest.approx(expected.mpjpe_all, rel=1e-6)


def test_train_main_tests_a_checkpoint_without_a_trainer(tiny_data, tmp_path, capsys, monkeypatch):
    """``--test --checkpoint PATH``: the checkpoint is read back and scored through evaluate_checkpoint; no Trainer
    is built and nothing is trained."""
    import internet.engine.train as cli
    from internet.engine.resume import training_checkpoint
    from internet.model import InterNet
    from internet.model.checkpoint import save_checkpoint

    out = tmp_path / "out"
    flags = _train_flags(tiny_data, out)
    _, cfg = cli.parse_args(flags)
    torch.manual_seed(5)
    model = InterNet.from_config(cfg)
    optimizer = torch.optim.Adam(model.parameters())
    state = training_checkpoint(model, optimizer, cfg, epoch=3, position=(4, 0, 8), data_order={})
    checkpoint = save_checkpoint(tmp_path / "snapshot_3.pth.tar", state)

    def refuse(*args, **kwargs):
        raise AssertionError("--test --checkpoint built a Trainer or trained")

    monkeypatch.setattr(cli, "Trainer", refuse)
    monkeypatch.setattr(cli, "launch", refuse)
    cli.main(flags + ["--test", "--checkpoint", str(checkpoint)])
    expected, _ = _independent_eval(checkpoint, tiny_data)
    saved = json.loads((out / "result" / "eval_test_snapshot_3.json").read_text())
    assert saved["meta"]["checkpoint"] == str(checkpoint)
    assert saved["official_protocol"]["mpjpe_all"] == pytest.approx(expected.mpjpe_all, rel=1e-6)
    assert f"{expected.mpjpe_all:.2f}" in capsys.readouterr().out
    assert not (out / "model_dump").exists() or not any((out / "model_dump").iterdir())


def test_torchrun_trains_and_tests_on_every_rank_without_hanging(tiny_data, tmp_path):
    """``torchrun --nproc_per_node 2 -m internet.engine.train ... --test``: each rank predicts half of the split, rank 0
    prints one table, and the gathered metrics equal a single-process evaluation of the final weights."""
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "internet.engine.train",
        *_train_flags(tiny_data, out),
        "--device",
        "cpu",
        "--test",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("== official protocol") == 1
    expected, _ = _independent_eval(out / "model_dump" / "snapshot_0.pth.tar", tiny_data)
    saved = json.loads((out / "result" / "eval_test.json").read_text())
    assert saved["official_protocol"]["mpjpe_all"] == pytest.approx(expected.mpjpe_all, rel=1e-5)
    assert saved["official_protocol"]["handedness_accuracy"] == pytest.approx(expected.handedness_accuracy)
    pred = np.load(out / "result" / "pred_test.npz")
    np.testing.assert_array_equal(pred["index"], np.arange(len(pred["index"])))


# ------------------------------------------------------------------------------------------------ resuming elsewhere
def test_cuda_rng_states_of_more_gpus_than_this_machine_has_restore(monkeypatch):
    from internet.engine.resume import capture_rng_states, restore_rng_states

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": calls.append((state, device)))
    states = {k: v for k, v in capture_rng_states().items() if k != "cuda"}
    saved = [torch.full((8,), k, dtype=torch.uint8) for k in range(4)]  # written on a 4-GPU machine
    restore_rng_states({**states, "cuda": saved})
    assert len(calls) == 1 and calls[0][1] == 0 and torch.equal(calls[0][0], saved[0])


def test_optimizer_state_follows_the_parameters_device_for_fused_adam():
    from internet.engine.resume import optimizer_state_to_param_device

    cpu_net = nn.Linear(3, 2)
    opt = torch.optim.Adam(cpu_net.parameters(), lr=1e-3)  # as written on a CPU: not fused
    cpu_net(torch.ones(1, 3)).sum().backward()
    opt.step()
    saved = opt.state_dict()
    meta_net = nn.Linear(3, 2, device="meta")  # stands in for a GPU: any device other than the CPU
    resumed = torch.optim.Adam(meta_net.parameters(), lr=1e-3)
    resumed.load_state_dict(saved)
    for group in resumed.param_groups:
        group.update(fused=True, foreach=None)
    optimizer_state_to_param_device(resumed)
    for p in meta_net.parameters():
        state = resumed.state[p]
        assert {k: v.device.type for k, v in state.items()} == {"step": "meta", "exp_avg": "meta", "exp_avg_sq": "meta"}
        assert state["step"].dtype == torch.float32


def test_resume_moves_the_optimizer_state_to_the_parameters(tmp_path, monkeypatch):
    import internet.engine.resume as resume_module
    from internet.engine.trainer import Trainer

    cfg = Config(
        output_dir=str(tmp_path), device="cpu", num_workers=0, train_batch_size=2, end_epoch=1, max_iters_per_epoch=1
    )
    trainer = Trainer(cfg, model=TinyInterNet(), train_set=RandomHands(4))
    trainer.train()
    trainer.close()
    seen = []
    monkeypatch.setattr(resume_module, "optimizer_state_to_param_device", lambda opt: seen.append(opt))
    resumed = Trainer(cfg.replace(continue_train=True, end_epoch=2), model=TinyInterNet(), train_set=RandomHands(4))
    resumed._prepare_data()
    resumed._resume()
    resumed.close()
    assert seen == [resumed.optimizer]


# ------------------------------------------------------------------------------------------------ device, precision
def test_bf16_only_on_gpus_with_bf16_tensor_cores(monkeypatch):
    from internet.utils.device import amp_dtype

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # emulation counts here
    gpu = torch.device("cuda", 0)
    for capability, expected in (((7, 0), None), ((7, 5), None), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert amp_dtype(gpu, True) == expected, capability
    assert amp_dtype(gpu, False) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback to the CPU")
def test_a_paper_size_run_that_falls_back_to_the_cpu_says_so(tmp_path, capsys):
    from internet.engine.trainer import Trainer
    from internet.utils.device import DeviceFallbackWarning, choose_device

    assert choose_device("auto").type == "cpu"  # a small network: no warning
    with pytest.warns(DeviceFallbackWarning, match="resolved to the CPU"):
        trainer = Trainer(
            Config.paper(output_dir=str(tmp_path), device="auto"), model=TinyInterNet(), train_set=RandomHands(2)
        )
    trainer.close()
    assert "WARNING: device='auto' resolved to the CPU" in capsys.readouterr().err
    assert "WARNING device='auto' resolved to the CPU" in (tmp_path / "log" / "train_logs.txt").read_text()


# ------------------------------------------------------------------------------------------------ logs
def _run(tmp_path, name, **overrides):
    from internet.engine.trainer import Trainer
    from internet.utils.logs import read_jsonl

    cfg = Config(
        output_dir=str(tmp_path / name), device="cpu", num_workers=0, train_batch_size=2, end_epoch=1, **overrides
    )
    trainer = Trainer(cfg, model=TinyInterNet(bn=False), train_set=RandomHands(10))
    trainer.train()
    trainer.close()
    return read_jsonl(cfg.log_dir / "train_log.jsonl", dedupe=False)


def test_log_every_iters_writes_window_means(tmp_path):
    torch.manual_seed(0)
    each = _run(tmp_path, "each")
    torch.manual_seed(0)
    windows = _run(tmp_path, "windows", log_every_iters=2)
    assert [r["step"] for r in each] == [1, 2, 3, 4, 5]
    assert [(r["step"], r["iters"]) for r in windows] == [(2, 2), (4, 2), (5, 1)]  # the epoch's end is logged
    for record, (a, b) in zip(windows, ((0, 2), (2, 4), (4, 5))):
        for key in ("loss_joint_heatmap", "loss_rel_root_depth", "loss_hand_type", "loss_total"):
            assert record[key] == pytest.approx(np.mean([r[key] for r in each[a:b]]), rel=1e-5), key
    assert Config.paper().log_every_iters == 20


def test_resume_drops_the_log_records_of_the_steps_it_redoes(tmp_path):
    from internet.engine.trainer import Trainer
    from internet.utils.logs import read_jsonl

    cfg = Config(
        output_dir=str(tmp_path), device="cpu", num_workers=0, train_batch_size=2, end_epoch=1, max_iters_per_epoch=2
    )
    trainer = Trainer(cfg, model=TinyInterNet(bn=False), train_set=RandomHands(4))
    trainer.train()
    trainer.close()
    log = cfg.log_dir / "train_log.jsonl"
    with open(log, "a") as f:  # a later run, killed after two more steps and before its checkpoint
        for step in (3, 4):
            f.write(json.dumps({"step": step, "loss_total": -1.0}) + "\n")
    resumed = Trainer(
        cfg.replace(continue_train=True, end_epoch=2), model=TinyInterNet(bn=False), train_set=RandomHands(4)
    )
    resumed.train()
    resumed.close()
    records = read_jsonl(log, dedupe=False)
    assert [r["step"] for r in records] == [1, 2, 3, 4]  # each step once
    assert all(r["loss_total"] > 0 for r in records)  # the redone steps are this run's
    assert "log record(s) after that step removed" in (cfg.log_dir / "train_logs.txt").read_text()


def test_progress_lines_come_from_rank_0_only(capsys):
    from types import SimpleNamespace

    from internet.app.notebook import PrintProgress

    record = {"step": 1, "epoch": 0, "iter": 0, "lr": 1e-3, "loss_total": 1.0, "images_per_s": 1.0}
    PrintProgress(1)(SimpleNamespace(is_main=False), record)
    assert capsys.readouterr().out == ""
    PrintProgress(1)(SimpleNamespace(is_main=True), record)
    assert "step 1" in capsys.readouterr().out


def test_a_failing_device_moves_nothing_of_the_earlier_run(tmp_path):
    from internet.app.notebook import archive_previous_run
    from internet.utils.device import DeviceError

    cfg = Config.cpu_demo(output_dir=str(tmp_path), device="cuda:7")
    cfg.model_dump_dir.mkdir(parents=True)
    (cfg.model_dump_dir / "snapshot_3.pth.tar").write_text("earlier run")
    with pytest.raises(DeviceError, match="cuda:7"):
        archive_previous_run(cfg)
    assert (cfg.model_dump_dir / "snapshot_3.pth.tar").read_text() == "earlier run"
    assert not (tmp_path / "previous").exists()


# ------------------------------------------------------------------------------------------------ official size
def test_image_pool_writes_distinct_annotations_that_reuse_rendered_images(tmp_path):
    from internet.synth.__main__ import main

    root = tmp_path / "InterHand2.6M"
    assert main(["--out", str(root), "--train", "0", "--val", "0", "--test", "25", "--image-pool", "6", "--quiet"]) == 0
    data = json.loads((root / "annotations" / "test" / "InterHand2.6M_test_data.json").read_text())
    anns, images = data["annotations"], data["images"]
    assert len(anns) == len(images) == 25
    assert len({a["id"] for a in anns}) == 25 and len({i["id"] for i in images}) == 25
    assert len({i["file_name"] for i in images}) == 6 == len(list((root / "images" / "test").rglob("*.jpg")))
    cfg = Config.cpu_demo(data_root=str(root), input_img_shape=(64, 64), output_hm_shape=(16, 16, 16))
    ds = InterHand26M(cfg, "test", "test")
    assert len(ds) == 25
    by_id = {a["id"]: a for a in anns}
    position = {int(ds[i]["ann_id"]): i for i in range(len(ds))}  # the datalist puts single hands first
    for k in (7, 13, 24):  # annotation k is pool entry k % 6: same box, image and ground truth
        a, b = ds[position[k]], ds[position[k % 6]]
        assert by_id[k]["bbox"] == by_id[k % 6]["bbox"] and by_id[k]["hand_type"] == by_id[k % 6]["hand_type"]
        np.testing.assert_array_equal(a["img"], b["img"])
        np.testing.assert_array_equal(a["joint_coord"], b["joint_coord"])


def test_inference_scale_benchmark_runs(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", TMPDIR=str(tmp_path))
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench_inference_scale.py"),
            "--n",
            "400",
            "--pool",
            "8",
            "--samples",
            "64",
            "--workers",
            "0,1",
            "--batch-size",
            "16",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip())
    f = out["figures"]
    assert out["annotations"] == 400 and out["command"].startswith("python benchmarks/bench_inference_scale.py")
    assert f["workers_0"]["samples"] == f["workers_1"]["samples"] == 64
    assert f["workers_1"]["workers_peak_rss_mib"] > 0 and f["workers_0"]["workers_peak_rss_mib"] == 0
    assert set(f["memory_check"]) == {"workers_0", "workers_1"}
    assert f["projected_full_pass_data_side_s_on_16_cores"] == pytest.approx(
        400 / (f["workers_1"]["samples_per_s"] * 16), rel=0.01, abs=0.01
    )
    for w, mem in f["memory_check"].items():
        assert mem["samples"] == [64, 256]
        anon = [r["RssAnon"] for r in mem["resident_at_end_mib"]]
        assert min(anon) > 0 and mem["anonymous_growth_mib"] == pytest.approx(anon[1] - anon[0], abs=0.11), w
        # glibc: the heap at the end (held, free) and the anonymous memory held once the free heap is given back
        assert mem["free_heap_bound_mib"] == pytest.approx(2 * 16 * 3 * 256 * 256 * 4 / 2**20 + 32, abs=0.1)
        if mem["heap_at_end_mib"][0] is not None:
            assert all(h["in_use"] > 0 and h["free"] >= 0 for h in mem["heap_at_end_mib"]), w
            assert mem["live_anonymous_growth_mib"] is not None, w
    goals, memory = out["goals"], list(f["memory_check"].values())
    if memory[0]["heap_at_end_mib"][0] is None:  # not glibc: no heap figures, no memory goals
        return
    assert goals["anonymous memory held grows <= 2 x the extra predictions + 32 MiB"] == all(
        m["live_anonymous_growth_mib"] <= 2 * m["extra_prediction_mib"] + 32 for m in memory
    )
    assert goals["free heap <= 2 batches + 32 MiB at both sample counts"] == all(
        h["free"] <= m["free_heap_bound_mib"] for m in memory for h in m["heap_at_end_mib"]
    )
    machine = f["machine_scaling_without_loader"]
    assert machine["samples_per_s_1_process"] > 0 and machine["speedup_1_to_2_processes"] == pytest.approx(
        machine["samples_per_s_2_processes"] / machine["samples_per_s_1_process"], abs=0.01
    )


# ------------------------------------------------------------------------------------ recipes of docs/usage.md
def _readme_block(containing: str) -> str:
    text = (REPO / "docs" / "usage.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    found = [b for b in blocks if containing in b]
    assert len(found) == 1, f"expected one python block of docs/usage.md with {containing!r}, found {len(found)}"
    return found[0]


def test_readme_python_recipes_for_a_checkpoint_run(trained_checkpoint, tiny_data, capsys):
    """docs/usage.md's "your own image" and "score a checkpoint yourself" blocks, run as written (paths swapped)."""
    from internet.app import explore

    index = explore.load_split_index(tiny_data, "test")
    image = tiny_data / "images" / "test" / index.file_name(0)
    box = [round(float(v), 2) for v in index["bbox"][0]]
    swap = {
        "output/model_dump/snapshot_9.pth.tar": str(trained_checkpoint),
        "photo.jpg": str(image),
        "[69, 137, 165, 153]": str(box),
        "Config.cpu_demo()": f"Config.cpu_demo(data_root={str(tiny_data)!r})",
    }
    for marker in ("predictor.predict(", "evaluate_dataset("):
        code = _readme_block(marker)
        for a, b in swap.items():
            code = code.replace(a, b)
        scope: dict = {}
        exec(compile(code, f"docs/usage.md ({marker})", "exec"), scope)
        if marker == "predictor.predict(":
            assert scope["out"]["joint_img"].shape == (42, 2) and scope["predictor"].checkpoint == trained_checkpoint
    assert "== official protocol" in capsys.readouterr().out
    assert len(scope["pred"]["index"]) == len(scope["test_set"])
