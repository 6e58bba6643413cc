"""Inference: one path from images to decoded predictions, used by ``Trainer.test``, notebooks 03, 04 and 06, the
demo, :class:`internet.infer.predictor.Predictor` and the command line.

:func:`infer_batch` is the step (forward, flip test, decoding on the model's device): only the decoded (B, 42, 3)
coordinates leave the device, never the (B, 42, 64, 64, 64) heatmaps. :func:`predict` runs it over a data set with
a standard DataLoader (workers, default collate, pinned memory on CUDA), shards the samples across the processes of a
distributed run and gathers the predictions on every process. :func:`place_predictions` adds the image-pixel and
camera-space joints that the figures and per-sample errors use.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import traceback
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.multiprocessing import reductions
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from internet.config import Config
from internet.geometry.codec import HeatmapCodec
from internet.infer.decode import decode_heatmaps, merge_flip
from internet.skeleton import INTERHAND, Skeleton
from internet.utils.device import autocast
from internet.utils.logs import progress
from internet.utils.runtime import check_shared_memory, loader_worker_init, opencv_one_thread_while

PREDICTION_KEYS = ("index", "joint_coord", "rel_root_depth", "hand_type", "inv_trans")
"""What :func:`predict` returns (docs/design.md, "Predictions")."""


@torch.inference_mode()
def infer_batch(
    model: nn.Module,
    img: torch.Tensor,
    cfg: Config,
    skeleton: Skeleton = INTERHAND,
    amp_dtype: Optional[torch.dtype] = None,
) -> Dict[str, torch.Tensor]:
    """One batch of crops (B, 3, H, W) in [0, 1] on the model's device -> decoded predictions on that device:
    ``joint_coord`` (B, J, 3) heatmap space (float32), ``rel_root_depth`` (B,) bins, ``hand_type`` (B, 2)
    probabilities. Honours ``cfg.flip_test`` (heatmaps averaged with the un-flipped prediction for the mirrored
    crop) and ``cfg.subvoxel``. ``amp_dtype``: autocast dtype (None: float32; bf16 heatmaps are quantised around
    their peak, which shifts the official argmax, so evaluation defaults to float32)."""
    with autocast(img.device, amp_dtype):
        out = model(img)
        out_flip = model(img.flip(-1)) if cfg.flip_test else None
    heatmap = out["joint_heatmap"]
    rel_root, hand_type = out["rel_root_depth"].float(), out["hand_type"].float()
    if out_flip is not None:
        merged = merge_flip(
            {"joint_heatmap": heatmap.float(), "rel_root_depth": rel_root, "hand_type": hand_type},
            {
                "joint_heatmap": out_flip["joint_heatmap"].float(),
                "rel_root_depth": out_flip["rel_root_depth"].float(),
                "hand_type": out_flip["hand_type"].float(),
            },
            skeleton,
            cfg=cfg,
        )
        heatmap, rel_root, hand_type = merged["joint_heatmap"], merged["rel_root_depth"], merged["hand_type"]
    elif cfg.subvoxel:
        heatmap = heatmap.float()  # the refinement reads neighbour values: no bf16 rounding there
    # the argmax of a bf16 volume equals that of its float32 copy (every bf16 value is a float32), so no copy
    return {
        "joint_coord": decode_heatmaps(heatmap, subvoxel=cfg.subvoxel),
        "rel_root_depth": rel_root.reshape(-1),
        "hand_type": hand_type,
    }


def _dist_shard() -> tuple:
    """(rank, world_size) of an initialised process group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _collate_inputs(samples: Sequence[Mapping[str, Any]]):
    """Only what inference reads: the crops and their inverse transforms (the targets stay in the worker)."""
    imgs = default_collate([torch.as_tensor(np.asarray(s["img"], dtype=np.float32)) for s in samples])
    return imgs, np.stack([np.asarray(s["inv_trans"], dtype=np.float64) for s in samples])


def _sample_indices(n: int, indices: Optional[Sequence[int]]) -> np.ndarray:
    idx = np.arange(n, dtype=np.int64) if indices is None else np.asarray(list(indices), dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"indices must be in [0, {n - 1}], got {idx.min()}..{idx.max()}")
    return idx


class _NamedWorkers:
    """A loader's ``worker_init_fn`` that first records each worker's pid in a shared array, so that a stalled worker
    can be named (and stopped) from the main process."""

    def __init__(self, init: Optional[Callable[[int], None]], pids) -> None:
        self.init, self.pids = init, pids

    def __call__(self, worker_id: int) -> None:
        self.pids[worker_id] = os.getpid()
        if self.init is not None:
            self.init(worker_id)


