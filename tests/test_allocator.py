"""internet.utils.runtime: loader processes keep freed sample buffers in the heap instead of fresh mmap pages."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from standins import tiny_cfg
from torch.utils.data import Dataset

from internet.config import Config
from internet.utils.runtime import retain_freed_memory

BUFFER = 24 * 1024 * 1024  # a large buffer: above glibc's initial mmap threshold (128 KiB), below the retained one


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


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


def _in_fresh_process(body: str) -> dict:
    """Run ``body`` in a new interpreter (a heap without other tests' freed chunks, which could serve the probe)
    and return the dict it prints as JSON. ``body`` sees retain_freed_memory, _buffer_placement, _GLIBC_SMALL,
    Config, Trainer, Predictor, TinyInterNet and _PlacementProbe."""
    code = "\n".join(
        [
            "import json, sys",
            f"sys.path.insert(0, {str(Path(__file__).parent)!r})",
            "from test_allocator import _buffer_placement, _GLIBC_SMALL, _PlacementProbe, _cfg",
            "from internet.config import Config",
            "from internet.utils.runtime import retain_freed_memory",
            "from internet.infer.predictor import Predictor",
            "from internet.engine.trainer import Trainer",
            "from standins import TinyInterNet",
            body,
        ]
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


_GLIBC_SMALL = dict(mmap_threshold=128 * 1024, trim_threshold=128 * 1024)  # glibc's starting values


def test_retained_buffers_come_from_the_heap_and_stay_there():
    """glibc alone maps a 24 MiB buffer with fresh pages and unmaps it on free (so the next sample faults them in
    again); after retain_freed_memory it is carved from the heap and stays there, free for the next sample."""
    default = _in_fresh_process("print(json.dumps(_buffer_placement()))")
    assert default["mmapped_during"] >= BUFFER
    retained = _in_fresh_process(
        "applied = retain_freed_memory()\nprint(json.dumps({'applied': applied, **_buffer_placement()}))"
    )
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
    """The tests' tiny CPU run (standins.tiny_cfg), with one loader worker unless ``kw`` says otherwise."""
    return tiny_cfg(tmp_path, **{"num_workers": 1, **kw})


@pytest.mark.parametrize("retain", [True, False])
def test_trainer_process_follows_the_config(tmp_path, retain):
    """The training process runs the steps (and builds the samples when num_workers=0): the Trainer keeps its
    freed memory, unless cfg.retain_freed_memory is off."""
    out = _in_fresh_process(
        "retain_freed_memory(**_GLIBC_SMALL)\n"
        f"trainer = Trainer(_cfg({str(tmp_path)!r}, retain_freed_memory={retain}, num_workers=0), "
        "model=TinyInterNet(), train_set=_PlacementProbe(), progress_bar=False)\n"
        "trainer.close()\n"
        "print(json.dumps(_buffer_placement()))"
    )
    assert (out["mmapped_during"] < BUFFER) == retain


@pytest.mark.parametrize("retain", [True, False])
def test_predictor_follows_the_config(retain):
    """A Predictor's process runs the forwards: it keeps freed memory unless cfg.retain_freed_memory is off."""
    out = _in_fresh_process(
        "retain_freed_memory(**_GLIBC_SMALL)\n"
        f"Predictor(TinyInterNet(), Config(device='cpu', retain_freed_memory={retain}))\n"
        "print(json.dumps(_buffer_placement()))"
    )
    assert (out["mmapped_during"] < BUFFER) == retain


def test_trainer_loader_workers_retain_freed_memory(tmp_path):
    """The trainer's data-loader workers build their samples with the retained heap. Forked workers inherit their
    parent's settings, so glibc's small starting values are set in the parent after the Trainer is built: only the
    workers' own start-up can raise them again."""
    out = _in_fresh_process(
        f"trainer = Trainer(_cfg({str(tmp_path)!r}), model=TinyInterNet(), train_set=_PlacementProbe(), "
        "progress_bar=False)\n"
        "retain_freed_memory(**_GLIBC_SMALL)\n"
        "trainer._prepare_data()\n"
        "batch = next(iter(trainer.loader))\n"
        "trainer.close()\n"
        "print(json.dumps({'mmapped_during': batch['mmapped_during'].tolist()}))"
    )
    assert all(v < BUFFER for v in out["mmapped_during"]), out
