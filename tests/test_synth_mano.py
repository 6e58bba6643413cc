"""The synthetic data set's MANO-format model and NeuralAnnot fits: official layout, and fits that reproduce the
synthetic joints; the reader (streamed, cached, missing frames and null hands) and camera-space meshes."""

from __future__ import annotations

import json
import pickletools

import numpy as np
import pytest
import torch

from internet.data.index_cache import load_index
from internet.data.interhand import resolve_sources
from internet.data.io import DataFileError
from internet.data.mano_fits import fits_path, load_mano_fits, read_mano_fits
from internet.mano import load_mano, load_mano_pair, mano_layers
from internet.mano.gt import GroundTruthMeshes, summarise_fitting_errors
from internet.synth import generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_mano") / "InterHand2.6M"
    generate(root, seed=5, n_train=0, n_val=0, n_test=300, with_images=False)
    return root


def test_synthetic_model_files_have_the_official_layout(synth):
    for name in ("MANO_RIGHT.pkl", "MANO_LEFT.pkl"):
        raw = (synth / "mano" / name).read_bytes()
        globals_ = {a for op, a, _ in pickletools.genops(raw) if op.name == "GLOBAL"}
        assert {"chumpy.ch Ch", "chumpy.reordering Select", "scipy.sparse.csc csc_matrix"} <= globals_
        m = load_mano(synth / "mano" / name)
        assert m.synthetic and m.v_template.shape == (778, 3) and m.faces.shape == (1538, 3)
        assert m.shapedirs.shape == (778, 3, 10) and m.posedirs.shape == (778, 3, 135)
        assert m.hands_components.shape == (45, 45) and m.J_regressor.shape == (16, 778)
    assert "NOT the MANO model" in (synth / "mano" / "README_SYNTHETIC.txt").read_text()
    raw = load_mano_pair(synth / "mano", fix_left_shapedirs_flag=False)
    assert np.array_equal(raw["left"].shapedirs, raw["right"].shapedirs)  # as the official left file
    fixed = load_mano_pair(synth / "mano")
    assert np.array_equal(fixed["left"].shapedirs[:, 0], -raw["right"].shapedirs[:, 0])


def test_fits_reproduce_the_synthetic_joints(synth):
    layers = mano_layers(synth / "mano", dtype=torch.float64)
    fits = read_mano_fits(fits_path(synth, "test"))
    joint_3d = json.loads((synth / "annotations" / "test" / "InterHand2.6M_test_joint_3d.json").read_text())
    errs, n = [], 0
    for cap, frames in joint_3d.items():
        for frame, rec in frames.items():
            world = np.asarray(rec["world_coord"])
            valid = np.asarray(rec["joint_valid"]).ravel().astype(bool)
            for h, hand in enumerate(("right", "left")):
                fit = fits.lookup(int(cap), int(frame), hand)
                if fit is None:
                    assert rec["hand_type"] != hand and rec["hand_type"] != "interacting" or not valid[21 * h :].any()
                    continue
                p = {k: torch.as_tensor(v)[None] for k, v in fit.items()}
                joints = layers[hand].mesh_mm(p["pose"], p["shape"], p["trans"]).ih26m_mm[0].numpy()
                v = valid[21 * h : 21 * h + 21]
                errs.append(np.linalg.norm(joints - world[21 * h : 21 * h + 21], axis=1)[v])
                n += 1
    err = np.concatenate(errs)
    assert n > 100 and err.max() < 0.01  # mm: exact up to the JSON's float32 joints


def test_camera_space_meshes_and_fitting_error_summary(synth, tmp_path):
    sources, _ = resolve_sources(synth, "test")
    index = load_index(sources, synth, cache=False)
    gt = GroundTruthMeshes(
        synth, "test", mano_layers(synth / "mano"), fits=load_mano_fits(fits_path(synth, "test"), cache_dir=tmp_path)
    )
    cols = [index[k] for k in ("capture", "camera", "frame", "joint_cam", "joint_valid")]
    err = gt.fitting_errors(*cols)
    s = summarise_fitting_errors(err)
    print(s)
    assert s["hands"] > len(index) and s["max_mm"] < 0.05 and s["mean_mm"] < 0.02  # float32 layer and camera
    m = gt.meshes(*cols[:3])
    assert m["right"]["vertices"].shape == (len(index), 778, 3)
    assert np.isnan(m["right"]["vertices"][~m["right"]["valid"]]).all()
    assert (m["right"]["vertices"][m["right"]["valid"]][..., 2] > 300).all()  # in front of the camera


def test_reader_handles_missing_frames_null_hands_cache_and_errors(tmp_path):
    path = tmp_path / "annotations" / "test" / "InterHand2.6M_test_MANO_NeuralAnnot.json"
    path.parent.mkdir(parents=True)
    P = {"pose": [0.1] * 48, "shape": [0.2] * 10, "trans": [0.0, 0.1, 1.0]}
    path.write_text(json.dumps({"3": {"12": {"right": P, "left": None}, "6": {"right": None, "left": P}}}))
    fits = load_mano_fits(path, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("mano_fits-*.npz"))) == 1
    again = load_mano_fits(path, cache_dir=tmp_path / "cache")
    assert np.array_equal(again.params, fits.params) and np.array_equal(again.valid, fits.valid)
    assert (
        fits.lookup(3, 12, "left") is None
        and fits.lookup(3, 99, "right") is None
        and fits.lookup(4, 12, "right") is None
    )
    assert np.allclose(fits.lookup(3, 6, "left")["trans"], [0.0, 0.1, 1.0])
    params, valid = fits.get([3, 3, 3], [6, 12, 7])
    assert valid.tolist() == [[False, True], [True, False], [False, False]] and params.shape == (3, 2, 61)
    path.write_text(json.dumps({"3": {"12": {"right": {"pose": [0.1] * 47, "shape": [0] * 10, "trans": [0] * 3}}}}))
    with pytest.raises(DataFileError, match=r"capture 3 frame 12 right: 'pose' must be 48"):
        read_mano_fits(path)
