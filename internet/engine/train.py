"""Training and testing InterNet: the official recipe, made fast and crash-safe.

Recipe (official ``main/train.py``): Adam, lr = ``cfg.lr / lr_dec_factor**k`` with k the number of milestones in
``cfg.lr_dec_epoch`` that are <= the epoch, set at the start of each epoch; ``cfg.end_epoch`` epochs; batch
``cfg.train_batch_size`` per process; loss = the loss's weighted total of its terms (official: the sum of the
three terms, ``cfg.loss_weights`` 1:1:1).

Speed: bf16 autocast for training (see :mod:`internet.utils.device` for when it is on; :meth:`Trainer.test` runs in
float32 unless asked), channels_last, pinned memory, non-blocking copies, fused Adam (CUDA and CPU), persistent
workers, ``torch.compile`` (``cfg.compile``), cudnn.benchmark, DistributedDataParallel.

Crash safety: checkpoints are written atomically (:mod:`internet.model.checkpoint`); the end-of-epoch
``snapshot_{epoch}.pth.tar`` is in the official format (``epoch``, ``network`` with ``module.`` keys, ``optimizer``)
plus a ``train_state`` entry of plain data for exact resumption; ``cfg.ckpt_every_iters`` adds
``snapshot_{epoch}_iter{n}.pth.tar`` inside an epoch. The data order is a per-epoch permutation of (seed, epoch)
(:class:`EpochBatchSampler`) and the augmentation a function of (seed, epoch, index), so a resumed run skips exactly
the batches already seen and ends with the same weights as an uninterrupted one. A non-finite loss stops training
with :class:`TrainingError` before the optimizer step, leaving the last checkpoint untouched.

Trainer knows nothing of the model's internals: anything that maps ``img`` to the output dict of docs/design.md
trains, with any loss that maps (outputs, batch) to a dict of scalar losses (weighted by its ``total`` when it has
one). The parameter groups come from :func:`internet.model.param_groups`, the checkpoint's resume state from
:mod:`internet.model.checkpoint` (:func:`~internet.model.checkpoint.training_checkpoint`,
:func:`~internet.model.checkpoint.resume_training`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from internet.config import Config
from internet.data import build_dataset
from internet.evaluation.protocol import evaluate_dataset
from internet.evaluation.results import write_results
from internet.infer.predict import predict
from internet.model import InterNet, param_groups
from internet.model.checkpoint import (
    ResumeError,
    checkpoint_name,
    latest_checkpoint,
    prune_iteration_checkpoints,
    remove_incomplete_writes,
    resume_training,
    save_checkpoint,
    training_checkpoint,
)
from internet.model.load import load_model
from internet.model.losses import InterNetLoss
from internet.utils.device import amp_dtype, autocast, choose_device, describe, is_paper_scale, precision_name
from internet.utils.logs import TrainLogger, format_duration, progress
from internet.utils.runtime import loader_worker_init, retain_freed_memory

Callback = Callable[["Trainer", dict], None]


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, unusable output folder, a checkpoint that cannot be resumed)."""


# ----------------------------------------------------------------------------------------------------- schedule
def lr_at_epoch(epoch: int, lr: float, lr_dec_epoch: Sequence[int], lr_dec_factor: float) -> float:
    """The official step schedule: ``lr / lr_dec_factor**k``, k = number of milestones <= ``epoch``."""
    k = sum(1 for milestone in lr_dec_epoch if epoch >= milestone)
    return lr / lr_dec_factor**k


