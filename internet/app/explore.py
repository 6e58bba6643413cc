"""Statistics of a data set for the exploration notebook.

Everything is computed from the compact annotation index (:mod:`internet.data.index`) with vectorised numpy, so it
scales to the full release: counts by split / subset / hand type, per-joint validity, box statistics and the camera
rig of a capture. RHD and STB (single-hand, no camera rig) go through :func:`load_splits`, :func:`dataset_arrays`
and :func:`dataset_count_table`, whose arrays the same validity and box functions accept.
The mean-pose baseline is in :mod:`internet.evaluation.baselines`, the per-sample error in
:mod:`internet.evaluation.protocol`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from internet.config import SPLITS, Config
from internet.data import build_dataset, dataset_splits
from internet.data.index import AnnotationIndex
from internet.data.index_cache import load_index
from internet.data.interhand import read_id_list, resolve_sources
from internet.data.single_hand import SingleHandDataset
from internet.evaluation.scores import EvalResult, SingleHandEvalResult
from internet.skeleton import HAND_TYPES, INTERHAND, Skeleton


# ------------------------------------------------------------------------------------------------ loading
def available_splits(data_root: Union[str, Path]) -> List[str]:
    """The splits of ``data_root`` whose annotation files exist (v1.0 or v0.0 layout)."""
    out = []
    for split in SPLITS:
        try:
            resolve_sources(Path(data_root), split)
        except FileNotFoundError:
            continue
        out.append(split)
    return out


def load_split_index(data_root: Union[str, Path], split: str, annot_subset: str = "all") -> AnnotationIndex:
    """The (cached, memory-mapped) annotation index of one split."""
    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"data_root not found: {root}")
    sources, _ = resolve_sources(root, split, annot_subset)
    return load_index(sources, root)


# ------------------------------------------------------------------------------------------------ counts
def count_table(
    data_root: Union[str, Path],
    human_annot_ids: Optional[Union[str, Path]] = None,
    splits: Optional[Sequence[str]] = None,
) -> List[Dict[str, object]]:
    """Annotation counts per split, subset and hand type, one row per (split, subset).

    Without ``human_annot_ids`` (v1.0 ships only 'all') the subset is 'all'; with it (a file of human-annotated ids,
    one per line) the rows are 'human' (H) and 'machine' (M). Annotation ids are per split, so the path may contain
    ``{split}`` (e.g. InterWild's ``aid_human_annot_{split}.txt``); a split whose file does not exist keeps one
    'all' row. Columns: split, subset, right, left, interacting, total, valid_joints (mean valid joints per
    annotation).
    """
    splits = list(splits) if splits is not None else available_splits(data_root)
    if not splits:
        raise FileNotFoundError(f"no InterHand2.6M annotation files under {Path(data_root) / 'annotations'}")
    per_split = human_annot_ids is not None and "{split}" in str(human_annot_ids)
    human = read_id_list(human_annot_ids) if human_annot_ids and not per_split else None
    rows = []
    for split in splits:
        index = load_split_index(data_root, split)
        codes = np.asarray(index["hand_type"])
        nvalid = np.asarray(index["joint_valid"]).sum(axis=1)
        masks = {"all": np.ones(len(codes), bool)}
        ids = human
        if per_split:
            path = Path(str(human_annot_ids).replace("{split}", split))
            ids = read_id_list(path) if path.is_file() else None
        if ids is not None:
            is_h = np.isin(np.asarray(index["ann_id"]), ids)
            masks = {"human": is_h, "machine": ~is_h}
        for subset, m in masks.items():
            counts = np.bincount(codes[m], minlength=len(HAND_TYPES))
            rows.append(
                {
                    "split": split,
                    "subset": subset,
                    **{name: int(c) for name, c in zip(HAND_TYPES, counts)},
                    "total": int(m.sum()),
                    "valid_joints": float(nvalid[m].mean()) if m.any() else float("nan"),
                }
            )
    return rows


def joint_validity(index: AnnotationIndex) -> Dict[str, np.ndarray]:
    """Fraction of annotations in which each of the 42 joints is valid, overall and per hand type.
    Returns ``{'all': (42,), 'right': (42,), 'left': (42,), 'interacting': (42,)}`` (NaN where a type is absent)."""
    valid = np.asarray(index["joint_valid"], dtype=np.float64)
    codes = np.asarray(index["hand_type"])
    out = {"all": valid.mean(axis=0) if len(valid) else np.full(valid.shape[1], np.nan)}
    for k, name in enumerate(HAND_TYPES):
        m = codes == k
        out[name] = valid[m].mean(axis=0) if m.any() else np.full(valid.shape[1], np.nan)
    return out


def bbox_stats(index: AnnotationIndex) -> Dict[str, np.ndarray]:
    """Per-annotation box measurements: ``w``, ``h`` (px), ``aspect`` (w / h), ``rel_size`` (sqrt of the box area
    over the image area), ``center_x``/``center_y`` (box centre over image width/height), ``outside`` (fraction
    of the box outside the image), and ``hand_type`` codes."""
    box = np.asarray(index["bbox"], dtype=np.float64)
    width = np.asarray(index["width"], dtype=np.float64)
    height = np.asarray(index["height"], dtype=np.float64)
    w, h = box[:, 2], box[:, 3]
    inside_w = np.clip(np.minimum(box[:, 0] + w, width) - np.maximum(box[:, 0], 0), 0, None)
    inside_h = np.clip(np.minimum(box[:, 1] + h, height) - np.maximum(box[:, 1], 0), 0, None)
    area = np.maximum(w * h, 1e-9)
    return {
        "w": w,
        "h": h,
        "aspect": w / np.maximum(h, 1e-9),
        "rel_size": np.sqrt(area / (width * height)),
        "center_x": (box[:, 0] + w / 2) / width,
        "center_y": (box[:, 1] + h / 2) / height,
        "outside": 1.0 - inside_w * inside_h / area,
        "hand_type": np.asarray(index["hand_type"]),
    }


def summarize(
    values: Dict[str, np.ndarray],
    keys: Sequence[str] = ("w", "h", "aspect", "rel_size", "outside"),
) -> List[Dict[str, object]]:
    """Rows of count / mean / min / median / max for some entries of :func:`bbox_stats`."""
    rows = []
    for k in keys:
        v = np.asarray(values[k], dtype=np.float64)
        v = v[np.isfinite(v)]
        if len(v) == 0:
            rows.append({"quantity": k, "count": 0})
            continue
        rows.append(
            {
                "quantity": k,
                "count": int(len(v)),
                "mean": float(v.mean()),
                "min": float(v.min()),
                "median": float(np.median(v)),
                "max": float(v.max()),
            }
        )
    return rows


# ------------------------------------------------------------------------------------------------ any data set
SINGLE_HAND_SPLITS = ("train", "test")
"""The splits of RHD and STB (their test split is the official evaluation set)."""


def load_splits(cfg: Config) -> Dict[str, Any]:
    """Every split of ``cfg.dataset`` whose annotation file exists under ``cfg.data_root``, as test-mode data sets
    with ground-truth boxes (``{split: dataset}``, in split order). Raises FileNotFoundError when there is none."""

    splits = dataset_splits(cfg.dataset)
    gt_cfg = cfg.replace(trans_test="gt")  # statistics need no RootNet file
    out, missing = {}, []
    for split in splits:
        try:
            out[split] = build_dataset(gt_cfg, split, "test")
        except FileNotFoundError as e:
            missing.append(str(e))
    if not out:
        raise FileNotFoundError(f"no {cfg.dataset} annotation file under {cfg.data_root}: " + "; ".join(missing))
    return out


def dataset_arrays(dataset: Any) -> Dict[str, np.ndarray]:
    """Per-sample arrays of an InterHand26M or RHD/STB data set, in datalist order: ``hand_type`` codes (0 right,
    1 left, 2 interacting), ``joint_valid`` (N, 42) in the two-hand layout, annotated ``bbox`` (N, 4) [x, y, w, h],
    image ``width`` and ``height`` (N,). :func:`joint_validity` and :func:`bbox_stats` accept the result."""
    if isinstance(dataset, SingleHandDataset):
        ann = dataset.ann
        _, _, joint_valid = dataset.joints_42()
        return {
            "hand_type": ann.hand_type.astype(np.int64),
            "joint_valid": joint_valid,
            "bbox": ann.bbox.copy(),
            "width": ann.width.copy(),
            "height": ann.height.copy(),
        }
    index = getattr(dataset, "index", None)
    if not isinstance(index, AnnotationIndex):
        raise TypeError(f"dataset must be an InterHand26M, RHD or STB data set, got {type(dataset).__name__}")
    rows = getattr(dataset, "rows", None)
    sel = slice(None) if rows is None else np.asarray(rows)
    return {k: np.asarray(index[k])[sel] for k in ("hand_type", "joint_valid", "bbox", "width", "height")}


def dataset_count_table(datasets: Mapping[str, Any]) -> List[Dict[str, object]]:
    """:func:`count_table` rows (subset 'all') from loaded data sets ``{split: dataset}`` of any type: right, left,
    interacting (always 0 for RHD/STB), total, valid_joints (mean valid joints per sample)."""
    rows = []
    for split, ds in datasets.items():
        arrays = dataset_arrays(ds)
        codes = np.asarray(arrays["hand_type"], dtype=np.int64)
        nvalid = np.asarray(arrays["joint_valid"]).sum(axis=1)
        counts = np.bincount(codes, minlength=len(HAND_TYPES))
        rows.append(
            {
                "split": split,
                "subset": "all",
                **{name: int(c) for name, c in zip(HAND_TYPES, counts)},
                "total": int(len(codes)),
                "valid_joints": float(nvalid.mean()) if len(codes) else float("nan"),
            }
        )
    return rows


# ------------------------------------------------------------------------------------------------ cameras
def hands_world(index: AnnotationIndex, row: int, campos: np.ndarray, camrot: np.ndarray) -> np.ndarray:
    """World coordinates (42, 3) of annotation ``row`` from its camera coordinates: X_world = R^T X_cam + campos."""
    cam = np.asarray(index["joint_cam"][row], dtype=np.float64)
    return cam @ np.asarray(camrot, dtype=np.float64) + np.asarray(campos, dtype=np.float64)


# ------------------------------------------------------------------------------------------------ figures
def counts_figure(rows: List[Dict[str, object]], title: str = "annotations per split and hand type") -> Figure:
    """Grouped bars of :func:`count_table` rows (matplotlib, no pyplot)."""
    fig = Figure(figsize=(7, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    labels = [f"{r['split']}\n({r['subset']})" for r in rows]
    x = np.arange(len(rows))
    width = 0.27
    for k, name in enumerate(HAND_TYPES):
        ax.bar(x + (k - 1) * width, [r[name] for r in rows], width, label=name)
    ax.set_xticks(x, labels)
    ax.set_ylabel("annotations")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def validity_figure(validity: Dict[str, np.ndarray], skeleton: Skeleton = INTERHAND) -> Figure:
    """Per-joint valid fraction, one line per hand type (matplotlib)."""
    fig = Figure(figsize=(10, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for name in ("all",) + HAND_TYPES:
        ax.plot(np.arange(skeleton.joint_num), validity[name], marker="o", markersize=3, label=name)
    ax.set_xticks(np.arange(skeleton.joint_num), skeleton.names, rotation=90, fontsize=6)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("fraction valid")
    ax.set_title("joint validity per joint", fontsize=10)
    ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    return fig


def bbox_figure(stats: Dict[str, np.ndarray]) -> Figure:
    """Histograms of box size, aspect ratio and centre (matplotlib)."""
    fig = Figure(figsize=(10, 2.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    for k, name in enumerate(HAND_TYPES):
        m = stats["hand_type"] == k
        if m.any():
            axes[0].hist(stats["rel_size"][m], bins=20, alpha=0.6, label=name)
            axes[1].hist(stats["aspect"][m], bins=20, alpha=0.6, label=name)
    axes[0].set_xlabel("box size / image size")
    axes[1].set_xlabel("box aspect (w / h)")
    axes[0].legend(fontsize=7)
    axes[2].scatter(stats["center_x"], stats["center_y"], s=4, alpha=0.5)
    axes[2].set_xlim(0, 1)
    axes[2].set_ylim(1, 0)
    axes[2].set_xlabel("box centre x / W")
    axes[2].set_ylabel("y / H")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------ per sample
def gt_joint_img(gt: Dict[str, np.ndarray]) -> np.ndarray:
    """(N, 42, 2) pixel coordinates of the GT joints (projection of ``joint_cam`` with focal/princpt)."""
    cam = np.asarray(gt["joint_cam"], dtype=np.float64)
    z = cam[..., 2:3]
    z = np.where(np.abs(z) > 1e-8, z, 1e-8)
    return (
        cam[..., :2] / z * np.asarray(gt["focal"], dtype=np.float64)[:, None]
        + np.asarray(gt["princpt"], dtype=np.float64)[:, None]
    )


def select_rows(gt: Dict[str, np.ndarray], rows: np.ndarray) -> Dict[str, np.ndarray]:
    """The entries of an ``eval_targets()`` dict at ``rows``."""
    rows = np.asarray(rows)
    return {k: np.asarray(v)[rows] for k, v in gt.items()}


def per_joint_figure(
    result: Union[EvalResult, SingleHandEvalResult],
    title: str = "per-joint MPJPE (official protocol)",
    others: Optional[Mapping[str, Union[EvalResult, SingleHandEvalResult]]] = None,
    name: str = "checkpoint",
) -> Figure:
    """Bars of the per-joint MPJPE (matplotlib): an EvalResult's single-hand and interacting subsets, or a
    SingleHandEvalResult's 21 joints of the GT hand (the data set's joint names); ``others`` (name -> result of
    another model) are drawn beside, each bar labelled with its model."""
    fig = Figure(figsize=(11, 3.4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    series = {}
    for model, r in {name: result, **(others or {})}.items():
        prefix = f"{model}: " if others else ""
        if isinstance(r, SingleHandEvalResult):
            series[prefix + "GT hand"] = r.per_joint
        else:
            series.update({prefix + sub: r.per_joint.get(sub, {}) for sub in ("single", "interacting")})
    width = 0.8 / len(series)
    names = list(next((v for v in series.values() if v), {}).keys())
    x = np.arange(len(names))
    for k, (label, per_joint) in enumerate(series.items()):
        vals = [np.nan if per_joint.get(n) is None else per_joint[n] for n in names]
        ax.bar(x + (k - (len(series) - 1) / 2) * width, vals, width, label=label)
    ax.set_xticks(x, names, rotation=90, fontsize=6)
    ax.set_ylabel("MPJPE (mm)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def browse_indices(
    hand_type: Sequence[str], n_per_type: int, include: Optional[int] = None, types: Sequence[str] = HAND_TYPES
) -> np.ndarray:
    """Sorted sample indices for a browser: up to ``n_per_type`` of each hand type in ``types`` (spread over the
    split, which is often ordered by hand type), plus ``include``."""
    ht = np.asarray(hand_type).astype(str)
    chosen = set() if include is None else {int(include)}
    for t in types:
        rows = np.nonzero(ht == t)[0]
        if len(rows):
            chosen |= {
                int(rows[k])
                for k in np.unique(np.linspace(0, len(rows) - 1, min(n_per_type, len(rows))).round().astype(int))
            }
    return np.array(sorted(chosen), dtype=np.int64)


def default_image(data_root: Union[str, Path], split: str = "test") -> tuple:
    """(path, box) of the first interacting-hands image of a split (the synthetic set that ``make demo`` generates
    inside the repository), with its annotated box [x, y, w, h]; the split's first image where none is
    interacting."""
    index = load_split_index(data_root, split)
    codes = np.asarray(index["hand_type"])  # int8 codes in HAND_TYPES order
    inter = np.nonzero(codes == HAND_TYPES.index("interacting"))[0]
    row = int(inter[0]) if len(inter) else 0
    return Path(data_root) / "images" / split / index.file_name(row), [float(v) for v in index["bbox"][row]]
