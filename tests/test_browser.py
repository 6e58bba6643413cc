"""04_visualize_3d.ipynb in a real browser: JupyterLab on localhost, headless Chromium driven by Playwright.

Runs all cells through the Run menu, waits for the plotly 3D figures and the widgets to render, clicks the sample
browser's "next" button, checks that the 3D figure's data changed, and saves a screenshot. Skipped where no Chromium
is installed (``make test`` installs it through the Makefile's ``browser`` target).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import cv2
import nbformat
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAB_CONFIG = {  # no outside traffic, no stored layout: a clean, offline JupyterLab
    "LabApp": {
        "news_url": None,
        "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "extension_manager": "readonly",
    },
}

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def serve_notebook(tmp_path: Path, name: str, parameters: dict, notebook=None):
    """Generator for a fixture: a JupyterLab server (its own config, settings and process group) whose root holds
    ``notebooks/{name}.ipynb`` (or the nbformat node ``notebook``, saved as ``{name}.ipynb``) with ``parameters``
    injected; yields url, root, log and out. Skips without Chromium."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no browser: {CHROMIUM} is not installed (apt-get install chromium; `make test` tries)")
    pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    root = tmp_path / "lab"
    root.mkdir()
    if notebook is None:
        notebook = load_notebook_node(str(REPO / "notebooks" / f"{name}.ipynb"))
    nb = parameterize_notebook(notebook, parameters) if parameters else notebook
    nbformat.write(nb, str(root / f"{name}.ipynb"))
    config_dir = tmp_path / "jupyter_config"
    config_dir.mkdir()
    (config_dir / "jupyter_lab_config.json").write_text(json.dumps(LAB_CONFIG))
    settings = tmp_path / "lab_settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)  # no "get Jupyter news?" toast over the page
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab_settings"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    port = _free_port()
    log = tmp_path / "jupyterlab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    with open(log, "w") as log_file:
        # its own process group, so the server and the kernel it starts are stopped together
        proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/status", proc, log)
        yield {"url": f"http://127.0.0.1:{port}", "root": root, "log": log, "out": tmp_path}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def serve_cell(tmp_path: Path, name: str, source: str):
    """:func:`serve_notebook` for a one-cell notebook of ``source`` (Python 3 kernel), saved as ``{name}.ipynb``."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    yield from serve_notebook(tmp_path, name, {}, notebook=nb)


@contextmanager
def lab_page():
    """A headless Chromium page for a served JupyterLab (1400x1000, 120 s default timeout); the browser is closed
    after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            yield page
        finally:
            browser.close()


def open_and_run_all(page, lab: dict, name: str) -> None:
    """Open ``notebooks/{name}.ipynb`` in the JupyterLab of ``lab`` (a :func:`serve_notebook` dict), run all cells
    once the kernel is idle and wait until every code cell has run; fails with a screenshot, the prompts and the
    server log where one did not, and with the first traceback any output shows."""
    page.goto(f"{lab['url']}/lab/tree/{name}.ipynb")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
    # the kernel must be connected before "Run All" (the menu entry does nothing before)
    page.wait_for_function(
        "() => /ipykernel\\) \\| Idle/.test(document.querySelector('.jp-StatusBar-Widget')?.textContent || '')",
        timeout=120_000,
    )
    for _ in range(3):
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
        try:  # started: some prompt shows [*] or a number
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]"
                ".some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))",
                timeout=20_000,
            )
            break
        except Exception:
            page.keyboard.press("Escape")
    # every code cell executed (no "[*]" left, every prompt numbered)
    try:
        page.wait_for_function(
            """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""",
            timeout=180_000,
        )
    except Exception:
        failed = lab["out"] / "failed.png"
        page.screenshot(path=str(failed), full_page=True)
        prompts = page.evaluate("() => [...document.querySelectorAll('.jp-InputArea-prompt')].map(p => p.textContent)")
        pytest.fail(
            f"the cells did not all run (prompts {prompts}); screenshot {failed}; JupyterLab log:\n"
            f"{lab['log'].read_text()[-4000:]}"
        )
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
    assert not tracebacks, tracebacks[0][:2000]


@pytest.fixture
def lab(tmp_path, tiny_data, trained_checkpoint):
    """A JupyterLab server whose root holds 04_visualize_3d.ipynb with tiny parameters injected."""
    yield from serve_notebook(
        tmp_path,
        "04_visualize_3d",
        {
            "data_root": str(tiny_data),
            "output_dir": str(tmp_path / "output"),
            "checkpoint": str(trained_checkpoint),
            "png_export": "matplotlib",
            "n_browse": 4,
            "export": False,
        },
    )


