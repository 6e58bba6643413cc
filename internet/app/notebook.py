"""Small helpers the notebooks call: parameter checking, path resolution and display.

Notebook parameters use a few friendlier names than :class:`internet.config.Config` (``epochs``, ``batch_size``,
``backbone``, ``lr_schedule``, ``resume``, ``preset``); :func:`params_to_config` maps them and lets
``Config.from_params`` reject wrong types and out-of-range values with an error naming the parameter. Parameters
that are not configuration (a sample index, an image path, a box) are checked with :func:`check_param`.
"""

from __future__ import annotations

import html
import io
import shutil
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from internet.config import Config, ConfigError
from internet.data.check import DataReport, check_data
from internet.engine.runtime import check_output_dir
from internet.geometry.crop import as_box
from internet.model.checkpoint import checkpoint_name, latest_checkpoint, parse_checkpoint_name
from internet.model.load import MODEL_FIELDS, load_model  # noqa: F401  (the notebooks import them from here)
from internet.utils.device import choose_device
from internet.utils.logs import JSONL_LOG, TEXT_LOG
from internet.vis import show

PRESETS = ("cpu", "paper")
# notebook name -> Config field
ALIASES = {
    "epochs": "end_epoch",
    "batch_size": "train_batch_size",
    "backbone": "resnet_type",
    "lr_schedule": "lr_dec_epoch",
    "resume": "continue_train",
}
# Config fields that hold paths: relative ones are resolved against the project root (see project_path).
PATH_FIELDS = ("data_root", "output_dir", "rootnet_path", "human_annot_ids", "pretrained_backbone")


class ParameterError(ConfigError):
    """A notebook parameter has the wrong type or an out-of-range value."""


