"""Trainer: schedule, data order, an end-to-end run of the real model, logs, checkpoints, NaN guard, bad output
folder, failed checkpoint writes, device/AMP choice."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from standins import RandomHands, TinyInterNet, tiny_cfg
from torch.utils.data import DistributedSampler
from vendored import INTERHAND_SAMPLE as SAMPLE

from internet.config import Config, ConfigError
from internet.engine.runtime import TrainingError
from internet.engine.sampler import EpochBatchSampler
from internet.engine.trainer import Trainer, lr_at_epoch
from internet.model.checkpoint import latest_checkpoint, load_checkpoint
from internet.model.losses import InterNetLoss
from internet.utils.device import DeviceError, amp_dtype, choose_device, cpu_has_fast_bf16
from internet.utils.logs import TrainLogger, format_duration, read_jsonl


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; also makes runs bitwise reproducible
    yield
    torch.set_num_threads(n)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------------- schedule
def test_lr_schedule_official_and_per_epoch(tmp_path):
    paper = Config.paper()
    lrs = [lr_at_epoch(e, paper.lr, paper.lr_dec_epoch, paper.lr_dec_factor) for e in range(paper.end_epoch)]
    assert lrs[:15] == pytest.approx([1e-4] * 15)
    assert lrs[15:17] == pytest.approx([1e-5] * 2)
    assert lrs[17:] == pytest.approx([1e-6] * 3)
    assert lr_at_epoch(3, 1e-3, (), 10) == 1e-3
    # the trainer sets it at the start of each epoch; the log records it per iteration
    cfg = tiny_cfg(tmp_path, end_epoch=3, lr_dec_epoch=(1, 2), lr_dec_factor=4.0, max_iters_per_epoch=1)
    trainer = Trainer(cfg, model=TinyInterNet(), train_set=RandomHands(4))
    trainer.train()
    trainer.close()
    recs = read_jsonl(cfg.log_dir / "train_log.jsonl")
    assert [(r["epoch"], r["lr"]) for r in recs] == [(0, 1e-3), (1, 2.5e-4), (2, 6.25e-5)]
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(6.25e-5)


def test_linear_lr_max_bounds_the_linear_layers_rate_and_resumes(tmp_path):
    """linear_lr_max caps the lr of the nn.Linear parameters only (a second Adam group), on every epoch of the
    schedule; unset, the optimizer keeps the official single group; a checkpoint resumes only with its layout."""
    for bad in (0.0, -1e-3, float("nan"), "1e-3"):
        with pytest.raises(Exception, match="linear_lr_max"):
            tiny_cfg(tmp_path / "bad", linear_lr_max=bad)
    official = Trainer(tiny_cfg(tmp_path / "one"), model=TinyInterNet(), train_set=RandomHands(2))
    assert len(official.optimizer.param_groups) == 1
    # lr 1e-2, /10 at epochs 1 and 2, Linear layers capped at 1e-3: (1e-2, 1e-3), (1e-3, 1e-3), (1e-4, 1e-4)
    cfg = tiny_cfg(
        tmp_path / "two", lr=1e-2, end_epoch=3, lr_dec_epoch=(1, 2), max_iters_per_epoch=1, linear_lr_max=1e-3
    )
    torch.manual_seed(0)
    model = TinyInterNet(bn=False)
    trainer = Trainer(cfg, model=model, train_set=RandomHands(4))
    rest, linear = trainer.optimizer.param_groups
    linear_ids = {id(p) for m in (model.root, model.hand) for p in m.parameters()}
    assert {id(p) for p in linear["params"]} == linear_ids
    assert {id(p) for p in rest["params"]} == {id(p) for p in model.parameters()} - linear_ids
    seen = []
    for epoch in range(3):
        trainer.set_lr(epoch)
        seen.append((rest["lr"], linear["lr"]))
    assert np.allclose(seen, [(1e-2, 1e-3), (1e-3, 1e-3), (1e-4, 1e-4)], rtol=1e-12, atol=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.train()
    trainer.close()
    recs = read_jsonl(cfg.log_dir / "train_log.jsonl")
    assert [r["lr"] for r in recs] == pytest.approx([1e-2, 1e-3, 1e-4])  # the log keeps the base rate
    # Adam's first step moves each parameter by about its group's lr: 1e-2 for the convs, 1e-3 for the Linears
    first = load_checkpoint(cfg.model_dump_dir / "snapshot_0.pth.tar")["network"]
    moved = {k: float((first[f"module.{k}"] - before[k]).abs().max()) for k in ("stem.weight", "hand.weight")}
    assert moved["stem.weight"] == pytest.approx(1e-2, rel=0.05)
    assert moved["hand.weight"] == pytest.approx(1e-3, rel=0.05)
    # resuming: the same layout continues; the official single-group layout is refused with a clear message
    again = Trainer(
        cfg.replace(end_epoch=4, continue_train=True), model=TinyInterNet(bn=False), train_set=RandomHands(4)
    )
    again.train()
    again.close()
    assert [g["lr"] for g in again.optimizer.param_groups] == pytest.approx([1e-4, 1e-4])
    single = Trainer(
        cfg.replace(linear_lr_max=None, end_epoch=5, continue_train=True),
        model=TinyInterNet(bn=False),
        train_set=RandomHands(4),
    )
    with pytest.raises(TrainingError, match=r"snapshot_3\.pth\.tar.*2 parameter group.*linear_lr_max"):
        single.train()
    single.close()


# ----------------------------------------------------------------------------------------------------- data order
def test_trainer_steps_with_fused_adam_on_the_cpu_and_its_update_is_the_official_adam(tmp_path):
    """The trainer's optimizer is fused on the CPU too (one kernel for all parameters), and three of its training
    steps move the weights as the per-parameter (official) Adam does from the same start on the same batches."""
    moved = []
    for fused in (True, False):
        torch.manual_seed(0)
        # no BatchNorm: a bias in front of one has a gradient of rounding noise, which Adam scales to a full step
        model = TinyInterNet(bn=False)
        trainer = Trainer(tiny_cfg(tmp_path / str(fused), lr=1e-2), model=model, train_set=RandomHands(6))
        assert all(group["fused"] is True for group in trainer.optimizer.param_groups)
        if not fused:  # the same groups and rates, the official implementation
            for group in trainer.optimizer.param_groups:
                group["fused"] = None
        batches = torch.utils.data.DataLoader(RandomHands(6), batch_size=2)
        for batch in batches:
            trainer._step(batch)
        moved.append({k: v.clone() for k, v in model.state_dict().items()})
    for key, value in moved[0].items():
        assert torch.allclose(value.float(), moved[1][key].float(), rtol=1e-5, atol=1e-6), key


def test_sampler_order_is_reproducible_resumable_and_shards_like_distributed_sampler():
    s = EpochBatchSampler(10, 3, seed=5)
    s.set_epoch(2)
    full = list(s)
    assert [len(b) for b in full] == [3, 3, 3, 1]  # official: the last partial batch is kept
    assert sorted(sum(full, [])) == list(range(10))
    assert full == EpochBatchSampler(10, 3, seed=5).rank_batches(2)  # a function of (seed, epoch) only
    assert full != s.rank_batches(3) and full != EpochBatchSampler(10, 3, seed=6).rank_batches(2)
    s.set_epoch(2, start_batch=2)
    assert list(s) == full[2:] and len(s) == 2  # a resumed run sees exactly the batches not yet seen
    assert len(EpochBatchSampler(10, 3, max_batches=2)) == 2
    # 2 ranks x batch 2 see, batch for batch, the samples of 1 rank x batch 4
    one = EpochBatchSampler(12, 4, seed=1).rank_batches(0)
    r0, r1 = (EpochBatchSampler(12, 2, seed=1, num_replicas=2, rank=r).rank_batches(0) for r in (0, 1))
    assert [sorted(a + b) for a, b in zip(r0, r1)] == [sorted(b) for b in one] and len(one) == len(r0) == 3
    padded = EpochBatchSampler(11, 2, seed=1, num_replicas=2).epoch_order(0)
    assert len(padded) == 12 and padded[11] == padded[0]  # padded cyclically, as DistributedSampler
    # sharding identical to torch's DistributedSampler on the same (unshuffled) order
    for world in (2, 3):
        for rank in range(world):
            ours = sum(EpochBatchSampler(11, 2, shuffle=False, num_replicas=world, rank=rank).rank_batches(0), [])
            theirs = list(DistributedSampler(range(11), num_replicas=world, rank=rank, shuffle=False))
            assert ours == theirs
    with pytest.raises(ValueError, match="empty"):
        EpochBatchSampler(0, 2)
    with pytest.raises(ValueError, match="rank 2"):
        EpochBatchSampler(4, 2, num_replicas=2, rank=2)


def test_loss_weights_scale_each_term_of_the_total(tmp_path):
    """cfg.loss_weights multiplies each term: with (0, 0, 1) only the hand-type head and what feeds it move, the
    heatmap and root heads keep their initial weights; the log keeps the unweighted terms and the weighted total."""
    for bad in ((1.0, -1.0, 1.0), (1.0, 1.0), (1.0, 1.0, float("inf"))):  # the loss checks them, naming its terms
        with pytest.raises(ConfigError, match=r"loss_weights.*3 finite non-negative.*joint_heatmap, rel_root_depth"):
            Trainer(tiny_cfg(tmp_path / "bad", loss_weights=bad), model=TinyInterNet(), train_set=RandomHands(2))
    cfg = tiny_cfg(tmp_path / "out", loss_weights=(0.0, 0.0, 1.0), max_iters_per_epoch=2)
    torch.manual_seed(0)
    model = TinyInterNet(bn=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(cfg, model=model, train_set=RandomHands(8), progress_bar=False)
    trainer.train()
    after = model.state_dict()
    for name in ("hm.weight", "hm.bias", "root.weight", "root.bias"):
        assert torch.equal(before[name], after[name]), name
    for name in ("hand.weight", "stem.weight"):
        assert not torch.equal(before[name], after[name]), name
    rows = read_jsonl(cfg.log_dir / "train_log.jsonl")
    assert all(r["loss_joint_heatmap"] > 0 for r in rows)  # logged unweighted
    assert all(r["loss_total"] == pytest.approx(r["loss_hand_type"]) for r in rows)
    weights = InterNetLoss.from_config(tiny_cfg(tmp_path / "w", loss_weights=(2.0, 0.5, 3.0)))
    assert weights.total(
        {"joint_heatmap": 1.0, "loss_rel_root_depth": 2.0, "hand_type": 1.0, "extra": 5.0}
    ) == pytest.approx(2.0 + 1.0 + 3.0 + 5.0)


class _InputRecorder(TinyInterNet):
    """TinyInterNet (16x16x16 heatmaps from 64x64 crops) that keeps every input batch it is given."""

    def __init__(self):
        super().__init__(depth=16)
        self.inputs = []

    def forward(self, img):
        self.inputs.append(img.detach().clone())
        return super().forward(img)


@pytest.mark.parametrize("workers", [0, 2])
def test_each_epoch_reaches_the_augmentation_through_the_loader(tiny_data, tmp_path, workers):
    """The real data set in train mode, built by the Trainer, through the sampler and the DataLoader (persistent
    workers, which hold their own copy of the data set, with 2): every batch of epoch e is exactly the crops of
    epoch e's augmentation draws, which differ from epoch 0's; a resumed run continues with the next epoch's draws."""
    from internet.data import InterHand26M

    cfg = tiny_cfg(
        tmp_path / "out",
        data_root=str(tiny_data),
        input_img_shape=(64, 64),
        output_hm_shape=(16, 16, 16),
        sigma=1.0,
        num_workers=workers,
        end_epoch=3,
        max_iters_per_epoch=2,
    )
    reference = InterHand26M(cfg, "train", "train", cache_dir=tmp_path / "cache")
    order = EpochBatchSampler(len(reference), cfg.train_batch_size, seed=cfg.seed, max_batches=2)

    def expected(epoch: int) -> list:
        reference.set_epoch(epoch)
        return [
            torch.stack([torch.as_tensor(reference[i]["img"]) for i in batch]) for batch in order.rank_batches(epoch)
        ]

    first = order.rank_batches(0)[0][0]
    reference.set_epoch(0)
    img0 = torch.as_tensor(reference[first]["img"])
    reference.set_epoch(1)
    assert not torch.equal(img0, torch.as_tensor(reference[first]["img"]))  # the epoch changes the draws

    torch.manual_seed(0)
    model = _InputRecorder()
    trainer = Trainer(cfg, model=model, progress_bar=False)
    trainer.train()
    assert trainer.loader.persistent_workers == (workers > 0)
    trainer.close()
    want = expected(0) + expected(1) + expected(2)
    assert len(model.inputs) == len(want) == 6
    for step, (seen, img) in enumerate(zip(model.inputs, want)):
        assert torch.equal(seen, img), f"step {step} (epoch {step // 2}) did not get its epoch's augmentation"
    if workers:
        resumed_model = _InputRecorder()
        resumed = Trainer(cfg.replace(end_epoch=4, continue_train=True), model=resumed_model, progress_bar=False)
        resumed.train()
        resumed.close()
        assert len(resumed_model.inputs) == 2
        assert all(torch.equal(a, b) for a, b in zip(resumed_model.inputs, expected(3)))


