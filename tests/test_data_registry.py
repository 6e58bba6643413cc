"""One registry of data sets (internet.config.DATASETS) and one protocol they follow (internet.data.HandDataset): a new
data set is its module and one registry entry, and the config, build_dataset and the notebooks' checks all see it."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from internet import config as config_mod
from internet.app.notebook import ParameterError, check_param
from internet.config import DATASETS, Config, ConfigError
from internet.data import HandDataset, build_dataset, dataset_class, dataset_evaluator, dataset_splits
from internet.evaluation.protocol import evaluate_dataset, evaluate_interhand, evaluate_single_hand
from internet.skeleton import INTERHAND


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_registered_class_follows_the_protocol(name):
    cls = dataset_class(name)
    for member in ("__len__", "__getitem__", "set_epoch", "eval_targets", "image_path", "load_image", "crop_bbox"):
        assert callable(getattr(cls, member, None)), (name, member)


def test_built_data_sets_are_hand_datasets(tiny_data, tmp_path):
    from internet.synth.single_hand import write_rhd

    interhand = build_dataset(Config.cpu_demo(data_root=str(tiny_data)), "test", "test")
    write_rhd(tmp_path / "RHD", seed=1, n_train=2, n_test=2)
    rhd = build_dataset(Config.cpu_demo(dataset="RHD", data_root=str(tmp_path / "RHD")), "test", "test")
    for ds in (interhand, rhd):
        assert isinstance(ds, HandDataset) and ds.mode == "test" and ds.skeleton.joint_num == 42


class _Toy:
    """A data set of one sample, defined outside the package."""

    skeleton = INTERHAND

    def __init__(self, cfg, split, mode, **kwargs):
        self.cfg, self.split, self.mode, self.kwargs = cfg, split, mode, kwargs

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return {"img": np.zeros((3, 8, 8), np.float32)}

    def set_epoch(self, epoch):
        pass

    def eval_targets(self):
        return {}

    def image_path(self, i):
        return None

    def load_image(self, i, dtype=np.float32):
        return np.zeros((8, 8, 3), dtype)

    def crop_bbox(self, i):
        return np.zeros(4, np.float32)


def test_a_new_data_set_is_one_module_and_one_entry(monkeypatch):
    module = types.ModuleType("toy_hands")
    module.ToyHands = _Toy
    monkeypatch.setitem(sys.modules, "toy_hands", module)
    with pytest.raises(ConfigError, match="dataset"):
        Config(dataset="Toy").validate()
    toy = config_mod.DatasetSpec("toy_hands:ToyHands", "toy_hands:evaluate_toy", ("test",))
    monkeypatch.setitem(config_mod.DATASETS, "Toy", toy)
    cfg = Config.cpu_demo(dataset="Toy")  # the config accepts it
    assert check_param("dataset", "Toy", str, choices=DATASETS) == "Toy"  # the notebooks' parameter check too
    ds = build_dataset(cfg, mode="test", extra=1)
    assert isinstance(ds, _Toy) and isinstance(ds, HandDataset)
    assert (ds.split, ds.kwargs) == (cfg.test_split, {"extra": 1})
    with pytest.raises(ParameterError, match="must be one of"):
        check_param("dataset", "FreiHAND", str, choices=DATASETS)
    monkeypatch.setitem(config_mod.DATASETS, "Broken", config_mod.DatasetSpec("toy_hands:Missing", "toy_hands:nothing"))
    with pytest.raises(ImportError, match="does not define Missing"):
        dataset_class("Broken")
    with pytest.raises(ImportError, match="does not define nothing"):
        dataset_evaluator("Broken")


def test_the_registry_names_the_evaluator_that_scores_a_data_set(monkeypatch):
    """evaluate_dataset and the mean-pose baseline score with the registered evaluator, not a type check."""
    module = types.ModuleType("toy_hands")
    seen = []
    module.evaluate_toy = lambda pred, gt, skeleton, cfg: seen.append((len(gt["joint_cam"]), skeleton)) or "scored"
    monkeypatch.setitem(sys.modules, "toy_hands", module)
    spec = config_mod.DatasetSpec("toy_hands:ToyHands", "toy_hands:evaluate_toy", ("test",))
    monkeypatch.setitem(config_mod.DATASETS, "Toy", spec)
    cfg = Config.cpu_demo(dataset="Toy")
    gt = {"joint_cam": np.zeros((3, 42, 3))}
    assert (
        evaluate_dataset({"index": np.array([0, 2]), "joint_coord": np.zeros((2, 42, 3))}, gt, cfg, skeleton=INTERHAND)
        == "scored"
    )
    assert seen == [(2, INTERHAND)]  # the rows of pred['index'], then the registered function
    assert dataset_splits("Toy") == ("test",)
    assert dataset_evaluator("InterHand2.6M") is evaluate_interhand
    assert dataset_evaluator("RHD") is dataset_evaluator("STB") is evaluate_single_hand