def project_root() -> Path:
    """The repository root when the package is used from its source tree (it holds ``pyproject.toml``), else the
    working directory. JupyterLab starts kernels in ``notebooks/`` and papermill wherever it is run; resolving
    relative paths here makes the same notebook parameters work in both."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").is_file() and (here / "internet").is_dir() else Path.cwd()


def project_path(p: Union[str, Path, None]) -> Optional[Path]:
    """``p`` as an absolute path: absolute paths unchanged, relative ones under :func:`project_root`."""
    if p is None:
        return None
    p = Path(p).expanduser()
    return p if p.is_absolute() else project_root() / p


def _backbone_depth(value: Any) -> Any:
    """'resnet18' / 'ResNet-18' / '18' -> 18; other values pass through for Config to check."""
    if isinstance(value, str):
        digits = "".join(ch for ch in value if ch.isdigit())
        if value.lower().replace("-", "").replace("_", "").startswith("resnet") and digits:
            return int(digits)
        if value.isdigit():
            return int(value)
        raise ParameterError(f"parameter backbone={value!r}: expected e.g. 'resnet18', 'resnet50' or 18, 50")
    return value


def params_to_config(params: Mapping[str, Any], preset: Optional[str] = None, **extra: Any) -> Config:
    """Build a validated :class:`Config` from notebook parameters.

    params: a dict of notebook parameters; keys are Config fields or the aliases in :data:`ALIASES`; a ``preset``
    key ('cpu' = :meth:`Config.cpu_demo`, 'paper' = :meth:`Config.paper`) picks the base recipe unless the
    ``preset`` argument is given. Values that are None are left at the preset's value. Relative paths are resolved
    with :func:`project_path`. Unknown names, wrong types and out-of-range values raise an error naming them.
    """
    params = dict(params)
    params.update(extra)
    given = params.pop("preset", None)
    preset = preset or given or "cpu"
    if preset not in PRESETS:
        raise ParameterError(f"parameter preset={preset!r}: must be one of {PRESETS}")
    overrides = {}
    for name, value in params.items():
        field = ALIASES.get(name, name)
        if value is None and field not in (
            "max_iters_per_epoch",
            "rootnet_path",
            "human_annot_ids",
            "pretrained_backbone",
        ):
            continue
        if name == "backbone":
            value = _backbone_depth(value)
        if field in PATH_FIELDS and isinstance(value, (str, Path)):
            value = str(project_path(value))
        if field in overrides:
            raise ParameterError(f"parameter {name!r} given twice (also as {field!r})")
        overrides[field] = value
    try:
        return Config.cpu_demo(**overrides) if preset == "cpu" else Config.paper(**overrides)
    except ConfigError as e:
        # name the notebook's own parameter when an alias was used
        msg = str(e)
        for alias, field in ALIASES.items():
            if alias in params and f"parameter {field}=" in msg:
                msg = msg.replace(f"parameter {field}=", f"parameter {alias} ({field})=")
        raise ParameterError(msg) from None


def check_param(
    name: str,
    value: Any,
    kind: Union[type, Sequence[type]],
    choices: Optional[Iterable[Any]] = None,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    optional: bool = False,
) -> Any:
    """Check one notebook parameter and return it; raise :class:`ParameterError` naming it.

    kind: the accepted type(s) (bool is never accepted for int/float; an int is accepted for float);
    choices: allowed values; minimum/maximum: inclusive bounds; optional: None allowed.
    """
    if value is None:
        if optional:
            return None
        raise ParameterError(f"parameter {name}=None: a value is required")
    kinds = tuple(kind) if isinstance(kind, (list, tuple)) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok and float in kinds and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        raise ParameterError(f"parameter {name}={value!r}: expected {names}, got {type(value).__name__}")
    if choices is not None:
        choices = tuple(choices)
        if value not in choices:
            raise ParameterError(f"parameter {name}={value!r}: must be one of {choices}")
    if minimum is not None and value < minimum:
        raise ParameterError(f"parameter {name}={value!r}: must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ParameterError(f"parameter {name}={value!r}: must be <= {maximum}")
    return value


def check_bbox(name: str, value: Any, optional: bool = False) -> Optional[np.ndarray]:
    """A hand box parameter ``[x, y, w, h]`` (pixels) as a float array, or a :class:`ParameterError`."""
    if value is None and optional:
        return None
    try:
        box = as_box(value, name)  # the parsing step of geometry.check_box, which checks it against the image later
    except ValueError:
        raise ParameterError(f"parameter {name}={value!r}: expected [x, y, w, h], four finite numbers") from None
    if box[2] <= 0 or box[3] <= 0:
        raise ParameterError(f"parameter {name}={value!r}: width and height must be > 0")
    return box


def existing_path(name: str, value: Any, kind: str = "file") -> Path:
    """A parameter naming an existing file or folder ('file' | 'dir'), resolved with :func:`project_path`."""
    check_param(name, value, (str, Path))
    p = project_path(value)
    ok = p.is_file() if kind == "file" else p.is_dir()
    if not ok:
        raise ParameterError(f"parameter {name}={str(value)!r}: no such {'file' if kind == 'file' else 'folder'} ({p})")
    return p


def show_table(rows: Sequence[Mapping[str, Any]], title: Optional[str] = None, floatfmt: str = "{:.2f}") -> str:
    """Display a list of dicts as an HTML table in a notebook (plain text elsewhere) and return its text form."""
    if not rows:
        text = "(no rows)"
    else:
        cols = list(dict.fromkeys(k for r in rows for k in r))

        def fmt(v: Any) -> str:
            return floatfmt.format(v) if isinstance(v, float) else str(v)

        widths = [max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in cols]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(fmt(r.get(c, "")).ljust(w) for c, w in zip(cols, widths)) for r in rows]
        text = "\n".join(lines)
    if title:
        text = f"{title}\n{text}"
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        print(text)
        return text
    if get_ipython() is None:
        print(text)
        return text

    head = f"<b>{html.escape(title)}</b>" if title else ""
    if rows:
        th = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows
        )
        table = f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
    else:
        table = "<i>(no rows)</i>"
    # text/plain travels with it, so executed notebooks can be searched for the numbers.
    display({"text/html": head + table, "text/plain": text}, raw=True)
    return text


# ------------------------------------------------------------------------------------------------ runs and checkpoints
def resolve_checkpoint(value: Union[str, int, Path, None], cfg: Config) -> Path:
    """A notebook's ``checkpoint`` parameter as a file: 'latest' (the newest snapshot in ``cfg.model_dump_dir``), an
    epoch number (``snapshot_{N}.pth.tar`` there) or a path (relative ones under :func:`project_path`)."""

    if value is None or value == "latest":
        path = latest_checkpoint(cfg.model_dump_dir)
        if path is None:
            raise ParameterError(
                f"parameter checkpoint='latest': no snapshot_*.pth.tar in {cfg.model_dump_dir}; "
                "train first (02_train.ipynb) or give a checkpoint path"
            )
        return path
    if isinstance(value, bool):
        raise ParameterError(f"parameter checkpoint={value!r}: expected 'latest', an epoch number or a path")
    if isinstance(value, int):
        path = cfg.model_dump_dir / checkpoint_name(value)
    elif isinstance(value, (str, Path)):
        path = project_path(value)
    else:
        raise ParameterError(
            f"parameter checkpoint={value!r}: expected 'latest', an epoch number or a path, got {type(value).__name__}"
        )
    if not path.is_file():
        raise ParameterError(f"parameter checkpoint={value!r}: file not found ({path})")
    return path


def archive_previous_run(cfg: Config) -> Optional[Path]:
    """Move the checkpoints and training logs of an earlier run out of the way before a fresh (not resumed) run, so
    that 'latest' can never pick a stale snapshot of a longer earlier run. They go to ``previous/<timestamp>/``
    under the output folder; nothing is deleted. Returns that folder, or None when there was nothing to move."""

    # what the run would fail on is checked before anything moves: a failed start keeps the earlier run resumable
    choose_device(cfg.device)
    check_output_dir(cfg)
    old = []
    if cfg.model_dump_dir.is_dir():
        old += [p for p in cfg.model_dump_dir.iterdir() if p.is_file() and parse_checkpoint_name(p.name)]
    old += [cfg.log_dir / n for n in (TEXT_LOG, JSONL_LOG) if (cfg.log_dir / n).is_file()]
    if not old:
        return None
    dest = Path(cfg.output_dir) / "previous" / time.strftime("%Y%m%d-%H%M%S")
    k = 1
    while dest.exists():
        dest = dest.with_name(f"{dest.name.split('.')[0]}.{k}")
        k += 1
    for p in old:
        sub = dest / p.parent.name
        sub.mkdir(parents=True, exist_ok=True)
        shutil.move(str(p), str(sub / p.name))
    return dest


class PrintProgress:
    """A Trainer callback that prints one line every ``every`` iterations (and the first one), so progress is visible
    live in JupyterLab, in papermill's log and in the executed notebook."""

    def __init__(self, every: int = 10) -> None:
        """every: print every that many iterations (>= 1)."""
        self.every = max(1, int(every))

    def __call__(self, trainer: Any, record: Mapping[str, Any]) -> None:
        if not getattr(trainer, "is_main", True):  # one line per step, not one per process of a distributed run
            return
        step = int(record.get("step", 0))
        if step % self.every and step != 1:
            return
        losses = "  ".join(f"{k[5:]} {v:.4g}" for k, v in record.items() if k.startswith("loss_") and k != "loss_total")
        print(
            f"epoch {record.get('epoch')} iter {record.get('iter')} (step {step})  lr {record.get('lr', 0):.2e}  "
            f"total {record.get('loss_total', float('nan')):.4g}  [{losses}]  "
            f"{record.get('images_per_s', 0):.1f} img/s",
            flush=True,
        )


