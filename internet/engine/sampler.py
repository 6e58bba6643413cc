"""The training data order: a per-epoch permutation of (seed, epoch), sharded over processes, resumable mid-epoch.

The augmentation is a function of (seed, epoch, index) (the data set's ``set_epoch``), so with this order a resumed
run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from internet.config import Config


class EpochBatchSampler(Sampler):
    """Batches of indices in a per-epoch order that depends only on (seed, epoch), sharded like
    ``DistributedSampler``: the permutation is padded cyclically to a multiple of ``num_replicas`` and rank r takes
    every ``num_replicas``-th index from r. So batch t of the W ranks together is batch t of a single process with
    a W times larger batch (same samples), and ``set_epoch(epoch, start_batch)`` resumes mid-epoch exactly.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
        max_batches: Optional[int] = None,
    ):
        """
        Args:
            num_samples: the data set's length.
            batch_size: per replica.
            seed: the data-order seed.
            shuffle: permute each epoch (else sequential).
            num_replicas: how many processes share the data.
            rank: this process's shard.
            drop_last: drop a final partial batch (official: keep it).
            max_batches: cap on batches per epoch (``cfg.max_iters_per_epoch``).
        """
        if num_samples < 1:
            raise ValueError(f"the training set is empty (num_samples={num_samples})")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, num_replicas={num_replicas})")
        if max_batches is not None and max_batches < 1:
            raise ValueError(f"max_batches must be >= 1 or None, got {max_batches}")
        self.num_samples, self.batch_size, self.seed, self.shuffle = num_samples, batch_size, seed, shuffle
        self.num_replicas, self.rank, self.drop_last, self.max_batches = num_replicas, rank, drop_last, max_batches
        self.epoch, self.start_batch = 0, 0
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"{num_samples} samples give no full batch of {batch_size} x {num_replicas} processes "
                "with drop_last=True"
            )

    @property
    def samples_per_replica(self) -> int:
        return math.ceil(self.num_samples / self.num_replicas)

    @property
    def batches_per_epoch(self) -> int:
        n = self.samples_per_replica
        full = n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return full if self.max_batches is None else min(full, self.max_batches)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The epoch's order over all replicas, padded to ``samples_per_replica * num_replicas``."""
        order = (
            np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
            if self.shuffle
            else np.arange(self.num_samples)
        )
        return np.resize(order, self.samples_per_replica * self.num_replicas)

    def rank_batches(self, epoch: int) -> List[List[int]]:
        """All batches of this rank in ``epoch`` (before ``start_batch`` is applied)."""
        mine = self.epoch_order(epoch)[self.rank :: self.num_replicas]
        return [mine[b * self.batch_size : (b + 1) * self.batch_size].tolist() for b in range(self.batches_per_epoch)]

    def data_order(self) -> dict:
        """What fixes the batches (saved in checkpoints: a run stopped inside an epoch resumes only with the same)."""
        return {
            "seed": self.seed,
            "num_samples": self.num_samples,
            "global_batch_size": self.batch_size * self.num_replicas,
            "world_size": self.num_replicas,
            "batches_per_epoch": self.batches_per_epoch,
        }

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Iterate ``epoch`` from batch ``start_batch`` (the batches before it were seen before a resume)."""
        if not 0 <= start_batch <= self.batches_per_epoch:
            raise ValueError(f"start_batch {start_batch} is not in [0, {self.batches_per_epoch}]")
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def __iter__(self) -> Iterator[List[int]]:
        yield from self.rank_batches(self.epoch)[self.start_batch :]

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch


class EpochTagged(Sampler):
    """Yields (epoch, index) keys, so that persistent workers, which hold their own copy of the data set, know the
    epoch of every sample (``set_epoch`` in the main process would not reach them)."""

    def __init__(self, sampler: EpochBatchSampler):
        self.sampler = sampler

    def __iter__(self):
        epoch = self.sampler.epoch
        for batch in self.sampler:
            yield [(epoch, i) for i in batch]

    def __len__(self) -> int:
        return len(self.sampler)


class EpochIndexed(Dataset):
    """Reads (epoch, index) keys: calls the data set's ``set_epoch`` when the epoch changes, then indexes it."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self._epoch: Optional[int] = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        if epoch != self._epoch:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            self._epoch = epoch
        return self.dataset[index]


def train_loader(
    train_set: Dataset,
    sampler: EpochBatchSampler,
    cfg: Config,
    device: torch.device,
    worker_init: Optional[Callable[[int], None]],
) -> DataLoader:
    """The training DataLoader: ``sampler``'s batches, each sample tagged with its epoch (persistent workers)."""
    workers = cfg.num_workers
    return DataLoader(
        EpochIndexed(train_set),
        batch_sampler=EpochTagged(sampler),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=worker_init,
        generator=torch.Generator().manual_seed(cfg.seed),  # the loader's seed draw leaves the global RNG alone
    )