# ----------------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    """A tiny synthetic InterHand2.6M set in the official layout: 4 train, 3 test images."""
    from internet.synth import generate

    root = tmp_path_factory.mktemp("synth")
    generate(root, seed=0, n_train=4, n_val=0, n_test=3)
    return root


@pytest.mark.slow
def test_real_internet_trains_logs_checkpoints_and_tests(synth_root, tmp_path):
    """The real InterNet (ResNet-18) and loss on a tiny InterHand2.6M-format set, with the default speed settings
    (channels_last, bf16 autocast where the CPU supports it): 2 iterations, logs, checkpoints, then Trainer.test."""
    cfg = Config.from_params(
        dict(
            data_root=str(synth_root),
            resnet_type=18,
            train_batch_size=3,
            test_batch_size=2,
            end_epoch=1,
            num_workers=0,
            device="cpu",
            ckpt_every_iters=1,
            output_dir=str(tmp_path),
        )
    )
    seen = []
    trainer = Trainer(
        cfg, progress_bar=False, callbacks=[lambda t, rec: seen.append(sorted(os.listdir(cfg.model_dump_dir)))]
    )
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    summary = trainer.train()

    # 4 samples, batch 3: 2 iterations (the official loader keeps the last partial batch)
    assert summary["global_step"] == 2 and summary["epoch"] == 0
    assert seen == [["snapshot_0_iter1.pth.tar"]] * 2  # written after iteration 1 (the epoch end writes snapshot_0)
    assert sorted(os.listdir(cfg.model_dump_dir)) == ["snapshot_0.pth.tar"]  # superseded iteration ckpt removed
    ckpt = torch.load(cfg.model_dump_dir / "snapshot_0.pth.tar", weights_only=True)
    assert ckpt["epoch"] == 0 and set(ckpt["optimizer"]) == {"state", "param_groups"}
    assert {k.removeprefix("module.") for k in ckpt["network"]} == set(trainer.model.state_dict())
    assert all(k.startswith("module.") for k in ckpt["network"])  # loadable by the official DataParallel code
    assert any(
        not torch.equal(ckpt["network"]["module." + k], v) for k, v in start.items() if v.is_floating_point()
    )  # the weights moved
    st = ckpt["train_state"]
    assert (st["next_epoch"], st["next_iter"], st["global_step"]) == (1, 0, 2)
    assert st["config"]["resnet_type"] == 18 and st["data_order"]["global_batch_size"] == 3

    recs = read_jsonl(cfg.log_dir / "train_log.jsonl")
    keys = {
        "epoch",
        "iter",
        "step",
        "lr",
        "loss_joint_heatmap",
        "loss_rel_root_depth",
        "loss_hand_type",
        "loss_total",
        "time",
        "data_time",
        "images_per_s",
    }
    assert [r["step"] for r in recs] == [1, 2] and all(keys <= set(r) for r in recs)
    for r in recs:
        assert r["loss_total"] == pytest.approx(
            r["loss_joint_heatmap"] + r["loss_rel_root_depth"] + r["loss_hand_type"], rel=1e-6
        )
        assert r["loss_joint_heatmap"] > 0 and math.isfinite(r["loss_total"]) and r["time"] >= r["data_time"] >= 0
    text = (cfg.log_dir / "train_logs.txt").read_text()
    assert "epoch 0/1 iter 2/2" in text and "ETA" in text and "lr 1.00e-04" in text

    result = trainer.test()  # the test split with the trained weights
    assert result.counts["samples"] == 3 and math.isfinite(result.mpjpe_all)
    saved = json.loads((cfg.result_dir / "eval_test.json").read_text())
    assert saved["official_protocol"]["mpjpe_all"] == pytest.approx(result.mpjpe_all)
    assert saved["meta"]["split"] == "test" and saved["meta"]["samples"] == 3
    pred = np.load(cfg.result_dir / "pred_test.npz")
    assert pred["joint_coord"].shape == (3, 42, 3) and pred["hand_type"].shape == (3, 2)
    # the saved coordinates are the voxels of each heatmap's maximum, found here with numpy on the test crops
    test_set = trainer.test_set
    crops = torch.stack([torch.as_tensor(test_set[i]["img"]) for i in range(len(test_set))])
    with torch.no_grad():
        heatmap = trainer.model.eval()(crops)["joint_heatmap"].float().numpy()
    z, y, x = np.unravel_index(heatmap.reshape(3, 42, -1).argmax(-1), heatmap.shape[2:])
    np.testing.assert_array_equal(pred["joint_coord"], np.stack([x, y, z], -1))
    np.testing.assert_array_equal(pred["ann_id"], test_set.eval_targets()["ann_id"])
    # a checkpoint argument (epoch number) loads those weights, whatever the trainer holds now, and tags the files
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    assert trainer.test().mpjpe_all != pytest.approx(result.mpjpe_all)  # the perturbed weights score otherwise
    result0 = trainer.test(checkpoint=0)
    assert result0.mpjpe_all == pytest.approx(result.mpjpe_all)
    assert (cfg.result_dir / "eval_test_snapshot_0.json").is_file()
    trainer.close()


