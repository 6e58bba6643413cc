"""DistributedDataParallel on CPU (gloo): 2 processes x batch 2 train exactly like 1 process x batch 4.

BatchNorm statistics are per process under DDP (torch's SyncBatchNorm runs on CUDA only), so the equality holds for
a network without BatchNorm; the stand-in here has none. The real InterNet's BN layers make multi-process training
differ slightly from single-process training, as in the official multi-GPU (DataParallel) code.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import standins
import torch
import torch.distributed as dist
from standins import RandomHands, TinyInterNet

from internet.config import Config
from internet.engine.launch import launch
from internet.engine.trainer import Trainer
from internet.model.checkpoint import load_checkpoint
from internet.utils.logs import read_jsonl


def tiny_cfg(out: Path, **kw) -> Config:
    return standins.tiny_cfg(out, **{"end_epoch": 2, **kw})  # each test sets its batch


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this torch build")
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    torch.manual_seed(0)
    model = TinyInterNet(bn=False)
    init = copy.deepcopy(model.state_dict())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # 1 process, batch 4: 8 samples -> 2 iterations per epoch, 2 epochs
        single = Trainer(
            tiny_cfg(tmp_path / "one", train_batch_size=4),
            model=model,
            train_set=RandomHands(8, root_valid_rate=0.7),
            progress_bar=False,
        )
        single.train()
        single.close()
    finally:
        torch.set_num_threads(threads)

    twin = TinyInterNet(bn=False)
    twin.load_state_dict(init)
    cfg2 = tiny_cfg(tmp_path / "two", train_batch_size=2, num_gpus=2)
    last = launch(cfg2, model=twin, train_set=RandomHands(8, root_valid_rate=0.7), progress_bar=False)
    assert last == cfg2.model_dump_dir / "snapshot_1.pth.tar"

    a = load_checkpoint(tmp_path / "one" / "model_dump" / "snapshot_1.pth.tar")
    b = load_checkpoint(last)
    assert a["train_state"]["global_step"] == b["train_state"]["global_step"] == 4
    assert b["train_state"]["data_order"]["world_size"] == 2
    assert b["train_state"]["data_order"]["global_batch_size"] == 4
    moved = max((a["network"]["module." + k] - v).abs().max().item() for k, v in init.items() if k != "bins")
    assert moved > 1e-3  # the runs trained: a tolerance of 1e-5 is far below what 4 steps change
    for k in a["network"]:
        torch.testing.assert_close(b["network"][k], a["network"][k], rtol=0, atol=1e-5, msg=k)

    # only rank 0 logs: one record per step; the logged losses are the global means, equal to the 1-process ones
    r1 = read_jsonl(tmp_path / "one" / "log" / "train_log.jsonl", dedupe=False)
    r2 = read_jsonl(tmp_path / "two" / "log" / "train_log.jsonl", dedupe=False)
    assert [r["step"] for r in r2] == [1, 2, 3, 4]
    for x, y in zip(r1, r2):
        assert (x["epoch"], x["iter"], x["lr"]) == (y["epoch"], y["iter"], y["lr"])
        assert y["loss_total"] == pytest.approx(x["loss_total"], rel=1e-5)
    assert "2 process(es), global batch 4" in (tmp_path / "two" / "log" / "train_logs.txt").read_text()
