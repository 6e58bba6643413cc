"""MANO layer, loader and InterHand2.6M adapter: the invariants of the model on random MANO-format models."""

from __future__ import annotations

import pickle
import pickletools

import numpy as np
import pytest
import torch
from mano_models import PARENTS, load_dict, mirrored_left_dict, random_model_dict

from internet.mano import ManoFileError, load_mano, mano_layers
from internet.mano.camera import camera_parameters, mesh_in_camera, naive_camera_parameters, rest_wrist
from internet.mano.layer import ManoLayer, matrix_to_axis_angle, rodrigues
from internet.mano.loader import TIP_VERTICES, fix_left_shapedirs, restricted_loads
from internet.skeleton import INTERHAND
from internet.synth.mano_pickle import dumps_py2, os_system_payload, unlisted_global_payload

D = torch.float64


def layer(model, **kw):
    return ManoLayer(model, dtype=D, **kw)


def rand(*shape, scale=1.0, seed=0):
    return torch.as_tensor(np.random.default_rng(seed).normal(0.0, scale, size=shape), dtype=D)


@pytest.fixture(scope="module")
def model():
    return load_dict(random_model_dict(0))


def test_zero_pose_gives_the_template(model):
    out = layer(model, flat_hand_mean=True)(betas=torch.zeros(2, 10, dtype=D))
    assert (out.vertices[0] - torch.as_tensor(model.v_template, dtype=D)).abs().max() < 1e-15
    assert out.vertices.shape == (2, 778, 3) and out.joints.shape == (2, 16, 3) and out.ih26m.shape == (2, 21, 3)
    assert torch.allclose(out.vertices_mm, out.vertices * 1000)


def test_shape_only(model):
    beta = rand(3, 10)
    out = layer(model, flat_hand_mean=True)(betas=beta)
    v_shaped = model.v_template + np.einsum("vcs,bs->bvc", model.shapedirs, beta.numpy())
    assert np.allclose(out.vertices.numpy(), v_shaped, atol=1e-12)
    assert np.allclose(out.joints.numpy(), np.einsum("jv,bvc->bjc", model.J_regressor, v_shaped), atol=1e-12)


def test_translation_adds(model):
    L = layer(model)
    args = dict(global_orient=rand(2, 3), hand_pose=rand(2, 45, scale=0.3, seed=1), betas=rand(2, 10, seed=2))
    a, b = L(**args), L(**args, transl=torch.tensor([[0.1, -0.2, 0.3]] * 2, dtype=D))
    assert torch.allclose(b.vertices, a.vertices + torch.tensor([0.1, -0.2, 0.3], dtype=D), atol=1e-12)
    assert torch.allclose(b.ih26m, a.ih26m + torch.tensor([0.1, -0.2, 0.3], dtype=D), atol=1e-12)


def test_root_rotation_is_about_the_shaped_rest_wrist(model):
    beta, root = rand(2, 10, seed=3), rand(2, 3, seed=4)
    out = layer(model, flat_hand_mean=True)(global_orient=root, betas=beta)
    v_shaped = torch.as_tensor(model.v_template, dtype=D) + torch.einsum("vcs,bs->bvc", layer(model).shapedirs, beta)
    J0 = torch.einsum("v,bvc->bc", torch.as_tensor(model.J_regressor[0], dtype=D), v_shaped)
    R = rodrigues(root)
    expect = torch.einsum("bij,bvj->bvi", R, v_shaped - J0[:, None]) + J0[:, None]
    assert torch.allclose(out.vertices, expect, atol=1e-12)
    assert torch.allclose(out.joints[:, 0], J0, atol=1e-12)


def _descendants(i: int) -> set:
    out = {i}
    for j in range(16):
        k = j
        while k >= 0:
            if k == i:
                out.add(j)
            k = PARENTS[k]
    return out


def test_rotating_a_joint_leaves_vertices_of_other_branches_fixed():
    m = load_dict(random_model_dict(1, posedirs=False))
    L = layer(m, flat_hand_mean=True)
    pose = torch.zeros(1, 45, dtype=D)
    pose[0, 3 * 3 : 3 * 3 + 3] = torch.tensor([0.4, -0.3, 0.8])  # MANO joint 4 (middle1)
    moved = (L(hand_pose=pose).vertices - L().vertices).norm(dim=-1)[0].numpy()
    desc = sorted(_descendants(4))
    outside = m.weights[:, desc].sum(1) == 0
    inside = m.weights[:, desc].sum(1) > 0.5
    assert outside.sum() > 10 and np.abs(moved[outside]).max() < 1e-14
    assert moved[inside].min() > 0