def training_curves_figure(records: Sequence[Mapping[str, Any]], smooth: int = 1):
    """Loss components (log scale) and learning rate against the global step, from ``train_log.jsonl`` records
    (matplotlib Figure, no pyplot). ``smooth``: moving-average window in iterations."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.4))
    FigureCanvasAgg(fig)
    ax_loss, ax_lr = fig.subplots(1, 2)
    if not records:
        ax_loss.text(0.5, 0.5, "no training records yet", ha="center", va="center")
        return fig
    steps = np.array([r["step"] for r in records], dtype=np.float64)
    keys = [k for k in records[-1] if k.startswith("loss_")]
    w = max(1, int(smooth))
    for k in keys:
        v = np.array([r.get(k, np.nan) for r in records], dtype=np.float64)
        if w > 1 and len(v) >= w:
            v = np.convolve(v, np.ones(w) / w, mode="valid")
            s = steps[w - 1 :]
        else:
            s = steps
        ax_loss.plot(s, v, label=k[5:], linewidth=1.2)
    if all(np.nanmin([r.get(k, np.nan) for r in records]) > 0 for k in keys):
        ax_loss.set_yscale("log")
    ax_loss.set_xlabel("iteration (global step)")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(fontsize=8)
    ax_loss.set_title("training losses", fontsize=10)
    ax_lr.plot(steps, [r.get("lr", np.nan) for r in records], color="tab:purple")
    ax_lr.set_yscale("log")
    ax_lr.set_xlabel("iteration (global step)")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_title("learning rate", fontsize=10)
    fig.tight_layout()
    return fig


def display_figure(fig: Any, static: Union[bool, str] = True, dpi: int = 100) -> None:
    """Show a figure in a notebook so that executed notebooks keep a picture: a matplotlib Figure (built without
    pyplot, so IPython has no formatter for it) as a PNG image; a plotly figure interactively, followed by a static
    PNG (``static`` as in :func:`internet.vis.show`)."""

    from IPython.display import Image, display
    from matplotlib.figure import Figure

    if isinstance(fig, Figure):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        display(Image(data=buf.getvalue(), format="png"))
        return

    show(fig, static=static)


def zoom_to_box(img: np.ndarray, bbox: Sequence[float], *points: Optional[np.ndarray], margin: float = 0.15):
    """Cut ``img`` to ``bbox`` [x, y, w, h] enlarged by ``margin`` on each side (clipped to the image) so small
    hands are visible in a figure; returns ``(cut image, *points shifted into it, offset (x0, y0))``. Points are
    (J, 2+) pixel arrays or None."""
    h, w = img.shape[:2]
    x, y, bw, bh = (float(v) for v in bbox)
    x0 = int(np.clip(np.floor(x - margin * bw), 0, w - 1))
    y0 = int(np.clip(np.floor(y - margin * bh), 0, h - 1))
    x1 = int(np.clip(np.ceil(x + bw * (1 + margin)), x0 + 1, w))
    y1 = int(np.clip(np.ceil(y + bh * (1 + margin)), y0 + 1, h))
    shifted = []
    for p in points:
        if p is None:
            shifted.append(None)
            continue
        q = np.array(p, dtype=np.float64, copy=True)
        q[..., 0] -= x0
        q[..., 1] -= y0
        shifted.append(q)
    return (img[y0:y1, x0:x1].copy(), *shifted, (x0, y0))


def show_data_check(cfg: Config, splits: Optional[Sequence[str]] = None) -> Optional[DataReport]:
    """Print the data check (:mod:`internet.data.check`) of ``cfg``'s InterHand2.6M folder for ``splits`` (default
    all) before any long work: per split and capture, the images the annotations name and those on disk. A partial
    download then shows here, not as a low score later. Other data sets have no image index to check: None."""
    if cfg.dataset != "InterHand2.6M":
        return None
    report = check_data(cfg.data_root, splits, cfg.annot_subset)
    print(report.text())
    return report
