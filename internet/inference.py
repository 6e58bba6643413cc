"""Inference: one path from images to decoded predictions, used by ``Trainer.test``, notebooks 03, 04 and 06, the
demo, :class:`internet.predictor.Predictor` and the command line.

:func:`infer_batch` is the step (forward, flip test, decoding on the model's device): only the decoded (B, 42, 3)
coordinates leave the device, never the (B, 42, 64, 64, 64) heatmaps. :func:`predict` runs it over a data set with
a DataLoader (workers, pinned memory), shards the samples across the processes of a distributed run and gathers the
predictions on every process. :func:`place_predictions` adds the image-pixel and camera-space joints that the
figures and per-sample errors use.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from internet import batch_slots
from internet.batch_slots import BatchSlots, SlotRef, slots_for, worker_id
from internet.codec import HeatmapCodec
from internet.config import Config
from internet.decode import decode_heatmaps, merge_flip
from internet.device import autocast
from internet.logging_utils import progress
from internet.runtime import loader_worker_init, opencv_one_thread_while
from internet.skeleton import INTERHAND, Skeleton

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
    The geometry comes from ``cfg`` (required: a CPU-preset model's 16x24x24 heatmaps read with the paper's shapes
    would come back in wrong millimetres). Samples are built by a DataLoader with ``num_workers`` processes
    (default ``cfg.num_workers``), pinned memory on CUDA; ``batch_size`` defaults to ``cfg.test_batch_size``.
    In a distributed run (initialised process group) each process predicts every ``world_size``-th sample and the
    predictions are gathered, so every process returns all of them."""

    if not isinstance(cfg, Config):
        raise TypeError(
            f"cfg must be an internet.Config (the geometry of the model's outputs), got {type(cfg).__name__}"
        )
    device = device if device is not None else next(model.parameters()).device
    batch_size = cfg.test_batch_size if batch_size is None else int(batch_size)
    num_workers = cfg.num_workers if num_workers is None else int(num_workers)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    skeleton = skeleton or getattr(dataset, "skeleton", None) or INTERHAND
    n = len(dataset)
    idx = np.arange(n, dtype=np.int64) if indices is None else np.asarray(list(indices), dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"indices must be in [0, {n - 1}], got {idx.min()}..{idx.max()}")
    rank, world = _dist_shard()
    mine = np.arange(rank, idx.size, world)  # positions in idx this process predicts
    prefetch = 4
    # the workers' start method, and that of the buffers' hand-back pipes (the workers inherit them)
    mp_context = torch.multiprocessing.get_context() if num_workers > 0 else None
    slots = None
    if num_workers > 0 and mine.size:
        h, w = (int(v) for v in cfg.input_img_shape)
        num_batches = -(-mine.size // batch_size)
        per_slot = min(batch_size, mine.size) * 3 * h * w * 4  # the float32 crops a buffer will hold at most
        count = slots_for(num_batches, num_workers, prefetch, per_slot, batch_slots.shared_memory_free())
        slots = BatchSlots(num_workers, count, (batch_size, 3, h, w), mp_context=mp_context)
    loader = DataLoader(
        Subset(dataset, idx[mine].tolist()),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        # on CUDA the loader's pin-memory thread copies each batch into pinned memory, buffers included
        # (SlotRef.pin_memory), beside the main thread's work
        pin_memory=device.type == "cuda",
        worker_init_fn=(
            worker_init_fn
            if worker_init_fn is not None
            else loader_worker_init(cfg.retain_freed_memory, mp_context.get_start_method() if mp_context else "fork")
        ),
        prefetch_factor=prefetch if num_workers > 0 else None,
        multiprocessing_context=mp_context,
        collate_fn=_InputCollate(slots),
    )
    was_training = model.training
    model.eval()
    # the predictions go straight into arrays of their final size (in the outputs' dtype, allocated at the first
    # batch): small tensors kept per batch between the batches' large temporaries fragmented the heap, which grew by
    # about 2.6 MB per batch (RESULTS.md section 9)
    per_sample = {"joint_coord": (skeleton.joint_num, 3), "rel_root_depth": (), "hand_type": (2,)}
    local: Dict[str, np.ndarray] = {"position": mine, "inv_trans": np.zeros((mine.size, 2, 3))}
    done = 0
    with opencv_one_thread_while() if num_workers > 0 else contextlib.nullcontext():
        batches = iter(loader)  # the workers start (fork) here
    try:
        for batch, inv_trans in progress(
            batches, total=len(loader), desc="inference", enabled=progress_bar if rank == 0 else False
        ):
            # a SlotRef only when nothing pinned it (not CUDA): the batch is read in place and handed back below, so
            # its copy to another device must be complete by then (a blocking one)
            ref = batch if isinstance(batch, SlotRef) else None
            img = slots.view(ref).to(device) if ref is not None else batch.to(device, non_blocking=True)
            if cfg.channels_last:
                img = img.contiguous(memory_format=torch.channels_last)
            out = infer_batch(model, img, cfg, skeleton, amp_dtype)
            del img  # on the CPU, a view of the shared buffer handed back below
            if ref is not None:
                slots.release(ref)
            rows = slice(done, done + len(inv_trans))
            for k, shape in per_sample.items():
                value = out[k].cpu().numpy()
                if value.shape != (len(inv_trans), *shape):
                    raise ValueError(
                        f"the model's {k} has shape {tuple(value.shape)} for a batch of {len(inv_trans)}; "
                        f"{(len(inv_trans), *shape)} expected for the {skeleton.joint_num}-joint skeleton of the "
                        "data set"
                    )
                if k not in local:
                    local[k] = np.zeros((mine.size, *shape), dtype=value.dtype)
                local[k][rows] = value
            local["inv_trans"][rows] = inv_trans
            done = rows.stop
    finally:
        model.train(was_training)
        # the loader's iterator holds the workers, the loader and `slots` the shared buffers: a traceback kept after
        # an error (a notebook's last one) would keep them alive through this frame
        batches = loader = slots = None
    if done != mine.size:
        raise RuntimeError(f"the loader delivered {done} of {mine.size} samples")
    for k, shape in per_sample.items():
        local.setdefault(k, np.zeros((0, *shape)))
    if world > 1:
        gathered: list = [None] * world
        dist.all_gather_object(gathered, local)
        order = np.argsort(np.concatenate([g["position"] for g in gathered]), kind="stable")
        local = {k: np.concatenate([g[k] for g in gathered])[order] for k in local}
    return {"index": idx, **{k: np.asarray(local[k], dtype=np.float64) for k in PREDICTION_KEYS[1:]}}


class _InputCollate:
    """Only what inference reads: the crops and their inverse transforms (the targets stay in the worker). In a
    worker with ``slots``, the crops go into one of its reusable shared buffers and only a :class:`SlotRef` crosses
    to the main process; otherwise (in-process loading, or crops of another shape) they are stacked as usual, which
    inside a worker means a fresh shared-memory segment per batch. The inverse transforms travel as a small numpy
    array (pickled: no shared-memory segment of its own)."""

    def __init__(self, slots: Optional[BatchSlots] = None) -> None:
        self.slots = slots

    def __call__(self, samples: Sequence[Mapping[str, Any]]):
        imgs = [np.asarray(s["img"], dtype=np.float32) for s in samples]
        inv_trans = np.stack([np.asarray(s["inv_trans"], dtype=np.float64) for s in samples])
        worker = worker_id()
        if self.slots is not None and worker is not None and self.slots.fits(imgs):
            return self.slots.write(worker, imgs), inv_trans
        return default_collate([torch.from_numpy(i) for i in imgs]), inv_trans


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