def test_one_hot_weights_move_parts_rigidly():
    m = load_dict(random_model_dict(2, posedirs=False, one_hot=True))
    L = layer(m)
    out = L(global_orient=rand(1, 3), hand_pose=rand(1, 45, scale=0.5, seed=5), betas=rand(1, 10, seed=6))
    v_shaped = L(betas=rand(1, 10, seed=6), hand_pose=-L.hands_mean[None], global_orient=torch.zeros(1, 3, dtype=D))
    part = m.weights.argmax(1)
    for j in (0, 5, 15):
        idx = np.nonzero(part == j)[0]
        a, b = v_shaped.vertices[0, idx], out.vertices[0, idx]
        d0, d1 = (a[:, None] - a[None]).norm(dim=-1), (b[:, None] - b[None]).norm(dim=-1)
        assert len(idx) > 5 and torch.allclose(d0, d1, atol=1e-12)


def test_flat_hand_mean_and_pca(model):
    p, root = rand(2, 45, scale=0.3, seed=7), rand(2, 3, seed=8)
    mean = torch.as_tensor(model.hands_mean, dtype=D)
    a = layer(model, flat_hand_mean=False)(global_orient=root, hand_pose=p)
    b = layer(model, flat_hand_mean=True)(global_orient=root, hand_pose=p + mean)
    assert torch.allclose(a.vertices, b.vertices, atol=1e-12)
    assert not torch.allclose(a.vertices, layer(model, flat_hand_mean=True)(global_orient=root, hand_pose=p).vertices)
    c = rand(2, 6, seed=9)
    pca = layer(model, use_pca=True, num_pca_comps=6, flat_hand_mean=True)(global_orient=root, hand_pose=c)
    full = layer(model, flat_hand_mean=True)(
        global_orient=root, hand_pose=c @ torch.as_tensor(model.hands_components[:6])
    )
    assert torch.allclose(pca.vertices, full.vertices, atol=1e-12)


def test_gradients_flow(model):
    p = rand(2, 45, scale=0.2).requires_grad_()
    layer(model)(hand_pose=p).ih26m.sum().backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    aa = torch.randn(200, 3, dtype=D)
    assert torch.allclose(rodrigues(matrix_to_axis_angle(rodrigues(aa))), rodrigues(aa), atol=1e-10)


def test_camera_methods_agree_and_the_naive_one_is_off_by_R_minus_I_J0(model):
    L = layer(model)
    pose, shape, trans = rand(3, 48, scale=0.4, seed=10), rand(3, 10, seed=11), rand(3, 3, scale=0.2, seed=12)
    R = rodrigues(torch.tensor([0.3, -1.2, 0.5], dtype=D))
    campos = torch.tensor([100.0, -400.0, 900.0], dtype=D)
    v1, j1 = mesh_in_camera(L, pose, shape, trans, R, campos)
    pose_c, trans_c = camera_parameters(L, pose, shape, trans, R, campos)
    v2 = L.mesh_mm(pose_c, shape, trans_c).vertices_mm
    assert (v1 - v2).abs().max() < 1e-6
    pose_n, trans_n = naive_camera_parameters(L, pose, shape, trans, R, campos)
    v3 = L.mesh_mm(pose_n, shape, trans_n).vertices_mm
    J0 = rest_wrist(L, shape)
    offset = torch.einsum("ij,bj->bi", R - torch.eye(3, dtype=D), J0) * 1000
    assert offset.norm(dim=-1).min() > 5.0  # mm: the naive method is visibly wrong
    assert torch.allclose(v1 - v3, offset[:, None].expand_as(v1), atol=1e-6)


