"""Checkpoints: official format round trip, checked loading (depth, missing keys, shapes), refusal of pickles that
run code, corrupt files, atomic saving under a failing disk, RNG state helpers and the snapshot naming."""

from __future__ import annotations

import errno
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from vendored import OFFICIAL

import internet.model.checkpoint as ckpt_mod
from internet.engine.resume import capture_rng_states, plain_to_rng_state, restore_rng_states, rng_state_to_plain
from internet.model import InterNet
from internet.model.checkpoint import (
    CheckpointError,
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    load_network_state,
    official_state_dict,
    parse_checkpoint_name,
    save_checkpoint,
)

OFFICIAL_KEYS = OFFICIAL / "state_dict_keys.tsv"


def official_network_state() -> dict[str, torch.Tensor]:
    """A stand-in for an official snapshot's ``network``: every key/shape/dtype of state_dict_keys.tsv
    (ResNet-50, ``module.`` prefix), values zero (only names and shapes matter here)."""
    state = {}
    for row in OFFICIAL_KEYS.read_text().splitlines()[1:]:
        key, shape, dtype = row.split("\t")
        size = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
        state[key] = torch.zeros(size, dtype=torch.int64) if dtype == "int64" else torch.zeros(size)
    return state


@pytest.fixture(scope="module")
def r18() -> InterNet:
    torch.manual_seed(0)
    return InterNet(resnet_type=18)


def perturbed_copy(model: InterNet, seed: int) -> InterNet:
    """A ResNet-18 InterNet whose every entry differs from ``model``'s."""
    other = InterNet(resnet_type=18)
    g = torch.Generator().manual_seed(seed)
    other.load_state_dict(
        {
            k: (v + 1 if v.dtype == torch.int64 else torch.randn(v.shape, generator=g))
            for k, v in model.state_dict().items()
        }
    )
    return other


# --------------------------------------------------------------------------------------------- official format
def test_official_state_dict_has_official_keys():
    expected = official_network_state()
    ours = official_state_dict(InterNet(resnet_type=50))
    assert list(ours) == list(expected)
    assert all(tuple(ours[k].shape) == tuple(expected[k].shape) for k in expected)
    # a DataParallel wrapper is unwrapped: still one `module.` prefix
    wrapped = official_state_dict(torch.nn.DataParallel(InterNet(resnet_type=18)))
    assert all(k.startswith("module.") and not k.startswith("module.module.") for k in wrapped)


def test_official_format_round_trip(tmp_path, r18):
    source = perturbed_copy(r18, seed=1)
    opt = torch.optim.Adam(source.pose_net.hand_fc.parameters(), lr=1e-4)
    for param in source.pose_net.hand_fc.parameters():
        param.grad = torch.ones_like(param)
    opt.step()  # the optimizer state now holds tensors (exp_avg, step) as in a real snapshot
    path = tmp_path / "model_dump" / checkpoint_name(4)
    save_checkpoint(path, {"epoch": 4, "network": official_state_dict(source), "optimizer": opt.state_dict()})
    # the file is what the official code reads: plain dict, `module.`-prefixed network
    raw = torch.load(path, map_location="cpu", weights_only=True)
    # format_version: this project's addition, a key the official code does not read
    assert raw["epoch"] == 4 and set(raw) == {"epoch", "network", "optimizer", "format_version"}
    assert all(k.startswith("module.") for k in raw["network"])
    resumed = torch.optim.Adam(InterNet(resnet_type=18).pose_net.hand_fc.parameters(), lr=1e-4)
    resumed.load_state_dict(raw["optimizer"])
    assert torch.equal(resumed.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])

    target = InterNet(resnet_type=18)
    load_network_state(target, load_checkpoint(path))
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    # a bare state dict (no prefix) and a path work too
    target2 = InterNet(resnet_type=18)
    load_network_state(target2, source.state_dict())
    assert torch.equal(target2.pose_net.hand_fc[2].weight, source.pose_net.hand_fc[2].weight)
    target3 = InterNet(resnet_type=18)
    load_network_state(target3, path)
    assert torch.equal(target3.backbone_net.resnet.conv1.weight, source.backbone_net.resnet.conv1.weight)


