"""Issue 30, "nothing lost, nothing mixed, nothing hung": a stalled or failing loader worker, duplicate frames, a full
disk, and the weak messages of the sequence, temporal and video surfaces."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import signal
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_predict_loader import SIZE, EchoModel, ValueImages, _children

from internet.config import Config, ConfigError
from internet.evaluation.temporal import OneEuroFilter, one_euro_filter, triples
from internet.infer.predict import predict


@pytest.fixture()
def cfg(tmp_path):
    return Config.cpu_demo(data_root=str(tmp_path), input_img_shape=(SIZE, SIZE), output_hm_shape=(16, 16, 16))


# ============================================================================================== loader workers
class StallingImages(ValueImages):
    """Sample ``stall`` stops the worker that loads it (SIGSTOP: it neither answers nor dies); every worker records its
    pid in ``folder``."""

    def __init__(self, n: int, stall: int, folder: Path) -> None:
        super().__init__(n)
        self.stall, self.folder = stall, folder

    def __getitem__(self, i):
        (self.folder / str(os.getpid())).touch()
        if i == self.stall:
            os.kill(os.getpid(), signal.SIGSTOP)
        return super().__getitem__(i)


class FailingImages(StallingImages):
    """Sample ``stall`` raises in its worker; the others load slowly, so the sibling worker is busy when it does."""

    def __getitem__(self, i):
        (self.folder / str(os.getpid())).touch()
        if i == self.stall:
            raise OSError(f"sample {i} cannot be read")
        time.sleep(0.05)
        return ValueImages.__getitem__(self, i)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_stalled_worker_fails_predict_after_the_timeout_naming_it(cfg, tmp_path):
    """A stopped worker used to hang predict forever; now it fails after cfg.loader_timeout_s naming the worker's pid,
    and the stopped worker is gone (a stopped process ignores the loader's SIGTERM)."""
    (tmp_path / "pids").mkdir()
    before = set(_children())
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=r"data-loader worker \d \(pid \d+\) sent no batch for 2 s") as e:
        predict(EchoModel(), StallingImages(12, 4, tmp_path / "pids"), cfg.replace(loader_timeout_s=2.0), num_workers=2)
    assert time.monotonic() - t0 < 30
    assert "loader_timeout_s" in str(e.value) and "num_workers=0" in str(e.value)
    pid = int(str(e.value).split("(pid ")[1].split(")")[0])
    assert str(pid) in os.listdir(tmp_path / "pids")  # the worker it names is one of predict's
    deadline = time.monotonic() + 5  # SIGKILL is delivered asynchronously
    while (_alive(pid) or set(_children()) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid) and not set(_children()) - before


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_after_a_worker_raises_its_siblings_are_gone_at_once(cfg, tmp_path):
    (tmp_path / "pids").mkdir()
    with pytest.raises(OSError, match="sample 5 cannot be read") as failure:
        predict(EchoModel(), FailingImages(40, 5, tmp_path / "pids"), cfg, num_workers=2, batch_size=2)
    pids = [int(p) for p in os.listdir(tmp_path / "pids")]
    assert len(pids) == 2 and failure.value is not None  # the traceback is still held here
    assert not [p for p in pids if _alive(p)]  # no waiting for the traceback to be collected


def test_loader_timeout_bounds():
    assert Config(loader_timeout_s=1e-3).loader_timeout_s == 1e-3  # just inside: any positive time
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ConfigError, match="loader_timeout_s"):
            Config.from_params({"loader_timeout_s": bad})


# ============================================================================================== temporal
def test_one_euro_filter_refuses_an_infinite_rate():
    with pytest.raises(ValueError, match="fps must be a positive finite number, got inf"):
        OneEuroFilter(math.inf)
    for name in ("min_cutoff", "d_cutoff"):
        with pytest.raises(ValueError, match=f"{name} must be a positive finite number"):
            OneEuroFilter(30.0, **{name: math.inf})
        with pytest.raises(ValueError, match=name):
            OneEuroFilter(30.0, **{name: 0.0})
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        OneEuroFilter(30.0, beta=math.inf)
    x = np.sin(np.arange(20.0))[:, None]
    assert np.isfinite(one_euro_filter(x, 1e6)).all()  # a huge but finite rate still filters
    assert np.isfinite(one_euro_filter(x, 1e-6, beta=0.0)).all()  # just inside zero


