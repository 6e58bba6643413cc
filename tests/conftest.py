"""Shared test fixtures: the vendored real data and parity fixtures (tests/data/shared, a copy of ../shared), a tiny
synthetic data set, notebook execution and one quick demo run (which trains the tiny checkpoint that the notebook,
predictor and browser tests reuse)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, Optional

import pytest
from vendored import VENDORED

REPO_ROOT = Path(__file__).resolve().parents[1]
# The tiny data set has exactly the demo's --quick sizes, so the quick demo reuses it instead of writing another.
TINY_SEED = 0


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The vendored copy of ``../shared`` (``data/`` and ``reference/official_internet/``) that every clone carries."""
    return VENDORED


def _vendored_files() -> set:
    return {p.relative_to(VENDORED).as_posix() for p in VENDORED.rglob("*") if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def _vendored_data_stays_untouched():
    """No test may write into the vendored copy (e.g. an annotation cache in ``data_root/.cache``): checked once,
    when the session ends (test_vendored_data.py checks the contents)."""
    before = _vendored_files()
    yield
    added = sorted(_vendored_files() - before)
    assert not added, f"tests wrote into {VENDORED} (pass cache_dir= or work on a copy): {added[:5]}"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A tiny synthetic InterHand2.6M data set (with images), written once per session."""
    from internet.app.demo import QUICK_SIZES
    from internet.synth import generate

    root = tmp_path_factory.mktemp("tiny_synth") / "InterHand2.6M"
    generate(
        root,
        seed=TINY_SEED,
        n_train=QUICK_SIZES["train"],
        n_val=QUICK_SIZES["val"],
        n_test=QUICK_SIZES["test"],
        with_images=True,
    )
    return root


@pytest.fixture(scope="session")
def tiny_config_overrides() -> Dict[str, Any]:
    """Config fields for a network small enough to train a few iterations in seconds on a CPU."""
    from internet.app.demo import QUICK_CONFIG

    return dict(QUICK_CONFIG)


@pytest.fixture(scope="session")
def execute_notebook() -> Callable[..., Any]:
    """``execute_notebook(name, out_path, **parameters)``: run ``notebooks/{name}.ipynb`` with papermill (cwd = repo
    root) and return the executed notebook (nbformat). Execution errors propagate as PapermillExecutionError; the
    executed notebook is written to ``out_path`` in any case."""
    import nbformat
    import papermill

    def run(name: str, out_path: Path, **parameters: Any):
        src = REPO_ROOT / "notebooks" / f"{name}.ipynb"
        papermill.execute_notebook(
            str(src),
            str(out_path),
            parameters=parameters,
            progress_bar=False,
            cwd=str(REPO_ROOT),
            kernel_name="python3",
        )
        return nbformat.read(str(out_path), as_version=4)

    return run


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, tiny_data) -> SimpleNamespace:
    """One ``python -m internet.app.demo --quick`` run (in process) on the tiny data set: it executes notebooks 01-04
    and trains the tiny checkpoint. Returns output_dir, data_root, rc, summary (dict) and checkpoint (Path)."""
    from internet.app.demo import main
    from internet.model.checkpoint import latest_checkpoint

    out = tmp_path_factory.mktemp("demo_quick") / "output"
    rc = main(["--quick", "--data-root", str(tiny_data), "--output-dir", str(out), "--seed", str(TINY_SEED)])
    summary_path = out / "result" / "summary.json"
    summary: Optional[dict] = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    return SimpleNamespace(
        output_dir=out, data_root=tiny_data, rc=rc, summary=summary, checkpoint=latest_checkpoint(out / "model_dump")
    )


@pytest.fixture(scope="session")
def trained_checkpoint(demo_run) -> Path:
    """The tiny checkpoint trained by the quick demo."""
    if demo_run.checkpoint is None:
        pytest.fail(f"the quick demo wrote no checkpoint (rc={demo_run.rc}, summary={demo_run.summary})")
    return demo_run.checkpoint
