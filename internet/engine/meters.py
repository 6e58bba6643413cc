"""What the training loop measures and logs between steps: iteration times, log windows, loss values for the host."""

from __future__ import annotations

import time
from typing import List

import numpy as np
import torch


class ToHost:
    """A small tensor's values for the host, copied from a GPU into pinned memory when made (so that waiting for
    them after more work is queued leaves the GPU busy); :meth:`get` waits and returns them as a list."""

    def __init__(self, values: torch.Tensor):
        self.values, self.ready = values, None
        if values.is_cuda:
            self.values = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            self.values.copy_(values, non_blocking=True)
            self.ready = torch.cuda.Event()
            self.ready.record()

    def get(self) -> list:
        if self.ready is not None:
            self.ready.synchronize()
        return self.values.tolist()


class LogWindow:
    """Iteration records since the last logged one, logged as one record: the last iteration's position and
    learning rate, the means of the losses and times, ``images_per_s`` over the window and ``iters`` in it."""

    def __init__(self) -> None:
        self.records: List[dict] = []

    def add(self, record: dict) -> None:
        self.records.append(record)

    def pop(self) -> dict:
        records, self.records = self.records, []
        if len(records) == 1:
            return {**records[0], "iters": 1}
        out = dict(records[-1])
        for key in out:
            if key.startswith("loss_") or key in ("time", "data_time"):
                out[key] = float(np.mean([r[key] for r in records]))
        images = sum(r["images_per_s"] * r["time"] for r in records)
        out["images_per_s"] = images / max(sum(r["time"] for r in records), 1e-9)
        out["iters"] = len(records)
        return out


class Clock:
    """Times this run's iterations, each from the end of the previous one (after its checkpoint and callbacks) to
    the end of its step; their mean gives the ETA."""

    def __init__(self) -> None:
        self.total, self.laps = 0.0, 0
        self.restart()

    def restart(self) -> None:
        self.t_prev = time.perf_counter()

    def lap(self, t_data: float, images: int) -> dict:
        """The record's times for the iteration that just ended (its data arrived at ``t_data``)."""
        elapsed = time.perf_counter() - self.t_prev
        self.total, self.laps = self.total + elapsed, self.laps + 1
        return {"time": elapsed, "data_time": t_data - self.t_prev, "images_per_s": images / max(elapsed, 1e-9)}

    def eta(self, iterations_left: int) -> float:
        return self.total / self.laps * iterations_left