def test_a_repeated_frame_is_named_not_called_unsorted():
    with pytest.raises(ValueError, match=r"frame 12 appears twice \(positions 2 and 3\)"):
        triples([10, 11, 12, 12, 13])
    with pytest.raises(ValueError, match="frame 11 at position 2 follows 12"):
        triples([10, 12, 11])
    with pytest.raises(ValueError, match="frame 5 appears twice"):
        one_euro_filter(np.zeros((2, 3)), 30.0, frame=[5, 5])
    assert triples([10, 11, 12]).tolist() == [[0, 1, 2]]


# ============================================================================================== sequences
def _sample_copy(shared_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "sample"
    shutil.copytree(shared_dir / "data" / "interhand26m_sample", root)
    return root


def test_a_duplicate_frame_is_named_when_the_sequence_index_is_built(shared_dir, tmp_path):
    from internet.data.sequences import SequenceIndex

    root = _sample_copy(shared_dir, tmp_path)
    path = root / "annotations/test/InterHand2.6M_test_data.json"
    data = json.loads(path.read_text())
    assert len(SequenceIndex(root, "test", cache=False)) == 3  # the untouched copy loads
    img, ann = dict(data["images"][0]), dict(data["annotations"][0])
    img.update(id=999999, file_name=img["file_name"].replace(".jpg", "_again.jpg"))
    ann.update(id=999999, image_id=999999)
    data["images"].append(img)
    data["annotations"].append(ann)
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError) as e:
        SequenceIndex(root, "test", cache=False)
    msg = str(e.value)
    assert "Capture3/0390_dh_touchROM/cam400026 frame 69148 has two images" in msg
    assert "image id 326750" in msg and "image id 999999" in msg and str(path) in msg


# ============================================================================================== video
@pytest.fixture()
def small_video(tmp_path) -> Path:
    from internet.vis.video_io import write_video

    frames = (np.full((48, 64, 3), 10 * k, dtype=np.uint8) for k in range(4))
    return Path(write_video(frames, tmp_path / "v.mp4", 10.0)["path"])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"every": 0}, r"every=0: must be an integer >= 1"),
        ({"every": -1}, r"every=-1: must be an integer >= 1"),
        ({"every": 1.5}, r"every=1.5: must be an integer"),
        ({"max_frames": 0}, r"max_frames=0: must be an integer >= 1, or None"),
        ({"max_frames": -1}, r"max_frames=-1: must be an integer >= 1"),
    ],
)
def test_predict_video_names_a_bad_stride_or_frame_cap(small_video, tmp_path, kw, match):
    from internet.app.video import iter_frames, predict_video

    with pytest.raises(ValueError, match=match):
        predict_video(object(), small_video, [10, 10, 20, 20], tmp_path / "out", **kw)
    with pytest.raises(ValueError, match=match):
        next(iter_frames(small_video, **kw))


def test_predict_video_stride_and_cap_just_inside_their_bounds(small_video):
    from internet.app.video import iter_frames

    assert [k for k, _ in iter_frames(small_video, every=1, max_frames=1)] == [0]
    assert [k for k, _ in iter_frames(small_video, every=3)] == [0, 3]


