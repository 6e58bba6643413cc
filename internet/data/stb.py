"""STB (Stereo Hand Pose Tracking Benchmark, Zhang et al. 2016) from InterNet's parsed files.

Layout (``cfg.data_root`` = the official ``data/STB/data``)::

    STB_train.json, STB_test.json                 (test: sequences B1Counting and B1Random; train: B2-B6)
    images/{seq_name}/{file_name}                 640x480 RGB
    rootnet_output/rootnet_stb_output.json        (or ../rootnet_output/): RootNet boxes and root depths

Joints: STB's order per hand (palm centre, then pinky, ring, middle, index, thumb, each MCP -> tip; root = palm),
left hand in block 0-20, right in 21-41 (:data:`internet.skeleton.STB`). The sample's ``capture`` id is the
sequence's position in :attr:`STB.seq_names`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

from internet.data.single_hand import SingleHandDataset
from internet.skeleton import STB as STB_SKELETON


class STB(SingleHandDataset):
    """STB as sample dicts: ``STB(cfg, split, mode)``, split 'train' or 'test'."""

    name = "STB"
    skeleton = STB_SKELETON
    rootnet_file = "rootnet_stb_output.json"
    need_seq_name = True

    def annotation_file(self, split: str) -> Path:
        return self.data_root / f"STB_{split}.json"

    @property
    def image_root(self) -> Path:
        return self.data_root / "images"

    def image_path(self, i: int) -> Path:
        r = self._row(i)
        return self.image_root / str(self.ann.seq_name[r]) / str(self.ann.file_name[r])

    def id_columns(self) -> Dict[str, np.ndarray]:
        seq_names, seq_code = np.unique(self.ann.seq_name.astype(str), return_inverse=True)
        self.seq_names = tuple(str(s) for s in seq_names)
        ids = super().id_columns()
        ids["capture"] = seq_code.reshape(-1).astype(np.int64)
        return ids
