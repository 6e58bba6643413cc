"""Random MANO-format models for tests (never the licensed MANO files): right, and its mirrored left with the
official file's bug (the right hand's shapedirs, unflipped)."""

from __future__ import annotations

import numpy as np

from internet.mano.loader import model_from_dict, restricted_loads
from internet.synth.mano_pickle import ch, csc, dumps_py2, select

PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14])
V = 778


def random_model_dict(seed: int = 0, posedirs: bool = True, one_hot: bool = False) -> dict:
    """A MANO-format dict with chumpy/scipy stand-ins: random template around a hand-sized box, random faces,
    Dirichlet (or one-hot) weights, a row-normalised sparse J_regressor, small posedirs/shapedirs, orthonormal
    hands_components and a non-zero hands_mean."""
    rng = np.random.default_rng(seed)
    v = rng.normal(0.0, 0.03, size=(V, 3)) + np.array([0.09, 0.006, 0.006])
    if one_hot:
        W = np.eye(16)[rng.integers(0, 16, size=V)]
    else:
        W = np.zeros((V, 16))  # each vertex on up to 3 joints, as MANO's sparse weights
        for i in range(V):
            W[i, rng.choice(16, size=3, replace=False)] = rng.dirichlet(np.ones(3))
    J = np.zeros((16, V))
    for j in range(16):
        idx = rng.choice(V, size=12, replace=False)
        J[j, idx] = rng.random(12) + 0.1
    J /= J.sum(1, keepdims=True)
    q, _ = np.linalg.qr(rng.normal(size=(45, 45)))
    kintree = np.stack([np.where(PARENTS < 0, 4294967295, PARENTS), np.arange(16)]).astype(np.int64)
    return {
        "v_template": ch(v),
        "f": rng.integers(0, V, size=(1538, 3)).astype(np.uint32),
        "J_regressor": csc(J),
        "weights": ch(W),
        "kintree_table": kintree,
        "posedirs": ch(rng.normal(0.0, 1e-3, size=(V, 3, 135)) * posedirs),
        "shapedirs": select(rng.normal(0.0, 3e-3, size=(V, 3, 10))),
        "hands_components": q,
        "hands_mean": rng.normal(0.0, 0.2, size=45),
        "hands_coeffs": rng.normal(size=(5, 45)),
        "J": ch(J @ v),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def mirrored_left_dict(right: dict) -> dict:
    """The left model as the official file: template mirrored in x, hands_mean mirrored, shapedirs copied
    unflipped (the bug InterHand2.6M's fix repairs). Needs ``posedirs`` zero to be exactly mirror-consistent."""
    left = dict(right)
    v = right["v_template"].state["x"] * np.array([-1.0, 1.0, 1.0])
    left["v_template"] = ch(v)
    left["hands_mean"] = right["hands_mean"] * np.tile([1.0, -1.0, -1.0], 15)
    return left


def load_dict(d: dict, side: str = "right"):
    """Round trip through the py2 pickle format and the restricted loader."""
    return model_from_dict(restricted_loads(dumps_py2(d)), side=side)
