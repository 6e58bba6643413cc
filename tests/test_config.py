"""The grouped config behind flat access; the model group decides a checkpoint's network; the loss owns its terms
and weights; the model's parameter groups; the resume state that internet.engine.resume writes and restores."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch
from standins import RandomHands, TinyInterNet
from torch import nn

from internet.config import GROUPS, Config, ConfigError
from internet.engine.resume import ResumeError, resume_training, training_checkpoint
from internet.model import InterNet, param_groups
from internet.model.checkpoint import save_checkpoint
from internet.model.load import MODEL_FIELDS, load_model
from internet.model.losses import InterNetLoss


def test_every_field_has_one_group_and_access_stays_flat():
    names = [f.name for f in dataclasses.fields(Config)]
    by_group = {g: Config.group_fields(g) for g in GROUPS}
    assert sorted(sum(by_group.values(), ())) == sorted(names)  # each field in exactly one group
    assert MODEL_FIELDS == by_group["model"]
    # what a checkpoint must carry to be rebuilt and decoded: the network's shapes and its heatmap space
    assert set(by_group["model"]) == {
        "resnet_type",
        "head_channels",
        "fc_input_norm",
        "input_img_shape",
        "output_hm_shape",
        "output_root_hm_shape",
        "sigma",
        "bbox_3d_size",
        "bbox_3d_size_root",
    }
    cfg = Config(resnet_type=18)
    assert cfg.resnet_type == 18 and cfg.group("model")["resnet_type"] == 18
    flat = cfg.to_dict()
    assert list(flat) == names and not any(isinstance(v, dict) for v in flat.values())
    assert Config.from_params(flat) == cfg and cfg.replace(sigma=1.5).sigma == 1.5
    assert cfg.group("runtime") == {k: flat[k] for k in by_group["runtime"]}
    with pytest.raises(ValueError, match="unknown config group 'optim'"):
        Config.group_fields("optim")


def test_a_checkpoints_saved_config_decides_every_model_field_and_nothing_else(tmp_path):
    """load_model takes every model-group value from the checkpoint's saved (flat) config and keeps the given
    config's other values: a field missing from the model group would keep the given value here."""
    trained = Config.cpu_demo(
        resnet_type=34,
        input_img_shape=(64, 64),
        output_hm_shape=(8, 16, 16),
        sigma=1.5,
        bbox_3d_size=300.0,
        bbox_3d_size_root=350.0,
        output_root_hm_shape=32,
        head_channels=8,
        fc_input_norm=False,
        lr=3e-3,
        flip_test=True,
        data_root="elsewhere",
    )
    given = Config.cpu_demo()
    assert all(trained.group("model")[k] != given.group("model")[k] for k in MODEL_FIELDS)
    path = tmp_path / "snapshot_0.pth.tar"
    net = InterNet.from_config(trained)
    save_checkpoint(
        path,
        {
            "epoch": 0,
            "network": {k: v for k, v in net.state_dict().items()},
            "train_state": {"config": trained.to_dict()},
        },
    )
    model, cfg, info = load_model(path, given)
    assert cfg.group("model") == trained.group("model")
    assert set(info["changed"]) == set(MODEL_FIELDS)
    for group in ("data", "training", "test", "runtime"):
        assert cfg.group(group) == given.group(group), group


def test_the_loss_owns_its_terms_and_weights():
    """InterNetLoss returns exactly its TERMS; the weights are checked against them; the total weights them."""
    torch.manual_seed(0)
    batch = torch.utils.data.default_collate([RandomHands(2)[i] for i in range(2)])
    loss = InterNetLoss(weights=(2.0, 0.5, 3.0))
    terms = loss(TinyInterNet()(batch["img"]), batch)
    assert tuple(terms) == InterNetLoss.TERMS
    want = 2.0 * terms["joint_heatmap"] + 0.5 * terms["rel_root_depth"] + 3.0 * terms["hand_type"]
    assert torch.equal(loss.total(terms), want)
    logged = {f"loss_{k}": float(v.detach()) for k, v in terms.items()}
    assert loss.total(logged) == pytest.approx(float(want.detach()))
    for bad in ((1.0, 1.0), (1.0, -1.0, 1.0), (1.0, float("nan"), 1.0), ("a", 1.0, 1.0)):
        with pytest.raises(ConfigError, match="loss_weights.*joint_heatmap, rel_root_depth, hand_type"):
            InterNetLoss(weights=bad)
    assert InterNetLoss.from_config(Config.cpu_demo()).weights == {
        "joint_heatmap": 1.0,
        "rel_root_depth": 1.0,
        "hand_type": 10.0,
    }


def test_internet_parameter_groups_put_its_linear_heads_apart():
    net = InterNet(resnet_type=18, head_channels=8)
    (one,) = param_groups(net)
    assert one["lr_max"] is None and len(one["params"]) == len(list(net.parameters()))
    rest, heads = param_groups(net, linear_lr_max=1e-3)
    fc = {id(p) for m in (net.pose_net.root_fc, net.pose_net.hand_fc) for p in m.parameters()}
    assert {id(p) for p in heads["params"]} == fc and heads["lr_max"] == 1e-3
    assert {id(p) for p in rest["params"]} == {id(p) for p in net.parameters()} - fc and rest["lr_max"] is None


def _order(**changes):
    return {"seed": 0, "num_samples": 10, "global_batch_size": 2, "world_size": 1, "batches_per_epoch": 5, **changes}


def test_resume_state_round_trip_through_internet_checkpoint(tmp_path):
    """training_checkpoint writes the official entries plus train_state; resume_training restores weights,
    optimizer, RNG and position, and refuses a changed data order inside an epoch, naming the file."""
    cfg = Config.cpu_demo(lr=1e-3)
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    random.seed(5)
    np.random.seed(5)
    state = training_checkpoint(net, opt, cfg, epoch=1, position=(1, 3, 8), data_order=_order())
    assert set(state) == {"epoch", "network", "optimizer", "train_state"}
    assert set(state["network"]) == {"module.weight", "module.bias"}
    assert state["train_state"]["config"] == cfg.to_dict()
    path = save_checkpoint(tmp_path / "snapshot_1_iter3.pth.tar", state)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    fresh = nn.Linear(3, 2)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    assert resume_training(
        path, fresh, fresh_opt, cfg, data_order=_order(world_size=2), optimizer_flags={"foreach": None}
    ) == (1, 3, 8)
    assert torch.equal(fresh.weight, net.weight)
    assert torch.equal(fresh_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    with pytest.raises(ResumeError, match=r"snapshot_1_iter3\.pth\.tar stopped inside epoch 1.*seed: 0 -> 1"):
        resume_training(
            path,
            nn.Linear(3, 2),
            torch.optim.Adam(nn.Linear(3, 2).parameters()),
            cfg,
            data_order=_order(seed=1),
            optimizer_flags={},
        )