# ----------------------------------------------------------------------------------------------------- data order
class EpochBatchSampler(Sampler):
    """Batches of indices in a per-epoch order that depends only on (seed, epoch), sharded like
    ``DistributedSampler``: the permutation is padded cyclically to a multiple of ``num_replicas`` and rank r takes
    every ``num_replicas``-th index from r. So batch t of the W ranks together is batch t of a single process with
    a W times larger batch (same samples), and ``set_epoch(epoch, start_batch)`` resumes mid-epoch exactly.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
        max_batches: Optional[int] = None,
    ):
        """num_samples: data set length; batch_size: per replica; seed: the data-order seed; shuffle: permute (else
        sequential); num_replicas/rank: sharding; drop_last: drop a final partial batch (official: keep it);
        max_batches: cap on batches per epoch (``cfg.max_iters_per_epoch``)."""
        if num_samples < 1:
            raise ValueError(f"the training set is empty (num_samples={num_samples})")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, num_replicas={num_replicas})")
        if max_batches is not None and max_batches < 1:
            raise ValueError(f"max_batches must be >= 1 or None, got {max_batches}")
        self.num_samples, self.batch_size, self.seed, self.shuffle = num_samples, batch_size, seed, shuffle
        self.num_replicas, self.rank, self.drop_last, self.max_batches = num_replicas, rank, drop_last, max_batches
        self.epoch, self.start_batch = 0, 0
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"{num_samples} samples give no full batch of {batch_size} x {num_replicas} processes "
                "with drop_last=True"
            )

    @property
    def samples_per_replica(self) -> int:
        return math.ceil(self.num_samples / self.num_replicas)

    @property
    def batches_per_epoch(self) -> int:
        n = self.samples_per_replica
        full = n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return full if self.max_batches is None else min(full, self.max_batches)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The epoch's order over all replicas, padded to ``samples_per_replica * num_replicas``."""
        order = (
            np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
            if self.shuffle
            else np.arange(self.num_samples)
        )
        return np.resize(order, self.samples_per_replica * self.num_replicas)

    def rank_batches(self, epoch: int) -> List[List[int]]:
        """All batches of this rank in ``epoch`` (before ``start_batch`` is applied)."""
        mine = self.epoch_order(epoch)[self.rank :: self.num_replicas]
        return [mine[b * self.batch_size : (b + 1) * self.batch_size].tolist() for b in range(self.batches_per_epoch)]

    def data_order(self) -> dict:
        """What fixes the batches (saved in checkpoints: a run stopped inside an epoch resumes only with the same)."""
        return {
            "seed": self.seed,
            "num_samples": self.num_samples,
            "global_batch_size": self.batch_size * self.num_replicas,
            "world_size": self.num_replicas,
            "batches_per_epoch": self.batches_per_epoch,
        }

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Iterate ``epoch`` from batch ``start_batch`` (the batches before it were seen before a resume)."""
        if not 0 <= start_batch <= self.batches_per_epoch:
            raise ValueError(f"start_batch {start_batch} is not in [0, {self.batches_per_epoch}]")
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def __iter__(self) -> Iterator[List[int]]:
        yield from self.rank_batches(self.epoch)[self.start_batch :]

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch


class _EpochTagged(Sampler):
    """Yields (epoch, index) keys, so that persistent workers, which hold their own copy of the data set, know the
    epoch of every sample (``set_epoch`` in the main process would not reach them)."""

    def __init__(self, sampler: EpochBatchSampler):
        self.sampler = sampler

    def __iter__(self):
        epoch = self.sampler.epoch
        for batch in self.sampler:
            yield [(epoch, i) for i in batch]

    def __len__(self) -> int:
        return len(self.sampler)


class _EpochIndexed(Dataset):
    """Reads (epoch, index) keys: calls the data set's ``set_epoch`` when the epoch changes, then indexes it."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self._epoch: Optional[int] = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        if epoch != self._epoch:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            self._epoch = epoch
        return self.dataset[index]


# ----------------------------------------------------------------------------------------------------- helpers
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


