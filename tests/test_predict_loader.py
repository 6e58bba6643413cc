"""predict's loader path (torch's standard DataLoader hand-over): every batch arrives in order through workers, short
shared memory is a clear error, OpenCV runs on one thread in the workers (the caller's thread count left as it was),
workers started by spawn and forkserver work too, and a failed run keeps no worker alive."""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
import pytest
import torch
from torch import nn
from torch.multiprocessing.reductions import shared_cache
from torch.utils.data import Dataset

import internet.utils.runtime as runtime
from internet.config import Config
from internet.infer.predict import predict
from internet.utils.runtime import init_loader_worker, loader_worker_init

SIZE = 64  # crop side of the config below


@pytest.fixture()
def cfg(tmp_path):
    return Config.cpu_demo(data_root=str(tmp_path), input_img_shape=(SIZE, SIZE), output_hm_shape=(16, 16, 16))


class ValueImages(Dataset):
    """Sample i is a crop filled with ``value(i)`` (its index by default)."""

    def __init__(self, n: int, value=float) -> None:
        self.n, self.value = n, value

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        inv_trans = np.array([[1.0, 0.0, i], [0.0, 1.0, 0.0]])
        return {"img": np.full((3, SIZE, SIZE), self.value(i), np.float32), "inv_trans": inv_trans}


class EchoModel(nn.Module):
    """Answers each crop's mean pixel value as its relative root depth, after a pause that lets the loader workers
    run ahead (they would overwrite a buffer still being read if nothing stopped them)."""

    def __init__(self, pause_s: float = 0.0) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))
        self.pause_s = pause_s

    def forward(self, img):
        time.sleep(self.pause_s)
        mean = img.mean(dim=(1, 2, 3))
        b = len(img)
        return {
            "joint_heatmap": torch.zeros(b, 42, 16, 16, 16) + self.anchor,
            "rel_root_depth": mean[:, None],
            "hand_type": torch.full((b, 2), 0.5),
            "hand_type_logits": torch.zeros(b, 2),
        }


class WideImages(ValueImages):
    def __getitem__(self, i):
        return {"img": np.full((3, SIZE, 2 * SIZE), float(i), np.float32), "inv_trans": np.eye(2, 3)}


def test_workers_run_opencv_on_one_thread_and_the_caller_keeps_its_count(cfg):
    previous = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        out = predict(EchoModel(), ValueImages(8, value=lambda i: cv2.getNumThreads()), cfg, num_workers=2)
        np.testing.assert_array_equal(out["rel_root_depth"], np.ones(8))  # each worker: one OpenCV thread
        assert cv2.getNumThreads() == 2
        in_process = predict(EchoModel(), ValueImages(2, value=lambda i: cv2.getNumThreads()), cfg, num_workers=0)
        np.testing.assert_array_equal(in_process["rel_root_depth"], [2, 2])  # the caller's own loading: untouched
    finally:
        cv2.setNumThreads(previous)


def test_workers_that_are_not_forked_set_opencv_to_one_thread_at_start_up():
    assert loader_worker_init(True, "fork").keywords == {"retain": True, "opencv_one_thread": False}
    assert loader_worker_init(False, "spawn").keywords == {"retain": False, "opencv_one_thread": True}
    previous = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        init_loader_worker(0, retain=False, opencv_one_thread=True)
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(previous)


def test_too_little_shared_memory_for_the_workers_is_a_clear_error(cfg, monkeypatch):
    monkeypatch.setattr(runtime, "shared_memory_free", lambda: 2 * 2**20)  # a batch of 32 crops is 1.5 MiB
    with pytest.raises(RuntimeError, match=r"need 3 MiB of shared memory \(/dev/shm\).*only 2 MiB is free"):
        predict(EchoModel(), ValueImages(40), cfg, num_workers=2, batch_size=32)
    assert len(predict(EchoModel(), ValueImages(8), cfg, num_workers=0)["index"]) == 8  # in-process: none needed
    # a job smaller than a batch needs room for its own samples only, and only in the workers that get one
    out = predict(EchoModel(), ValueImages(3), cfg, num_workers=2, batch_size=32)
    np.testing.assert_array_equal(out["rel_root_depth"], np.arange(3))


