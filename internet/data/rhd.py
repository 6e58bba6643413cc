"""RHD (Rendered Handpose Dataset, Zimmermann & Brox 2017) from InterNet's parsed files.

Layout (``cfg.data_root`` = the official ``data/RHD/data``)::

    RHD_training.json, RHD_evaluation.json       split 'train' -> training, 'test' -> evaluation
    training/color/{file_name}, evaluation/color/{file_name}     320x320 RGB PNG
    rootnet_output/rootnet_rhd_output.json       (or ../rootnet_output/): RootNet boxes and root depths

Joints: RHD's native order per hand (wrist, then each finger tip -> MCP; root = wrist), left hand in block 0-20,
right in 21-41 (:data:`internet.skeleton.RHD`). Everything else is
:class:`~internet.data.single_hand.SingleHandDataset`.
"""

from __future__ import annotations

from pathlib import Path

from internet.data.single_hand import SingleHandDataset
from internet.skeleton import RHD as RHD_SKELETON

SPLIT_DIRS = {"train": "training", "test": "evaluation"}


class RHD(SingleHandDataset):
    """RHD as sample dicts: ``RHD(cfg, split, mode)``, split 'train' (training) or 'test' (evaluation)."""

    name = "RHD"
    skeleton = RHD_SKELETON
    rootnet_file = "rootnet_rhd_output.json"

    def annotation_file(self, split: str) -> Path:
        return self.data_root / f"RHD_{SPLIT_DIRS[split]}.json"

    @property
    def image_root(self) -> Path:
        return self.data_root / SPLIT_DIRS[self.split] / "color"

    def image_path(self, i: int) -> Path:
        return self.image_root / str(self.ann.file_name[self._row(i)])