# x/y/z (typed arrays or lists) and meta of every trace of the first plotly plot matching a selector, read from
# plotly's graph div (``gd.data``)
_PLOT_DATA_JS = """(sel) => {
    const el = document.querySelector(sel);
    if (!el || !el.data) return null;
    const arr = (v) => v == null ? [] : Array.from(v);
    return el.data.map(t => ({x: arr(t.x), y: arr(t.y), z: arr(t.z), meta: t.meta || null, name: t.name || null,
                              color: (t.line && typeof t.line.color === 'string') ? t.line.color : null}));
}"""


def _plot_data(page, selector: str):
    return page.evaluate(_PLOT_DATA_JS, selector)


def _settled_plot_data(page, selector: str, old: str, timeout_s: float = 60.0):
    """The plot's data once it differs from ``old`` (a JSON signature) and two reads 300 ms apart agree."""
    page.wait_for_function(
        f"([sel, old]) => JSON.stringify(({_PLOT_DATA_JS})(sel)) !== old", arg=[selector, old], timeout=timeout_s * 1000
    )
    last = None
    for _ in range(int(timeout_s / 0.3)):
        now = page.evaluate(f"(sel) => JSON.stringify(({_PLOT_DATA_JS})(sel))", selector)
        if now == last and now != old:
            return json.loads(now)
        last = now
        page.wait_for_timeout(300)
    raise AssertionError(f"{selector}: the figure kept changing for {timeout_s} s")


def test_visualize_notebook_runs_and_reacts_in_jupyterlab(lab):
    # the sample browser's figure: a plotly FigureWidget in the widget box, or a figure in an Output widget
    browser_plot = ".jupyter-widgets .js-plotly-plot, .widget-output .js-plotly-plot"
    with lab_page() as page:
        open_and_run_all(page, lab, "04_visualize_3d")
        # each figure is one output: plotly's JupyterLab renderer shows the PNG carried in the same display data
        # (it turns into the interactive plot when the pointer enters it), so no second, static output is needed
        figures = page.locator(".jp-RenderedPlotly")
        assert figures.count() >= 2  # camera space, root-aligned
        for k in range(figures.count()):
            src = figures.nth(k).locator("img.plot-img").get_attribute("src") or ""
            assert src.startswith("data:image/png;base64,"), src[:80]
        # the sample browser's plotly 3D figure (a WebGL scene) and the widgets are rendered
        page.wait_for_selector(".js-plotly-plot .gl-container canvas", state="attached")
        page.wait_for_selector(".jupyter-widgets .widget-slider", state="visible")
        page.wait_for_selector(browser_plot, state="attached")
        title = page.locator(".jupyter-widgets .widget-html-content b").first
        before_title = title.inner_text()
        before = _plot_data(page, browser_plot)
        before_sig = page.evaluate(f"(sel) => JSON.stringify(({_PLOT_DATA_JS})(sel))", browser_plot)
        assert before and any(t["meta"] and t["meta"].get("source") == "pred" for t in before)

        # right and left hands in two colour families, in the figure the browser shows
        colours = {h: {t["color"] for t in before if t["meta"] and t["meta"].get("hand") == h
                       and t["meta"].get("part") == "bones"} for h in ("right", "left")}  # fmt: skip
        assert colours["right"] and colours["left"] and not colours["right"] & colours["left"], colours
        assert "(interacting)" in before_title, before_title  # 04's default: interacting samples, worst first

        page.locator(".jupyter-widgets button:has-text('next')").first.click()
        page.wait_for_function(
            "(old) => { const t = document.querySelector("
            "'.jupyter-widgets .widget-html-content b'); return t && t.textContent !== old; }",
            arg=before_title,
        )
        page.wait_for_function(
            f"([sel, old]) => JSON.stringify(({_PLOT_DATA_JS})(sel)) !== old", arg=[browser_plot, before_sig]
        )
        after = _plot_data(page, browser_plot)
        assert [t["x"] for t in after] != [t["x"] for t in before], "the 3D figure did not change"
        readout = page.locator(".jupyter-widgets .widget-readout").first.inner_text()
        assert readout.strip() == "1"
        # the hand-type filter: right hands only
        unfiltered = page.evaluate(f"(sel) => JSON.stringify(({_PLOT_DATA_JS})(sel))", browser_plot)
        page.locator(".jupyter-widgets .widget-dropdown select").first.select_option("right")
        page.wait_for_function(
            "() => /\\(right\\)/.test(document.querySelector('.jupyter-widgets .widget-html-content b')"
            "?.textContent || '')"
        )
        # the figure is redrawn after the title, and the interacting sample before had right-hand traces too:
        # wait for a figure that differs from it and reads the same twice in a row (the redraw has finished)
        right = _settled_plot_data(page, browser_plot, unfiltered)
        assert any(t["meta"] and t["meta"].get("hand") == "right" for t in right)

        shot = lab["out"] / "vis" / "browser_04_visualize_3d.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.locator(".jupyter-widgets .widget-slider").first.scroll_into_view_if_needed()
        page.screenshot(path=str(shot), full_page=True)
        plot_shot = lab["out"] / "vis" / "browser_04_plot.png"
        page.locator(browser_plot).first.screenshot(path=str(plot_shot))
    for path, min_side in ((shot, 600), (plot_shot, 200)):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert min(img.shape[:2]) >= min_side
        assert img.std() > 10 and len(np.unique(img.reshape(-1, 3), axis=0)) > 50, f"{path} looks blank"


