"""Checkpoints in the official format, loaded safely and checked, saved atomically.

Format (as the official ``snapshot_N.pth.tar``): a dict ``{"epoch": int, "network": state dict, "optimizer": state
dict, ...}``; the official code saves the network from ``nn.DataParallel``, so its keys carry a ``module.`` prefix.

File names in a ``model_dump`` folder:

- ``snapshot_{epoch}.pth.tar``: written after epoch ``epoch`` finished (official name; resume at ``epoch + 1``).
- ``snapshot_{epoch}_iter{iteration}.pth.tar``: written inside epoch ``epoch`` after ``iteration`` iterations of
  it (this project's addition for crash-safe resumption). It ranks after ``snapshot_{epoch-1}`` and before
  ``snapshot_{epoch}``.

Every checkpoint that :func:`save_checkpoint` writes with a ``network`` entry carries ``format_version``
(:data:`CHECKPOINT_FORMAT`); loading refuses a larger version (written by a newer version of this code) and network
weights that are not finite (naming the tensor), before any of them reaches the model.

A training run's checkpoint adds ``train_state``, plain data for exact resumption: that is
:mod:`internet.engine.resume`'s (``training_checkpoint``, ``resume_training``).

Loading always uses ``torch.load(..., weights_only=True)``: a file that would run code when unpickled is refused
before anything in it runs. Everything saved must therefore be plain data (tensors, numbers, strings, bytes, lists,
tuples, dicts); ``internet.engine.resume.rng_state_to_plain`` converts random-generator states that hold numpy
arrays.
"""

from __future__ import annotations

import errno
import io
import math
import pickle
import pickletools
import re
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn

from internet.utils.atomic import atomic_open, fsync_dir

PathLike = Union[str, Path]

_SNAPSHOT_RE = re.compile(r"snapshot_(\d+)(?:_iter(\d+))?\.pth\.tar")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP and torch.compile
_PLAIN_TYPES = (str, bytes, int, float, bool, type(None), torch.Tensor, torch.Size, torch.dtype, torch.device)
_SHOW = 5  # how many offending keys an error message lists
_PLAIN_GLOBALS = ("collections.OrderedDict", "_codecs.encode", "builtins.set", "builtins.frozenset", "__builtin__.set")


CHECKPOINT_FORMAT = 1
"""This code's checkpoint layout version, stored as ``format_version``. Files without it (official snapshots, this
project's from before the field) are format 0, the same layout; a larger number is refused."""


class CheckpointError(RuntimeError):
    """A checkpoint file or state dict cannot be loaded (unsafe, corrupt, or not matching the model)."""


# ---------------------------------------------------------------------------------------------------- loading files
def load_checkpoint(path: PathLike, map_location: Any = "cpu") -> Any:
    """Read a checkpoint file with ``weights_only=True``.

    Raises FileNotFoundError naming a missing file, and :class:`CheckpointError` for a file whose pickle would run
    code or build arbitrary objects (nothing of it runs) and for a truncated or corrupt file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(errno.ENOENT, f"checkpoint file not found: {p}", str(p))
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before our own, clearer error
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = _unsafe_detail(str(e))
        if unsafe is None:  # e.g. a plain pickle with opcodes the weights-only reader lacks: look without running it
            unsafe = _scan_pickle(p)
        if unsafe is not None:
            raise CheckpointError(
                f"refusing to load {p}: it contains code/objects that are not plain tensors ({unsafe}); "
                "weights_only=True loading refused it and nothing in it was run. Only if you trust where it came "
                "from, load it yourself with weights_only=False and save its plain tensors."
            ) from None
        raise CheckpointError(
            f"could not read checkpoint {p}: the file is truncated or corrupt ({_describe(e)})"
        ) from e
    except (PermissionError, IsADirectoryError, MemoryError):
        raise
    except Exception as e:  # zip reader, EOF, bad storage offsets...: all mean the bytes are not a valid checkpoint
        raise CheckpointError(
            f"could not read checkpoint {p}: the file is truncated or corrupt ({_describe(e)})"
        ) from e


def _unsafe_detail(message: str) -> Optional[str]:
    """What the weights-only unpickler refused, when the refusal is about code/objects (not about broken bytes)."""
    m = re.search(r"GLOBAL (\S+) (?:was not an allowed global|whose module)", message)
    if m:
        return f"it references {m.group(1)}"
    for marker in (
        "Trying to call reduce for unrecognized function",
        "Can only create new object",
        "must be imported to load",
    ):
        if marker in message:
            return _first_line(message[message.index(marker) :])
    return None


def _scan_pickle(path: Path) -> Optional[str]:
    """Describe what a complete pickle in ``path`` references, using pickletools (which parses opcodes and runs
    nothing); None when the bytes are not a complete pickle (then the file is corrupt)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                members = [n for n in archive.namelist() if n.endswith("data.pkl")]
                if not members:
                    return None
                stream = io.BytesIO(archive.read(members[0]))
        else:
            stream = io.BytesIO(path.read_bytes())
    except Exception:
        return None
    found: list[str] = []
    complete = False
    for _ in range(5):  # legacy torch files are several pickles back to back, then raw storage bytes
        strings: list[str] = []
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if op.name in ("GLOBAL", "INST"):
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
        except Exception:
            break
        complete = True
    if not complete:
        return None
    foreign = [g for g in dict.fromkeys(found) if not g.startswith("torch.") and g not in _PLAIN_GLOBALS]
    if foreign:
        return "it references " + ", ".join(foreign[:_SHOW])
    return "it is a complete pickle that the weights-only reader does not accept"


