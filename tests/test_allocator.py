"""internet.data.allocator: loader processes keep freed sample buffers in the heap instead of fresh mmap pages."""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys

import pytest
import torch
from torch.utils.data import Dataset

from internet.config import Config
from internet.data.allocator import retain_freed_memory
from internet.train import Trainer
from standins import TinyInterNet

BUFFER = 16 * 1024 * 1024  # a large sample buffer: above glibc's initial mmap threshold (128 KiB)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not hasattr(libc, "mallinfo2"):  # glibc >= 2.33
        return None
    libc.mallinfo2.restype = _MallInfo2
    return libc


pytestmark = pytest.mark.skipif(_libc() is None, reason="needs glibc >= 2.33 (mallinfo2)")


def _buffer_placement() -> dict:
    """Allocate and free one large buffer; where did glibc put it, and did it keep it?"""
    libc = _libc()
    buf = ctypes.create_string_buffer(BUFFER)
    during = libc.mallinfo2()
    del buf
    after = libc.mallinfo2()
    return {"mmapped_during": int(during.hblkhd), "heap_free_after": int(after.fordblks)}


_PROBE = """
import json, sys
sys.path.insert(0, {tests!r})
from test_allocator import _buffer_placement
from internet.data.allocator import retain_freed_memory
applied = retain_freed_memory() if sys.argv[1] == "retain" else None
print(json.dumps({{"applied": applied, **_buffer_placement()}}))
"""


def _probe(mode: str) -> dict:
    from pathlib import Path
    code = _PROBE.format(tests=str(Path(__file__).parent))
    out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_retained_buffers_come_from_the_heap_and_stay_there():
    """glibc alone maps a 16 MiB buffer with fresh pages and unmaps it on free (so the next sample faults them in
    again); after retain_freed_memory it is carved from the heap and stays there, free for the next sample."""
    default = _probe("default")
    assert default["mmapped_during"] >= BUFFER
    retained = _probe("retain")
    assert retained["applied"] is True
    assert retained["mmapped_during"] < BUFFER
    assert retained["heap_free_after"] >= BUFFER


@pytest.mark.parametrize("bad", [dict(mmap_threshold=0), dict(trim_threshold=-5)])
def test_bad_thresholds_are_refused(bad):
    with pytest.raises(ValueError, match="thresholds must be positive"):
        retain_freed_memory(**bad)


class _PlacementProbe(Dataset):
    """A 'data set' whose sample is where its process puts a large buffer."""

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> dict:
        return {k: torch.tensor(v) for k, v in _buffer_placement().items()}


def _cfg(tmp_path, **kw) -> Config:
    base = dict(device="cpu", amp=False, channels_last=False, num_workers=1, train_batch_size=2, end_epoch=1,
                output_dir=str(tmp_path), seed=0)
    base.update(kw)
    return Config.from_params(base)


_GLIBC_SMALL = dict(mmap_threshold=128 * 1024, trim_threshold=128 * 1024)  # glibc's starting values


@pytest.mark.parametrize("retain", [True, False])
def test_trainer_process_follows_the_config(tmp_path, retain):
    """The training process runs the steps (and builds the samples when num_workers=0): the Trainer keeps its
    freed memory, unless cfg.retain_freed_memory is off."""
    assert retain_freed_memory(**_GLIBC_SMALL)
    trainer = Trainer(_cfg(tmp_path, retain_freed_memory=retain, num_workers=0), model=TinyInterNet(),
                      train_set=_PlacementProbe(), progress_bar=False)
    trainer.close()
    assert (_buffer_placement()["mmapped_during"] < BUFFER) == retain


def test_trainer_loader_workers_retain_freed_memory(tmp_path):
    """The trainer's data-loader workers build their samples with the retained heap. Forked workers inherit this
    process's settings, so glibc's small starting values are set here after the Trainer is built: only the
    workers' own start-up can raise them again."""
    trainer = Trainer(_cfg(tmp_path), model=TinyInterNet(), train_set=_PlacementProbe(), progress_bar=False)
    assert retain_freed_memory(**_GLIBC_SMALL)
    try:
        trainer._prepare_data()
        batch = next(iter(trainer.loader))
    finally:
        trainer.close()
    assert (batch["mmapped_during"] < BUFFER).all()


@pytest.mark.parametrize("retain", [True, False])
def test_predictor_follows_the_config(retain):
    """A Predictor's process runs the forwards: it keeps freed memory unless cfg.retain_freed_memory is off."""
    from internet.predictor import Predictor

    assert retain_freed_memory(**_GLIBC_SMALL)
    Predictor(TinyInterNet(), Config(device="cpu", retain_freed_memory=retain))
    assert (_buffer_placement()["mmapped_during"] < BUFFER) == retain
