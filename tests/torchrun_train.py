"""One rank of a torchrun training of the stand-ins (run by tests/test_torchrun.py, the recipes of
docs/distributed.md): ``torchrun ... tests/torchrun_train.py OUT [--kill-rank R --kill-at-sample N]``.

The model (TinyInterNet without BatchNorm, seed 0) and data (RandomHands) are those of tests/test_ddp.py, so the
weights can be compared with a single process's. ``--kill-rank R --kill-at-sample N``: in the first attempt
(TORCHELASTIC_RESTART_COUNT 0), rank R SIGKILLs itself when it loads its N-th sample (a lost node); torchrun's
restart resumes from the latest checkpoint (``continue_train``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import standins  # noqa: E402
from standins import RandomHands, TinyInterNet  # noqa: E402

from internet.engine.train import Trainer  # noqa: E402

SAMPLES = 16
"""8 samples a process at batch 2: 4 iterations an epoch (with 2 processes), 2 epochs."""


def config(out: Path, world: int, **kw):
    """The run's config for ``world`` processes: a global batch of 4 whatever the process count."""
    return standins.tiny_cfg(
        out, train_batch_size=4 // world, end_epoch=2, ckpt_every_iters=2, continue_train=True, **kw
    )


class Killing(RandomHands):
    def __init__(self, n: int, rank_to_kill: int, at: int) -> None:
        super().__init__(n, root_valid_rate=0.7)
        self.rank_to_kill, self.at, self.loaded = rank_to_kill, at, 0

    def __getitem__(self, i: int) -> dict:
        self.loaded += 1
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        if first_attempt and int(os.environ.get("RANK", "0")) == self.rank_to_kill and self.loaded == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(i)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--kill-rank", type=int, default=-1)
    p.add_argument("--kill-at-sample", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = TinyInterNet(bn=False)
    cfg = config(Path(args.out), int(os.environ.get("WORLD_SIZE", "1")))
    data = Killing(SAMPLES, args.kill_rank, args.kill_at_sample)
    trainer = Trainer(cfg, model=model, train_set=data, progress_bar=False)
    trainer.train()
    trainer.close()


if __name__ == "__main__":
    main()
