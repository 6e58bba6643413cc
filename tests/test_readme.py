"""The README's own recipes: its papermill commands name real parameters whose values build the paper's model, its
data-check command runs as written (paths swapped) and exits non-zero on a partial download, every file it links
exists, and it stays short (the long recipes live in docs/, run by test_inference.py and test_sequences.py)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import papermill
import pytest

from internet.app.notebook import params_to_config
from internet.app.params import check_notebook_params

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _shell_lines() -> list:
    blocks = re.findall(r"```\n(.*?)```", README, re.S)
    return [line.split("#")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_stays_short_and_its_links_exist():
    assert len(README.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert links, "the README links into docs/"
    missing = [link for link in links if not link.startswith("http") and not (REPO / link).exists()]
    assert not missing, missing


def test_the_readme_papermill_commands_build_the_paper_model(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    commands = [shlex.split(line) for line in _shell_lines() if line.startswith("papermill ")]
    assert {Path(c[1]).stem for c in commands} == {"02_train", "03_evaluate"}
    for cmd in commands:
        notebook, out = Path(cmd[1]), Path(cmd[2])
        assert (REPO / notebook).is_file() and out.parts[0] == "output", cmd
        flags = dict(zip(cmd[4::3], cmd[5::3]))
        assert len(cmd[3:]) % 3 == 0 and all(f == "-p" for f in cmd[3::3]), cmd
        params = papermill.inspect_notebook(str(REPO / notebook))
        unknown = set(flags) - set(params)
        assert not unknown, f"{notebook}: no parameters {sorted(unknown)}"
        values = {k: eval(v["default"]) for k, v in params.items()}
        values.update(flags, data_root=str(tmp_path))  # the data set itself is not on this machine
        check_notebook_params(notebook.stem, values)
        cfg = params_to_config({"data_root": values["data_root"]}, preset=values["preset"])
        assert (cfg.resnet_type, tuple(cfg.input_img_shape), tuple(cfg.output_hm_shape)) == (
            50,
            (256, 256),
            (64, 64, 64),
        )


@pytest.mark.slow
def test_the_readme_data_check_command_runs_and_fails_on_a_partial_download(tiny_data, tmp_path):
    (line,) = [line for line in _shell_lines() if "internet.data.check" in line] or [
        " ".join(m.split()) for m in re.findall(r"`(python -m internet\.data\.check[^`]*)`", README, re.S)
    ]
    cmd = shlex.split(line.replace("data/InterHand2.6M", str(tiny_data)))
    assert cmd[:3] == ["python", "-m", "internet.data.check"]
    ok = subprocess.run([sys.executable, *cmd[1:]], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "test: complete" in ok.stdout
    partial = tmp_path / "InterHand2.6M"
    shutil.copytree(tiny_data, partial, ignore=shutil.ignore_patterns(".cache"))
    next((partial / "images" / "test").rglob("*.jpg")).unlink()
    bad = subprocess.run(
        [sys.executable, *shlex.split(line.replace("data/InterHand2.6M", str(partial)))[1:]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1 and "INCOMPLETE" in bad.stdout, bad.stdout + bad.stderr