def _release_loader_frames(error: BaseException, num_workers: int, received: int) -> Optional[int]:
    """After ``error`` in the loop over the loader: drop the loader's frames from its traceback (they hold the
    iterator, and with it the workers, for as long as the traceback is kept, and a notebook keeps the last one), so
    the workers end with predict. Returns the stalled worker's id when the loader timed out."""
    if num_workers == 0:
        return None
    traceback.clear_frames(error.__traceback__)
    if isinstance(error, RuntimeError) and "DataLoader timed out" in str(error):
        return received % num_workers  # batch k goes to worker k % num_workers
    return None


def _stop_stalled_worker(worker: int, pid: int, timeout: float) -> TimeoutError:
    """SIGKILL the stalled worker the loader's shutdown left behind (a stopped process ignores its SIGTERM; its pid
    is no longer watched by then, so its end raises nothing here) and return the error naming it."""
    gc.collect()  # the loader's iterator, if a reference cycle kept it
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    return TimeoutError(
        f"predict: data-loader worker {worker} (pid {pid}) sent no batch for {timeout:g} s (cfg.loader_timeout_s) "
        "and was stopped. It was stalled: stopped (SIGSTOP, a debugger), deadlocked, or waiting on a slow or hung "
        "disk or network mount of cfg.data_root. Check that the images can be read, rerun with num_workers=0 to see "
        "where it blocks in this process, or raise cfg.loader_timeout_s if single batches really take that long"
    )


def _loader(dataset: Dataset, rows: np.ndarray, cfg: Config, batch_size: int, num_workers: int, device, init_fn):
    if num_workers > 0:
        h, w = (int(v) for v in cfg.input_img_shape)
        check_shared_memory(min(batch_size, max(1, rows.size)) * 3 * h * w * 4, min(num_workers, max(1, rows.size)))
    context = torch.multiprocessing.get_context() if num_workers > 0 else None
    init = init_fn or loader_worker_init(cfg.retain_freed_memory, context and context.get_start_method())
    pids = context.Array("q", num_workers, lock=False) if context is not None else None
    loader = DataLoader(
        Subset(dataset, rows.tolist()),
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=_NamedWorkers(init, pids) if pids is not None else init,
        multiprocessing_context=context,
        collate_fn=_collate_inputs,
        timeout=float(cfg.loader_timeout_s) if num_workers > 0 else 0,
    )
    return loader, pids


def _forget_received_batches() -> None:
    """Drop torch's records of the shared-memory batches this process received from loader workers and has freed.

    torch keeps a weak reference per received storage (``torch.multiprocessing.reductions.shared_cache``) and drops
    the dead ones only when more than 128 have piled up. A weak reference keeps its storage's small header allocated,
    and each header lands in the hole that the batch's large temporaries left when freed: the heap fragmented by up to
    128 such holes, over 100 MB of free heap that glibc could not reuse (benchmarks/RESULTS.md section 9). Called
    after each batch, nothing is left to pin them. Does nothing where torch has no such cache."""
    cache = getattr(reductions, "shared_cache", None)
    free_dead = getattr(cache, "free_dead_references", None)
    if free_dead is None:
        return
    with getattr(cache, "lock", contextlib.nullcontext()):
        free_dead()


def _check_outputs(out: Mapping[str, torch.Tensor], per_sample: Mapping[str, tuple], rows: int, skeleton) -> None:
    for k, shape in per_sample.items():
        if tuple(out[k].shape) != (rows, *shape):
            raise ValueError(
                f"the model's {k} has shape {tuple(out[k].shape)} for a batch of {rows}; {(rows, *shape)} expected "
                f"for the {skeleton.joint_num}-joint skeleton of the data set"
            )


