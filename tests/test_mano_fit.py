"""Fitting MANO to 21 joints: on the synthetic test split the fit lands within a few mm of the joints, ignores
masked joints, and recovers parameters that skin to the same joints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from internet.data.index_cache import load_index
from internet.data.interhand import resolve_sources
from internet.mano import mano_layers
from internet.mano.fit import fit_to_joints
from internet.synth import generate


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("mano_fit") / "InterHand2.6M"
    generate(root, seed=2, n_train=0, n_val=0, n_test=60, with_images=False)
    return root, load_index(resolve_sources(root, "test")[0], root, cache=False), mano_layers(root / "mano")


@pytest.mark.parametrize("h,side", [(0, "right"), (1, "left")])
def test_fit_to_synthetic_joints(split, h, side):
    root, index, layers = split
    jc, jv = index["joint_cam"][:, 21 * h : 21 * h + 21], index["joint_valid"][:, 21 * h : 21 * h + 21]
    sel = jv.sum(1) >= 15
    X, V = torch.as_tensor(jc[sel]), torch.as_tensor(jv[sel]).bool()
    X_masked = X.clone()
    X_masked[~V] = float("nan")  # masked joints must not matter, even as NaN
    r = fit_to_joints(layers[side], X_masked, V, iters=100)
    assert r.vertices.shape == (len(X), 778, 3) and r.pose.shape == (len(X), 48) and r.shape.shape == (len(X), 10)
    assert torch.isfinite(r.vertices).all()
    assert r.error_mm.mean() < 5.0 and r.error_mm.max() < 15.0
    again = layers[side].mesh_mm(r.pose, r.shape, r.trans)
    assert torch.allclose(again.ih26m_mm, r.joints, atol=1e-3)
    # The wrong hand's model fits worse: the fit does not just bend anything onto anything.
    wrong = fit_to_joints(layers["left" if side == "right" else "right"], X_masked[:16], V[:16], iters=100)
    assert wrong.error_mm.mean() > 2 * r.error_mm[:16].mean()
    d = np.linalg.norm(r.joints.numpy() - X.numpy(), axis=-1)[V.numpy()]
    assert d.mean() < 5.0