def _dist_context(cfg: Config) -> tuple:
    """(rank, world_size, local_rank): from an initialised process group, from torchrun's environment (initialising
    the group), or (0, 1, 0) for a single process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = choose_device(cfg.device, local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return dist.get_rank(), dist.get_world_size(), local_rank
    return 0, 1, 0


def _sum_of_terms(losses: Mapping[str, Any]) -> Any:
    """The total of a loss function without a ``total`` of its own."""
    return sum(losses.values())


def _process_device(cfg: Config, world_size: int, local_rank: int) -> torch.device:
    """This process's device (``cfg.device``; in a distributed run the local rank's GPU), made current, with cudnn
    left to pick the fastest kernels for the fixed input size."""
    device = choose_device(cfg.device, local_rank if world_size > 1 else None, warn_cpu_fallback=is_paper_scale(cfg))
    if world_size > 1 and device.type == "cpu" and dist.get_backend() == "nccl":
        raise TrainingError("the process group uses nccl, which needs CUDA, but the device is CPU: use gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    return device


def _place_model(model: nn.Module, cfg: Config, device: torch.device, world_size: int, sync_bn: bool) -> tuple:
    """(the bare network on ``device``, what the training step calls: it under DDP and/or ``torch.compile``)."""
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
    if cfg.compile:
        net = torch.compile(net)
    return model, net


def _to_device(batch: Mapping[str, Any], device: torch.device, channels_last: bool) -> Dict[str, Any]:
    """The batch's tensors on ``device`` (non-blocking; the image channels_last when the model is)."""
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            v = v.to(device, non_blocking=True)
            if k == "img" and channels_last:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


class _ToHost:
    """A small tensor's values for the host, copied from a GPU into pinned memory when made (so that waiting for
    them after more work is queued leaves the GPU busy); :meth:`get` waits and returns them as a list."""

    def __init__(self, values: torch.Tensor):
        self.values, self.ready = values, None
        if values.is_cuda:
            self.values = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            self.values.copy_(values, non_blocking=True)
            self.ready = torch.cuda.Event()
            self.ready.record()

    def get(self) -> list:
        if self.ready is not None:
            self.ready.synchronize()
        return self.values.tolist()


class _LogWindow:
    """Iteration records since the last logged one, logged as one record: the last iteration's position and
    learning rate, the means of the losses and times, ``images_per_s`` over the window and ``iters`` in it."""

    def __init__(self) -> None:
        self.records: List[dict] = []

    def add(self, record: dict) -> None:
        self.records.append(record)

    def pop(self) -> dict:
        records, self.records = self.records, []
        if len(records) == 1:
            return {**records[0], "iters": 1}
        out = dict(records[-1])
        for key in out:
            if key.startswith("loss_") or key in ("time", "data_time"):
                out[key] = float(np.mean([r[key] for r in records]))
        images = sum(r["images_per_s"] * r["time"] for r in records)
        out["images_per_s"] = images / max(sum(r["time"] for r in records), 1e-9)
        out["iters"] = len(records)
        return out


class _Clock:
    """Times this run's iterations, each from the end of the previous one (after its checkpoint and callbacks) to
    the end of its step; their mean gives the ETA."""

    def __init__(self) -> None:
        self.total, self.laps = 0.0, 0
        self.restart()

    def restart(self) -> None:
        self.t_prev = time.perf_counter()

    def lap(self, t_data: float, images: int) -> dict:
        """The record's times for the iteration that just ended (its data arrived at ``t_data``)."""
        elapsed = time.perf_counter() - self.t_prev
        self.total, self.laps = self.total + elapsed, self.laps + 1
        return {"time": elapsed, "data_time": t_data - self.t_prev, "images_per_s": images / max(elapsed, 1e-9)}

    def eta(self, iterations_left: int) -> float:
        return self.total / self.laps * iterations_left


def _train_loader(
    train_set: Dataset,
    sampler: EpochBatchSampler,
    cfg: Config,
    device: torch.device,
    worker_init: Optional[Callable[[int], None]],
) -> DataLoader:
    """The training DataLoader: ``sampler``'s batches, each sample tagged with its epoch (persistent workers)."""
    workers = cfg.num_workers
    return DataLoader(
        _EpochIndexed(train_set),
        batch_sampler=_EpochTagged(sampler),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=worker_init,
        generator=torch.Generator().manual_seed(cfg.seed),  # the loader's seed draw leaves the global RNG alone
    )


