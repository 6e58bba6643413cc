"""The training loop: the official recipe, made fast and crash-safe.

Recipe (official ``main/train.py``): Adam, lr = ``cfg.lr / lr_dec_factor**k`` with k the number of milestones in
``cfg.lr_dec_epoch`` that are <= the epoch, set at the start of each epoch; ``cfg.end_epoch`` epochs; batch
``cfg.train_batch_size`` per process; loss = the loss's weighted total of its terms (official: the sum of the
three terms, ``cfg.loss_weights`` 1:1:1).

Speed: bf16 autocast for training (:mod:`internet.utils.device` says when it is on; testing runs in float32 unless
asked), channels_last, pinned memory, non-blocking copies, fused Adam, persistent workers, cudnn.benchmark,
DistributedDataParallel; docs/design.md lists what each is measured to gain.

Crash safety: checkpoints are written atomically; the end-of-epoch ``snapshot_{epoch}.pth.tar`` is in the official
format plus a ``train_state`` entry for exact resumption (:mod:`internet.engine.resume`); ``cfg.ckpt_every_iters``
adds ``snapshot_{epoch}_iter{n}.pth.tar`` inside an epoch. With the data order of
:class:`internet.engine.sampler.EpochBatchSampler` a resumed run ends with the same weights as an uninterrupted
one. A non-finite loss stops training with :class:`TrainingError` before the optimizer step.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from internet.config import Config
from internet.data.check import build_checked_dataset
from internet.engine.evaluate import describe_result, evaluate_checkpoint, run_test
from internet.engine.meters import Clock, LogWindow, ToHost
from internet.engine.resume import ResumeError, latest_resumable, resume_training, save_training_checkpoint
from internet.engine.runtime import TrainingError, check_output_dir, place_model, resolve_process, to_device
from internet.engine.sampler import EpochBatchSampler, train_loader
from internet.model import InterNet, param_groups
from internet.model.checkpoint import latest_checkpoint
from internet.model.losses import InterNetLoss
from internet.utils.device import autocast, describe, is_paper_scale, precision_name
from internet.utils.lock import FolderInUseError, FolderLock
from internet.utils.logs import TrainLogger, format_duration, progress

Callback = Callable[["Trainer", dict], None]


def lr_at_epoch(epoch: int, lr: float, lr_dec_epoch: Sequence[int], lr_dec_factor: float) -> float:
    """The official step schedule: ``lr / lr_dec_factor**k``, k = number of milestones <= ``epoch``."""
    k = sum(1 for milestone in lr_dec_epoch if epoch >= milestone)
    return lr / lr_dec_factor**k


def _sum_of_terms(losses: Mapping[str, Any]) -> Any:
    """The total of a loss function without a ``total`` of its own."""
    return sum(losses.values())


def _run_header(trainer: "Trainer", per_epoch: int) -> list:
    """The log lines that open a training run: where it runs, its sizes and epochs, and what looks wrong."""
    cfg, t = trainer.cfg, trainer
    lines = [
        f"training on {describe(t.device, t.amp_dtype)}; {t.world_size} process(es), global batch "
        f"{t.global_batch_size}, {len(t.train_set)} samples, {per_epoch} iterations/epoch, epochs "
        f"{t.epoch}..{cfg.end_epoch - 1}" + (f" from iteration {t.iter}" if t.iter else "")
    ]
    if t.epoch >= cfg.end_epoch:
        lines.append(f"nothing to train: the run is at epoch {t.epoch}, end_epoch is {cfg.end_epoch}")
    if cfg.num_gpus > 1 and t.world_size == 1:
        lines.append(
            f"note: num_gpus={cfg.num_gpus} but this is a single process; use "
            "internet.engine.launch.launch(cfg) or torchrun for DistributedDataParallel"
        )
    return lines


class Trainer:
    """Trains and tests a model with the official recipe; builds from ``cfg`` whatever is not given.

    The Trainer runs the loop (data order, steps, logs, checkpoints) and knows nothing of the model's internals: the
    model's side gives the optimizer's parameter groups (:func:`internet.model.param_groups`), the loss its weighted
    total (``loss_fn.total``, else the sum of the terms). Distributed runs (``torchrun`` or
    :func:`internet.engine.launch.launch`): each process trains on its shard with batch ``cfg.train_batch_size``
    (global batch = that x world size); only rank 0 writes checkpoints and logs.

    Args:
        cfg: the configuration.
        model: a network mapping ``img`` to the output dict of docs/design.md (default InterNet from cfg).
        train_set: a data set of sample dicts (default ``build_dataset(cfg, cfg.train_split, 'train')``, built when
            first needed).
        loss_fn: (outputs, batch) -> dict of scalar losses, with an optional ``total(losses)`` (default
            ``InterNetLoss.from_config(cfg)``, which checks ``cfg.loss_weights``).
        test_set: the data set :meth:`test` scores (default built from cfg when first needed).
        sync_bn: SyncBatchNorm across processes (CUDA only; otherwise BN statistics are per process).
        cpu_amp: bf16 autocast on CPU (None: when cfg.amp and the CPU has native bf16, see internet.utils.device).
        progress_bar: tqdm bars (None: when stderr is a terminal or in Jupyter).
        callbacks: called as ``cb(trainer, record)`` after every iteration (after its checkpoint).
        echo: also print the text log lines.
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
        self.cfg = cfg
        self.process = process = resolve_process(cfg, cpu_amp)
        self.rank, self.world_size, self.is_main = process.rank, process.world_size, process.is_main
        self.device, self.amp_dtype = process.device, process.amp_dtype
        self.global_batch_size = cfg.train_batch_size * self.world_size
        if self.is_main:
            check_output_dir(cfg)  # fail before anything is built or trained
        loss_fn = InterNetLoss.from_config(cfg) if loss_fn is None else loss_fn
        if model is None:
            torch.manual_seed(cfg.seed)  # the same initial weights in every process and every run
            model = InterNet.from_config(cfg)
        self.model, self.net = place_model(model, cfg, process, sync_bn)
        self.loss_fn = loss_fn.to(self.device) if isinstance(loss_fn, nn.Module) else loss_fn
        self.total_loss = getattr(self.loss_fn, "total", _sum_of_terms)  # tensors, or the log's floats
        # fused Adam on CUDA and CPU: one kernel for all parameters, the official update rule (benchmarks/RESULTS.md
        # section 7 measures it against the per-parameter loop)
        self._adam_flags = {"fused": True, "foreach": None}
        groups = param_groups(self.model, cfg.linear_lr_max)
        self.lr_max = [group.pop("lr_max") for group in groups]  # per group: the schedule's rate is capped at it
        self.optimizer = torch.optim.Adam(groups, lr=cfg.lr, **self._adam_flags)
        self.train_set, self.test_set = train_set, test_set
        self.callbacks, self.progress_bar = list(callbacks), progress_bar
        self.logger = TrainLogger(cfg.log_dir, enabled=self.is_main, echo=echo)
        if cfg.device == "auto" and self.device.type == "cpu" and is_paper_scale(cfg):
            self.logger.info("WARNING device='auto' resolved to the CPU for a paper-size network (see stderr)")
        self.epoch, self.iter, self.global_step = 0, 0, 0  # next epoch / iteration in it / iterations done
        self.sampler: Optional[EpochBatchSampler] = None
        self.loader: Optional[DataLoader] = None
        self.last_checkpoint: Optional[Path] = None
        self._lock = FolderLock(cfg.output_dir, what="training")

    def _prepare_data(self) -> None:
        if self.loader is not None:
            return
        cfg = self.cfg
        if self.train_set is None:  # refused when the split's images are not all there (internet.data.check)
            self.train_set = build_checked_dataset(cfg, cfg.train_split, "train")
        self.sampler = EpochBatchSampler(
            len(self.train_set),
            cfg.train_batch_size,
            seed=cfg.seed,
            num_replicas=self.world_size,
            rank=self.rank,
            max_batches=cfg.max_iters_per_epoch,
        )
        self.loader = train_loader(self.train_set, self.sampler, cfg, self.device, self.process.worker_init)

    def set_lr(self, epoch: int) -> float:
        """Set every group's rate for ``epoch`` (the schedule's, capped at the group's ``lr_max``); returns it."""
        lr = lr_at_epoch(epoch, self.cfg.lr, self.cfg.lr_dec_epoch, self.cfg.lr_dec_factor)
        for group, lr_max in zip(self.optimizer.param_groups, self.lr_max):
            group["lr"] = lr if lr_max is None else min(lr, lr_max)
        return lr

    def train(self) -> dict:
        """Train from the start, or from the latest checkpoint with ``cfg.continue_train``, to ``cfg.end_epoch``.
        Returns a summary: epoch, global_step, last checkpoint path, last losses. Refused (TrainingError) while
        another training holds ``cfg.output_dir`` (:class:`internet.utils.lock.FolderLock`, held by rank 0 for the
        whole run: its ranks are one run)."""
        self._lock_output_dir()
        try:
            return self._train()
        finally:
            self._lock.release()

    def _lock_output_dir(self) -> None:
        error = None
        if self.is_main:
            try:
                self._lock.acquire()
            except FolderInUseError as e:
                error = str(e)
        if self.world_size > 1:  # every rank learns rank 0's answer, so none waits on a rank that stopped
            answer = [error]
            dist.broadcast_object_list(answer, src=0, device=self.device if self.device.type == "cuda" else None)
            error = answer[0]
        if error is not None:
            raise TrainingError(error)

    def _train(self) -> dict:
        cfg = self.cfg
        self._prepare_data()
        self._resume()
        if self.global_step == 0:
            # from scratch: rows left by an earlier run of this folder (one killed before its first checkpoint was
            # complete) would read as this run's steps 1, 2, 3, 1, 2, 3
            dropped = self.logger.drop_records_after(0)
            if dropped:
                self.logger.info(f"starting from scratch: {dropped} log record(s) of an earlier run removed")
        per_epoch = self.sampler.batches_per_epoch
        for line in _run_header(self, per_epoch):
            self.logger.info(line)
        last: dict = {}
        window, clock = LogWindow(), Clock()
        while self.epoch < cfg.end_epoch:
            epoch, lr = self.epoch, self.set_lr(self.epoch)
            self.sampler.set_epoch(epoch, start_batch=self.iter)
            self.net.train()
            enabled = self.progress_bar if self.is_main else False
            bar = progress(self.loader, total=per_epoch, initial=self.iter, desc=f"epoch {epoch}", enabled=enabled)
            clock.restart()
            for batch in bar:
                t_data = time.perf_counter()
                losses = self._step(batch)
                self.iter, self.global_step = self.iter + 1, self.global_step + 1
                last = {"epoch": epoch, "iter": self.iter - 1, "step": self.global_step, "lr": lr, **losses}
                last["loss_total"] = self.total_loss(losses)
                last.update(clock.lap(t_data, self.global_batch_size), precision=precision_name(self.amp_dtype))
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
        losses = {k: v for k, v in last.items() if k.startswith("loss_")}
        return {
            "epoch": self.epoch - 1,
            "global_step": self.global_step,
            "checkpoint": self.last_checkpoint,
            "losses": losses,
        }

    def _step(self, batch: Mapping[str, Any]) -> Dict[str, float]:
        """One optimisation step; returns the losses averaged over processes. Raises TrainingError (before the
        optimizer step, in every process alike) when a loss is not finite."""
        batch = to_device(batch, self.device, self.cfg.channels_last)
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
        values = ToHost(values)  # started before backward is queued, so waiting for it leaves the GPU busy
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

    def save_checkpoint(self, epoch_end: Optional[int] = None) -> Optional[Path]:
        """Write ``snapshot_{epoch}.pth.tar`` (``epoch_end`` given: that epoch finished) or the iteration checkpoint
        ``snapshot_{epoch}_iter{n}.pth.tar`` (:func:`internet.engine.resume.save_training_checkpoint`). Rank 0
        only."""
        if not self.is_main:
            return None
        position = (self.epoch, self.iter, self.global_step)
        self.last_checkpoint = save_training_checkpoint(
            self.cfg, self.model, self.optimizer, self.sampler.data_order(), position, epoch_end
        )
        self.logger.info(f"saved {self.last_checkpoint}")
        return self.last_checkpoint

    def _resume(self) -> None:
        """With cfg.continue_train: load the latest checkpoint (this project's or an official snapshot)."""
        if self.cfg.continue_train:
            path = latest_resumable(self.cfg.model_dump_dir, log=self.logger.info, remove_stale=self.is_main)
            if path is not None:
                self.resume_from(path)

    def resume_from(self, path: Union[str, Path]) -> None:
        """Continue from ``path`` (:func:`internet.engine.resume.resume_training`): weights, optimizer, RNG and
        position. An official snapshot (no ``train_state``) resumes at the start of epoch ``epoch + 1``."""
        self._prepare_data()  # the position is counted in batches of this run's data order
        kwargs = dict(data_order=self.sampler.data_order(), optimizer_flags=self._adam_flags, log=self.logger.info)
        try:
            position = resume_training(path, self.model, self.optimizer, self.cfg, **kwargs)
        except ResumeError as e:
            raise TrainingError(str(e)) from e
        (self.epoch, self.iter, self.global_step), self.last_checkpoint = position, Path(path)
        dropped = self.logger.drop_records_after(self.global_step)  # the steps this run will do again
        self.logger.info(
            f"resumed from {path}: epoch {self.epoch}, iteration {self.iter}, step {self.global_step}"
            + (f"; {dropped} log record(s) after that step removed (they are redone)" if dropped else "")
        )

    def test(
        self,
        split: Optional[str] = None,
        checkpoint: Union[str, Path, int, None] = None,
        test_set: Optional[Dataset] = None,
        amp: bool = False,
    ):
        """Score the current weights, or ``checkpoint`` (a path or an epoch number, see
        :func:`internet.engine.evaluate.evaluate_checkpoint`), on ``split`` (default cfg.test_split) with the data
        set's official protocol; rank 0 writes ``result/pred_{split}{tag}.npz`` and ``eval_{split}{tag}.json``.
        ``test_set``: a data set instead of the configured one; ``amp``: bf16 autocast (off: see
        :func:`~internet.engine.evaluate.evaluate_checkpoint`). Returns the EvalResult."""
        split = split or self.cfg.test_split
        if test_set is None and self.test_set is not None and getattr(self.test_set, "split", split) == split:
            test_set = self.test_set
        kwargs = dict(progress_bar=self.progress_bar, worker_init_fn=self.process.worker_init)
        if checkpoint is not None:
            result, written = evaluate_checkpoint(
                self.cfg, checkpoint, split, process=self.process, test_set=test_set, amp=amp, **kwargs
            )
        else:
            if test_set is None:
                test_set = self.test_set = build_checked_dataset(self.cfg, split, "test")
            kwargs.update(device=self.device, amp_dtype=self.amp_dtype if amp else None, write=self.is_main)
            result, written = run_test(self.model, test_set, self.cfg, split, **kwargs)
        if written is not None:
            self.logger.info(describe_result(result, split, written=written))
        return result

    def close(self) -> None:
        """Close the logs, stop the persistent data-loader workers and free the output folder."""
        self.logger.close()
        self.loader = None
        self._lock.release()
