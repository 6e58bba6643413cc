"""internet.evaluation.pck: PCK curve and AUC on constructed errors with known answers, root alignment, the labelled
extra in eval_{split}.json, and the analysis figure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from internet.evaluation.pck import LABEL, auc, pck_curve, pck_report, root_aligned_joint_errors
from internet.evaluation.results import read_results, write_results
from internet.skeleton import INTERHAND


def test_pck_and_auc_known_answers():
    t = np.linspace(0, 50, 51)
    # errors uniform on 0..50 mm: PCK(t) = t / 50, AUC = 0.5
    e = np.linspace(0, 50, 100001)
    assert pck_curve(e, t) == pytest.approx(t / 50, abs=1e-4)
    assert auc(t, pck_curve(e, t)) == pytest.approx(0.5, abs=1e-4)
    # every error 10 mm: PCK 0 below 10, 1 from 10 on; AUC = (50 - 10 + 0.5) / 50 with 1 mm trapezoids
    p = pck_curve(np.full((7, 42), 10.0), t)
    assert p[:10].sum() == 0 and (p[10:] == 1).all()
    assert auc(t, p) == pytest.approx(40.5 / 50)
    # perfect: AUC 1; NaN (invalid) joints are not counted
    assert auc(t, pck_curve(np.array([0.0, np.nan, 0.0]), t)) == 1.0
    assert np.isnan(pck_curve(np.array([np.nan]), t)).all()


def test_root_alignment_and_report():
    rng = np.random.default_rng(0)
    gt = rng.normal(0, 50, (3, 42, 3)) + [0, 0, 500]
    shifted = gt + [[[100.0, -20.0, 300.0]]]  # the same hands elsewhere: zero root-aligned error
    assert np.allclose(root_aligned_joint_errors(shifted, gt), 0)
    pred = gt.copy()
    tip = INTERHAND.index("r_index4")
    pred[:, tip] += [30.0, 40.0, 0.0]  # one joint 50 mm off
    valid = np.ones((3, 42))
    valid[2, tip] = 0
    err = root_aligned_joint_errors(pred, gt, valid)
    assert err[0, tip] == pytest.approx(50.0) and np.isnan(err[2, tip]) and np.nansum(err) == pytest.approx(100.0)
    rep = pck_report(err, hand_type=np.array(["interacting", "right", "right"]))
    assert rep["label"] == LABEL and "not part of the official protocol" in rep["label"]
    assert rep["range_mm"] == [0.0, 50.0] and len(rep["thresholds_mm"]) == len(rep["pck"]) == 51
    assert rep["joints"] == 3 * 42 - 1
    # 2 of 125 joints at 50 mm, the rest at 0: PCK = 123/125 below 50 mm, 1 at 50
    assert rep["pck"][0] == pytest.approx(123 / 125, abs=1e-6) and rep["pck"][-1] == 1.0
    assert rep["auc"] == pytest.approx((123 / 125 * 49 + 0.5 * (123 / 125 + 1)) / 50, abs=1e-6)  # trapezoids
    assert rep["by_hand_type"]["interacting"]["joints"] == 42 and rep["by_hand_type"]["right"]["joints"] == 83
    with pytest.raises(ValueError, match="range_mm"):
        pck_report(err, (50, 0))


def test_extras_are_written_beside_the_official_protocol(tmp_path):
    rep = pck_report(np.zeros((2, 42)))
    paths = write_results(tmp_path, "test", {"index": np.arange(2)}, {"official_protocol": {"mpjpe": 1.0}},
                          {"split": "test"}, extras={"pck_3d": rep})  # fmt: skip
    doc = read_results(tmp_path, "test")
    assert doc["official_protocol"] == {"mpjpe": 1.0} and doc["extras"]["pck_3d"]["auc"] == 1.0
    assert doc["extras"]["pck_3d"]["label"] == LABEL
    assert "extras" not in json.loads(
        write_results(tmp_path, "val", {"index": np.arange(1)}, {"x": 1}, {})["eval"].read_text()
    )
    assert paths["eval"].name == "eval_test.json"


def test_error_analysis_figure():
    from internet.vis.analysis import error_analysis_figure

    fig = error_analysis_figure({"a": np.full(100, 10.0), "b": np.linspace(0, 80, 100)})
    ax_p = fig.axes[1]
    labels = [t.get_text() for t in ax_p.get_legend().get_texts()]
    assert labels[0] == "a (AUC {:.3f})".format(40.5 / 50) and labels[1].startswith("b (AUC ")
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
