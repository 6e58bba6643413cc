"""Saving figures (HTML always, PNG whenever possible) and showing them in notebooks with a static PNG inside.

PNG of a plotly figure: kaleido (v1 drives a headless Chrome/Chromium) when a browser is found, else the matplotlib
rendering of :func:`internet.vis.static3d.static_fallback`. A
browser is looked for as kaleido does: the ``browser_path``
argument or env ``BROWSER_PATH`` first, then a Chrome downloaded by ``plotly_get_chrome``, then chromium/chrome on
PATH and their usual install paths (Debian's ``apt-get install chromium`` gives ``/usr/bin/chromium``). A failed PNG
export never raises in 'auto' mode: it warns once per reason and falls back to matplotlib.
"""

from __future__ import annotations

import base64
import functools
import io
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple, Union

import plotly.io as pio
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from plotly.basedatatypes import BaseFigure

from internet.utils.atomic import atomic_write_bytes
from internet.vis.static3d import static_fallback

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_METHODS = ("auto", "kaleido", "matplotlib")


class PngExportWarning(UserWarning):
    """PNG export through a browser failed; the matplotlib rendering was used instead."""


@functools.lru_cache(maxsize=None)
def _warn_once(reason: str) -> None:
    # lru_cache makes this a no-op for a reason already reported in this process.
    warnings.warn(
        f"PNG export through kaleido failed ({reason}); using the matplotlib rendering instead",
        PngExportWarning,
        stacklevel=3,
    )


def find_browser(browser_path: Optional[Union[str, Path]] = None) -> Optional[str]:
    """The Chrome/Chromium executable kaleido would use, or None. An explicit ``browser_path`` must exist."""
    if browser_path is not None:
        p = Path(browser_path)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise FileNotFoundError(f"browser_path {str(p)!r} is not an executable file")
        return str(p)
    env = os.environ.get("BROWSER_PATH")
    if env:
        return env if os.access(env, os.X_OK) else None
    try:
        from choreographer.browsers.chromium import Chromium
    except ImportError:  # kaleido (and so choreographer) not installed
        return None
    try:
        return Chromium.find_browser(skip_local=False)
    except Exception:  # a best-effort search; any failure means "no browser"
        return None


@contextmanager
def _browser_env(path: str) -> Iterator[None]:
    """Point kaleido/choreographer at ``path`` (they read BROWSER_PATH), restoring the environment afterwards."""
    old = os.environ.get("BROWSER_PATH")
    os.environ["BROWSER_PATH"] = path
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("BROWSER_PATH", None)
        else:
            os.environ["BROWSER_PATH"] = old


def _matplotlib_png(fig: Figure, dpi: int = 100) -> bytes:

    if fig.canvas is None or not hasattr(fig.canvas, "print_png"):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def figure_png(
    fig: Union[BaseFigure, Figure],
    method: str = "auto",
    width: int = 900,
    height: int = 700,
    scale: float = 1.0,
    browser_path: Optional[Union[str, Path]] = None,
) -> Tuple[bytes, str, Optional[str]]:
    """PNG bytes of a plotly or matplotlib figure: ``(png, method_used, fallback_reason)``.

    method 'auto': kaleido if a browser is found, else (or on failure, with a one-time warning) matplotlib;
    'kaleido': kaleido or an error; 'matplotlib': the static rendering. width/height/scale apply to kaleido;
    the matplotlib rendering keeps the same aspect ratio.
    """
    if method not in PNG_METHODS:
        raise ValueError(f"method must be one of {PNG_METHODS}, got {method!r}")
    if isinstance(fig, Figure):
        return _matplotlib_png(fig), "matplotlib", None
    if not isinstance(fig, BaseFigure):
        raise TypeError(f"expected a plotly or matplotlib figure, got {type(fig).__name__}")
    if width <= 0 or height <= 0 or scale <= 0:
        raise ValueError(f"width, height and scale must be > 0, got {width}, {height}, {scale}")

    reason = None
    if method in ("auto", "kaleido"):
        browser = find_browser(browser_path)
        if browser is None:
            reason = "no Chrome/Chromium found (set BROWSER_PATH, or install chromium / run plotly_get_chrome)"
        else:
            try:
                with _browser_env(browser):
                    png = pio.to_image(fig, format="png", width=width, height=height, scale=scale)
                if png[:8] != PNG_MAGIC:
                    raise RuntimeError("kaleido returned something that is not a PNG")
                return png, "kaleido", None
            except Exception as err:  # kaleido/choreographer raise many kinds; all mean "no browser PNG"
                text = " ".join(str(a) for a in err.args).strip() or repr(err)
                reason = f"{type(err).__name__}: {text.splitlines()[0][:200]}"
        if method == "kaleido":
            raise RuntimeError(f"PNG export through kaleido failed: {reason}")
        _warn_once(reason)
    png = static_fallback(fig, as_png=True, width_in=width / 100.0 * scale, height_in=height / 100.0 * scale)
    return png, "matplotlib", reason