def test_an_adapting_box_grows_boundedly_and_says_so():
    from internet.app.video import BoxFollower

    follower = BoxFollower([40, 40, 20, 20], 200, 100, momentum=0.0, adapt_size=True)
    spread = np.stack([np.linspace(-1e4, 1e4, 42), np.linspace(-1e4, 1e4, 42)], axis=1)  # joints all over
    sides = [follower.box[2:].copy()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(30):
            sides.append(follower.update(spread, np.array([True, True]))[2:].copy())
    sides = np.array(sides)
    growth = sides[1:] / sides[:-1]
    assert growth.max() <= BoxFollower.MAX_GROWTH + 1e-9 and growth.max() > 1.2  # it grows, at the bound
    assert sides.max() == pytest.approx(200.0)  # never past the image's longer side: a valid box every frame
    assert follower.bounded == 30
    assert len(caught) == 1 and "growth is bounded to x1.25" in str(caught[0].message)
    # a box that shrinks or grows within the bound follows the hands exactly
    calm = BoxFollower([40, 40, 20, 20], 200, 100, momentum=0.0, adapt_size=True)
    pts = np.array([[50.0, 50.0], [50.0 + 24 / 1.4, 50.0 + 24 / 1.4]] * 21)  # side x1.2
    assert calm.update(pts, np.array([True, True]))[2:] == pytest.approx([24.0, 24.0])
    assert calm.bounded == 0


# ============================================================================================== full disk
def test_a_full_disk_while_saving_a_checkpoint_says_so(tmp_path, monkeypatch):
    import internet.utils.atomic as atomic
    from internet.model.checkpoint import save_checkpoint

    path = tmp_path / "snapshot_0.pth.tar"
    save_checkpoint(path, {"network": {"w": torch.zeros(4)}, "epoch": 0})
    old = path.read_bytes()
    real_fdopen = atomic.os.fdopen

    class FullDisk:
        """A file on a disk with 1000 bytes left."""

        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 1000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    monkeypatch.setattr(atomic.os, "fdopen", lambda *a, **k: FullDisk(real_fdopen(*a, **k)))
    with pytest.raises(OSError, match="no space left on device while writing .*snapshot_0.pth.tar") as e:
        save_checkpoint(path, {"network": {"w": torch.zeros(100_000)}, "epoch": 1})
    assert e.value.errno == errno.ENOSPC and "untouched" in str(e.value)
    assert path.read_bytes() == old and sorted(p.name for p in tmp_path.iterdir()) == [path.name]


# ============================================================================================== data check
def test_data_check_reports_a_partial_download_per_capture(shared_dir, tmp_path):
    from internet.data.check import check_data

    root = _sample_copy(shared_dir, tmp_path)
    report = check_data(root, cache=False)
    assert report.complete and report.splits["test"].captures == {c: {"referenced": 1, "present": 1} for c in (3, 4, 7)}
    assert not report.splits["train"].found and report.splits["test"].layout == "v1.0"
    missing = root / "images/test/Capture4/0007_thumbup_normal/cam410028/image2017.jpg"
    missing.unlink()
    (root / "rootnet_output").mkdir()
    (root / "rootnet_output/rootnet_interhand2.6m_output_test.json").write_text("[]")
    (root / "annotations/test/InterHand2.6M_test_MANO_NeuralAnnot.json").write_text("{}")
    rep = check_data(root, ["test"], cache=False).splits["test"]
    assert not rep.complete and (rep.referenced, rep.present) == (3, 2)
    assert rep.captures[4] == {"referenced": 1, "present": 0} and rep.captures[3] == {"referenced": 1, "present": 1}
    assert rep.missing_examples == [str(missing)] and rep.present_rows.sum() == 2
    assert rep.rootnet.endswith("rootnet_interhand2.6m_output_test.json") and rep.mano.endswith("MANO_NeuralAnnot.json")
    text = rep.text()
    assert "test: INCOMPLETE (v1.0 layout)" in text and "Capture4: 0 / 1  <- 1 missing" in text
    assert "2 of 3 referenced are on disk" in text and "annotations v1.0 H+M: data, camera, joint_3d" in text


def test_data_check_finds_the_v0_layout_and_its_subsets(shared_dir, tmp_path):
    from internet.data.check import check_data

    root = _sample_copy(shared_dir, tmp_path)
    (root / "annotations/test").rename(root / "annotations/all")
    (root / "annotations/human_annot").mkdir()
    shutil.copy(root / "annotations/all/InterHand2.6M_test_data.json", root / "annotations/human_annot")
    rep = check_data(root, ["test"], cache=False).splits["test"]
    assert rep.layout == "v0.0" and rep.complete
    assert {(f["subset"], f["kind"]) for f in rep.annotation_files} == {
        ("H+M", "data"),
        ("H+M", "camera"),
        ("H+M", "joint_3d"),
        ("H", "data"),
    }


def test_data_check_command_line_exit_codes(shared_dir, tmp_path):
    import subprocess
    import sys

    root = _sample_copy(shared_dir, tmp_path)

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "internet.data.check", *args], capture_output=True, text=True, timeout=120
        )

    ok = run(str(root), "--no-cache")
    assert ok.returncode == 0 and "test: complete" in ok.stdout
    next((root / "images/test/Capture7").rglob("*.jpg")).unlink()
    partial = run(str(root), "--no-cache", "--json")
    assert partial.returncode == 1 and json.loads(partial.stdout)["splits"]["test"]["present"] == 2
    assert run(str(tmp_path / "nowhere")).returncode == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run(str(empty))
    assert nothing.returncode == 1 and "nothing found" in nothing.stdout