def run_test(
    model: nn.Module,
    test_set: Dataset,
    cfg: Config,
    split: str,
    *,
    device: torch.device,
    amp_dtype: Optional[torch.dtype] = None,
    checkpoint: Optional[Path] = None,
    tag: str = "",
    write: bool = True,
    **predict_kwargs: Any,
) -> tuple:
    """Predict ``test_set`` with :func:`internet.infer.predict.predict`, score it with the data set's official
    protocol and (``write``) write ``result/pred_{split}{tag}.npz`` and ``eval_{split}{tag}.json``
    (:mod:`internet.evaluation.results`); returns ``(EvalResult, path of the eval file or None)``."""
    pred = predict(model, test_set, cfg, device=device, amp_dtype=amp_dtype, **predict_kwargs)
    gt = test_set.eval_targets()
    result = evaluate_dataset(pred, gt, cfg, skeleton=getattr(test_set, "skeleton", None))
    if not write:
        return result, None
    if "ann_id" in gt:
        pred = {**pred, "ann_id": np.asarray(gt["ann_id"])[pred["index"]]}
    meta = {
        "dataset": cfg.dataset,
        "split": split,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "samples": len(pred["index"]),
        "trans_test": cfg.trans_test,
        "subvoxel": cfg.subvoxel,
        "flip_test": cfg.flip_test,
        "amp": amp_dtype is not None,
    }
    return result, write_results(cfg.result_dir, split, pred, result, meta, tag=tag)["eval"]


