"""The notebooks' one set-up helper (internet.app.params): every rule names a real parameter of its notebook, each
notebook checks its parameters through it, the rules stop at the first wrong value in order, the split rules follow
the data-set registry, and notebooks 01-03 show the data check (internet.data.check) before any long work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import papermill
import pytest

from internet.app.notebook import ParameterError, show_data_check
from internet.app.params import NOTEBOOK_PARAMS, check_notebook_params
from internet.config import Config

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))


def _code(name: str) -> str:
    nb = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


def _defaults(name: str) -> dict:
    return {
        k: eval(v["default"]) for k, v in papermill.inspect_notebook(str(REPO / "notebooks" / f"{name}.ipynb")).items()
    }


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_checks_its_own_parameters_through_the_helper(name):
    assert name in NOTEBOOK_PARAMS
    params = papermill.inspect_notebook(str(REPO / "notebooks" / f"{name}.ipynb"))
    unknown = set(NOTEBOOK_PARAMS[name]) - set(params)
    assert not unknown, f"{name}: rules for parameters the notebook does not have: {sorted(unknown)}"
    code = _code(name)
    assert f'check_notebook_params("{name}", globals())' in code
    assert "check_param(" not in code  # one helper, no hand-written checks left


def test_the_notebooks_defaults_pass_their_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    for name in NOTEBOOKS:
        values = {**_defaults(name), "data_root": str(tmp_path)}
        checked = check_notebook_params(name, values)
        if "data_root" in NOTEBOOK_PARAMS[name]:
            assert checked.data_root == tmp_path


def test_the_first_wrong_parameter_is_named_and_bounds_are_inclusive(tmp_path):
    values = {**_defaults("04_visualize_3d"), "data_root": str(tmp_path)}
    with pytest.raises(ParameterError, match=r"sample_index=-1: must be >= 0"):
        check_notebook_params("04_visualize_3d", {**values, "sample_index": -1, "n_browse": 0})
    with pytest.raises(ParameterError, match=r"n_browse=0: must be >= 1"):
        check_notebook_params("04_visualize_3d", {**values, "n_browse": 0})
    assert check_notebook_params("04_visualize_3d", {**values, "n_browse": 1, "sample_index": 0}).n_browse == 1
    with pytest.raises(ParameterError, match=r"hands=\['right', 'both'\]: a non-empty list"):
        check_notebook_params("04_visualize_3d", {**values, "hands": ["right", "both"]})
    video = _defaults("07_your_video")
    assert check_notebook_params("07_your_video", {**video, "momentum": 0.99}).momentum == 0.99
    with pytest.raises(ParameterError, match=r"momentum=1.0: must be <= 0.99"):
        check_notebook_params("07_your_video", {**video, "momentum": 1.0})
    with pytest.raises(ParameterError, match=r"data_root=.*no such folder"):
        check_notebook_params("06_sequences", {**_defaults("06_sequences"), "data_root": str(tmp_path / "absent")})
    with pytest.raises(ParameterError, match="missing from the notebook's parameters cell"):
        check_notebook_params("02_train", {"dataset": "InterHand2.6M"})


def test_boxes_come_back_as_arrays_and_split_rules_follow_the_registry(tmp_path):
    image = {**_defaults("05_your_image"), "bbox": [1, 2, 3, 4]}
    np.testing.assert_array_equal(check_notebook_params("05_your_image", image).bbox, [1, 2, 3, 4])
    with pytest.raises(ParameterError, match="width and height must be > 0"):
        check_notebook_params("05_your_image", {**image, "bbox": [1, 2, 0, 4]})
    evaluate = {**_defaults("03_evaluate"), "data_root": str(tmp_path)}
    with pytest.raises(ParameterError, match=r"split='val': RHD is evaluated on its 'train', 'test' split only"):
        check_notebook_params("03_evaluate", {**evaluate, "dataset": "RHD", "split": "val"})
    assert check_notebook_params("03_evaluate", {**evaluate, "dataset": "InterHand2.6M", "split": "val"}).split == "val"
    explore = {**_defaults("01_explore_dataset"), "data_root": str(tmp_path), "dataset": "STB"}
    with pytest.raises(ParameterError, match=r"split='val': must be one of \('train', 'test'\)"):
        check_notebook_params("01_explore_dataset", {**explore, "split": "val"})
    with pytest.raises(ParameterError, match=r"one_euro=.*keys are 'min_cutoff' and 'beta'"):
        check_notebook_params(
            "06_sequences", {**_defaults("06_sequences"), "data_root": str(tmp_path), "one_euro": {"fps": 5}}
        )


def test_notebooks_01_to_03_show_the_data_check_before_long_work(tiny_data, capsys):
    for name in ("01_explore_dataset", "02_train", "03_evaluate"):
        code = _code(name)
        assert "show_data_check(cfg" in code
        assert code.index("show_data_check(cfg") < min(
            code.index(w) for w in ("build_dataset(", "launch(", "Trainer(", "predict(") if w in code
        ), name
    report = show_data_check(Config.cpu_demo(data_root=str(tiny_data)), ["test"])
    assert report is not None and report.complete and "test: complete" in capsys.readouterr().out
    (tiny_data / "images" / "test").rename(tiny_data / "images" / "test_away")
    try:
        assert not show_data_check(Config.cpu_demo(data_root=str(tiny_data)), ["test"]).complete
        assert "INCOMPLETE" in capsys.readouterr().out
    finally:
        (tiny_data / "images" / "test_away").rename(tiny_data / "images" / "test")
    assert show_data_check(Config.cpu_demo(dataset="RHD", data_root=str(tiny_data))) is None