def test_training_and_evaluation_refuse_missing_images_unless_opted_in(shared_dir, tmp_path):
    from internet.data.check import IncompleteDataError, require_images

    root = _sample_copy(shared_dir, tmp_path)
    cfg = Config(data_root=str(root))
    assert require_images(cfg, "test", cache=False) is None  # complete: nothing to do
    next((root / "images/test/Capture3").rglob("*.jpg")).unlink()
    with pytest.raises(IncompleteDataError, match=r"(?s)Capture3: 0 / 1.*allow_missing_images=True"):
        require_images(cfg, "test", cache=False)
    with pytest.warns(UserWarning, match="using the 2 images present only"):
        rows = require_images(cfg.replace(allow_missing_images=True), "test", cache=False)
    assert len(rows) == 2


# ============================================================================================== one run per folder
def _tiny_trainer(out: Path, **kw):
    import standins
    from standins import RandomHands, TinyInterNet

    from internet.engine.trainer import Trainer

    torch.manual_seed(0)
    cfg = standins.tiny_cfg(out, **kw)
    return Trainer(cfg, model=TinyInterNet(), train_set=RandomHands(4), progress_bar=False)


def test_a_second_training_into_a_held_output_dir_is_refused(tmp_path):
    """Before: both runs finished, their log rows interleaved (steps 1, 1, 2, 2) and checkpoints replaced."""
    from internet.engine.runtime import TrainingError
    from internet.utils.logs import read_jsonl

    refused = []

    def second_run(trainer, record):
        if record["step"] == 1:
            other = _tiny_trainer(tmp_path)
            with pytest.raises(TrainingError) as e:
                other.train()
            other.close()
            refused.append(str(e.value))

    first = _tiny_trainer(tmp_path)
    first.callbacks.append(second_run)
    first.train()
    first.close()
    assert len(refused) == 1
    assert f"{tmp_path} is in use by another training (pid {os.getpid()} on " in refused[0]
    assert "set output_dir to another folder" in refused[0]
    assert [r["step"] for r in read_jsonl(tmp_path / "log" / "train_log.jsonl", dedupe=False)] == [1, 2]
    again = _tiny_trainer(tmp_path)  # the folder is free once the run ends
    again.train()
    again.close()


