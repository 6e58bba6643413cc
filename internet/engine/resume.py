"""A training run's resume state: what a checkpoint adds to the official format so that a stopped run continues
exactly, and how it is restored.

:func:`training_checkpoint` adds ``train_state`` to the official entries: plain data (position, learning rate and
schedule, data order, RNG states, the flat config), storable under ``weights_only=True`` loading (numpy RNG states
go through :func:`rng_state_to_plain`). :func:`resume_training` restores it into a model and optimizer. The file
format itself (safe loading, atomic saving, names) is :mod:`internet.model.checkpoint`'s.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import nn

from internet.config import Config
from internet.model.checkpoint import (
    CheckpointError,
    PathLike,
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    load_network_state,
    official_state_dict,
    parse_checkpoint_name,
    save_checkpoint,
)


# ---------------------------------------------------------------------------------------------------- RNG states
def rng_state_to_plain(state: Any) -> Any:
    """A random-generator state with numpy values made storable under ``weights_only=True``.

    Works on ``np.random.Generator(...).bit_generator.state`` (dict), ``np.random.get_state()`` (tuple with a
    key array) and ``random.getstate()`` (already plain; returned as is). numpy arrays become
    ``{"__ndarray__": list, "dtype": str}``, numpy scalars Python numbers. :func:`plain_to_rng_state` reverses it.
    """
    if isinstance(state, np.ndarray):
        return {"__ndarray__": state.tolist(), "dtype": state.dtype.str}
    if isinstance(state, np.generic):
        return state.item()
    if isinstance(state, dict):
        return {k: rng_state_to_plain(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(rng_state_to_plain(v) for v in state)
    return state


def plain_to_rng_state(plain: Any) -> Any:
    """Inverse of :func:`rng_state_to_plain` (also turns lists loaded back from a checkpoint into what
    ``random.setstate`` / ``np.random.set_state`` accept)."""
    if isinstance(plain, dict):
        if set(plain) == {"__ndarray__", "dtype"}:
            return np.asarray(plain["__ndarray__"], dtype=np.dtype(plain["dtype"]))
        return {k: plain_to_rng_state(v) for k, v in plain.items()}
    if isinstance(plain, (list, tuple)):
        return type(plain)(plain_to_rng_state(v) for v in plain)
    return plain


def capture_rng_states(generator: Optional[np.random.Generator] = None) -> dict:
    """All global RNG states (python ``random``, numpy's legacy global, torch CPU and CUDA) as plain data, plus
    ``generator``'s bit-generator state when given."""
    states: dict[str, Any] = {
        "python": rng_state_to_plain(random.getstate()),
        "numpy": rng_state_to_plain(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        states["numpy_generator"] = rng_state_to_plain(generator.bit_generator.state)
    return states


def restore_rng_states(states: Mapping[str, Any], generator: Optional[np.random.Generator] = None) -> None:
    """Restore what :func:`capture_rng_states` captured (CUDA only when present in both)."""
    try:
        py = plain_to_rng_state(states["python"])
        random.setstate((py[0], tuple(py[1]), py[2]))
        np.random.set_state(tuple(plain_to_rng_state(states["numpy"])))
        torch.set_rng_state(states["torch"].cpu())
        if "cuda" in states and torch.cuda.is_available():
            restore_cuda_rng_states(states["cuda"])
        if generator is not None:
            if "numpy_generator" not in states:
                raise KeyError("numpy_generator")
            generator.bit_generator.state = plain_to_rng_state(states["numpy_generator"])
    except KeyError as e:
        raise CheckpointError(f"RNG state is missing the entry {e.args[0]!r}; it has {sorted(states)}") from None


def restore_cuda_rng_states(saved: Any) -> None:
    """Set the CUDA generators of the GPUs visible now from ``saved`` (one state per GPU of the saving machine).

    A run written on more GPUs than this machine has resumes with the first ``device_count()`` states; one written
    on fewer leaves the extra GPUs' generators as they are (each process of a distributed run draws from its own
    GPU's generator only)."""
    states = list(saved) if isinstance(saved, (list, tuple)) else [saved]
    for index, state in enumerate(states[: torch.cuda.device_count()]):
        torch.cuda.set_rng_state(state.cpu(), index)


def optimizer_state_to_param_device(optimizer: torch.optim.Optimizer) -> None:
    """Move every tensor of ``optimizer``'s per-parameter state to its parameter's device, the way torch loads it
    for a ``fused``/``capturable`` Adam (``step`` as a float32 tensor on the device).

    ``Optimizer.load_state_dict`` decides where ``step`` goes from the *saved* groups' flags: a state written
    without ``fused`` (on a CPU, or by the official code) keeps ``step`` on the CPU, and a fused CUDA Adam then
    fails on its first step. Call this after switching the groups to this machine's implementation."""
    for group in optimizer.param_groups:
        on_device = bool(group.get("fused") or group.get("capturable"))
        for param in group["params"]:
            state = optimizer.state.get(param)
            if not state:
                continue
            for key, value in list(state.items()):
                if not torch.is_tensor(value):
                    continue
                if key == "step":
                    state[key] = (
                        value.to(device=param.device, dtype=torch.float32)
                        if on_device
                        else value.to(device="cpu", dtype=torch.float32)
                    )
                else:
                    state[key] = value.to(
                        device=param.device, dtype=param.dtype if value.is_floating_point() else value.dtype
                    )


# ---------------------------------------------------------------------------------------------------- training state
TRAIN_STATE_VERSION = 1
_ORDER_KEYS = ("seed", "num_samples", "global_batch_size", "batches_per_epoch")
"""What fixes the batches of an epoch (``data_order``; its ``world_size`` may change: the same global batch gives
the same batches, see :class:`internet.engine.sampler.EpochBatchSampler`)."""


class ResumeError(CheckpointError):
    """A checkpoint that loads cannot be resumed by this run (other optimizer groups, a changed data order)."""


def training_checkpoint(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: Config,
    *,
    epoch: int,
    position: Tuple[int, int, int],
    data_order: Mapping[str, Any],
) -> dict:
    """The checkpoint of a training run: the official entries (``epoch``, ``network`` with ``module.`` keys,
    ``optimizer``) plus ``train_state``, plain data for exact resumption: ``position`` = (next epoch, next iteration
    in it, iterations done) where a resumed run starts, the learning rate and schedule, ``data_order`` (seed,
    num_samples, global_batch_size, world_size, batches_per_epoch), every RNG state and the flat config."""
    next_epoch, next_iter, global_step = position
    return {
        "epoch": epoch,
        "network": official_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "train_state": {
            "version": TRAIN_STATE_VERSION,
            "next_epoch": next_epoch,
            "next_iter": next_iter,
            "global_step": global_step,
            "lr": optimizer.param_groups[0]["lr"],
            "lr_schedule": {
                "lr": cfg.lr,
                "lr_dec_epoch": list(cfg.lr_dec_epoch),
                "lr_dec_factor": cfg.lr_dec_factor,
                "end_epoch": cfg.end_epoch,
            },
            "data_order": dict(data_order),
            "rng": capture_rng_states(),
            "config": json.loads(json.dumps(cfg.to_dict())),  # plain lists/str/numbers only (weights_only-safe)
        },
    }


def resume_training(
    path: PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: Config,
    *,
    data_order: Mapping[str, Any],
    optimizer_flags: Mapping[str, Any],
    log: Callable[[str], None] = print,
) -> Tuple[int, int, int]:
    """Load the weights, optimizer state and RNG states of ``path`` (written by :func:`training_checkpoint`, or an
    official snapshot) into this run; returns its position (next epoch, next iteration, iterations done).

    An official snapshot (no ``train_state``) resumes at the start of epoch ``epoch + 1``. The optimizer keeps this
    machine's implementation (``optimizer_flags``, e.g. fused Adam on CUDA) with its state moved to the parameters'
    device. Raises :class:`ResumeError` naming ``path`` when the optimizer's groups differ or when a run stopped
    inside an epoch would continue with another ``data_order`` (its remaining batches could not be found)."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, Mapping) or "network" not in ckpt:
        raise ResumeError(f"{path} is not a training checkpoint (no 'network' entry)")
    load_network_state(model, ckpt, where=str(path))  # format version and finite weights, before the rest
    if "optimizer" in ckpt:
        saved = ckpt["optimizer"]
        saved_groups = len(saved.get("param_groups", ())) if isinstance(saved, Mapping) else 0
        if saved_groups and saved_groups != len(optimizer.param_groups):
            raise ResumeError(
                f"{path}: its optimizer has {saved_groups} parameter group(s), this run's has "
                f"{len(optimizer.param_groups)} (linear_lr_max={cfg.linear_lr_max}; None gives the official single "
                f"group, a value a second one for the nn.Linear layers): resume with the linear_lr_max setting the "
                f"checkpoint was trained with"
            )
        _check_finite_optimizer_state(path, saved, optimizer, model)
        try:
            optimizer.load_state_dict(saved)
        except (ValueError, KeyError) as e:
            raise ResumeError(f"{path}: the optimizer state does not fit this model ({e})") from e
        for group in optimizer.param_groups:  # this device's implementation, not the saving one's
            group.update(optimizer_flags)
        optimizer_state_to_param_device(optimizer)  # e.g. a CPU-written state resumed with fused CUDA Adam
    else:
        log(f"{path} has no optimizer state: Adam starts afresh")
    state = ckpt.get("train_state")
    if state is None:
        if "epoch" not in ckpt:
            raise ResumeError(f"{path} has neither 'train_state' nor 'epoch': cannot tell where to resume")
        epoch = int(ckpt["epoch"]) + 1
        return epoch, 0, epoch * int(data_order["batches_per_epoch"])
    epoch, iteration, global_step = int(state["next_epoch"]), int(state["next_iter"]), int(state["global_step"])
    if iteration:
        saved_order = state.get("data_order", {})
        changed = {k: (saved_order.get(k), data_order[k]) for k in _ORDER_KEYS if saved_order.get(k) != data_order[k]}
        if changed:
            raise ResumeError(
                f"{path} stopped inside epoch {epoch} at iteration {iteration}, but the data order changed since "
                f"({', '.join(f'{k}: {a} -> {b}' for k, (a, b) in changed.items())}): the batches already seen "
                "cannot be skipped exactly. Resume from an end-of-epoch snapshot."
            )
    if "rng" in state:
        restore_rng_states(state["rng"])
    return epoch, iteration, global_step


def _check_finite_optimizer_state(path: Path, saved: Any, optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """Refuse an optimizer state holding NaN or inf, naming the entry: Adam would make the first resumed step's
    weights NaN, and that step's checkpoint would pass for the last good one."""
    if not isinstance(saved, Mapping) or not isinstance(saved.get("state"), Mapping):
        return
    names = {id(p): n for n, p in model.named_parameters()}
    where: dict = {}  # saved parameter index -> this model's parameter name
    for group, ours in zip(saved.get("param_groups", ()), optimizer.param_groups):
        for index, param in zip(group.get("params", ()), ours["params"]):
            where[index] = names.get(id(param), "?")
    for index, entry in saved["state"].items():
        for key, value in entry.items() if isinstance(entry, Mapping) else ():
            if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                bad = int((~torch.isfinite(value)).sum())
                raise ResumeError(
                    f"{path}: optimizer state {key!r} of parameter {index} ({where.get(index, '?')}) holds {bad} "
                    f"non-finite value(s) of {value.numel()}: the run that wrote it had diverged, and resuming would "
                    "turn the weights into NaN at the first step. Resume from an earlier checkpoint"
                )


def remove_incomplete_writes(model_dump_dir: PathLike) -> List[Path]:
    """Delete the temporary files of checkpoint writes cut by a kill (never renamed, never to be used); returns
    them."""
    stale = sorted(Path(model_dump_dir).glob(".snapshot_*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def prune_iteration_checkpoints(model_dump_dir: PathLike, before: Tuple[int, int], keep: Path) -> None:
    """Delete the iteration checkpoints of positions before ``before`` = (epoch, iteration) other than ``keep``
    (call it once ``keep``, which supersedes them, is complete)."""
    for old in Path(model_dump_dir).iterdir():
        parsed = parse_checkpoint_name(old.name)
        if parsed is not None and parsed[1] is not None and old != keep and parsed < before:
            old.unlink(missing_ok=True)


def latest_resumable(
    model_dump_dir: PathLike, log: Callable[[str], None] = print, remove_stale: bool = True
) -> Optional[Path]:
    """The checkpoint a resumed run starts from (:func:`internet.model.checkpoint.latest_checkpoint`), or None
    (logged). ``remove_stale``: first delete the temporary files of writes a kill cut (one process of a run
    should)."""
    if remove_stale:
        for stale in remove_incomplete_writes(model_dump_dir):
            log(f"removed {stale} (a checkpoint write that did not complete)")
    path = latest_checkpoint(model_dump_dir)
    if path is None:
        log(f"continue_train: no checkpoint in {model_dump_dir}, starting from scratch")
    return path


def save_training_checkpoint(
    cfg: Config,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_order: Mapping[str, Any],
    position: Tuple[int, int, int],
    epoch_end: Optional[int] = None,
) -> Path:
    """Write ``snapshot_{epoch}.pth.tar`` (``epoch_end`` given: that epoch finished) or the iteration checkpoint
    ``snapshot_{epoch}_iter{n}.pth.tar`` of ``position`` = (next epoch, next iteration, iterations done) into
    ``cfg.model_dump_dir``, atomically; then delete the iteration checkpoints it supersedes. Returns its path."""
    folder, (epoch, iteration, _) = cfg.model_dump_dir, position
    name = checkpoint_name(epoch_end) if epoch_end is not None else checkpoint_name(epoch, iteration)
    state = training_checkpoint(
        model,
        optimizer,
        cfg,
        data_order=data_order,
        epoch=epoch if epoch_end is None else epoch_end,
        position=position,
    )
    path = save_checkpoint(folder / name, state)  # atomic: old files intact until here
    prune_iteration_checkpoints(folder, before=(epoch, iteration), keep=path)  # a resume starts there
    return path
