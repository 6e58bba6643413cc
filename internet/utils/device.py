"""Device and mixed-precision choice for training and inference.

bf16 autocast is used on CUDA whenever ``cfg.amp`` is set and the GPU supports bf16 (Ampere or newer; older GPUs run
in float32). On CPU, bf16 autocast only pays off where the processor has native bf16 instructions (AVX512-BF16 or
AMX); elsewhere it is emulated and slower than float32. So the CPU choice is ``cpu_amp``: ``None`` (auto) enables it
when ``cfg.amp`` is set and the CPU has those instructions, ``True`` forces it, ``False`` keeps float32. The loss is
always computed in float32 (see :mod:`internet.engine.trainer`).
"""

from __future__ import annotations

import contextlib
import platform
import sys
import warnings
from typing import ContextManager, Optional

import torch


class DeviceError(RuntimeError):
    """The requested device does not exist on this machine."""


class DeviceFallbackWarning(UserWarning):
    """device='auto' found no usable GPU for a network that needs one."""


def is_paper_scale(cfg) -> bool:
    """True for networks that take days on a CPU (the paper's ResNet-50 at 256 px, or larger)."""
    return int(cfg.resnet_type) >= 50 or int(cfg.input_img_shape[0]) >= 256


def cpu_fallback_reason() -> str:
    """Why torch sees no GPU, in words a user can act on."""
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build: install a CUDA build of torch"
    return (
        f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but torch.cuda.is_available() is "
        "False: no GPU is visible (CUDA_VISIBLE_DEVICES?) or the NVIDIA driver is missing or too old for it"
    )


def choose_device(
    spec: str = "auto", local_rank: Optional[int] = None, warn_cpu_fallback: bool = False
) -> torch.device:
    """'auto' -> CUDA when available (``cuda:local_rank`` in a multi-process run), else CPU; 'cpu', 'cuda', 'cuda:N'
    are taken as given but checked. ``warn_cpu_fallback``: when 'auto' falls back to the CPU, say so loudly (a
    :class:`DeviceFallbackWarning` and a line on stderr), for networks that need a GPU (:func:`is_paper_scale`)."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
        if spec == "cpu" and warn_cpu_fallback:
            message = (
                f"device='auto' resolved to the CPU: {cpu_fallback_reason()}. The paper-size network will "
                "train and run on the CPU, which takes days instead of hours; set device='cpu' to do that on "
                "purpose, or device='cuda' to fail instead of falling back."
            )
            print(f"WARNING: {message}", file=sys.stderr, flush=True)
            warnings.warn(message, DeviceFallbackWarning, stacklevel=2)
    if spec == "cpu":
        return torch.device("cpu")
    if not spec.startswith("cuda"):
        raise DeviceError(f"device={spec!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device={spec!r} was asked for but CUDA is not available (torch {torch.__version__}); "
            "use device='cpu' or 'auto'"
        )
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
        raise DeviceError(
            f"device={spec!r} (process {local_rank}): GPU {index} does not exist, "
            f"this machine has {torch.cuda.device_count()}"
        )
    return torch.device("cuda", index)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512-BF16 or AMX-BF16), where bf16 autocast is faster."""
    try:
        caps = torch.cpu.get_capabilities()
    except Exception:  # older torch: no capability query, stay in float32
        return False
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``; elsewhere what :mod:`platform` knows), for the records that
    quote a speed: the same code runs at very different rates on CPUs with and without native bf16."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cuda_has_fast_bf16(device: torch.device) -> bool:
    """True when the GPU has bf16 tensor cores (compute capability 8.0 or newer: Ampere, Hopper, ...).

    ``torch.cuda.is_bf16_supported()`` also answers True on older GPUs (V100, T4, RTX 20xx), where bf16 is emulated
    and slower than float32."""
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def amp_dtype(device: torch.device, amp: bool, cpu_amp: Optional[bool] = None) -> Optional[torch.dtype]:
    """The autocast dtype to use on ``device``, or None for float32.

    amp: the config switch (``cfg.amp``). cpu_amp: CPU override (None = auto-detect, see the module docstring).
    """
    if device.type == "cuda":
        return torch.bfloat16 if amp and cuda_has_fast_bf16(device) else None
    if cpu_amp is None:
        cpu_amp = amp and cpu_has_fast_bf16()
    return torch.bfloat16 if cpu_amp else None


def autocast(device: torch.device, dtype: Optional[torch.dtype]) -> ContextManager:
    """Autocast context for ``dtype`` on ``device`` (a no-op context for float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def precision_name(dtype: Optional[torch.dtype]) -> str:
    """'bf16 autocast' or 'float32': what the logs and the demo summary call an autocast dtype."""
    return "bf16 autocast" if dtype == torch.bfloat16 else "float32"


def describe(device: torch.device, dtype: Optional[torch.dtype]) -> str:
    """One line for the log: device name and precision."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    threads = torch.get_num_threads()
    return f"{device} ({name}), {precision_name(dtype)}, torch {torch.__version__}, {threads} CPU threads"
