"""Multi-process training from a notebook or a script: one process per GPU (or CPU share) under
DistributedDataParallel, each running a :class:`internet.engine.trainer.Trainer`."""

from __future__ import annotations

import os
import pickle
import socket
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from internet.config import Config
from internet.engine.runtime import TrainingError, check_output_dir
from internet.engine.trainer import Trainer
from internet.model.checkpoint import latest_checkpoint
from internet.utils.device import choose_device


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, cfg_params: dict, trainer_kwargs: bytes) -> None:
    cfg = Config.from_params(cfg_params)
    # unpickled here from plain bytes: every process gets private copies of the model's tensors (torch's
    # multiprocessing pickler would share their memory between processes, and each optimizer would step them)
    kwargs = pickle.loads(trainer_kwargs)
    # torchrun's environment: the Trainer's internet.engine.runtime.resolve_process sets the process up from it
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    try:
        trainer = Trainer(cfg, **kwargs)
        trainer.train()
        trainer.close()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(cfg: Config, nprocs: Optional[int] = None, **trainer_kwargs: Any) -> Optional[Path]:
    """Train with ``nprocs`` processes (default ``cfg.num_gpus``) under DistributedDataParallel, from a notebook or a
    script: nccl on CUDA (one GPU per process), gloo on CPU. ``trainer_kwargs`` go to :class:`Trainer` in every
    process: they are pickled, so a model / data set / callback given here is copied to each process and its class
    must be importable by the workers (a module, not a notebook cell; a script needs the
    ``if __name__ == "__main__":`` guard). DDP broadcasts rank 0's initial weights. With one process, trains here.
    Returns the latest checkpoint written."""
    nprocs = cfg.num_gpus if nprocs is None else nprocs
    if nprocs < 1:
        raise ValueError(f"nprocs must be >= 1, got {nprocs}")
    check_output_dir(cfg)
    if nprocs == 1:
        trainer = Trainer(cfg, **trainer_kwargs)
        trainer.train()
        trainer.close()
        return trainer.last_checkpoint
    device = choose_device(cfg.device)
    if device.type == "cuda" and torch.cuda.device_count() < nprocs:
        raise TrainingError(f"{nprocs} processes asked for but only {torch.cuda.device_count()} GPUs are visible")
    try:
        payload = pickle.dumps(trainer_kwargs)
    except Exception as e:
        raise TrainingError(
            f"launch: the Trainer arguments {sorted(trainer_kwargs)} cannot be sent to the worker "
            f"processes ({type(e).__name__}: {e}); define models, data sets and callbacks in an "
            "importable module, not in the notebook"
        ) from e
    mp.spawn(_ddp_worker, args=(nprocs, _free_port(), cfg.to_dict(), payload), nprocs=nprocs, join=True)
    return latest_checkpoint(cfg.model_dump_dir)
