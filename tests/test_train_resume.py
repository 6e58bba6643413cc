"""Exact resumption: from a checkpoint in-process, from an official snapshot, and after SIGKILL (mid-epoch, and in
the middle of a checkpoint write) in a subprocess; the resumed runs end with the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import standins
import torch
from standins import RandomHands, TinyInterNet

from internet.config import Config
from internet.engine.runtime import TrainingError
from internet.engine.trainer import Trainer
from internet.model.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from internet.utils.logs import read_jsonl

REPO = Path(__file__).resolve().parents[1]


def tiny_cfg(out: Path, **kw) -> Config:
    # 10 samples, batch 2: 5 iterations per epoch; the lr drops at epoch 1, so a resume must restore the schedule
    return standins.tiny_cfg(out, **{"end_epoch": 2, **kw})


def run(cfg: Config, **kw) -> Trainer:
    torch.manual_seed(0)
    trainer = Trainer(cfg, model=TinyInterNet(), train_set=RandomHands(10), **kw)
    trainer.train()
    trainer.close()
    return trainer


def final_state(out: Path, epoch: int = 1) -> dict:
    return load_checkpoint(out / "model_dump" / f"snapshot_{epoch}.pth.tar")


def assert_same_training(a: dict, b: dict) -> None:
    assert a["epoch"] == b["epoch"]
    assert a["network"].keys() == b["network"].keys()
    for k in a["network"]:
        assert torch.equal(a["network"][k], b["network"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for p in sa:
        for k in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(torch.as_tensor(sa[p][k]), torch.as_tensor(sb[p][k])), (p, k)
    assert a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"]
    ta, tb = a.get("train_state"), b.get("train_state")
    if ta and tb:
        assert (ta["next_epoch"], ta["next_iter"], ta["global_step"]) == (
            tb["next_epoch"],
            tb["next_iter"],
            tb["global_step"],
        )


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # bitwise reproducible CPU runs (and the machine is shared)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted 2-epoch run (10 steps, iteration checkpoints every 2)."""
    out = tmp_path_factory.mktemp("reference")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    run(tiny_cfg(out, ckpt_every_iters=2))
    torch.set_num_threads(n)
    return out


# ----------------------------------------------------------------------------------------------------- in-process
def test_resume_from_checkpoint_continues_schedule_and_matches(reference, tmp_path):
    run(tiny_cfg(tmp_path, end_epoch=1, ckpt_every_iters=2))  # stops after epoch 0
    assert latest_checkpoint(tmp_path / "model_dump").name == "snapshot_0.pth.tar"
    trainer = run(tiny_cfg(tmp_path, end_epoch=2, ckpt_every_iters=2, continue_train=True))
    assert trainer.global_step == 10
    assert_same_training(final_state(tmp_path), final_state(reference))
    recs = read_jsonl(tmp_path / "log" / "train_log.jsonl")
    ref = read_jsonl(reference / "log" / "train_log.jsonl")
    assert [(r["epoch"], r["iter"], r["step"], r["lr"]) for r in recs] == [
        (r["epoch"], r["iter"], r["step"], r["lr"]) for r in ref
    ]
    assert [r["lr"] for r in recs] == [1e-3] * 5 + [1e-4] * 5
    assert [r["loss_total"] for r in recs] == [r["loss_total"] for r in ref]
    assert "resumed from" in (tmp_path / "log" / "train_logs.txt").read_text()


def test_official_snapshot_resumes_at_next_epoch(reference, tmp_path):
    """An official snapshot_N.pth.tar (only epoch / network / optimizer) resumes at epoch N + 1."""
    ours = load_checkpoint(reference / "model_dump" / "snapshot_0.pth.tar")  # end-of-epoch snapshots are kept
    official = {"epoch": 0, "network": ours["network"], "optimizer": ours["optimizer"]}
    save_checkpoint(tmp_path / "model_dump" / "snapshot_0.pth.tar", official)
    trainer = run(tiny_cfg(tmp_path, continue_train=True))
    recs = read_jsonl(tmp_path / "log" / "train_log.jsonl")
    assert [(r["epoch"], r["iter"], r["lr"]) for r in recs] == [(1, i, 1e-4) for i in range(5)]
    assert trainer.global_step == 10  # steps counted as if epoch 0 had run here
    assert_same_training(final_state(tmp_path), final_state(reference))