@pytest.fixture
def lab05(tmp_path, tiny_data, trained_checkpoint):
    """A JupyterLab server whose root holds 05_your_image.ipynb with tiny parameters injected."""
    yield from serve_notebook(
        tmp_path,
        "05_your_image",
        {
            "data_root": str(tiny_data),
            "output_dir": str(tmp_path / "output"),
            "checkpoint": str(trained_checkpoint),
            "png_export": "matplotlib",
        },
    )


def test_your_image_saves_the_box_on_screen(lab05):
    """05: move the box's x slider, press predict, run the save cell again: the saved box is the moved one."""
    saved = lab05["out"] / "output" / "vis" / "05_your_image.json"
    with lab_page() as page:
        open_and_run_all(page, lab05, "05_your_image")
        x0 = json.loads(saved.read_text())["bbox_given"][0]
        x_moved = int(round(x0)) + 5  # the slider holds whole pixels
        label = page.locator(".jupyter-widgets .widget-label:has-text('your box')").first
        label.scroll_into_view_if_needed()
        handle = page.locator(".jupyter-widgets .widget-slider .noUi-handle").first  # x
        handle.focus()
        for _ in range(5):
            page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "(x) => [...document.querySelectorAll('.jupyter-widgets .widget-label')]"
            ".some(e => e.textContent.startsWith(`your box [${x}`))",
            arg=f"{x_moved:.1f}",
        )  # the live preview's line follows the slider
        page.locator(".jupyter-widgets button:has-text('predict')").first.click()
        page.wait_for_selector(".jupyter-widgets .widget-output img", state="attached")
        # run the save cell (the last one) again
        page.locator(".jp-CodeCell").last.click()
        page.keyboard.press("Shift+Enter")  # the kernel runs it: the file tells when
        deadline = time.time() + 60
        while time.time() < deadline and json.loads(saved.read_text())["bbox_given"][0] == x0:
            time.sleep(0.5)
    assert json.loads(saved.read_text())["bbox_given"][0] == x_moved


def seek_on_curve_click(page, plot: str, k: int, timeout_ms: int = 30_000) -> float:
    """Click the first error curve's ``k``-th point in the player ``plot`` and see the player seek to frame ``k``: the
    cursor moves to the point's time and the frame shown is the ``k``-th (the player's seek script, in JupyterLab or
    the exported HTML); returns the cursor's time."""
    page.wait_for_timeout(500)
    point = page.locator(f"{plot} .scatterlayer .trace").first.locator("path.point").nth(k)
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    gd = f"document.querySelector('{plot}')"
    name = page.evaluate(f"{gd}.layout.meta.frame_names[{k}]")
    page.wait_for_function(f"({gd}.__shownFrames || []).slice(-1).map(f => f[1])[0] === {name!r}", timeout=timeout_ms)
    cursor_x, curve_x = page.evaluate(
        f"""[{gd}.data.find(t => t.meta && t.meta.part === 'cursor').x[0],
            {gd}.data.find(t => t.meta && t.meta.part === 'curve').x[{k}]]"""
    )
    assert cursor_x == curve_x, (cursor_x, curve_x)
    return cursor_x
