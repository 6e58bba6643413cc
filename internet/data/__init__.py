"""Data sets as torch Datasets of sample dicts (docs/design.md): InterHand2.6M here, RHD and STB in their modules."""
from __future__ import annotations

import importlib
from typing import Optional

from internet.config import Config
from internet.data.augment import AugParams, make_sample, sample_aug_params
from internet.data.interhand import InterHand26M

# cfg.dataset -> (module, class); RHD and STB are imported only when asked for. Their classes take
# (cfg, split, mode) like InterHand26M.
_DATASETS = {
    "InterHand2.6M": ("internet.data.interhand", "InterHand26M"),
    "RHD": ("internet.data.rhd", "RHD"),
    "STB": ("internet.data.stb", "STB"),
}


def build_dataset(cfg: Config, split: Optional[str] = None, mode: str = "train", **kwargs):
    """The data set named by ``cfg.dataset`` for ``split`` (default: cfg.train_split in train mode, else
    cfg.test_split) in ``mode`` ('train' | 'test'); extra keyword arguments go to the data set class."""
    if cfg.dataset not in _DATASETS:
        raise ValueError(f"unknown dataset {cfg.dataset!r}; known: {sorted(_DATASETS)}")
    if split is None:
        split = cfg.train_split if mode == "train" else cfg.test_split
    module_name, class_name = _DATASETS[cfg.dataset]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        raise ImportError(f"dataset {cfg.dataset!r} needs {module_name}, which is not available") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ImportError(f"{module_name} does not define {class_name}(cfg, split, mode)")
    return cls(cfg, split, mode, **kwargs)


__all__ = ["AugParams", "InterHand26M", "build_dataset", "make_sample", "sample_aug_params"]
