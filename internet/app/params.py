"""The notebooks' parameter rules: one table per notebook, checked in order by one call in its set-up cell.

A notebook's first code cell (tagged ``parameters``) holds plain values that papermill may replace; its next cell
calls ``p = check_notebook_params("04_visualize_3d", globals())``, which checks each parameter its table names, in the
table's order, and stops at the first wrong one with a :class:`~internet.app.notebook.ParameterError` naming it. The
parameters that are :class:`~internet.config.Config` fields are checked again by ``params_to_config``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from internet.app.notebook import ParameterError, check_bbox, check_param, existing_path
from internet.config import DATASETS, SPLITS
from internet.data import dataset_splits

PNG_EXPORT = ("auto", "kaleido", "matplotlib")


@dataclass(frozen=True)
class Rule:
    """What one notebook parameter may be.

    Args:
        kind: the accepted type or types, or ``"dir"`` / ``"file"`` (an existing path, returned resolved from the
            repository root) or ``"bbox"`` (``[x, y, w, h]`` with a positive size, returned as an array).
        choices: the allowed values, or a function of the parameters checked so far that returns them.
        minimum: inclusive lower bound.
        maximum: inclusive upper bound.
        optional: None is allowed (and returned as None).
        check: a further check ``check(name, value, values)`` that raises a ``ParameterError``.
    """

    kind: Any
    choices: Any = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    optional: bool = False
    check: Optional[Callable[[str, Any, Mapping[str, Any]], None]] = None

    def apply(self, name: str, value: Any, values: Mapping[str, Any]) -> Any:
        if self.kind in ("dir", "file"):
            out = None if value is None and self.optional else existing_path(name, value, self.kind)
        elif self.kind == "bbox":
            out = check_bbox(name, value, optional=self.optional)
        else:
            choices = self.choices(values) if callable(self.choices) else self.choices
            out = check_param(name, value, self.kind, choices, self.minimum, self.maximum, self.optional)
        if self.check is not None and out is not None:
            self.check(name, out, values)
        return out


def _split_of_dataset(name: str, value: Any, values: Mapping[str, Any]) -> None:
    splits = dataset_splits(values["dataset"])
    if value not in splits:
        quoted = ", ".join(repr(s) for s in splits)
        raise ParameterError(f"parameter {name}={value!r}: {values['dataset']} is evaluated on its {quoted} split only")


def _hands(name: str, value: Any, values: Mapping[str, Any]) -> None:
    if not value or any(h not in ("right", "left") for h in value):
        raise ParameterError(f"parameter {name}={value!r}: a non-empty list of 'right' and/or 'left'")


def _keys(*allowed: str) -> Callable[[str, Any, Mapping[str, Any]], None]:
    def check(name: str, value: Any, values: Mapping[str, Any]) -> None:
        if set(value) - set(allowed):
            raise ParameterError(f"parameter {name}={value!r}: keys are {' and '.join(repr(k) for k in allowed)}")

    return check


_OVERRIDES = Rule(dict)
_PNG = Rule(str, choices=PNG_EXPORT)
_FOCAL = Rule((list, tuple), optional=True)

NOTEBOOK_PARAMS: Dict[str, Dict[str, Rule]] = {
    "01_explore_dataset": {
        "dataset": Rule(str, choices=DATASETS),
        "data_root": Rule("dir"),
        "split": Rule(str, choices=lambda v: dataset_splits(v["dataset"])),
        "browse_split": Rule(str, choices=lambda v: dataset_splits(v["dataset"])),
        "capture": Rule(int, minimum=0, optional=True),
        "n_browse": Rule(int, minimum=1),
        "png_export": _PNG,
    },
    "02_train": {
        "dataset": Rule(str, choices=DATASETS),
        "config_overrides": _OVERRIDES,
        "print_every": Rule(int, minimum=1),
        "data_root": Rule("dir"),
    },
    "03_evaluate": {
        "dataset": Rule(str, choices=DATASETS),
        "config_overrides": _OVERRIDES,
        "split": Rule(str, choices=("val", "test"), check=_split_of_dataset),
        "n_show": Rule(int, minimum=0),
        "compare_baselines": Rule(bool),
        "compare_checkpoint": Rule((str, int), optional=True),
        "data_root": Rule("dir"),
    },
    "04_visualize_3d": {
        "config_overrides": _OVERRIDES,
        "split": Rule(str, choices=SPLITS),
        "sample_index": Rule(int, minimum=0, optional=True),
        "browse_hands": Rule(str, choices=("interacting", "right", "left", "all")),
        "browse_order": Rule(str, choices=("worst", "best", "index")),
        "color_by_error": Rule(bool),
        "n_browse": Rule(int, minimum=1),
        "hands": Rule((list, tuple), check=_hands),
        "export": Rule(bool),
        "png_export": _PNG,
        "data_root": Rule("dir"),
    },
    "05_your_image": {
        "config_overrides": _OVERRIDES,
        "image_path": Rule(str, optional=True),
        "bbox": Rule("bbox", optional=True),
        "png_export": _PNG,
        "focal": _FOCAL,
    },
    "06_sequences": {
        "config_overrides": _OVERRIDES,
        "split": Rule(str, choices=SPLITS),
        "capture": Rule(int, minimum=0, optional=True),
        "seq_name": Rule(str, optional=True),
        "camera": Rule((str, int), optional=True),
        "frame_index": Rule(int, minimum=0),
        "temporal_sequences": Rule(int, minimum=0),
        "max_views": Rule(int, minimum=1),
        "export": Rule(bool),
        "png_export": _PNG,
        "one_euro": Rule(dict, optional=True, check=_keys("min_cutoff", "beta")),
        "data_root": Rule("dir"),
    },
    "07_your_video": {
        "config_overrides": _OVERRIDES,
        "video_path": Rule(str, optional=True),
        "bbox": Rule("bbox", optional=True),
        "every": Rule(int, minimum=1),
        "max_frames": Rule(int, minimum=1, optional=True),
        "follow": Rule(bool),
        "momentum": Rule(float, minimum=0.0, maximum=0.99),
        "adapt_size": Rule(bool),
        "one_euro": Rule(dict, optional=True),
        "focal": _FOCAL,
    },
}
"""Each notebook's parameter rules, in the order they are checked (the first wrong one stops the notebook)."""


def check_notebook_params(notebook: str, values: Mapping[str, Any], names: Optional[Sequence[str]] = None):
    """Check the parameters of ``notebook`` (a key of :data:`NOTEBOOK_PARAMS`) found in ``values`` (the notebook's
    ``globals()``) and return them, checked, as a namespace: paths resolved, boxes as arrays. ``names``: only
    these (default: every rule of the notebook)."""
    if notebook not in NOTEBOOK_PARAMS:
        raise KeyError(f"no parameter rules for notebook {notebook!r}; known: {sorted(NOTEBOOK_PARAMS)}")
    rules = NOTEBOOK_PARAMS[notebook]
    checked: Dict[str, Any] = {}
    for name in names if names is not None else rules:
        if name not in values:
            raise ParameterError(f"parameter {name} is missing from the notebook's parameters cell")
        checked[name] = rules[name].apply(name, values[name], {**values, **checked})
    return SimpleNamespace(**checked)
