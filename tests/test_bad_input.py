"""Bad input, round two (issue 21): checkpoints with weights that are not finite or of a newer format, degenerate or
absurd boxes and tiny or huge images given to Predictor, and notebook 05 given a 1x1 image. (The annotation-file
cases are in test_data_errors.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from papermill.exceptions import PapermillExecutionError

from internet.app.notebook import load_model
from internet.config import Config
from internet.data.io import DataFileError
from internet.infer.predictor import MIN_IMAGE_SIDE, Predictor, load_rgb
from internet.model import InterNet
from internet.model.checkpoint import CHECKPOINT_FORMAT, CheckpointError, official_state_dict, save_checkpoint

TINY = dict(input_img_shape=(64, 64), output_hm_shape=(16, 16, 16), sigma=1.0)


@pytest.fixture(scope="module")
def cfg() -> Config:
    return Config.cpu_demo(**TINY)


@pytest.fixture(scope="module")
def model(cfg) -> InterNet:
    torch.manual_seed(0)
    return InterNet.from_config(cfg).eval()


def write_checkpoint(path: Path, model: InterNet, **extra) -> Path:
    return save_checkpoint(path, {"epoch": 0, "network": official_state_dict(model), **extra})


# ------------------------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize(
    "key,value", [("pose_net.hand_fc.2.weight", float("nan")), ("pose_net.joint_deconv_1.1.running_var", float("inf"))]
)
def test_checkpoint_with_a_weight_that_is_not_finite_is_refused_naming_it(tmp_path, cfg, model, key, value):
    """One NaN weight used to load, and evaluation printed a believable MPJPE with hand probabilities of NaN."""
    state = official_state_dict(model)
    state["module." + key] = state["module." + key].clone()
    state["module." + key].view(-1)[3] = value
    path = save_checkpoint(tmp_path / "snapshot_0.pth.tar", {"epoch": 0, "network": state})
    expected = rf"snapshot_0.pth.tar\[.network.\]: 1 tensor\(s\) hold NaN or Inf: {re.escape(key)} \(1 of \d+ values\)"
    with pytest.raises(CheckpointError, match=expected):
        Predictor(path, cfg, "cpu")
    with pytest.raises(CheckpointError, match=expected):
        load_model(path, cfg)


def test_checkpoint_carries_a_format_version_and_a_newer_one_is_refused(tmp_path, cfg, model):
    path = write_checkpoint(tmp_path / "snapshot_0.pth.tar", model)
    assert torch.load(path, weights_only=True)["format_version"] == CHECKPOINT_FORMAT
    Predictor(path, cfg, "cpu")  # this code's own format loads
    official = save_checkpoint(tmp_path / "official.pth.tar", {"epoch": 0, "network": official_state_dict(model)})
    raw = torch.load(official, weights_only=True)
    raw.pop("format_version")
    torch.save(raw, official)  # as the official code writes it: no version (format 0, the same layout)
    Predictor(official, cfg, "cpu")
    newer = write_checkpoint(tmp_path / "newer.pth.tar", model, format_version=CHECKPOINT_FORMAT + 1)
    with pytest.raises(
        CheckpointError,
        match=rf"newer.pth.tar has checkpoint format {CHECKPOINT_FORMAT + 1}; this "
        rf"code reads formats up to {CHECKPOINT_FORMAT}",
    ):
        Predictor(newer, cfg, "cpu")
    odd = write_checkpoint(tmp_path / "odd.pth.tar", model, format_version="1")
    with pytest.raises(CheckpointError, match=r"odd.pth.tar: 'format_version' must be a non-negative integer"):
        load_model(odd, cfg)


# ------------------------------------------------------------------------------------------------ Predictor input
@pytest.mark.parametrize(
    "box,words",
    [
        ([10, 10, 1e-30, 1e-30], "side under 1 px"),  # used to collapse the crop onto one heatmap cell
        ([10, 10, 0.5, 20], "side under 1 px"),
        ([0, 0, 1e9, 1e9], "over 10 times the longer side of the 80x100 (WxH) image"),
        ([0, 0, 1e39, 10], "not four finite numbers (in float32)"),
    ],
)
def test_degenerate_or_absurd_box_is_refused_by_predictor(cfg, model, box, words):
    predictor = Predictor(model, cfg, "cpu")
    with pytest.raises(ValueError, match=re.escape(words)):
        predictor.predict(np.zeros((100, 80, 3), np.uint8), box)
    predictor.predict(np.zeros((100, 80, 3), np.uint8), [10, 10, 1, 800])  # the limits themselves are accepted


def test_tiny_image_is_refused_naming_the_file(tmp_path, cfg, model):
    one = tmp_path / "one_pixel.png"
    cv2.imwrite(str(one), np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(
        DataFileError,
        match=rf"one_pixel.png is 1x1 pixels; prediction needs at least "
        rf"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}",
    ):
        load_rgb(one)
    with pytest.raises(ValueError, match=rf"at least {MIN_IMAGE_SIDE} pixels on a side"):
        Predictor(model, cfg, "cpu").predict(np.zeros((1, 1, 3), np.uint8), [0, 0, 1, 1])


def test_huge_image_given_to_predictor_is_refused_naming_the_file(tmp_path, cfg, model):
    """A 20000 x 20000 image used to die with a MemoryError that named no file."""
    ok, encoded = cv2.imencode(".jpg", np.full((16, 24, 3), 128, np.uint8))
    data = bytearray(encoded.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (20000).to_bytes(2, "big") * 2  # the frame header's height and width
    big = tmp_path / "big.jpg"
    big.write_bytes(bytes(data))
    with pytest.raises(DataFileError, match=rf"image {re.escape(str(big))} is 20000x20000 pixels, more than"):
        Predictor(model, cfg, "cpu").predict(big, [0, 0, 100, 100])


def test_notebook_05_names_a_one_pixel_image(execute_notebook, trained_checkpoint, tmp_path):
    """A 1x1 image used to reach the box sliders and fail there with a raw ipywidgets TraitError."""
    one = tmp_path / "one_pixel.png"
    cv2.imwrite(str(one), np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(PapermillExecutionError) as e:
        execute_notebook(
            "05_your_image",
            tmp_path / "05.ipynb",
            image_path=str(one),
            bbox=[0, 0, 1, 1],
            output_dir=str(tmp_path / "out"),
            checkpoint=str(trained_checkpoint),
            png_export="matplotlib",
        )
    assert e.value.ename == "DataFileError", e.value.ename
    assert str(one) in e.value.evalue and "1x1 pixels" in e.value.evalue


def test_box_rule_finds_one_bad_box_among_many():
    """The data sets check 1.36 M boxes at every start through a quick sufficient test; it must never hide a bad one."""
    from internet.geometry.crop import invalid_boxes

    rng = np.random.default_rng(0)
    n = 1000
    good = np.column_stack(
        [rng.uniform(0, 300, n), rng.uniform(0, 200, n), rng.uniform(20, 200, n), rng.uniform(20, 200, n)]
    ).astype(np.float32)
    width, height = np.full(n, 334, np.int32), np.full(n, 512, np.int32)
    assert not invalid_boxes(good, width, height).any()
    for bad in (
        [1, 1, 0.5, 20],
        [1, 1, 20, 1e-30],
        [1, 1, 6000, 20],
        [400, 1, 20, 20],
        [1, 600, 20, 20],
        [-50, 1, 20, 20],
        [1, -50, 20, 20],
        [np.nan, 1, 20, 20],
        [1, 1, np.inf, 20],
    ):
        for at in (0, 500, n - 1):
            boxes = good.copy()
            boxes[at] = bad
            assert np.flatnonzero(invalid_boxes(boxes, width, height)).tolist() == [at], (bad, at)