def test_left_fix_is_idempotent_and_mirror_consistent():
    right_d = random_model_dict(3, posedirs=False)
    right = load_dict(right_d)
    left_raw = load_dict(mirrored_left_dict(right_d), side="left")
    assert np.array_equal(left_raw.shapedirs, right.shapedirs)  # the official file's bug
    left = left_raw.with_left_shapedirs_fix(right)
    assert np.array_equal(left.shapedirs[:, 0], -right.shapedirs[:, 0])
    assert np.array_equal(fix_left_shapedirs(left.shapedirs, right.shapedirs), left.shapedirs)
    Lr, Ll, Lbad = layer(right), layer(left), layer(left_raw)
    root, hp, beta = rand(2, 3, seed=13), rand(2, 45, scale=0.3, seed=14), rand(2, 10, seed=15) * 2
    m3 = torch.tensor([1.0, -1.0, -1.0], dtype=D)
    r = Lr(global_orient=root, hand_pose=hp, betas=beta)
    args = dict(global_orient=root * m3, hand_pose=hp * m3.repeat(15), betas=beta)
    mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=D)
    assert torch.allclose(Ll(**args).vertices * mirror, r.vertices, atol=1e-12)
    assert torch.allclose(Ll(**args).ih26m * mirror, r.ih26m, atol=1e-12)
    assert (Lbad(**args).vertices * mirror - r.vertices).abs().max() > 1e-3


def test_loader_unwraps_chumpy_and_csc_and_checks_keys(tmp_path):
    d = random_model_dict(4)
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(dumps_py2(d))
    globals_ = {a for op, a, _ in pickletools.genops(path.read_bytes()) if op.name == "GLOBAL"}
    assert {"chumpy.ch Ch", "chumpy.reordering Select", "scipy.sparse.csc csc_matrix"} <= globals_
    assert "numpy.core.multiarray _reconstruct" in globals_
    m = load_mano(path)
    assert m.side == "right" and m.faces.dtype == np.int64 and m.faces.shape == (1538, 3)
    assert np.array_equal(m.v_template, d["v_template"].state["x"])
    assert np.array_equal(m.shapedirs, d["shapedirs"].state["a"].state["x"].reshape(778, 3, 10))
    dense = np.zeros((16, 778))
    st = d["J_regressor"].state
    for c in range(778):
        for k in range(st["indptr"][c], st["indptr"][c + 1]):
            dense[st["indices"][k], c] = st["data"][k]
    assert np.array_equal(m.J_regressor, dense) and m.J_regressor.shape == (16, 778)
    assert list(m.parents) == list(PARENTS)
    del d["weights"]
    path.write_bytes(dumps_py2(d))
    with pytest.raises(ManoFileError, match=r"MANO_RIGHT.pkl.*missing key.*'weights'"):
        load_mano(path)
    d = random_model_dict(4)
    d["f"] = d["f"].astype(np.int64) + 1000
    path.write_bytes(dumps_py2(d))
    with pytest.raises(ManoFileError, match="'f'"):
        load_mano(path)


def test_loader_refuses_code_and_unlisted_globals(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(os_system_payload(f"touch {marker}"))
    with pytest.raises(ManoFileError, match=r"'os\.system' is not allowed"):
        load_mano(path)
    assert not marker.exists()
    data, name = unlisted_global_payload("collections", "OrderedDict")
    assert pickle.loads(data) == {}  # a plain unpickler would accept it
    with pytest.raises(pickle.UnpicklingError, match=name):
        restricted_loads(data)
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        restricted_loads(b"cbuiltins\neval\n(V1\ntR.")


def test_missing_files_name_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        mano_layers(tmp_path)
    msg = str(e.value)
    assert "MANO_RIGHT.pkl" in msg and "mano.is.tue.mpg.de" in msg and str(tmp_path) in msg and "mano_dir" in msg


def test_ih26m_regressor_rows(model):
    reg = model.ih26m_regressor()
    assert reg.shape == (21, 778) and np.allclose(reg.sum(1), 1.0)
    for row, v in zip((0, 4, 8, 12, 16), TIP_VERTICES):
        assert reg[row, v] == 1.0 and np.count_nonzero(reg[row]) == 1
    assert np.array_equal(reg[20], model.J_regressor[0])  # wrist last
    # Bones: each InterHand2.6M joint's parent is its MANO source's parent (tips hang from their chain's last joint).
    src = {}
    for j in range(21):
        row = reg[j]
        match = [k for k in range(16) if np.array_equal(row, model.J_regressor[k])]
        src[j] = match[0] if match else None
    for child, parent in INTERHAND.bones[:20]:
        if src[child] is None:  # a tip: its parent is a MANO joint without children
            assert src[parent] not in PARENTS
        else:
            assert PARENTS[src[child]] == src[parent]