def test_the_lock_dies_with_a_killed_holder(tmp_path):
    import subprocess
    import sys

    from internet.engine.runtime import TrainingError
    from internet.utils.lock import FolderLock

    code = (
        "import sys, time; from internet.utils.lock import FolderLock; "
        f"lock = FolderLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        trainer = _tiny_trainer(tmp_path)
        with pytest.raises(TrainingError, match=rf"in use by another training \(pid {holder.pid} on "):
            trainer.train()
        trainer.close()
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed run never blocks the next one
        holder.wait()
    with FolderLock(tmp_path) as lock:
        assert lock.held
    trainer = _tiny_trainer(tmp_path)
    assert trainer.train()["global_step"] == 2
    trainer.close()


# ============================================================================================== resume faults
def test_resume_refuses_an_optimizer_state_holding_nan_and_names_it(tmp_path):
    from internet.engine.runtime import TrainingError
    from internet.model.checkpoint import load_checkpoint, save_checkpoint

    trainer = _tiny_trainer(tmp_path)
    trainer.train()
    trainer.close()
    path = tmp_path / "model_dump" / "snapshot_0.pth.tar"
    ckpt = load_checkpoint(path)
    names = [n for n, _ in trainer.model.named_parameters()]
    ckpt["optimizer"]["state"][2]["exp_avg_sq"][..., 0] = float("nan")
    save_checkpoint(path, ckpt)
    resumed = _tiny_trainer(tmp_path, continue_train=True, end_epoch=2)
    with pytest.raises(TrainingError, match=rf"optimizer state 'exp_avg_sq' of parameter 2 \({names[2]}\) holds"):
        resumed.train()
    resumed.close()
    assert sorted(p.name for p in (tmp_path / "model_dump").iterdir()) == ["snapshot_0.pth.tar"]  # nothing newer


@pytest.mark.slow
def test_a_run_killed_writing_its_first_checkpoint_restarts_with_a_clean_log(tmp_path):
    """Before: the restarted run (from scratch: no checkpoint was complete) appended to the dead run's rows, and
    the log read steps 1, 2, 1, 2, 3, ..."""
    from test_train_resume import spawn_child

    from internet.utils.logs import read_jsonl

    assert spawn_child(tmp_path, kill_in_save=1) == -signal.SIGKILL  # the step-2 checkpoint's write is cut
    log = tmp_path / "log" / "train_log.jsonl"
    assert [r["step"] for r in read_jsonl(log, dedupe=False)] == [1, 2]
    assert spawn_child(tmp_path, continue_train=True) == 0
    assert [r["step"] for r in read_jsonl(log, dedupe=False)] == list(range(1, 11))
    text = (tmp_path / "log" / "train_logs.txt").read_text()
    assert "no checkpoint in" in text and "2 log record(s) of an earlier run removed" in text


# ============================================================================================== the scorer's inputs
PRED_SHAPES = {"rel_root_depth": ("pred", ()), "hand_type": ("pred", (2,))}
GT_SHAPES = {
    "joint_cam": ("gt", (42, 3)),
    "joint_valid": ("gt", (42,)),
    "hand_type_valid": ("gt", ()),
    "focal": ("gt", (2,)),
    "princpt": ("gt", (2,)),
    "inv_trans": ("gt", (2, 3)),
}


def _eval_case(n: int = 6):
    from test_decode_evaluate import _random_eval_case

    return _random_eval_case(n, seed=30)


def test_hand_type_stored_as_2_by_n_is_refused_not_reshaped():
    """Before: reshaped to (N, 2), which pairs sample 0's right with sample 1's right (handedness 0.478, not 0.261)."""
    from internet.evaluation.protocol import evaluate_interhand

    pred, gt = _eval_case()
    paper = Config()
    with pytest.raises(ValueError, match=r"pred\['hand_type'\] must have shape \(6, 2\), got \(2, 6\) \(transposed\?"):
        evaluate_interhand({**pred, "hand_type": pred["hand_type"].T.copy()}, gt, cfg=paper)
    right = evaluate_interhand(pred, gt, cfg=paper).handedness_accuracy
    assert evaluate_interhand({**pred, "hand_type": pred["hand_type"].T.T}, gt, cfg=paper).handedness_accuracy == right


@pytest.mark.parametrize("key", [*PRED_SHAPES, *GT_SHAPES])
def test_every_array_the_scorer_reads_must_have_its_exact_shape(key):
    from internet.evaluation.protocol import evaluate_interhand

    pred, gt = _eval_case()
    which, tail = {**PRED_SHAPES, **GT_SHAPES}[key]
    d = pred if which == "pred" else gt
    arr = np.asarray(d[key])
    assert arr.shape == (6, *tail)
    same_size = arr.reshape(-1)[::-1].reshape(*tail[::-1], 6) if tail else arr.reshape(2, 3)  # same values
    with pytest.raises(ValueError, match=rf"{which}\['{key}'\] must have shape \(6,"):
        evaluate_interhand(
            {**pred, key: same_size} if which == "pred" else pred,
            {**gt, key: same_size} if which == "gt" else gt,
            cfg=Config(),
        )
    if not tail:  # the documented column form of a per-sample value: (N, 1)
        base = evaluate_interhand(pred, gt, cfg=Config())
        column = arr[:, None]
        r = evaluate_interhand(
            {**pred, key: column} if which == "pred" else pred,
            {**gt, key: column} if which == "gt" else gt,
            cfg=Config(),
        )
        assert r.to_dict() == base.to_dict()


def test_prediction_index_rows_must_be_unique_in_range_and_one_per_prediction():
    from internet.evaluation.protocol import evaluate_dataset

    pred, gt = _eval_case(6)
    cfg = Config()
    rows = np.array([4, 1, 3])
    sub = {k: np.asarray(v)[rows] for k, v in pred.items()}
    ok = evaluate_dataset({**sub, "index": rows}, gt, cfg)  # a subset in any order: those rows scored
    direct = evaluate_dataset(sub, {k: np.asarray(v)[rows] for k, v in gt.items()}, cfg)
    assert ok.to_dict() == direct.to_dict()
    with pytest.raises(ValueError, match=r"lists ground-truth row 1 twice \(positions 1 and 2; 1 repeat"):
        evaluate_dataset({**sub, "index": np.array([4, 1, 1])}, gt, cfg)
    with pytest.raises(ValueError, match=r"pred\['index'\]\[2\] = 6 is not a row of the 6"):
        evaluate_dataset({**sub, "index": np.array([4, 1, 6])}, gt, cfg)  # just outside: n
    with pytest.raises(ValueError, match=r"pred\['index'\]\[0\] = -1"):
        evaluate_dataset({**sub, "index": np.array([-1, 1, 3])}, gt, cfg)
    assert evaluate_dataset({**sub, "index": np.array([5, 0, 3])}, gt, cfg) is not None  # 0 and n - 1: inside
    with pytest.raises(ValueError, match=r"must be \(3,\), one row per prediction, got shape \(2,\)"):
        evaluate_dataset({**sub, "index": np.array([4, 1])}, gt, cfg)
    with pytest.raises(ValueError, match="whole numbers"):
        evaluate_dataset({**sub, "index": np.array([4.0, 1.5, 3.0])}, gt, cfg)


def test_trainer_and_evaluation_refuse_a_partial_split_and_use_the_present_images_when_allowed(shared_dir, tmp_path):
    import standins
    from standins import TinyInterNet

    from internet.data.check import IncompleteDataError
    from internet.engine.trainer import Trainer

    root = _sample_copy(shared_dir, tmp_path)
    next((root / "images/test/Capture4").rglob("*.jpg")).unlink()

    def trainer(**kw):
        torch.manual_seed(0)
        cfg = standins.tiny_cfg(tmp_path / "out", data_root=str(root), train_split="test", **kw)
        return Trainer(cfg, model=TinyInterNet(), progress_bar=False)

    refused = trainer()
    with pytest.raises(IncompleteDataError, match=r"(?s)Capture4: 0 / 1.*Refusing the incomplete test split"):
        refused.train()
    with pytest.raises(IncompleteDataError, match="allow_missing_images=True"):
        refused.test("test")
    refused.close()
    allowed = trainer(allow_missing_images=True)
    with pytest.warns(UserWarning, match="using the 2 images present only"):
        assert allowed.train()["global_step"] == 1  # 2 samples, batch 2
    assert len(allowed.train_set) == 2
    with pytest.warns(UserWarning, match="present only"):
        result = allowed.test("test")
    assert result.counts["samples"] == 2
    allowed.close()


@pytest.mark.slow
def test_every_rank_of_a_ddp_run_is_refused_when_its_folder_is_held(tmp_path):
    """Rank 0 takes the lock for the run; when another process holds it, the run fails at once (no rank is left
    waiting on rank 0) and writes nothing."""
    import standins
    import torch.multiprocessing as mp
    from standins import RandomHands, TinyInterNet

    from internet.engine.launch import launch
    from internet.utils.lock import FolderLock

    cfg = standins.tiny_cfg(tmp_path, train_batch_size=2, num_gpus=2)
    t0 = time.monotonic()
    with FolderLock(tmp_path, what="evaluation"):
        with pytest.raises(mp.ProcessRaisedException, match=r"in use by another evaluation \(pid \d+"):
            launch(cfg, model=TinyInterNet(bn=False), train_set=RandomHands(8), progress_bar=False)
    assert time.monotonic() - t0 < 120
    assert not list((tmp_path / "model_dump").glob("*.pth.tar"))
