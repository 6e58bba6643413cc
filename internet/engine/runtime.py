"""One place that sets a training or testing process up: its rank in a distributed run, its device, its precision,
the heap settings of it and its data-loader workers, and where the model goes.

:func:`resolve_process` is called once per process (by :class:`internet.engine.trainer.Trainer` and by
:func:`internet.engine.evaluate.evaluate_checkpoint`); everything after reads the :class:`Process` it returns.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional

import torch
import torch.distributed as dist
from torch import nn

from internet.config import Config
from internet.utils.device import amp_dtype, choose_device, is_paper_scale
from internet.utils.runtime import loader_worker_init, retain_freed_memory


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, unusable output folder, a checkpoint that cannot be resumed)."""


@dataclass(frozen=True)
class Process:
    """What :func:`resolve_process` decided for this process."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    amp_dtype: Optional[torch.dtype]  # bf16 autocast for training, None for float32
    worker_init: Optional[Callable[[int], None]]  # the data-loader workers' heap settings

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_process(cfg: Config, cpu_amp: Optional[bool] = None) -> Process:
    """Set this process up once: keep freed memory (``cfg.retain_freed_memory``), find its rank (an initialised
    process group, torchrun's environment, which initialises the group, or a single process), choose its device
    (``cfg.device``; in a distributed run the local rank's GPU) and make it current with cudnn left to pick the
    fastest kernels for the fixed input size, and choose the precision (``cpu_amp``: see
    :func:`internet.utils.device.amp_dtype`)."""
    if cfg.retain_freed_memory:
        retain_freed_memory()  # this process runs the steps (and loads the data when num_workers=0)
    initialised = dist.is_available() and dist.is_initialized()
    if initialised:
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    else:
        rank, world_size = 0, int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0")) if world_size > 1 else 0
    device = choose_device(cfg.device, local_rank if world_size > 1 else None, warn_cpu_fallback=is_paper_scale(cfg))
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    elif world_size > 1 and not initialised and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))  # share the cores among the processes
    if world_size > 1 and not initialised:
        _init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank, world_size = dist.get_rank(), dist.get_world_size()
    if world_size > 1 and device.type == "cpu" and dist.get_backend() == "nccl":
        raise TrainingError("the process group uses nccl, which needs CUDA, but the device is CPU: use gloo")
    # workers forked from this process inherit its heap settings; spawned ones (and forks of a process that
    # changed them since) need their own call
    worker_init = loader_worker_init(cfg.retain_freed_memory)
    return Process(rank, world_size, local_rank, device, amp_dtype(device, cfg.amp, cpu_amp), worker_init)


def _init_process_group(backend: str) -> None:
    """``init_process_group`` from torchrun's (or :func:`~internet.engine.launch.launch`'s) environment, its keys
    under a prefix of the restart count: torchrun's agent keeps its store across the restarts of
    ``--max-restarts``, and the restarted group would otherwise read the dead group's gloo addresses and fail
    ("Gloo connectFullMesh failed ... Connection refused")."""
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if restart is None:
        dist.init_process_group(backend)
        return
    store, rank, world_size = next(dist.rendezvous("env://"))
    dist.init_process_group(
        backend, store=dist.PrefixStore(f"internet/attempt_{restart}", store), rank=rank, world_size=world_size
    )


def check_output_dir(cfg: Config) -> None:
    """Create ``output_dir/{model_dump,log,result}`` and prove each writable, or raise TrainingError naming it."""
    for folder in (cfg.model_dump_dir, cfg.log_dir, cfg.result_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write_test_", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise TrainingError(
                f"output folder {folder} is not writable ({e.strerror or e}); "
                f"set output_dir (now {cfg.output_dir!r}) to a writable folder"
            ) from e


def place_model(model: nn.Module, cfg: Config, process: Process, sync_bn: bool) -> tuple:
    """(the bare network on the process's device, what the training step calls: it under DDP in a distributed
    run)."""
    device, world_size = process.device, process.world_size
    if sync_bn and world_size > 1:
        if device.type != "cuda":
            raise TrainingError("sync_bn=True needs CUDA: torch's SyncBatchNorm does not run on CPU")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net: nn.Module = model
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model, net


def to_device(batch: Mapping[str, Any], device: torch.device, channels_last: bool) -> Dict[str, Any]:
    """The batch's tensors on ``device`` (non-blocking; the image channels_last when the model is)."""
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            v = v.to(device, non_blocking=True)
            if k == "img" and channels_last:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out