@pytest.mark.slow
def test_real_frames_train_and_evaluate(tmp_path):
    """The 3 real InterHand2.6M frames as a training set (one iteration) and as the test split."""
    data_root = shutil.copytree(SAMPLE, tmp_path / "sample")  # the data set writes its annotation cache there
    cfg = Config.from_params(
        dict(
            data_root=str(data_root),
            train_split="test",
            test_split="test",
            resnet_type=18,
            train_batch_size=2,
            test_batch_size=3,
            end_epoch=1,
            max_iters_per_epoch=1,
            num_workers=0,
            device="cpu",
            output_dir=str(tmp_path),
        )
    )
    trainer = Trainer(cfg, progress_bar=False)
    assert trainer.train()["global_step"] == 1
    result = trainer.test()
    assert result.counts == {**result.counts, "samples": 3, "single": 2, "interacting": 1}
    assert math.isfinite(result.mpjpe_single) and math.isfinite(result.mpjpe_interacting)
    assert json.loads((cfg.result_dir / "eval_test.json").read_text())["counts"]["samples"] == 3
    trainer.close()


# ----------------------------------------------------------------------------------------------------- failures
class NaNAt:
    """The real loss, with one term made NaN from the n-th call on."""

    def __init__(self, call: int, term: str):
        self.loss, self.call, self.term, self.calls = InterNetLoss(), call, term, 0

    def __call__(self, outputs, batch):
        self.calls += 1
        losses = self.loss(outputs, batch)
        if self.calls >= self.call:
            losses[self.term] = losses[self.term] * float("nan")
        return losses