def test_mid_epoch_resume_refuses_a_changed_data_order(reference, tmp_path):
    dump = tmp_path / "model_dump"
    dump.mkdir(parents=True)
    src = reference / "model_dump" / "snapshot_0.pth.tar"
    ckpt = load_checkpoint(src)
    ckpt["train_state"].update(next_epoch=1, next_iter=2, global_step=7)  # as if stopped inside epoch 1
    save_checkpoint(dump / "snapshot_1_iter2.pth.tar", ckpt)
    torch.manual_seed(0)
    trainer = Trainer(
        tiny_cfg(tmp_path, continue_train=True, train_batch_size=5), model=TinyInterNet(), train_set=RandomHands(10)
    )
    with pytest.raises(TrainingError, match=r"inside epoch 1 at iteration 2.*global_batch_size: 2 -> 5"):
        trainer.train()
    trainer.close()


# ----------------------------------------------------------------------------------------------------- SIGKILL
def child_main(out: str, kill_at_step: int, kill_in_save: int, continue_train: bool) -> None:
    """Body of the subprocess: train the stand-in; SIGKILL itself after step ``kill_at_step`` (its iteration
    checkpoint, if any, written), or in the middle of writing the ``kill_in_save``-th checkpoint file."""
    torch.set_num_threads(1)
    real_save = torch.save
    saves = []

    def save_then_die(obj, f, *a, **kw):
        saves.append(1)
        if len(saves) == kill_in_save:
            f.write(b"PK\x03\x04 half a checkpoint")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *a, **kw)

    def die_after(trainer, record):
        if record["step"] == kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)

    torch.save = save_then_die
    run(tiny_cfg(Path(out), ckpt_every_iters=2, continue_train=continue_train), callbacks=[die_after])


def spawn_child(out: Path, kill_at_step: int = -1, kill_in_save: int = -1, continue_train: bool = False) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    code = (
        f"import test_train_resume as t; t.child_main({str(out)!r}, {kill_at_step}, {kill_in_save}, {continue_train})"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.returncode


@pytest.mark.slow
def test_sigkill_mid_epoch_and_during_checkpoint_write_then_resume_matches(tmp_path):
    reference = tmp_path / "uninterrupted"  # run the same way (a fresh process), so equality can be exact
    assert spawn_child(reference) == 0
    tmp_path = tmp_path / "killed"
    dump = tmp_path / "model_dump"
    # 1) killed while writing the 2nd checkpoint (step 4): the step-2 checkpoint stays the latest and loads
    assert spawn_child(tmp_path, kill_in_save=2) == -signal.SIGKILL
    assert latest_checkpoint(dump).name == "snapshot_0_iter2.pth.tar"
    assert load_checkpoint(dump / "snapshot_0_iter2.pth.tar")["train_state"]["global_step"] == 2
    assert not (dump / "snapshot_0_iter4.pth.tar").exists()
    assert len(list(dump.glob(".snapshot_0_iter4.pth.tar.*.tmp"))) == 1  # the torn write, never renamed
    # 2) resumed there, then SIGKILLed mid-epoch 1 right after its iteration checkpoint of step 8
    assert spawn_child(tmp_path, kill_at_step=8, continue_train=True) == -signal.SIGKILL
    latest = latest_checkpoint(dump)
    assert latest.name == "snapshot_1_iter3.pth.tar"  # step 8 = epoch 1, 3 iterations done
    assert sorted(os.listdir(dump)) == ["snapshot_0.pth.tar", "snapshot_1_iter3.pth.tar"]  # torn temp file removed
    # 3) resumed again: finishes, and ends exactly where the uninterrupted run ended
    assert spawn_child(tmp_path, continue_train=True) == 0
    assert_same_training(final_state(tmp_path), final_state(reference))
    assert not list(dump.glob("snapshot_1_iter*"))  # iteration checkpoints of a finished epoch are gone
    # the log (killed lines re-run) reads as the uninterrupted one
    recs = read_jsonl(tmp_path / "log" / "train_log.jsonl")
    ref = read_jsonl(reference / "log" / "train_log.jsonl")
    assert [(r["step"], r["lr"], r["loss_total"]) for r in recs] == [(r["step"], r["lr"], r["loss_total"]) for r in ref]
    for line in (tmp_path / "log" / "train_log.jsonl").read_text().splitlines():
        json.loads(line)