# ----------------------------------------------------------------------------------------------------- trainer
class Trainer:
    """Trains and tests a model with the official recipe; builds from ``cfg`` whatever is not given.

    The Trainer runs the loop (device, data order, steps, logs, checkpoints) and knows nothing of the model's
    internals: the model's side gives the optimizer's parameter groups (:func:`internet.model.param_groups`), the
    loss its weighted total (``loss_fn.total``, else the sum of the terms), and :mod:`internet.model.checkpoint` writes
    and restores the resume state. Distributed runs (``torchrun`` or :func:`launch`): each process trains on its
    shard with batch ``cfg.train_batch_size`` (global batch = that x world size); only rank 0 writes checkpoints
    and logs.
    """

    def __init__(
        self,
        cfg: Config,
        model: Optional[nn.Module] = None,
        train_set: Optional[Dataset] = None,
        loss_fn: Optional[Callable] = None,
        test_set: Optional[Dataset] = None,
        *,
        sync_bn: bool = False,
        cpu_amp: Optional[bool] = None,
        progress_bar: Optional[bool] = None,
        callbacks: Sequence[Callback] = (),
        echo: bool = False,
    ):
        """cfg: the configuration; model: a network mapping img -> output dict (default InterNet from cfg);
        train_set / test_set: data sets of sample dicts (default ``build_dataset(cfg, split, mode)``, built when
        first needed); loss_fn: (outputs, batch) -> dict of scalar losses, with an optional ``total(losses)``
        (default ``InterNetLoss.from_config(cfg)``, which checks ``cfg.loss_weights``);
        sync_bn: SyncBatchNorm across processes (CUDA only; otherwise BN statistics are per process);
        cpu_amp: bf16 autocast on CPU (None = when cfg.amp and the CPU has native bf16, see internet.utils.device);
        progress_bar: tqdm bars (None = when stderr is a terminal or in Jupyter); callbacks: called as
        ``cb(trainer, record)`` after every iteration; echo: also print the text log lines."""
        self.cfg = cfg
        if cfg.retain_freed_memory:
            retain_freed_memory()  # this process runs the steps (and loads the data when num_workers=0)
        self.rank, self.world_size, self.local_rank = _dist_context(cfg)
        self.is_main, self.global_batch_size = self.rank == 0, cfg.train_batch_size * self.world_size
        if self.is_main:
            check_output_dir(cfg)  # fail before anything is built or trained
        self.loss_fn = InterNetLoss.from_config(cfg) if loss_fn is None else loss_fn
        self.device = _process_device(cfg, self.world_size, self.local_rank)
        self.amp_dtype = amp_dtype(self.device, cfg.amp, cpu_amp)
        if model is None:
            torch.manual_seed(cfg.seed)  # the same initial weights in every process and every run
            model = InterNet.from_config(cfg)
        self.model, self.net = _place_model(model, cfg, self.device, self.world_size, sync_bn)
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn = self.loss_fn.to(self.device)
        # the loss's weighted total of its terms (tensors, or the log's floats), else their sum
        self.total_loss = getattr(self.loss_fn, "total", _sum_of_terms)
        # fused Adam on CUDA and CPU: one kernel for all parameters, the official Adam's update rule (on a CPU the
        # per-parameter loop took 40 ms of a 0.3 s step of the CPU preset, fused 11 ms: benchmarks/RESULTS.md 7)
        self._adam_flags = {"fused": True, "foreach": None}
        groups = param_groups(self.model, cfg.linear_lr_max)
        self.lr_max = [group.pop("lr_max") for group in groups]  # per group: the schedule's rate is capped at it
        self.optimizer = torch.optim.Adam(groups, lr=cfg.lr, **self._adam_flags)
        self.train_set, self.test_set = train_set, test_set
        # workers forked from this process inherit its heap settings; spawned ones (and forks of a process that
        # changed them since) need their own call
        self._worker_init = loader_worker_init(cfg.retain_freed_memory)
        self.callbacks, self.progress_bar = list(callbacks), progress_bar
        self.logger = TrainLogger(cfg.log_dir, enabled=self.is_main, echo=echo)
        if cfg.device == "auto" and self.device.type == "cpu" and is_paper_scale(cfg):
            self.logger.info("WARNING device='auto' resolved to the CPU for a paper-size network (see stderr)")
        self.epoch, self.iter, self.global_step = 0, 0, 0  # next epoch / iteration in it / iterations done
        self.sampler: Optional[EpochBatchSampler] = None
        self.loader: Optional[DataLoader] = None
        self.last_checkpoint: Optional[Path] = None

    def _prepare_data(self) -> None:
        if self.loader is not None:
            return
        cfg = self.cfg
        if self.train_set is None:
            self.train_set = build_dataset(cfg, cfg.train_split, "train")
        self.sampler = EpochBatchSampler(
            len(self.train_set),
            cfg.train_batch_size,
            seed=cfg.seed,
            shuffle=True,
            num_replicas=self.world_size,
            rank=self.rank,
            max_batches=cfg.max_iters_per_epoch,
        )
        self.loader = _train_loader(self.train_set, self.sampler, cfg, self.device, self._worker_init)

    def set_lr(self, epoch: int) -> float:
        """Set every group's rate for ``epoch`` (the schedule's, capped at the group's ``lr_max``); returns it."""
        lr = lr_at_epoch(epoch, self.cfg.lr, self.cfg.lr_dec_epoch, self.cfg.lr_dec_factor)
        for group, lr_max in zip(self.optimizer.param_groups, self.lr_max):
            group["lr"] = lr if lr_max is None else min(lr, lr_max)
        return lr

    # ------------------------------------------------------------------------------------------- training
    def train(self) -> dict:
        """Train from the start, or from the latest checkpoint with ``cfg.continue_train``, to ``cfg.end_epoch``.
        Returns a summary: epoch, global_step, last checkpoint path, last losses."""
        cfg = self.cfg
        self._prepare_data()
        self._resume()
        per_epoch = self.sampler.batches_per_epoch
        self.logger.info(
            f"training on {describe(self.device, self.amp_dtype)}; {self.world_size} process(es), global batch "
            f"{self.global_batch_size}, {len(self.train_set)} samples, {per_epoch} iterations/epoch, epochs "
            f"{self.epoch}..{cfg.end_epoch - 1}" + (f" from iteration {self.iter}" if self.iter else "")
        )
        if self.epoch >= cfg.end_epoch:
            self.logger.info(f"nothing to train: the run is at epoch {self.epoch}, end_epoch is {cfg.end_epoch}")
        if cfg.num_gpus > 1 and self.world_size == 1:
            self.logger.info(
                f"note: num_gpus={cfg.num_gpus} but this is a single process; use "
                "internet.engine.train.launch(cfg) or torchrun for DistributedDataParallel"
            )
        last: dict = {}
        window, clock = _LogWindow(), _Clock()
        while self.epoch < cfg.end_epoch:
            epoch = self.epoch
            lr = self.set_lr(epoch)
            self.sampler.set_epoch(epoch, start_batch=self.iter)
            self.net.train()
            bar = progress(
                self.loader,
                total=per_epoch,
                initial=self.iter,
                desc=f"epoch {epoch}",
                enabled=self.progress_bar if self.is_main else False,
            )
            clock.restart()
            for batch in bar:
                t_data = time.perf_counter()
                losses = self._step(batch)
                self.iter += 1
                self.global_step += 1
                last = {
                    "epoch": epoch,
                    "iter": self.iter - 1,
                    "step": self.global_step,
                    "lr": lr,
                    **losses,
                    "loss_total": self.total_loss(losses),
                    **clock.lap(t_data, self.global_batch_size),
                    "precision": precision_name(self.amp_dtype),
                }
                window.add(last)
                if self.global_step % cfg.log_every_iters == 0 or self.iter == per_epoch:
                    remaining = (per_epoch - self.iter) + (cfg.end_epoch - epoch - 1) * per_epoch
                    self.logger.iteration(window.pop(), cfg.end_epoch, per_epoch, eta_s=clock.eta(remaining))
                if cfg.ckpt_every_iters and self.global_step % cfg.ckpt_every_iters == 0 and self.iter < per_epoch:
                    self.save_checkpoint()
                for callback in self.callbacks:  # after the checkpoint: callbacks see what is on disk
                    callback(self, last)
                clock.restart()
            self.epoch, self.iter = epoch + 1, 0
            self.save_checkpoint(epoch_end=epoch)
        self.logger.info(
            f"training done: epoch {cfg.end_epoch - 1}, step {self.global_step}, "
            f"{format_duration(clock.total)} for {clock.laps} iterations"
        )
        return {
            "epoch": self.epoch - 1,
            "global_step": self.global_step,
            "checkpoint": self.last_checkpoint,
            "losses": {k: v for k, v in last.items() if k.startswith("loss_")},
        }

    def _step(self, batch: Mapping[str, Any]) -> Dict[str, float]:
        """One optimisation step; returns the losses averaged over processes. Raises TrainingError (before the
        optimizer step, in every process alike) when a loss is not finite."""
        batch = _to_device(batch, self.device, self.cfg.channels_last)
        with autocast(self.device, self.amp_dtype):
            outputs = self.net(batch["img"])
        # outside autocast; InterNetLoss computes in float32/64 from bf16 heatmaps itself, without a float32 copy
        # of the (B, 42, 64, 64, 64) volume
        losses = self.loss_fn(outputs, batch)
        if not isinstance(losses, Mapping) or not losses:
            raise TrainingError(f"the loss function must return a dict of scalar losses, got {type(losses).__name__}")
        names = [k if k.startswith("loss_") else f"loss_{k}" for k in losses]
        values = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
        if self.world_size > 1:
            dist.all_reduce(values)  # every process then sees the same values and takes the same decision
            values = values / self.world_size
        values = _ToHost(values)  # started before backward is queued, so waiting for it leaves the GPU busy
        self.optimizer.zero_grad(set_to_none=True)
        self.total_loss(losses).backward()
        values = values.get()
        bad = [f"{n}={v}" for n, v in zip(names, values) if not math.isfinite(v)]
        if bad:
            kept = self.last_checkpoint or latest_checkpoint(self.cfg.model_dump_dir)
            msg = (
                f"non-finite loss at epoch {self.epoch}, iteration {self.iter} (global step "
                f"{self.global_step + 1}): {', '.join(bad)}; training stopped before the optimizer step, "
                f"no checkpoint written (last good checkpoint: {kept or 'none'})"
            )
            self.logger.info("ERROR " + msg)
            raise TrainingError(msg)
        self.optimizer.step()
        return dict(zip(names, values))

    # ------------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, epoch_end: Optional[int] = None) -> Optional[Path]:
        """Write ``snapshot_{epoch}.pth.tar`` (``epoch_end`` given: that epoch finished) or the iteration checkpoint
        ``snapshot_{epoch}_iter{n}.pth.tar``; then delete the iteration checkpoints it supersedes. Rank 0 only."""
        if not self.is_main:
            return None
        folder = self.cfg.model_dump_dir
        name = checkpoint_name(epoch_end) if epoch_end is not None else checkpoint_name(self.epoch, self.iter)
        state = training_checkpoint(
            self.model,
            self.optimizer,
            self.cfg,
            data_order=self.sampler.data_order(),
            epoch=self.epoch if epoch_end is None else epoch_end,
            position=(self.epoch, self.iter, self.global_step),
        )
        path = save_checkpoint(folder / name, state)  # atomic: old files intact until here
        self.last_checkpoint = path
        prune_iteration_checkpoints(folder, before=(self.epoch, self.iter), keep=path)  # a resume starts there
        self.logger.info(f"saved {path}")
        return path

    def _resume(self) -> None:
        """With cfg.continue_train: load the latest checkpoint (this project's or an official snapshot)."""
        if not self.cfg.continue_train:
            return
        if self.is_main:
            for stale in remove_incomplete_writes(self.cfg.model_dump_dir):
                self.logger.info(f"removed {stale} (a checkpoint write that did not complete)")
        path = latest_checkpoint(self.cfg.model_dump_dir)
        if path is None:
            self.logger.info(f"continue_train: no checkpoint in {self.cfg.model_dump_dir}, starting from scratch")
            return
        self.resume_from(path)

    def resume_from(self, path: Union[str, Path]) -> None:
        """Continue from ``path`` (:func:`internet.model.checkpoint.resume_training`): weights, optimizer, RNG and
        position. An official snapshot (no ``train_state``) resumes at the start of epoch ``epoch + 1``."""
        self._prepare_data()  # the position is counted in batches of this run's data order
        try:
            self.epoch, self.iter, self.global_step = resume_training(
                path,
                self.model,
                self.optimizer,
                self.cfg,
                data_order=self.sampler.data_order(),
                optimizer_flags=self._adam_flags,
                log=self.logger.info,
            )
        except ResumeError as e:
            raise TrainingError(str(e)) from e
        self.last_checkpoint = Path(path)
        dropped = self.logger.drop_records_after(self.global_step)  # the steps this run will do again
        self.logger.info(
            f"resumed from {path}: epoch {self.epoch}, iteration {self.iter}, step {self.global_step}"
            + (f"; {dropped} log record(s) after that step removed (they are redone)" if dropped else "")
        )

    # ------------------------------------------------------------------------------------------- testing
    def test(
        self,
        split: Optional[str] = None,
        checkpoint: Union[str, Path, int, None] = None,
        test_set: Optional[Dataset] = None,
        amp: bool = False,
    ):
        """Evaluate on ``split`` (default cfg.test_split) with :func:`internet.infer.predict.predict` (flip test and
        sub-voxel refinement as cfg says) and the data set's official protocol; writes
        ``result/pred_{split}{tag}.npz`` and ``result/eval_{split}{tag}.json`` (:mod:`internet.evaluation.results`,
        rank 0) and returns the EvalResult. In a distributed run each process predicts its share of the samples.
        ``checkpoint``: a path or an epoch number (``snapshot_{N}.pth.tar``) to evaluate instead of the current
        weights, built with :func:`internet.model.load.load_model` (its saved config decides the network; tag
        ``_snapshot_N``). ``test_set``: a data set instead of ``build_dataset(cfg, split, 'test')``. ``amp``: bf16
        autocast here too; off by default because bf16 heatmaps are quantised (steps of 1 between 128 and 256,
        around the peak of 255), which ties and shifts the official argmax."""
        cfg, model, split, path, tag = self.cfg, self.model, split or self.cfg.test_split, None, ""
        if checkpoint is not None:
            path = cfg.model_dump_dir / checkpoint_name(checkpoint) if isinstance(checkpoint, int) else Path(checkpoint)
            model, cfg, _ = load_model(path, cfg)
            model, tag = model.to(self.device), "_" + path.name.split(".pth")[0]
        if test_set is None:
            if self.test_set is None or getattr(self.test_set, "split", split) != split:
                self.test_set = build_dataset(cfg, split, "test")
            test_set = self.test_set
        result, written = run_test(
            model,
            test_set,
            cfg,
            split,
            device=self.device,
            checkpoint=path,
            tag=tag,
            amp_dtype=self.amp_dtype if amp else None,
            write=self.is_main,
            progress_bar=self.progress_bar,
            worker_init_fn=self._worker_init,
        )
        if written is not None:
            metrics = {k: v for k, v in vars(result).items() if isinstance(v, float)}
            self.logger.info(
                f"test {split}{tag}: "
                + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
                + f"; written to {written}"
            )
        return result

    def close(self) -> None:
        """Close the logs and stop the persistent data-loader workers."""
        self.logger.close()
        self.loader = None


