"""Data sets as torch Datasets of sample dicts (docs/design.md): InterHand2.6M here, RHD and STB in their modules.

Every data set class follows :class:`HandDataset` and is registered once, with its evaluator and splits, in
``internet.config.DATASETS``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable, Dict, Optional, Protocol, Tuple, runtime_checkable

import numpy as np

from internet.config import DATASETS, Config
from internet.data.augment import AugParams, make_sample, sample_aug_params
from internet.data.interhand import InterHand26M
from internet.skeleton import Skeleton


@runtime_checkable
class HandDataset(Protocol):
    """What the trainer, the inference path, the evaluation and the notebooks use of a data set.

    ``cfg``, ``split``, ``mode`` and ``skeleton`` (its 42-joint order); samples (``__getitem__``: the sample dict of
    docs/design.md) with their augmentation drawn per (seed, epoch, index) (``set_epoch``); for evaluation the whole
    split's ground truth as arrays (``eval_targets``); for figures each sample's image file, decoded image and
    processed crop box."""

    cfg: Config
    split: str
    mode: str
    skeleton: Skeleton

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Dict[str, np.ndarray]: ...

    def set_epoch(self, epoch: int) -> None: ...

    def eval_targets(self) -> Dict[str, np.ndarray]: ...

    def image_path(self, i: int) -> Path: ...

    def load_image(self, i: int, dtype: type = np.float32) -> np.ndarray: ...

    def crop_bbox(self, i: int) -> np.ndarray: ...


def _resolve(name: str, what: str) -> object:
    """The object that ``DATASETS[name].<what>`` names (``"module:attribute"``), its module imported now."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    module_name, attr = getattr(DATASETS[name], what).split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        raise ImportError(f"dataset {name!r} needs {module_name}, which is not available") from None
    obj = getattr(module, attr, None)
    if obj is None:
        raise ImportError(f"{module_name} does not define {attr} (the {what} of dataset {name!r})")
    return obj


def dataset_class(name: str) -> type:
    """The class registered for ``name`` in ``internet.config.DATASETS`` (its module imported now)."""
    return _resolve(name, "dataset")


def dataset_evaluator(name: str) -> Callable:
    """The official protocol registered for ``name``: ``evaluate(pred, gt, skeleton=..., cfg=...)``."""
    return _resolve(name, "evaluator")


def dataset_splits(name: str) -> Tuple[str, ...]:
    """The splits registered for ``name``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name].splits


def build_dataset(cfg: Config, split: Optional[str] = None, mode: str = "train", **kwargs) -> HandDataset:
    """The data set named by ``cfg.dataset`` for ``split`` (default: cfg.train_split in train mode, else
    cfg.test_split) in ``mode`` ('train' | 'test'); extra keyword arguments go to the data set class."""
    cls = dataset_class(cfg.dataset)
    if split is None:
        split = cfg.train_split if mode == "train" else cfg.test_split
    return cls(cfg, split, mode, **kwargs)


__all__ = [
    "AugParams",
    "HandDataset",
    "InterHand26M",
    "build_dataset",
    "dataset_class",
    "dataset_evaluator",
    "dataset_splits",
    "make_sample",
    "sample_aug_params",
]