def test_nan_loss_stops_with_error_naming_term_and_keeps_checkpoint(tmp_path):
    cfg = tiny_cfg(tmp_path, ckpt_every_iters=2)
    hashes = {}

    def snapshot_files(trainer, rec):
        hashes.update({p.name: _sha(p) for p in cfg.model_dump_dir.iterdir()})

    trainer = Trainer(
        cfg,
        model=TinyInterNet(),
        train_set=RandomHands(10),
        loss_fn=NaNAt(3, "rel_root_depth"),
        callbacks=[snapshot_files],
    )
    with pytest.raises(TrainingError) as err:
        trainer.train()
    msg = str(err.value)
    assert "loss_rel_root_depth=nan" in msg and "loss_joint_heatmap" not in msg
    assert "epoch 0, iteration 2" in msg and "snapshot_0_iter2.pth.tar" in msg
    files = {p.name: _sha(p) for p in cfg.model_dump_dir.iterdir()}
    assert files == hashes and list(files) == ["snapshot_0_iter2.pth.tar"]  # untouched, nothing new
    # the bad step was not applied: the weights are still those of the last good checkpoint (BN running
    # statistics saw the forward pass; they are buffers, not trained weights)
    good = load_checkpoint(cfg.model_dump_dir / "snapshot_0_iter2.pth.tar")
    for k, v in trainer.model.named_parameters():
        assert torch.equal(v, good["network"]["module." + k]), k
    assert trainer.optimizer.state_dict()["state"][0]["step"] == good["optimizer"]["state"][0]["step"] == 2
    assert "non-finite loss" in (cfg.log_dir / "train_logs.txt").read_text()
    trainer.close()