def predict(
    model: nn.Module,
    dataset: Dataset,
    cfg: Config,
    *,
    indices: Optional[Sequence[int]] = None,
    device: Optional[torch.device] = None,
    batch_size: Optional[int] = None,
    num_workers: Optional[int] = None,
    amp_dtype: Optional[torch.dtype] = None,
    skeleton: Optional[Skeleton] = None,
    progress_bar: Optional[bool] = False,
    worker_init_fn: Optional[Callable[[int], None]] = None,
) -> Dict[str, np.ndarray]:
    """Run ``model`` over test-mode samples of ``dataset`` (all, or ``indices``) and decode them officially.

    Returns numpy arrays in ``indices`` order: ``index`` (N,) int64, ``joint_coord`` (N, J, 3) heatmap space,
    ``rel_root_depth`` (N,) bins, ``hand_type`` (N, 2) probabilities, ``inv_trans`` (N, 2, 3) crop -> image.
    The geometry comes from ``cfg`` (required). Samples come from a standard DataLoader with ``num_workers``
    processes (default ``cfg.num_workers``; pinned memory on CUDA), ``batch_size`` defaults to
    ``cfg.test_batch_size``. In a distributed run each process predicts every ``world_size``-th sample and the
    predictions are gathered, in order, on every process."""
    if not isinstance(cfg, Config):
        raise TypeError(
            f"cfg must be an internet.Config (the geometry of the model's outputs), got {type(cfg).__name__}"
        )
    device = device if device is not None else next(model.parameters()).device
    batch_size = cfg.test_batch_size if batch_size is None else int(batch_size)
    num_workers = cfg.num_workers if num_workers is None else int(num_workers)
    if batch_size < 1 or num_workers < 0:
        raise ValueError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size} and {num_workers}")
    skeleton = skeleton or getattr(dataset, "skeleton", None) or INTERHAND
    idx = _sample_indices(len(dataset), indices)
    rank, world = _dist_shard()
    mine = np.arange(rank, idx.size, world)  # positions in idx this process predicts
    loader, pids = _loader(dataset, idx[mine], cfg, batch_size, num_workers, device, worker_init_fn)
    # predictions go straight into arrays of their final size: small tensors kept per batch between the batches'
    # large temporaries fragmented the heap (benchmarks/RESULTS.md section 9)
    per_sample = {"joint_coord": (skeleton.joint_num, 3), "rel_root_depth": (), "hand_type": (2,)}
    local = {k: np.zeros((mine.size, *shape), np.float32) for k, shape in per_sample.items()}
    local.update(position=mine, inv_trans=np.zeros((mine.size, 2, 3)))
    was_training, done, received, stalled = model.training, 0, 0, None
    model.eval()
    try:
        with opencv_one_thread_while() if num_workers > 0 else contextlib.nullcontext():
            batches = iter(loader)  # forked workers start here and inherit OpenCV on one thread
        for img, inv_trans in progress(
            batches, total=len(loader), desc="inference", enabled=progress_bar and rank == 0
        ):
            img = img.to(device, non_blocking=True)
            out = infer_batch(
                model,
                img.contiguous(memory_format=torch.channels_last) if cfg.channels_last else img,
                cfg,
                skeleton,
                amp_dtype,
            )
            _check_outputs(out, per_sample, len(inv_trans), skeleton)
            rows = slice(done, done + len(inv_trans))
            for k in per_sample:
                local[k][rows] = out[k].float().cpu().numpy()
            local["inv_trans"][rows], done, received = inv_trans, rows.stop, received + 1
            img = out = None  # the batch's last references: torch's record of a worker's batch dies, and is dropped
            _forget_received_batches()
    except BaseException as e:
        stalled = _release_loader_frames(e, num_workers, received)
        raise
    finally:
        model.train(was_training)
        batches = loader = None  # the iterator's last reference: its workers are shut down here
        _forget_received_batches()  # and the batches they had sent ahead
        if stalled is not None:
            raise _stop_stalled_worker(stalled, pids[stalled], cfg.loader_timeout_s) from None
    if world > 1:
        gathered: list = [None] * world
        dist.all_gather_object(gathered, local)
        order = np.argsort(np.concatenate([g["position"] for g in gathered]), kind="stable")
        local = {k: np.concatenate([g[k] for g in gathered])[order] for k in local}
    return {"index": idx, **{k: np.asarray(local[k], dtype=np.float64) for k in PREDICTION_KEYS[1:]}}


def place_predictions(
    pred: Mapping[str, np.ndarray], gt: Mapping[str, np.ndarray], cfg: Config, skeleton: Skeleton = INTERHAND
) -> Dict[str, np.ndarray]:
    """``pred`` (from :func:`predict`) plus ``pred_img`` (N, J, 2) image pixels and ``pred_cam`` (N, J, 3) camera
    mm, placed with the evaluation's root depths (``abs_depth`` of ``gt``, the whole split's
    ``dataset.eval_targets()``, rows picked by ``pred['index']``), as the official evaluation does."""
    idx = np.asarray(pred["index"], dtype=np.int64)
    codec = HeatmapCodec.from_config(cfg)
    uvz = codec.heatmap_to_image(pred["joint_coord"], pred["inv_trans"])
    cam = codec.to_camera(
        pred["joint_coord"],
        None,
        pred["inv_trans"],
        np.asarray(gt["focal"])[idx],
        np.asarray(gt["princpt"])[idx],
        np.asarray(gt["abs_depth"])[idx],
        skeleton=skeleton,
    )
    return {**pred, "pred_img": uvz[..., :2], "pred_cam": cam}