def _first_line(message: Any) -> str:
    """The informative line of an error message (torch's weights-only errors wrap it in advice paragraphs)."""
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    advice = (
        "Weights only load failed",
        "(1)",
        "(2)",
        "Please file an issue",
        "Check the documentation",
        "In PyTorch",
        "WeightsUnpickler error:",
    )
    useful = [ln for ln in lines if not ln.startswith(advice)]
    return useful[-1] if useful else (lines[0] if lines else "")


def _describe(e: BaseException) -> str:
    detail = _first_line(e)
    return f"{type(e).__name__}: {detail}" if detail else type(e).__name__


# ---------------------------------------------------------------------------------------------------- checking states
def infer_resnet_depth(keys: Any) -> Optional[int]:
    """ResNet depth (18/34/50/101/152) from state-dict key names, or None when they hold no ResNet trunk.

    Bottleneck blocks have a ``conv3``; the block count of ``layer3`` then separates the depths.
    """
    keys = [k for k in keys if isinstance(k, str)]
    layer3 = [int(m.group(1)) for k in keys if (m := re.search(r"(?:^|\.)layer3\.(\d+)\.", k))]
    if not layer3:
        return None
    n3 = max(layer3) + 1
    bottleneck = any(re.search(r"(?:^|\.)layer1\.0\.conv3\.weight$", k) for k in keys)
    table = {(False, 2): 18, (False, 6): 34, (True, 6): 50, (True, 23): 101, (True, 36): 152}
    return table.get((bottleneck, n3))


def infer_fc_input_norm(keys: Any) -> bool:
    """Whether state-dict key names hold the ``fc_input_norm`` LayerNorm (see :class:`internet.model.InterNet`)."""
    return any(isinstance(k, str) and re.search(r"(?:^|\.)fc_input_norm\.", k) for k in keys)


def strip_wrapper_prefixes(state: Mapping[str, Any]) -> "OrderedDict[str, Any]":
    """Drop leading ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) from every key."""
    out: OrderedDict[str, Any] = OrderedDict()
    for k, v in state.items():
        changed = isinstance(k, str)  # other keys are left for check_state_compatible to report
        while changed:
            changed = False
            for prefix in _WRAPPER_PREFIXES:
                if k.startswith(prefix):
                    k, changed = k[len(prefix) :], True
        out[k] = v
    return out