def test_the_ranks_of_a_machine_share_its_shared_memory(monkeypatch):
    stat = type("Stat", (), {"f_bavail": 1000, "f_frsize": 4096})
    monkeypatch.setattr(runtime.os, "statvfs", lambda path: stat)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert runtime.shared_memory_free() == 4096 * 1000
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun's processes on this machine
    assert runtime.shared_memory_free() == 1024 * 1000


class HalfSkeletonModel(EchoModel):
    def forward(self, img):
        return {**super().forward(img), "joint_heatmap": torch.zeros(len(img), 21, 16, 16, 16)}


class OneHandTypeModel(EchoModel):
    def forward(self, img):
        out = super().forward(img)
        return {**out, "hand_type": out["hand_type"][:1]}


def test_a_model_with_another_joint_count_or_batch_is_a_clear_error(cfg):
    with pytest.raises(ValueError, match=r"joint_coord has shape \(2, 21, 3\) for a batch of 2; \(2, 42, 3\) expected"):
        predict(HalfSkeletonModel(), ValueImages(4), cfg, num_workers=0, batch_size=2)
    with pytest.raises(ValueError, match=r"hand_type has shape \(1, 2\) for a batch of 2; \(2, 2\) expected"):
        predict(OneHandTypeModel(), ValueImages(4), cfg, num_workers=0, batch_size=2)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_workers_that_are_not_forked_get_their_batches_and_one_opencv_thread(cfg, monkeypatch, method):
    """Python 3.14 starts workers with forkserver on Linux: each batch arrives intact from such workers, and they set
    OpenCV to one thread at start-up."""
    import torch.multiprocessing as torch_mp

    monkeypatch.setattr(torch_mp, "get_context", lambda method_=None: __import__("multiprocessing").get_context(method))
    monkeypatch.setenv("OPENCV_FOR_THREADS_NUM", "3")  # the workers' default, were their start-up not to set one
    out = predict(EchoModel(), ValueImages(6, value=_index_times_threads), cfg, num_workers=1, batch_size=2)
    np.testing.assert_array_equal(out["rel_root_depth"], np.arange(6))  # index x OpenCV threads (1) in the worker


def _index_times_threads(i: int) -> float:
    return float(i * cv2.getNumThreads())


class FailingModel(EchoModel):
    def forward(self, img):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 3:
            raise RuntimeError("the model failed")
        return super().forward(img)


def _children() -> list:
    me = str(os.getpid())
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.append(int(pid))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_failed_prediction_keeps_no_worker_alive_through_its_traceback(cfg):
    """A notebook keeps the last traceback (and with it predict's frame): the workers and their shared buffers must
    not live on through it."""
    before = _children()
    with pytest.raises(RuntimeError, match="the model failed") as failure:
        predict(FailingModel(), ValueImages(40), cfg, num_workers=2, batch_size=2)
    deadline = time.monotonic() + 10
    while set(_children()) - set(before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert failure.value is not None and not set(_children()) - set(before)


def test_batches_from_several_workers_arrive_in_order(cfg):
    out = predict(EchoModel(pause_s=0.002), ValueImages(30), cfg, num_workers=2, batch_size=2)
    np.testing.assert_array_equal(out["rel_root_depth"], np.arange(30))
    np.testing.assert_array_equal(out["inv_trans"][:, 0, 2], np.arange(30))


class DeadBatchCounting(EchoModel):
    """Records, at each batch, how many batches received from the workers torch still keeps a record of although
    they are freed (dead weak references in torch's shared-memory cache)."""

    def forward(self, img):
        self.dead = getattr(self, "dead", []) + [sum(ref.expired() for ref in list(shared_cache.values()))]
        return super().forward(img)


def test_each_batch_from_a_worker_is_forgotten_once_it_is_freed(cfg):
    """torch dropped its records of received batches only every 128 batches, and each record kept a small
    allocation in the hole left by a batch's freed temporaries: the main process's heap fragmented by up to 128
    holes, over 100 MB at the official crop size (benchmarks/RESULTS.md section 9)."""
    model = DeadBatchCounting()
    out = predict(model, ValueImages(40), cfg, num_workers=1, batch_size=2)
    np.testing.assert_array_equal(out["rel_root_depth"], np.arange(40))
    assert len(model.dead) == 20 and max(model.dead[1:]) == 0  # the first may see what other tests left
    assert not any(ref.expired() for ref in list(shared_cache.values()))  # nor the batches sent ahead