def test_output_folder_not_writable_fails_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cfg = tiny_cfg(blocker / "out")
    with pytest.raises(TrainingError, match=r"output folder .*a_file/out/model_dump is not writable"):
        Trainer(cfg, model=TinyInterNet(), train_set=RandomHands(4))
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(TrainingError, match="not writable"):
                Trainer(tiny_cfg(ro / "out"), model=TinyInterNet(), train_set=RandomHands(4))
        finally:
            ro.chmod(0o700)


def test_failed_checkpoint_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    cfg = tiny_cfg(tmp_path, ckpt_every_iters=1)
    real_save = torch.save
    saves = []

    def failing_save(obj, f, *a, **kw):
        saves.append(1)
        if len(saves) == 2:  # the second checkpoint: half written, then the disk is full
            f.write(b"PK\x03\x04 partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", failing_save)
    trainer = Trainer(cfg, model=TinyInterNet(), train_set=RandomHands(10))
    with pytest.raises(OSError, match=r"snapshot_0_iter2\.pth\.tar.*No space left") as err:
        trainer.train()
    assert err.value.errno == errno.ENOSPC
    assert sorted(os.listdir(cfg.model_dump_dir)) == ["snapshot_0_iter1.pth.tar"]  # no partial or temp file
    assert latest_checkpoint(cfg.model_dump_dir).name == "snapshot_0_iter1.pth.tar"
    ckpt = load_checkpoint(cfg.model_dump_dir / "snapshot_0_iter1.pth.tar")
    assert ckpt["train_state"]["global_step"] == 1
    trainer.close()


