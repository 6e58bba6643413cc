"""Cheap stand-ins for the trainer tests: a model with InterNet's output dict, a data set of random sample dicts and
the small CPU config they train with.

They live in a module (not a test file) so DDP workers and killed-and-resumed subprocesses can import them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from internet.config import Config


class TinyInterNet(nn.Module):
    """InterNet's output dict from a few cheap layers (a stride-4 conv gives the 64x64 heatmap grid)."""

    def __init__(self, bn: bool = True, depth: int = 64, joints: int = 42, root_bins: int = 64):
        """bn: include a BatchNorm (its running statistics must survive a resume; DDP equality needs it off)."""
        super().__init__()
        self.depth, self.joints = depth, joints
        self.stem = nn.Conv2d(3, 8, kernel_size=4, stride=4)
        self.norm = nn.BatchNorm2d(8) if bn else nn.Identity()
        self.hm = nn.Conv2d(8, joints * depth, 1)
        self.root = nn.Linear(8, root_bins)
        self.hand = nn.Linear(8, 2)
        self.register_buffer("bins", torch.arange(root_bins, dtype=torch.float32))

    def forward(self, img):
        f = torch.relu(self.norm(self.stem(img)))
        b, _, h, w = f.shape
        g = f.mean((2, 3))
        logits = self.hand(g)
        return {
            "joint_heatmap": self.hm(f).reshape(b, self.joints, self.depth, h, w),
            "rel_root_depth": (torch.softmax(self.root(g), 1) * self.bins).sum(1, keepdim=True),
            "hand_type_logits": logits,
            "hand_type": torch.sigmoid(logits),
        }


class RandomHands(Dataset):
    """Sample dicts (docs/design.md) drawn from default_rng([seed, epoch, index]), like the real augmentation."""

    def __init__(self, n: int = 10, seed: int = 0, root_valid_rate: float = 1.0):
        self.n, self.seed, self.epoch, self.root_valid_rate = n, seed, 0, root_valid_rate

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        f32 = np.float32
        return {
            "img": torch.from_numpy(rng.random((3, 256, 256), dtype=f32)),
            "joint_coord": torch.from_numpy(rng.uniform(0, 63, (42, 3)).astype(f32)),
            "joint_valid": torch.from_numpy((rng.random(42) > 0.2).astype(f32)),
            "rel_root_depth": torch.from_numpy(rng.uniform(0, 63, 1).astype(f32)),
            "root_valid": torch.from_numpy((rng.random(1) < self.root_valid_rate).astype(f32)),
            "hand_type": torch.tensor([1.0, float(rng.random() > 0.5)]),
            "hand_type_valid": torch.tensor(1.0),
            "inv_trans": torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]),
            "index": torch.tensor(i),
        }


def tiny_cfg(out: Path, **kw) -> Config:
    """A float32 CPU run in ``out``: batch 2, no workers, one epoch at lr 1e-3 dropping at epoch 1, seed 0
    (``kw`` overrides)."""
    base = dict(
        device="cpu",
        amp=False,
        channels_last=False,
        num_workers=0,
        train_batch_size=2,
        end_epoch=1,
        lr=1e-3,
        lr_dec_epoch=(1,),
        output_dir=str(out),
        seed=0,
    )
    base.update(kw)
    return Config.from_params(base)