# ----------------------------------------------------------------------------------------------------- multi-process
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, cfg_params: dict, trainer_kwargs: bytes) -> None:
    cfg = Config.from_params(cfg_params)
    # unpickled here from plain bytes: every process gets private copies of the model's tensors (torch's
    # multiprocessing pickler would share their memory between processes, and each optimizer would step them)
    kwargs = pickle.loads(trainer_kwargs)
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    device = choose_device(cfg.device, rank)
    if device.type == "cpu":  # share the cores instead of every process taking all of them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    else:
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
    )
    try:
        trainer = Trainer(cfg, **kwargs)
        trainer.train()
        trainer.close()
    finally:
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


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m internet.engine.train [--preset paper|cpu] [--test] --name value ...``: any Config field as a flag.

    Values are parsed as JSON where possible (``--lr 1e-4``, ``--lr_dec_epoch [15,17]``, ``--amp false``), else taken
    as strings. Under torchrun each process trains its share (DDP); otherwise ``--num_gpus N`` spawns N processes.
    """
    parser = argparse.ArgumentParser(prog="python -m internet.engine.train", description=main.__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=("paper", "cpu"), default="paper")
    parser.add_argument("--test", action="store_true", help="after training, evaluate on cfg.test_split")
    args, rest = parser.parse_known_args(argv)
    params: Dict[str, Any] = {}
    it = iter(rest)
    for flag in it:
        if not flag.startswith("--"):
            parser.error(f"unexpected argument {flag!r}: expected --name value")
        name, _, value = flag[2:].partition("=")
        if not _:
            try:
                value = next(it)
            except StopIteration:
                parser.error(f"--{name} needs a value")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    cfg = (Config.paper if args.preset == "paper" else Config.cpu_demo)(**params)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: this process is one rank
        trainer = Trainer(cfg)
        trainer.train()
        if args.test:  # every rank predicts its share of the split with the weights it just trained
            result = trainer.test(cfg.test_split)
            if trainer.is_main:
                print(result.table())
        trainer.close()
        return
    checkpoint = launch(cfg)
    if args.test:
        if checkpoint is None:
            raise TrainingError(f"--test: no checkpoint in {cfg.model_dump_dir} to evaluate")
        trainer = Trainer(cfg, train_set=None)
        try:  # the trained weights, read back from the checkpoint the run ended with
            print(trainer.test(cfg.test_split, checkpoint=checkpoint).table())
        finally:
            trainer.close()


if __name__ == "__main__":
    main()
