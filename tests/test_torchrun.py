"""The torchrun recipes of docs/distributed.md, run on the CPU (gloo, loopback only): two ``--nnodes 2`` agents over
the c10d rendezvous train to the single-process weights; a rank SIGKILLed mid-epoch under ``--max-restarts 1``
restarts the group, which resumes from the last checkpoint and ends with the uninterrupted run's weights and a log
with each step once."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torchrun_train
from standins import RandomHands, TinyInterNet

from internet.engine.trainer import Trainer
from internet.model.checkpoint import load_checkpoint
from internet.utils.logs import read_jsonl

REPO = Path(__file__).resolve().parents[1]
DRIVER = Path(torchrun_train.__file__)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this torch build"),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recipe(name: str, port: int) -> list:
    """The torchrun options of the docs block marked ``<!-- tested: NAME -->``, placeholders filled for loopback."""
    text = (REPO / "docs" / "distributed.md").read_text()
    block = re.search(rf"<!-- tested: {name} -->\s*```bash\n(.*?)```", text, re.S)
    assert block, f"docs/distributed.md has no block marked 'tested: {name}'"
    words = shlex.split(block.group(1).replace("\\\n", " "))
    assert words[0] == "torchrun" and "-m" in words and words[words.index("-m") + 1] == "internet.engine.train"
    options = words[1 : words.index("-m")]
    subs = {"$MASTER_ADDR": "127.0.0.1", "$PORT": str(port), "$JOB_ID": f"test{port}"}
    return [re.sub(r"\$[A-Z_]+", lambda m: subs[m.group(0)], w) for w in options]


def torchrun(options: list, out: Path, *driver_args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",  # loopback only
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", *options, "--monitor-interval", "0.5", str(DRIVER)]
    return subprocess.Popen(
        [*cmd, str(out), *driver_args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"torchrun did not finish in {timeout} s:\n{out[-4000:]}") from None
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict:
    """The same training in one process with the same global batch (4): its final checkpoint."""
    out = tmp_path_factory.mktemp("single")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        data = RandomHands(torchrun_train.SAMPLES, root_valid_rate=0.7)
        trainer = Trainer(
            torchrun_train.config(out, 1), model=TinyInterNet(bn=False), train_set=data, progress_bar=False
        )
        trainer.train()
        trainer.close()
    finally:
        torch.set_num_threads(threads)
    return load_checkpoint(out / "model_dump" / "snapshot_1.pth.tar")


def assert_same_weights(a: dict, b: dict) -> None:
    assert a["train_state"]["global_step"] == b["train_state"]["global_step"] == 8
    assert b["train_state"]["data_order"]["world_size"] == 2
    for k, v in a["network"].items():
        # DDP's state has a "module." prefix in neither: the checkpoint holds the bare network
        torch.testing.assert_close(b["network"][k], v, rtol=0, atol=1e-5, msg=k)


def test_two_torchrun_agents_over_c10d_train_like_one_process(single, tmp_path):
    port = _free_port()
    options = recipe("multinode", port) + ["--local-addr", "127.0.0.1"]  # the agents announce loopback only
    agents = [torchrun(options, tmp_path) for _ in range(2)]
    outputs = [finish(a) for a in agents]
    assert_same_weights(single, load_checkpoint(tmp_path / "model_dump" / "snapshot_1.pth.tar"))
    steps = [r["step"] for r in read_jsonl(tmp_path / "log" / "train_log.jsonl", dedupe=False)]
    assert steps == list(range(1, 9)), outputs[0][-2000:]
    assert "2 process(es), global batch 4" in (tmp_path / "log" / "train_logs.txt").read_text()


def test_a_rank_killed_mid_epoch_restarts_and_resumes_to_the_same_weights(single, tmp_path):
    # rank 1 loads 2 samples a step: its 15th sample is step 8's, so steps 1-7 are done and the iteration
    # checkpoint of step 6 (epoch 1, iteration 2) is the last one when it dies
    options = recipe("restart", _free_port())
    assert "--max-restarts" in options
    out = finish(torchrun(options, tmp_path, "--kill-rank", "1", "--kill-at-sample", "15"))
    assert f"exitcode: -{int(signal.SIGKILL)}" in out or "Signal 9" in out  # the rank was killed, not stopped
    text = (tmp_path / "log" / "train_logs.txt").read_text()
    assert "resumed from" in text and "snapshot_1_iter2.pth.tar: epoch 1, iteration 2, step 6" in text
    assert_same_weights(single, load_checkpoint(tmp_path / "model_dump" / "snapshot_1.pth.tar"))
    steps = [r["step"] for r in read_jsonl(tmp_path / "log" / "train_log.jsonl", dedupe=False)]
    assert steps == list(range(1, 9))  # step 7, logged by the dead group, is there once
