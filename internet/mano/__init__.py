"""MANO hand meshes: a safe loader for the user's licensed model files, linear blend skinning in plain torch, the
InterHand2.6M adapter (21-joint regressor, left-hand shapedirs fix, world -> camera) and fitting MANO to joints.

See ``docs/meshes.md``. The MANO model itself is licensed by its authors and never shipped with the project.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

from internet.mano.loader import (
    MANO_FILES,
    ManoFileError,
    ManoModel,
    fix_left_shapedirs,
    ih26m_regressor,
    load_mano,
    load_mano_pair,
    missing_model_message,
)

__all__ = [
    "MANO_FILES",
    "ManoFileError",
    "ManoModel",
    "fix_left_shapedirs",
    "ih26m_regressor",
    "load_mano",
    "load_mano_pair",
    "mano_dir",
    "mano_layers",
    "missing_model_message",
]


def mano_dir(cfg) -> Path:
    """The folder of the MANO files: ``cfg.mano_dir`` or ``{cfg.data_root}/mano``."""
    return Path(cfg.mano_dir) if getattr(cfg, "mano_dir", None) else Path(cfg.data_root) / "mano"


def mano_layers(folder, device=None, fix_left: bool = True, dtype=None) -> Dict[str, "object"]:
    """``{'right': ManoLayer, 'left': ManoLayer}`` from ``folder`` (official usage: no PCA, flat_hand_mean=False;
    InterHand2.6M's left shapedirs fix on unless ``fix_left`` is False), on ``device``."""
    import torch

    from internet.mano.layer import ManoLayer

    folder = Path(folder)
    missing = [n for n in MANO_FILES.values() if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(missing_model_message(folder, "right" if "MANO_RIGHT.pkl" in missing else "left"))
    models = load_mano_pair(folder, fix_left_shapedirs_flag=fix_left)
    kw: Dict[str, Optional[object]] = {"dtype": dtype or torch.float32}
    return {side: ManoLayer(m, **kw).to(device or "cpu") for side, m in models.items()}
