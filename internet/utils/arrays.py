"""Reading user arrays: one conversion with errors that name the array."""

from __future__ import annotations

import numpy as np
import torch


def as_array(x, name: str, dtype=np.float64) -> np.ndarray:
    """``x`` (array, tensor, list) as a numpy array of ``dtype`` (None: keep its own); errors name ``name``."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as e:
        kind = "numeric" if dtype is None else np.dtype(dtype).name
        raise ValueError(f"{name}: cannot be read as a {kind} array ({e})") from None