def test_resnet50_checkpoint_into_resnet18_names_both_depths(r18):
    with pytest.raises(CheckpointError, match=r"checkpoint is ResNet-50, model is ResNet-18") as info:
        load_network_state(r18, {"epoch": 19, "network": official_network_state(), "optimizer": {}})
    msg = str(info.value)
    assert "shape mismatches" in msg and "unexpected keys" in msg and "module." not in msg


def test_official_resnet50_network_loads_strictly():
    model = InterNet(resnet_type=50)
    state = official_network_state()
    state["module.pose_net.hand_fc.2.bias"] = torch.tensor([0.25, -0.5])
    load_network_state(model, {"network": state})
    assert torch.equal(model.pose_net.hand_fc[2].bias, torch.tensor([0.25, -0.5]))


def test_missing_key_and_wrong_shape_are_named(r18):
    state = official_state_dict(r18)
    missing = dict(state)
    del missing["module.pose_net.root_fc.2.bias"]
    with pytest.raises(CheckpointError, match=r"1 missing keys.*pose_net\.root_fc\.2\.bias"):
        load_network_state(InterNet(resnet_type=18), {"network": missing})
    wrong = dict(state)
    wrong["module.pose_net.hand_fc.2.weight"] = torch.zeros(3, 512)
    with pytest.raises(
        CheckpointError, match=r"pose_net\.hand_fc\.2\.weight checkpoint \(3, 512\) vs model \(2, 512\)"
    ):
        load_network_state(InterNet(resnet_type=18), {"network": wrong})
    with pytest.raises(CheckpointError, match=r"1 unexpected keys.*\b7\b"):  # a key that is not even a string
        load_network_state(InterNet(resnet_type=18), {"network": {**state, 7: torch.zeros(1)}})
    extra = dict(state)
    extra["module.pose_net.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"1 unexpected keys.*pose_net\.extra\.weight"):
        load_network_state(InterNet(resnet_type=18), extra)


def test_fc_input_norm_mismatch_says_which_setting_the_checkpoint_needs(r18):
    normed = InterNet(resnet_type=18, fc_input_norm=True)
    with pytest.raises(CheckpointError, match=r"trained with fc_input_norm=True.*set fc_input_norm=True"):
        load_network_state(InterNet(resnet_type=18), {"network": official_state_dict(normed)})
    with pytest.raises(CheckpointError, match=r"trained with fc_input_norm=False.*set fc_input_norm=False"):
        load_network_state(normed, {"network": official_state_dict(r18)})
    load_network_state(InterNet(resnet_type=18, fc_input_norm=True), {"network": official_state_dict(normed)})


def test_non_strict_allows_missing_but_not_wrong_shapes(r18):
    state = official_state_dict(r18)
    del state["module.pose_net.root_fc.2.bias"]
    result = load_network_state(InterNet(resnet_type=18), {"network": state}, strict=False)
    assert result.missing_keys == ["pose_net.root_fc.2.bias"]
    state["module.pose_net.hand_fc.2.weight"] = torch.zeros(3, 512)
    with pytest.raises(CheckpointError, match="hand_fc.2.weight"):
        load_network_state(InterNet(resnet_type=18), {"network": state}, strict=False)


def test_not_a_checkpoint_is_rejected(r18):
    with pytest.raises(CheckpointError, match=r"neither a checkpoint with a 'network' entry.*optimizer"):
        load_network_state(r18, {"epoch": 3, "optimizer": {}})
    with pytest.raises(CheckpointError, match="expected a checkpoint dict"):
        load_network_state(r18, [1, 2, 3])


# --------------------------------------------------------------------------------------------- unsafe and corrupt files
class _WritesFile:
    """A pickle payload: unpickling it runs exec(), which creates ``target``."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return exec, (f"open({str(self.target)!r}, 'w').write('pwned')",)


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, writer):
    control_target, target = tmp_path / "control_pwned.txt", tmp_path / "pwned.txt"
    control, evil = tmp_path / "control.pth.tar", tmp_path / "evil.pth.tar"
    for path, victim in ((control, control_target), (evil, target)):
        payload = {"epoch": 1, "network": {"w": torch.zeros(2)}, "optimizer": _WritesFile(victim)}
        if writer == "torch.save":
            torch.save(payload, path)
        else:
            path.write_bytes(pickle.dumps(payload))
    # control: an unsafe load really runs the payload, so the refusal below is meaningful
    if writer == "torch.save":
        torch.load(control, weights_only=False)
    else:
        pickle.loads(control.read_bytes())
    assert control_target.read_text() == "pwned"

    with pytest.raises(CheckpointError, match=r"refusing to load .*evil\.pth\.tar.*not plain tensors") as info:
        load_checkpoint(evil)
    assert "exec" in str(info.value)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_network_state(InterNet(resnet_type=18), evil)
    assert not target.exists()


def test_missing_truncated_and_garbage_files(tmp_path, r18):
    with pytest.raises(FileNotFoundError, match=r"not found: .*nothing_here\.pth\.tar"):
        load_checkpoint(tmp_path / "nothing_here.pth.tar")
    good = tmp_path / "good.pth.tar"
    save_checkpoint(good, {"epoch": 0, "network": official_state_dict(r18)})
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pth\.tar: the file is truncated or corrupt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pth.tar"
    garbage.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError, match=r"garbage\.pth\.tar: the file is truncated or corrupt"):
        load_checkpoint(garbage)
    empty = tmp_path / "empty.pth.tar"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pth\.tar"):
        load_checkpoint(empty)


def test_legacy_torch_format_loads_and_its_truncation_is_reported(tmp_path, r18):
    # old torchvision ImageNet files (e.g. resnet50-19c8e357.pth) use the pre-zip serialisation
    path = tmp_path / "legacy.pth"
    state = {k: v for k, v in official_state_dict(r18).items() if "pose_net" in k}
    torch.save({"network": state}, path, _use_new_zipfile_serialization=False)
    loaded = load_checkpoint(path)
    assert all(torch.equal(loaded["network"][k], v) for k, v in state.items())
    truncated = tmp_path / "legacy_cut.pth"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"legacy_cut\.pth: the file is truncated or corrupt"):
        load_checkpoint(truncated)


# --------------------------------------------------------------------------------------------- atomic saving
def _no_temp_files(folder: Path) -> bool:
    return sorted(p.name for p in folder.iterdir()) == ["snapshot_3.pth.tar"]


@pytest.mark.parametrize("failure", ["fsync", "mid_write"])
def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch, failure):
    path = tmp_path / "snapshot_3.pth.tar"
    save_checkpoint(path, {"epoch": 3, "network": {"w": torch.arange(4.0)}})
    before = path.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if failure == "fsync":
        import internet.utils.atomic as atomic_mod  # every atomic write of the package goes through it

        monkeypatch.setattr(atomic_mod.os, "fsync", no_space)
    else:
        real_save = torch.save

        def partial_save(obj, f, *args, **kwargs):
            f.write(b"PK\x03\x04 half a checkpoint")  # bytes reach the temp file, then the disk fills up
            no_space()

        monkeypatch.setattr(ckpt_mod.torch, "save", partial_save)
    with pytest.raises(OSError, match=r"could not save checkpoint .*snapshot_3\.pth\.tar") as info:
        save_checkpoint(path, {"epoch": 4, "network": {"w": torch.zeros(4)}})
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 3
    assert _no_temp_files(tmp_path)
    if failure == "mid_write":
        assert real_save is torch.save


def test_save_rejects_non_plain_values_before_writing(tmp_path):
    path = tmp_path / "snapshot_0.pth.tar"
    with pytest.raises(TypeError, match=r"state\['rng'\]\['numpy'\] is a numpy.ndarray.*rng_state_to_plain"):
        save_checkpoint(path, {"epoch": 0, "rng": {"numpy": np.zeros(3)}})
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_save_replaces_existing_file(tmp_path):
    path = tmp_path / "snapshot_1.pth.tar"
    save_checkpoint(path, {"epoch": 1})
    save_checkpoint(path, {"epoch": 2, "note": "second", "ids": (1, 2), "blob": b"\x00\x01"})
    loaded = load_checkpoint(path)
    assert loaded == {"epoch": 2, "note": "second", "ids": (1, 2), "blob": b"\x00\x01"}
    assert [p.name for p in tmp_path.iterdir()] == ["snapshot_1.pth.tar"]


# --------------------------------------------------------------------------------------------- RNG states
@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.MT19937, np.random.Philox])
def test_numpy_generator_state_round_trip(tmp_path, bit_generator):
    gen = np.random.Generator(bit_generator(1234))
    gen.random(5)
    path = tmp_path / "rng.pth.tar"
    save_checkpoint(path, {"numpy_generator": rng_state_to_plain(gen.bit_generator.state)})
    expected = gen.random(8)
    fresh = np.random.Generator(bit_generator(0))
    fresh.bit_generator.state = plain_to_rng_state(load_checkpoint(path)["numpy_generator"])
    np.testing.assert_array_equal(fresh.random(8), expected)


def test_python_and_global_states_round_trip(tmp_path):
    gen = np.random.default_rng(7)
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    path = tmp_path / "rng.pth.tar"
    save_checkpoint(path, {"rng": capture_rng_states(gen)})
    expected = (random.random(), np.random.rand(), torch.rand(3), gen.random())
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    gen2 = np.random.default_rng(99)
    restore_rng_states(load_checkpoint(path)["rng"], gen2)
    got = (random.random(), np.random.rand(), torch.rand(3), gen2.random())
    assert got[0] == expected[0] and got[1] == expected[1] and got[3] == expected[3]
    assert torch.equal(got[2], expected[2])
    with pytest.raises(CheckpointError, match="'numpy_generator'"):
        restore_rng_states(capture_rng_states(), gen2)


# --------------------------------------------------------------------------------------------- names
def test_checkpoint_names_and_latest(tmp_path):
    assert checkpoint_name(7) == "snapshot_7.pth.tar" and checkpoint_name(7, 500) == "snapshot_7_iter500.pth.tar"
    assert parse_checkpoint_name("snapshot_12_iter30.pth.tar") == (12, 30)
    assert parse_checkpoint_name("snapshot_12.pth.tar") == (12, None)
    assert parse_checkpoint_name("snapshot_12.pth.tar.tmp") is None
    with pytest.raises(ValueError, match="epoch"):
        checkpoint_name(-1)

    dump = tmp_path / "model_dump"
    assert latest_checkpoint(dump) is None  # no folder yet
    dump.mkdir()
    assert latest_checkpoint(dump) is None
    for name in (
        "snapshot_2.pth.tar",
        "snapshot_9.pth.tar",
        "snapshot_10_iter50.pth.tar",
        "snapshot_10_iter100.pth.tar",
        ".snapshot_11.pth.tar.abc.tmp",
        "snapshot_12.pth.tar.bak",
        "notes.txt",
    ):
        (dump / name).write_bytes(b"x")
    assert latest_checkpoint(dump).name == "snapshot_10_iter100.pth.tar"  # numeric, not lexicographic
    (dump / "snapshot_10.pth.tar").write_bytes(b"x")
    assert latest_checkpoint(dump).name == "snapshot_10.pth.tar"  # end of epoch 10 beats any iteration inside it
    (dump / "snapshot_11_iter1.pth.tar").mkdir()  # a folder with a checkpoint's name is not a checkpoint
    assert latest_checkpoint(dump).name == "snapshot_10.pth.tar"