def save_figure(
    fig: Union[BaseFigure, Figure],
    out_dir: Union[str, Path],
    stem: str,
    png: bool = True,
    png_method: str = "auto",
    include_plotlyjs: Union[bool, str] = True,
    width: int = 900,
    height: int = 700,
    scale: float = 1.0,
    browser_path: Optional[Union[str, Path]] = None,
) -> Dict[str, object]:
    """Save ``fig`` under ``out_dir`` as ``stem.html`` (plotly figures; plotly.js embedded so it opens offline, or
    include_plotlyjs='cdn' for a small file) and ``stem.png``; both written atomically.

    Returns ``{"html": Path or None, "png": Path or None, "png_via": "kaleido" | "matplotlib" | None,
    "png_fallback_reason": str or None}``. In 'auto' mode a failed browser export falls back to the matplotlib
    rendering with a one-time warning, so a notebook never crashes on PNG export.
    """
    if not stem or "/" in stem or "\\" in stem or stem in (".", ".."):
        raise ValueError(f"stem must be a plain file name without folders, got {stem!r}")
    if png_method not in PNG_METHODS:
        raise ValueError(f"png_method must be one of {PNG_METHODS}, got {png_method!r}")
    if not isinstance(fig, (BaseFigure, Figure)):
        raise TypeError(f"expected a plotly or matplotlib figure, got {type(fig).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: Dict[str, object] = {"html": None, "png": None, "png_via": None, "png_fallback_reason": None}
    if isinstance(fig, BaseFigure):
        html = fig.to_html(include_plotlyjs=include_plotlyjs, full_html=True)
        written["html"] = out / f"{stem}.html"
        atomic_write_bytes(written["html"], html.encode("utf-8"))
    if png:
        data, via, reason = figure_png(fig, png_method, width, height, scale, browser_path)
        written["png"] = out / f"{stem}.png"
        atomic_write_bytes(written["png"], data)
        written["png_via"] = via
        written["png_fallback_reason"] = reason
    return written


def show(fig: Union[BaseFigure, Figure], static: Union[bool, str] = True) -> None:
    """Display ``fig`` in a notebook as ONE output: for a plotly figure, the interactive figure with a static PNG of
    it in the same display data, so JupyterLab shows the interactive one and viewers without JavaScript (and
    papermill-executed notebooks read elsewhere) show the picture.

    static: True or 'matplotlib' (fast, no browser), 'auto' or 'kaleido' (browser rendering, see
    :func:`figure_png`), False (no PNG). Returns None, so a cell ending in ``show(fig)`` prints nothing more.
    """

    from IPython import display as ipd

    if isinstance(fig, Figure) or not isinstance(fig, BaseFigure):  # a matplotlib Figure displays as a PNG itself
        ipd.display(fig)
        return

    # what this environment's plotly renderer shows (e.g. classic Notebook HTML), plus always the plotly mimetype
    # that JupyterLab renders interactively
    bundle = dict(fig._repr_mimebundle_(include=None, exclude=None) or {})
    png = None
    if static is not False:
        # the picture at the figure's own height, so the page does not jump when the live figure replaces it
        height = int(fig.layout.height or 560)
        png, _, _ = figure_png(fig, method="matplotlib" if static is True else str(static), height=height)
    bundle.update(plotly_bundle(fig.to_plotly_json(), png))
    bundle.setdefault("text/plain", f"<plotly figure: {fig.layout.title.text or 'untitled'}>")
    ipd.display(bundle, raw=True)


def plotly_bundle(spec: dict, png: Optional[bytes] = None, text: Optional[str] = None) -> Dict[str, object]:
    """Display data of a plotly figure's JSON (``fig.to_plotly_json()``) for JupyterLab's plotly renderer, with
    ``png`` as its picture (for viewers without JavaScript, and what that renderer shows until the pointer enters)
    and ``text`` as its plain text; pass it to ``IPython.display.display(bundle, raw=True)``."""
    bundle = dict(pio.renderers["plotly_mimetype"].to_mimebundle(spec))
    if png is not None:
        bundle["image/png"] = base64.b64encode(png).decode("ascii")
    if text is not None:
        bundle["text/plain"] = text
    return bundle
