"""Device and mixed-precision choice for training and inference.

bf16 autocast is used on CUDA whenever ``cfg.amp`` is set and the GPU supports bf16 (Ampere or newer; older GPUs run
in float32). On CPU, bf16 autocast only pays off where the processor has native bf16 instructions (AVX512-BF16 or
AMX); elsewhere it is emulated and slower than float32. So the CPU choice is ``cpu_amp``: ``None`` (auto) enables it
when ``cfg.amp`` is set and the CPU has those instructions, ``True`` forces it, ``False`` keeps float32. The loss is
always computed in float32 (see :mod:`internet.train`).
"""
from __future__ import annotations

import contextlib
from typing import ContextManager, Optional

import torch


class DeviceError(RuntimeError):
    """The requested device does not exist on this machine."""


def choose_device(spec: str = "auto", local_rank: Optional[int] = None) -> torch.device:
    """'auto' -> CUDA when available (``cuda:local_rank`` in a multi-process run), else CPU; 'cpu', 'cuda', 'cuda:N'
    are taken as given but checked."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if not spec.startswith("cuda"):
        raise DeviceError(f"device={spec!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise DeviceError(f"device={spec!r} was asked for but CUDA is not available (torch {torch.__version__}); "
                          "use device='cpu' or 'auto'")
    if spec == "cuda":
        index = local_rank if local_rank is not None else torch.cuda.current_device()
    else:
        try:
            index = int(spec.split(":", 1)[1])
        except ValueError as e:
            raise DeviceError(f"device={spec!r}: the GPU index is not an integer") from e
        if local_rank is not None:
            index += local_rank
    if index >= torch.cuda.device_count():
        raise DeviceError(f"device={spec!r} (process {local_rank}): GPU {index} does not exist, "
                          f"this machine has {torch.cuda.device_count()}")
    return torch.device("cuda", index)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512-BF16 or AMX-BF16), where bf16 autocast is faster."""
    try:
        caps = torch.cpu.get_capabilities()
    except Exception:  # older torch: no capability query, stay in float32
        return False
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def amp_dtype(device: torch.device, amp: bool, cpu_amp: Optional[bool] = None) -> Optional[torch.dtype]:
    """The autocast dtype to use on ``device``, or None for float32.

    amp: the config switch (``cfg.amp``). cpu_amp: CPU override (None = auto-detect, see the module docstring).
    """
    if device.type == "cuda":
        return torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else None
    if cpu_amp is None:
        cpu_amp = amp and cpu_has_fast_bf16()
    return torch.bfloat16 if cpu_amp else None


def autocast(device: torch.device, dtype: Optional[torch.dtype]) -> ContextManager:
    """Autocast context for ``dtype`` on ``device`` (a no-op context for float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def describe(device: torch.device, dtype: Optional[torch.dtype]) -> str:
    """One line for the log: device name and precision."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    precision = "bf16 autocast" if dtype == torch.bfloat16 else "float32"
    return f"{device} ({name}), {precision}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
