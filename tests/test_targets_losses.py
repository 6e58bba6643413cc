"""Targets and losses: parity with the official fixtures, and the fast heatmap loss against the dense reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from vendored import OFFICIAL as FIXTURES

from internet.model.losses import (
    InterNetLoss,
    hand_type_loss,
    hand_type_loss_from_probs,
    joint_heatmap_loss_dense,
    joint_heatmap_loss_fast,
    rel_root_depth_loss,
)
from internet.model.targets import gaussian_factors, render_gaussian_heatmap


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def test_mode():
    return dict(np.load(FIXTURES / "data_test_mode.npz"))


def _random_case(seed: int, b: int = 2, j: int = 5, shape=(12, 10, 8), sigma: float = 1.7):
    """Random coordinates inside (and a few outside) a small non-cubic volume, random validity."""
    g = torch.Generator().manual_seed(seed)
    d, h, w = shape
    coord = torch.rand(b, j, 3, generator=g) * torch.tensor([w + 4.0, h + 4.0, d + 4.0]) - 2.0
    valid = (torch.rand(b, j, generator=g) > 0.3).float()
    return coord, valid, shape, sigma


# ----------------------------------------------------------------------------------------------------- targets
def test_target_matches_official_probe_total_and_peak():
    ref = np.load(FIXTURES / "target_heatmap.npz")
    target = render_gaussian_heatmap(torch.from_numpy(ref["joint_coord"]), (64, 64, 64), 2.5)
    assert target.dtype == torch.float32 and target.shape == (3, 42, 64, 64, 64)
    np.testing.assert_allclose(target[:, :, ::8, ::8, ::8].numpy(), ref["probe"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(target.sum((2, 3, 4), dtype=torch.float64).numpy(), ref["total"], rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(target.amax((2, 3, 4)).numpy(), ref["peak"], rtol=1e-6, atol=1e-4)


def test_target_axis_order_and_integer_grid():
    coord = torch.tensor([[[3.0, 5.0, 7.0]]])  # x=3, y=5, z=7
    target = render_gaussian_heatmap(coord, (9, 8, 6), sigma=1.0)
    assert target.shape == (1, 1, 9, 8, 6)
    assert target[0, 0, 7, 5, 3] == pytest.approx(255.0)
    assert target[0, 0].argmax().item() == np.ravel_multi_index((7, 5, 3), (9, 8, 6))
    assert target[0, 0, 7, 5, 4] == pytest.approx(255.0 * np.exp(-0.5), rel=1e-6)  # one voxel along x
    assert target[0, 0, 8, 5, 3] == pytest.approx(255.0 * np.exp(-0.5), rel=1e-6)  # one voxel along z


def test_factors_outer_product_equals_dense_target():
    coord, _, shape, sigma = _random_case(0)
    gx, gy, gz = gaussian_factors(coord, shape, sigma)
    assert gx.shape == (2, 5, shape[2]) and gy.shape == (2, 5, shape[1]) and gz.shape == (2, 5, shape[0])
    outer = 255 * gz[..., :, None, None] * gy[..., None, :, None] * gx[..., None, None, :]
    torch.testing.assert_close(outer, render_gaussian_heatmap(coord, shape, sigma), rtol=1e-5, atol=1e-4)


def test_target_dtype_from_double_input_and_bad_args():
    coord = torch.zeros(1, 2, 3, dtype=torch.float64)
    assert render_gaussian_heatmap(coord, (4, 4, 4)).dtype == torch.float32
    with pytest.raises(ValueError, match="joint_coord"):
        render_gaussian_heatmap(torch.zeros(2, 3), (4, 4, 4))
    with pytest.raises(ValueError, match="sigma"):
        gaussian_factors(torch.zeros(1, 1, 3), (4, 4, 4), sigma=0.0)
    with pytest.raises(ValueError, match="hm_shape"):
        render_gaussian_heatmap(torch.zeros(1, 1, 3), (4, 4))


# ----------------------------------------------------------------------------------------------------- official losses
def test_rel_root_depth_loss_matches_official(test_mode):
    ref = json.loads((FIXTURES / "loss_values.json").read_text())["rel_root_depth_given_output"]
    out = torch.tensor(ref["output_bins"], dtype=torch.float32)
    loss = rel_root_depth_loss(
        out, torch.from_numpy(test_mode["rel_root_depth"]), torch.from_numpy(test_mode["root_valid"])
    )
    assert loss.item() == pytest.approx(ref["loss"], rel=1e-6)


def test_hand_type_loss_probs_and_logits_match_official(test_mode):
    ref = json.loads((FIXTURES / "loss_values.json").read_text())["hand_type_given_probs"]
    probs = torch.tensor(ref["probs"], dtype=torch.float32)
    gt = torch.from_numpy(test_mode["hand_type"])
    valid = torch.from_numpy(test_mode["hand_type_valid"])
    assert hand_type_loss_from_probs(probs, gt, valid).item() == pytest.approx(ref["loss"], rel=1e-6)
    logits = torch.logit(probs.double()).float()
    assert hand_type_loss(logits, gt, valid).item() == pytest.approx(ref["loss"], rel=1e-5)
    # hand_type_valid masks per sample; the batch mean still divides by B
    valid0 = valid.clone()
    valid0[0] = 0
    per = torch.nn.functional.binary_cross_entropy(probs, gt, reduction="none").mean(1)
    assert hand_type_loss(logits, gt, valid0).item() == pytest.approx(per[1:].sum().item() / 3, rel=1e-5)


def test_hand_type_loss_with_logits_is_finite_when_saturated():
    logits = torch.tensor([[40.0, -40.0]], requires_grad=True)
    gt = torch.tensor([[0.0, 1.0]])
    loss = hand_type_loss(logits, gt, torch.ones(1))
    loss.backward()
    assert torch.isfinite(loss) and loss.item() == pytest.approx(40.0, rel=1e-4)
    # the official probability form: sigmoid(40) rounds to 1, log(1 - 1) is clamped at -100; sigmoid(-40) ~ 4e-18
    probs = torch.sigmoid(logits.detach())
    assert probs[0, 0].item() == 1.0
    assert hand_type_loss_from_probs(probs, gt, torch.ones(1)).item() == pytest.approx((100.0 + 40.0) / 2, rel=1e-4)


def test_heatmap_loss_denominator_counts_invalid_joints():
    coord, valid, shape, sigma = _random_case(1)
    pred = torch.randn(2, 5, *shape) * 30
    target = render_gaussian_heatmap(coord, shape, sigma)
    expected = (((pred - target) ** 2).sum((2, 3, 4)) * valid).sum() / pred.numel()
    for fn in (joint_heatmap_loss_dense, joint_heatmap_loss_fast):
        assert fn(pred, coord, valid, sigma).item() == pytest.approx(expected.item(), rel=1e-5)


# ----------------------------------------------------------------------------------------------------- fast == dense
def _compare(pred: torch.Tensor, coord, valid, sigma, rtol: float):
    p1 = pred.clone().requires_grad_()
    p2 = pred.clone().requires_grad_()
    dense = joint_heatmap_loss_dense(p1, coord, valid, sigma)
    fast = joint_heatmap_loss_fast(p2, coord, valid, sigma)
    dense.backward()
    fast.backward()
    assert fast.dtype == torch.float32
    assert fast.item() == pytest.approx(dense.item(), rel=rtol)
    torch.testing.assert_close(p2.grad, p1.grad, rtol=1e-4, atol=1e-4 * p1.grad.abs().max().item())
    return dense.item(), fast.item()


def test_fast_loss_equals_dense_on_random_predictions():
    coord, valid, shape, sigma = _random_case(2, b=3, j=4, shape=(16, 12, 20), sigma=2.5)
    _compare(torch.randn(3, 4, *shape) * 40, coord, valid, sigma, rtol=1e-5)


def test_fast_loss_equals_dense_near_the_real_targets(test_mode):
    """Near-target predictions make the three terms of the fast loss nearly cancel (~6e6 each per joint)."""
    coord = torch.from_numpy(test_mode["joint_coord"])
    valid = torch.from_numpy(test_mode["joint_valid"])
    target = render_gaussian_heatmap(coord)
    g = torch.Generator().manual_seed(3)
    near = target * 1.01 + 0.1 * torch.randn(target.shape, generator=g)
    dense, fast = _compare(near, coord, valid, 2.5, rtol=1e-4)
    assert 1e-3 < dense < 1e-1  # the case really is near the target
    assert joint_heatmap_loss_fast(target, coord, valid).item() == pytest.approx(0.0, abs=1e-6)


def test_fast_loss_gradcheck_double():
    coord, valid, shape, sigma = _random_case(4, b=2, j=2, shape=(5, 4, 3), sigma=1.3)
    pred = (torch.randn(2, 2, *shape, dtype=torch.float64) * 50).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: joint_heatmap_loss_fast(p, coord.double(), valid, sigma), (pred,))


def test_fast_loss_bf16_autocast_is_float32_and_matches_dense():
    coord, valid, shape, sigma = _random_case(5, shape=(16, 16, 16), sigma=2.5)
    target = render_gaussian_heatmap(coord, shape, sigma)
    pred = (target + torch.randn_like(target)).bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = joint_heatmap_loss_fast(pred, coord, valid, sigma)
        dense = joint_heatmap_loss_dense(pred.detach(), coord, valid, sigma)
    assert fast.dtype == torch.float32 and dense.dtype == torch.float32
    assert fast.item() == pytest.approx(dense.item(), rel=1e-5)
    fast.backward()
    assert pred.grad.dtype == torch.bfloat16
    expected = 2 * (pred.detach().float() - target) * valid[:, :, None, None, None] / pred.numel()
    torch.testing.assert_close(pred.grad.float(), expected, rtol=2e-2, atol=1e-2 * expected.abs().max().item())


def test_nan_target_of_invalid_joint_is_ignored():
    coord, valid, shape, sigma = _random_case(6)
    valid[0, 0] = 0
    coord[0, 0] = float("nan")
    pred = torch.randn(2, 5, *shape)
    for fn in (joint_heatmap_loss_dense, joint_heatmap_loss_fast):
        assert torch.isfinite(fn(pred, coord, valid, sigma))


def test_heatmap_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="joint_valid"):
        joint_heatmap_loss_fast(torch.zeros(1, 2, 3, 3, 3), torch.zeros(1, 2, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="heatmap_out"):
        joint_heatmap_loss_dense(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3), torch.zeros(1, 2))


# ----------------------------------------------------------------------------------------------------- InterNetLoss
def _outputs_and_batch(seed: int = 7, shape=(8, 8, 8)):
    coord, valid, _, _ = _random_case(seed, b=3, j=42, shape=shape, sigma=2.5)
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 2, generator=g)
    outputs = {
        "joint_heatmap": torch.randn(3, 42, *shape, generator=g) * 20,
        "rel_root_depth": torch.rand(3, 1, generator=g) * 64,
        "hand_type_logits": logits,
        "hand_type": torch.sigmoid(logits),
    }
    batch = {
        "joint_coord": coord,
        "joint_valid": valid,
        "rel_root_depth": torch.rand(3, 1, generator=g) * 64,
        "root_valid": torch.tensor([[1.0], [0.0], [1.0]]),
        "hand_type": torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        "hand_type_valid": torch.tensor([1.0, 1.0, 0.0]),
    }
    return outputs, batch


@pytest.mark.parametrize("fast", [True, False])
def test_each_internet_loss_term_is_the_official_function_of_its_own_batch_keys(fast):
    """Where the model output, the batch and the loss functions meet: each term equals the standalone official
    function called on the keys that belong to it (masks included: some joints, one root and one hand type are
    invalid, so a term that read another key's mask or target would differ)."""
    outputs, batch = _outputs_and_batch()
    assert batch["joint_valid"].min() == 0 and batch["root_valid"].min() == 0 and batch["hand_type_valid"].min() == 0
    terms = InterNetLoss(2.5, (8, 8, 8), fast=fast)(outputs, batch)
    assert set(terms) == {"joint_heatmap", "rel_root_depth", "hand_type"}
    expected = {
        "joint_heatmap": joint_heatmap_loss_dense(
            outputs["joint_heatmap"], batch["joint_coord"], batch["joint_valid"], 2.5
        ),
        "rel_root_depth": rel_root_depth_loss(outputs["rel_root_depth"], batch["rel_root_depth"], batch["root_valid"]),
        "hand_type": hand_type_loss(outputs["hand_type_logits"], batch["hand_type"], batch["hand_type_valid"]),
    }
    for k, v in terms.items():
        assert v.dtype == torch.float32 and v.dim() == 0
        assert v.item() == pytest.approx(expected[k].item(), rel=1e-5), k
    # without logits, the hand-type term is the official BCE on the probabilities
    probs_only = {k: v for k, v in outputs.items() if k != "hand_type_logits"}
    official = hand_type_loss_from_probs(outputs["hand_type"], batch["hand_type"], batch["hand_type_valid"])
    assert InterNetLoss(2.5, (8, 8, 8), fast=fast)(probs_only, batch)["hand_type"].item() == pytest.approx(
        official.item(), rel=1e-6
    )
    # the sigma reaches the heatmap term
    wide = InterNetLoss(3.5, (8, 8, 8), fast=fast)(outputs, batch)["joint_heatmap"]
    assert wide.item() == pytest.approx(
        joint_heatmap_loss_dense(outputs["joint_heatmap"], batch["joint_coord"], batch["joint_valid"], 3.5).item(),
        rel=1e-5,
    )
    assert wide.item() != pytest.approx(terms["joint_heatmap"].item(), rel=1e-3)


def test_internet_loss_terms_on_a_data_set_batch(tiny_data, tmp_path):
    """A training batch as the data set and the DataLoader build it (its keys, dtypes and shapes) reaches each term."""
    from internet.config import Config
    from internet.data import InterHand26M

    cfg = Config.cpu_demo(data_root=str(tiny_data), input_img_shape=(64, 64), output_hm_shape=(16, 16, 16), sigma=1.0)
    train = InterHand26M(cfg, "train", "train", cache_dir=tmp_path)
    n = len(train)
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=n)))
    assert 0 < batch["root_valid"].sum() < n  # interacting and single-hand samples
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(n, 2, generator=g)
    outputs = {
        "joint_heatmap": torch.randn(n, 42, 16, 16, 16, generator=g) * 50,
        "rel_root_depth": torch.rand(n, 1, generator=g) * cfg.output_root_hm_shape,
        "hand_type_logits": logits,
        "hand_type": torch.sigmoid(logits),
    }
    terms = InterNetLoss(cfg.sigma, cfg.output_hm_shape)(outputs, batch)
    expected = {
        "joint_heatmap": joint_heatmap_loss_dense(
            outputs["joint_heatmap"], batch["joint_coord"], batch["joint_valid"], cfg.sigma
        ),
        "rel_root_depth": rel_root_depth_loss(outputs["rel_root_depth"], batch["rel_root_depth"], batch["root_valid"]),
        "hand_type": hand_type_loss(logits, batch["hand_type"], batch["hand_type_valid"]),
    }
    for k, v in terms.items():
        assert v.item() == pytest.approx(expected[k].item(), rel=1e-5), k
        assert v.item() > 0, k


def test_internet_loss_backward_under_autocast():
    outputs, batch = _outputs_and_batch(shape=(8, 8, 8))
    heat = outputs["joint_heatmap"].requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = InterNetLoss(2.5, (8, 8, 8))({**outputs, "joint_heatmap": heat.bfloat16()}, batch)
    assert all(v.dtype == torch.float32 for v in losses.values())
    sum(losses.values()).backward()
    assert heat.grad is not None and torch.isfinite(heat.grad).all() and heat.grad.abs().sum() > 0


def test_internet_loss_names_missing_keys_and_bad_shapes():
    outputs, batch = _outputs_and_batch()
    loss = InterNetLoss(2.5, (8, 8, 8))
    with pytest.raises(KeyError, match="root_valid"):
        loss(outputs, {k: v for k, v in batch.items() if k != "root_valid"})
    with pytest.raises(KeyError, match="joint_heatmap"):
        loss({k: v for k, v in outputs.items() if k != "joint_heatmap"}, batch)
    with pytest.raises(ValueError, match="hm_shape"):
        InterNetLoss(2.5, (64, 64, 64))(outputs, batch)