# ----------------------------------------------------------------------------------------------------- device, logs
def test_device_and_amp_choice():
    cpu = torch.device("cpu")
    assert choose_device("cpu") == cpu
    assert choose_device("auto") == (
        torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else cpu
    )
    assert amp_dtype(cpu, amp=False) is None
    assert amp_dtype(cpu, amp=True, cpu_amp=False) is None
    assert amp_dtype(cpu, amp=False, cpu_amp=True) is torch.bfloat16  # explicit opt-in wins
    assert amp_dtype(cpu, amp=True) is (torch.bfloat16 if cpu_has_fast_bf16() else None)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            choose_device("cuda:0")
    with pytest.raises(DeviceError, match="tpu"):
        choose_device("tpu")


def test_logs_survive_a_torn_line_and_dedupe_resumed_steps(tmp_path):
    with TrainLogger(tmp_path) as log:
        for step in (1, 2):
            log.iteration(
                {
                    "epoch": 0,
                    "iter": step - 1,
                    "step": step,
                    "lr": 1e-4,
                    "loss_a": 1.0 * step,
                    "time": 0.5,
                    "data_time": 0.1,
                    "images_per_s": 4.0,
                },
                end_epoch=1,
                iters_per_epoch=9,
                eta_s=3725,
            )
    assert "ETA 01:02:05" in log.text_path.read_text() and format_duration(90061) == "1d 01:01:01"
    with open(log.jsonl_path, "a") as f:
        f.write('{"epoch": 0, "st')  # a write cut by SIGKILL
    assert [r["step"] for r in read_jsonl(log.jsonl_path)] == [1, 2]  # the torn line is skipped...
    with TrainLogger(tmp_path) as log:  # ...and cut when the log is reopened by the resumed run
        log.iteration(
            {
                "epoch": 0,
                "iter": 1,
                "step": 2,
                "lr": 1e-4,
                "loss_a": 7.0,
                "time": 0.5,
                "data_time": 0.1,
                "images_per_s": 4.0,
            },
            end_epoch=1,
            iters_per_epoch=9,
            eta_s=1,
        )
    lines = log.jsonl_path.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)
    assert [r["loss_a"] for r in read_jsonl(log.jsonl_path)] == [1.0, 7.0]  # the repeated step: last one wins
    assert len(read_jsonl(log.jsonl_path, dedupe=False)) == 3
    silent = TrainLogger(tmp_path / "rank1", enabled=False)
    silent.info("x")
    assert not (tmp_path / "rank1").exists()
