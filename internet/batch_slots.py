"""Reusable shared-memory batch buffers between DataLoader workers and the process that consumes their batches.

A DataLoader worker normally stacks each batch into a fresh shared-memory segment, which the main process maps and
unmaps again: at the paper's 256x256 crop that is 25 MB per batch of 32, zero-filled page by page in the worker and
page-faulted in again by the main process on its first read (about 19 ms of the main process's CPU per batch on a
2-core AMD EPYC; benchmarks/RESULTS.md section 9). :class:`BatchSlots` allocates a few batch buffers per worker once;
a worker writes its batch into one of its free buffers and sends only a :class:`SlotRef`, and the consumer hands the
buffer back (:meth:`BatchSlots.release`) when it has read it. After the first round no page is faulted or zeroed
again, and the buffers' content is exactly what the worker wrote.

A worker takes a free buffer from its own pipe, so it can never overwrite a batch that has not been handed back; if
none comes back within ``acquire_timeout`` seconds it raises instead of waiting forever.
"""

from __future__ import annotations

import math
import os
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

ACQUIRE_TIMEOUT_S = 3600.0
"""How long a worker waits for one of its buffers by default before it raises (a consumer that stopped reading)."""
_POLL_S = 1.0  # how often a waiting worker checks that its parent is alive


@dataclass(frozen=True)
class SlotRef:
    """A batch written into a :class:`BatchSlots` buffer: the buffers' ``token``, the worker, its buffer and the
    batch's length. Not a tuple, so that torch's pin-memory step calls :meth:`pin_memory` (its hook for custom batch
    types) in every torch version rather than descending into the fields."""

    token: str
    worker: int
    slot: int
    length: int

    def pin_memory(self, device=None) -> torch.Tensor:
        """The batch copied into pinned memory, and its buffer handed back at once. A DataLoader with
        ``pin_memory=True`` calls this in its pin-memory thread of the main process, so on CUDA the copy overlaps the
        main thread's work, as the pinning of an ordinary batch does."""
        slots = _OPEN.get(self.token)
        if slots is None:
            raise RuntimeError(f"batch buffers {self.token} are gone: a batch outlived its loader")
        try:
            return pinned_copy(slots.view(self))
        finally:
            slots.release(self)


def pinned_copy(batch: torch.Tensor) -> torch.Tensor:
    """``batch`` copied into page-locked memory (needs CUDA), ready for an asynchronous transfer."""
    staged = torch.empty(batch.shape, dtype=batch.dtype, pin_memory=True)
    staged.copy_(batch)
    return staged


_OPEN: "weakref.WeakValueDictionary[str, BatchSlots]" = weakref.WeakValueDictionary()
"""The buffers of this process by token: a :class:`SlotRef` unpickled from a worker finds them here."""