def check_state_compatible(
    expected: Mapping[str, torch.Tensor],
    given: Mapping[str, Any],
    where: str = "checkpoint",
    model_name: str = "model",
    strict: bool = True,
) -> None:
    """Raise :class:`CheckpointError` when ``given`` does not fit ``expected`` (a model's ``state_dict()``).

    Lists missing and unexpected keys (only with ``strict``) and shape mismatches (always), a few of each with the
    counts, names both ResNet depths when they differ, and says which ``fc_input_norm`` the checkpoint needs.
    """
    bad_values = [k for k, v in given.items() if not isinstance(v, torch.Tensor)]
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    mismatched = [
        k for k in expected if k in given and k not in bad_values and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    if not (mismatched or bad_values or (strict and (missing or unexpected))):
        return
    lines = [f"cannot load {where} into the {model_name}:"]
    have, want = infer_resnet_depth(given), infer_resnet_depth(expected)
    if have is not None and want is not None and have != want:
        lines.append(f"  checkpoint is ResNet-{have}, model is ResNet-{want} (set resnet_type={have} to load it)")
    if bad_values:
        lines.append(
            f"  {len(bad_values)} entries are not tensors: "
            + _few(bad_values, lambda k: f"{k} ({type(given[k]).__name__})")
        )
    if strict and missing:
        lines.append(f"  {len(missing)} missing keys (in the model, not in the checkpoint): " + _few(missing))
    if strict and unexpected:
        lines.append(f"  {len(unexpected)} unexpected keys (in the checkpoint, not in the model): " + _few(unexpected))
    if mismatched:
        lines.append(
            f"  {len(mismatched)} shape mismatches: "
            + _few(mismatched, lambda k: f"{k} checkpoint {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}")
        )
    if strict and infer_fc_input_norm(missing + unexpected):
        trained_with = infer_fc_input_norm(given)
        lines.append(
            f"  the checkpoint was trained with fc_input_norm={trained_with}, the model has "
            f"fc_input_norm={not trained_with} (set fc_input_norm={trained_with} to load it)"
        )
    if strict and "conv1.weight" in given and "fc.weight" in given and "conv1.weight" not in expected:
        lines.append("  this looks like a torchvision ImageNet ResNet: load it with pretrained_backbone=... instead")
    raise CheckpointError("\n".join(lines))


def _few(keys: list, fmt: Any = str) -> str:
    shown = ", ".join(fmt(k) for k in keys[:_SHOW])
    return shown + (f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def load_network_state(
    model: nn.Module,
    state_or_ckpt: Union[Mapping[str, Any], PathLike],
    strict: bool = True,
    where: Optional[str] = None,
) -> Any:
    """Load network weights into ``model`` after checking names and shapes.

    ``state_or_ckpt``: a checkpoint dict with a ``network`` entry (the official format), a bare state dict, or a
    path to either (read with :func:`load_checkpoint`). ``module.``/``_orig_mod.`` prefixes are removed; a wrapped
    ``model`` is unwrapped. With ``strict=False`` missing/unexpected keys are allowed (as the official demo), shape
    mismatches never are. The weights must be finite and a checkpoint's ``format_version`` one this code reads.
    ``where`` names an already loaded checkpoint in errors (its path). Returns torch's ``(missing_keys,
    unexpected_keys)``.
    """
    where = where or "checkpoint"
    if isinstance(state_or_ckpt, (str, Path)):
        where = str(state_or_ckpt)
        state_or_ckpt = load_checkpoint(state_or_ckpt)
    if not isinstance(state_or_ckpt, Mapping):
        raise CheckpointError(
            f"{where}: expected a checkpoint dict or a state dict, got {type(state_or_ckpt).__name__}"
        )
    if "network" in state_or_ckpt:
        check_format_version(state_or_ckpt, where)
        state = state_or_ckpt["network"]
        where += "['network']"
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{where}: expected a state dict, got {type(state).__name__}")
    elif state_or_ckpt and all(isinstance(v, torch.Tensor) for v in state_or_ckpt.values()):
        state = state_or_ckpt
    else:
        raise CheckpointError(
            f"{where} is neither a checkpoint with a 'network' entry nor a state dict of tensors; "
            f"its keys: {_few(list(state_or_ckpt))}"
        )
    state = strip_wrapper_prefixes(state)
    target = unwrap_model(model)
    expected = target.state_dict()
    depth = infer_resnet_depth(expected)
    name = type(target).__name__ + (f" (ResNet-{depth})" if depth else "")
    check_state_compatible(expected, state, where=where, model_name=name, strict=strict)
    check_finite_state(state, where)
    return target.load_state_dict(state, strict=strict)


def check_format_version(ckpt: Mapping[str, Any], where: str = "checkpoint") -> int:
    """The ``format_version`` of a checkpoint dict (0 when absent), or :class:`CheckpointError` when this code
    cannot read it (a newer version's, or not a non-negative integer)."""
    version = ckpt.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CheckpointError(f"{where}: 'format_version' must be a non-negative integer, got {version!r}")
    if version > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{where} has checkpoint format {version}; this code reads formats up to "
            f"{CHECKPOINT_FORMAT}: it was written by a newer version of this project, update it"
        )
    return version


def check_finite_state(state: Mapping[str, Any], where: str = "checkpoint") -> None:
    """:class:`CheckpointError` naming the floating-point tensors of ``state`` that hold NaN or Inf (a model with
    them predicts NaN or garbage and is evaluated into believable-looking numbers)."""
    bad = [
        k
        for k, v in state.items()
        if isinstance(v, torch.Tensor)
        and (v.is_floating_point() or v.is_complex())
        and not bool(torch.isfinite(v).all())
    ]
    if bad:

        def count(k: str) -> str:
            t = state[k]
            return f"{k} ({int((~torch.isfinite(t)).sum())} of {t.numel()} values)"

        raise CheckpointError(
            f"{where}: {len(bad)} tensor(s) hold NaN or Inf: {_few(bad, count)}; the weights are "
            "corrupt (a diverged run or a damaged file): use an earlier checkpoint"
        )


def official_state_dict(model: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """The model's state dict with the ``module.`` prefix that the official code (``nn.DataParallel``) expects."""
    state = strip_wrapper_prefixes(unwrap_model(model).state_dict())
    return OrderedDict(("module." + k, v.detach()) for k, v in state.items())


# ---------------------------------------------------------------------------------------------------- saving
def save_checkpoint(path: PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, flushed and fsynced, then
    ``os.replace``. On failure the temporary file is removed, an existing file at ``path`` is left untouched and the
    error is re-raised naming ``path`` (OSError keeps its errno, e.g. ENOSPC).

    ``state`` must hold plain data only (see the module docstring); anything else raises TypeError naming where it
    is, before any file is touched. A checkpoint (a ``network`` entry) gets ``format_version`` if it lacks one.
    """
    path = Path(path)
    _check_plain(state, "state")
    if isinstance(state, Mapping) and "network" in state and "format_version" not in state:
        state = {**state, "format_version": CHECKPOINT_FORMAT}
    try:
        with atomic_open(path, "wb") as f:
            torch.save(state, f)
    except BaseException as e:
        if isinstance(e, OSError):
            why = e.strerror or str(e)
            raise (
                OSError(e.errno, f"could not save checkpoint {path}: {why}")
                if e.errno is not None
                else OSError(f"could not save checkpoint {path}: {why}")
            ) from e
        if isinstance(e, Exception):
            raise CheckpointError(f"could not save checkpoint {path}: {type(e).__name__}: {e}") from e
        raise  # KeyboardInterrupt etc.: temp file is gone, the old checkpoint untouched
    fsync_dir(path.parent)  # make the rename itself durable
    return path


def _check_plain(obj: Any, where: str) -> None:
    """Raise TypeError at the first value that ``weights_only=True`` loading would refuse."""
    if isinstance(obj, _PLAIN_TYPES):
        return
    if isinstance(obj, dict):  # OrderedDict included
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool, tuple, type(None))):
                raise TypeError(f"{where} has a key of type {type(k).__name__} ({k!r}); use plain keys")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple, set, frozenset)) and type(obj) in (list, tuple, set, frozenset):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    hint = ""
    if type(obj).__module__.startswith("numpy"):
        hint = " (convert it with internet.engine.resume.rng_state_to_plain or .tolist())"
    raise TypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which a weights_only=True load "
        f"refuses; store plain numbers, strings, lists, dicts or tensors{hint}"
    )


# ---------------------------------------------------------------------------------------------------- names
def checkpoint_name(epoch: int, iteration: Optional[int] = None) -> str:
    """``snapshot_{epoch}.pth.tar`` (end of epoch) or ``snapshot_{epoch}_iter{iteration}.pth.tar`` (inside it)."""
    if epoch < 0 or (iteration is not None and iteration < 0):
        raise ValueError(f"checkpoint epoch/iteration must be >= 0, got epoch={epoch}, iteration={iteration}")
    return f"snapshot_{epoch}.pth.tar" if iteration is None else f"snapshot_{epoch}_iter{iteration}.pth.tar"


def parse_checkpoint_name(name: str) -> Optional[tuple[int, Optional[int]]]:
    """``(epoch, iteration)`` of a checkpoint file name (iteration None for an end-of-epoch snapshot), else None."""
    m = _SNAPSHOT_RE.fullmatch(name)
    if m is None:
        return None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) is not None else None)


def latest_checkpoint(model_dump_dir: PathLike) -> Optional[Path]:
    """The most advanced checkpoint in ``model_dump_dir`` (see the module docstring for the order), or None."""
    folder = Path(model_dump_dir)
    if not folder.is_dir():
        return None
    best, best_key = None, None
    for p in folder.iterdir():
        parsed = parse_checkpoint_name(p.name)
        if parsed is None or not p.is_file():
            continue
        epoch, it = parsed
        key = (epoch, math.inf if it is None else it)
        if best_key is None or key > best_key:
            best, best_key = p, key
    return best