class BatchSlots:
    """``slots_per_worker`` buffers of ``batch_shape`` (``dtype``) for each of ``num_workers`` workers, in one
    shared-memory segment allocated lazily (a page costs memory once written), plus one free-buffer pipe per worker
    from the multiprocessing context ``mp_context`` (the loader's; its workers inherit them).

    Correctness does not depend on the number of buffers: a worker waits for one of its own to be handed back (one
    per worker is enough, only slower). A DataLoader gives each worker at most ``prefetch_factor`` batches ahead of
    the one being consumed, so ``prefetch_factor + 1`` buffers per worker never make a worker wait when the consumer
    hands each batch back before it takes the next."""

    def __init__(
        self,
        num_workers: int,
        slots_per_worker: int,
        batch_shape: Sequence[int],
        dtype: torch.dtype = torch.float32,
        mp_context=None,
        acquire_timeout: Optional[float] = None,
    ) -> None:
        if num_workers < 1 or slots_per_worker < 1:
            raise ValueError(f"num_workers and slots_per_worker must be >= 1, got {num_workers}, {slots_per_worker}")
        self.batch_shape: Tuple[int, ...] = tuple(int(v) for v in batch_shape)
        if len(self.batch_shape) < 1 or min(self.batch_shape) < 1:
            raise ValueError(f"batch_shape must be positive sizes, got {tuple(batch_shape)}")
        self.dtype = dtype
        probe = torch.empty((), dtype=dtype)
        self._np_dtype = probe.numpy().dtype
        self.num_workers, self.slots_per_worker = int(num_workers), int(slots_per_worker)
        self.acquire_timeout = float(ACQUIRE_TIMEOUT_S if acquire_timeout is None else acquire_timeout)
        self.token = uuid.uuid4().hex
        _OPEN[self.token] = self
        shape = (self.num_workers, self.slots_per_worker, *self.batch_shape)
        # torch's own collation allocates its per-batch segments this way: shared, not touched until written
        storage = torch.UntypedStorage._new_shared(math.prod(shape) * probe.element_size())
        self.buffers = torch.empty(0, dtype=dtype).set_(storage, 0, shape)  # contiguous
        ctx = mp_context if mp_context is not None else torch.multiprocessing.get_context()
        # one pipe per worker, written only by the consumer and read only by that worker: no lock, no feeder thread
        # (a multiprocessing.Queue's put cost the consumer about 1 ms per batch in thread hand-offs)
        pipes = [ctx.Pipe(duplex=False) for _ in range(self.num_workers)]
        self._free_out = [reader for reader, _ in pipes]
        self._free_in = [writer for _, writer in pipes]
        for writer in self._free_in:
            for slot in range(self.slots_per_worker):
                writer.send(slot)

    def fits(self, samples: Sequence[np.ndarray]) -> bool:
        """Whether ``samples`` (arrays) fit one buffer: their number, shape and dtype (else: collate as usual)."""
        return 1 <= len(samples) <= self.batch_shape[0] and all(
            s.shape == self.batch_shape[1:] and s.dtype == self._np_dtype for s in samples
        )

    def acquire(self, worker: int) -> int:
        """A free buffer of ``worker`` (called in that worker); waits until the consumer hands one back. Gives up
        when the process that started this one is gone (a killed main process: the pipe never reaches end-of-file,
        as every worker holds its write ends), or after ``acquire_timeout`` seconds."""
        reader = self._free_out[worker]
        parent = os.getppid()
        deadline = time.monotonic() + self.acquire_timeout
        while not reader.poll(max(0.0, min(_POLL_S, deadline - time.monotonic()))):
            if os.getppid() != parent:
                raise RuntimeError(f"loader worker {worker}: the process reading its batches is gone")
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"loader worker {worker}: none of its {self.slots_per_worker} shared batch buffers was handed "
                    f"back within {self.acquire_timeout:g} s (the consumer holds too many batches, or stopped reading)"
                )
        return reader.recv()

    def write(self, worker: int, samples: Sequence[np.ndarray]) -> SlotRef:
        """Stack ``samples`` into a free buffer of ``worker`` (called in that worker)."""
        slot = self.acquire(worker)
        out = self.buffers[worker, slot, : len(samples)].numpy()
        np.stack(samples, out=out)
        return SlotRef(self.token, worker, slot, len(samples))

    def view(self, ref: SlotRef) -> torch.Tensor:
        """The batch ``ref`` names, in place: valid until :meth:`release`."""
        return self.buffers[ref.worker, ref.slot, : ref.length]

    def release(self, ref: SlotRef) -> None:
        """Hand the buffer of ``ref`` back to its worker (the consumer has finished reading it)."""
        self._free_in[ref.worker].send(ref.slot)


def shared_memory_free(path: str = "/dev/shm") -> Optional[int]:
    """Bytes of shared memory (``path``, where torch's segments live on Linux) this process may use: what is free,
    shared with the other processes of a distributed run on this machine (``LOCAL_WORLD_SIZE``, set by torchrun),
    which all size their buffers before any page is written. None where unknown."""
    try:
        stat = os.statvfs(path)
    except (OSError, AttributeError):
        return None
    try:
        local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local_ranks = 1
    return stat.f_bavail * stat.f_frsize // local_ranks


def slots_for(
    num_batches: int,
    num_workers: int,
    prefetch_factor: int,
    batch_bytes: Optional[int] = None,
    free_bytes: Optional[int] = None,
) -> int:
    """Buffers per worker for a loader of ``num_batches`` batches: ``prefetch_factor + 1`` (the batches a worker may
    have ahead of the one being consumed, and that one), no more than the batches a worker will write, and no more
    than fit ``free_bytes`` of shared memory (``batch_bytes`` written per buffer, by the workers that get a batch at
    all; fewer buffers only make workers wait). Raises when not even one buffer per worker fits: a worker would die
    of SIGBUS writing it."""
    want = max(1, min(prefetch_factor + 1, math.ceil(num_batches / max(1, num_workers))))
    if batch_bytes is None or free_bytes is None:
        return want
    writers = max(1, min(num_workers, num_batches))
    fit = free_bytes // (batch_bytes * writers)
    if fit < 1:
        raise RuntimeError(
            f"{writers} loader worker(s) need {batch_bytes * writers / 2**20:.0f} MiB of shared memory "
            f"(/dev/shm) for one batch each ({batch_bytes / 2**20:.1f} MiB per batch), but only "
            f"{free_bytes / 2**20:.0f} MiB is free for this process: give the machine or container more (docker run "
            "--shm-size), or lower num_workers or test_batch_size (num_workers=0 loads in this process and needs none)"
        )
    return int(min(want, fit))


def worker_id() -> Optional[int]:
    """The DataLoader worker this code runs in, or None in the main process."""
    info = torch.utils.data.get_worker_info()
    return None if info is None else info.id
