"""Is the download complete? ``python -m internet.data.check DATA_ROOT`` and :func:`check_data`.

InterHand2.6M comes as split tar parts, and a half-extracted download evaluates without an error: on whichever
images are there, which is not the split (one tar part of test gives 118 mm). The check reports, per split and
capture, how many images the annotations reference and how many of those are on disk, the annotation files found
(v1.0 / v0.0 layout, H / M / H+M subsets, frame rate), the RootNet output and the MANO fits. It exits non-zero when
a split is incomplete. Training and evaluation call :func:`require_images`, which refuses such a split with this
report unless ``cfg.allow_missing_images`` opts in to the images present.

At full size (2.2 M image paths) it lists each image folder the annotations name once (no per-file ``stat``) and
looks the names up: see benchmarks/RESULTS.md (section 10, "Data check") for the time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Union

import numpy as np
import torch

from internet.config import SPLITS, Config
from internet.data.index import AnnotationIndex, IndexSources
from internet.data.index_cache import load_index
from internet.data.interhand import resolve_sources

PathLike = Union[str, Path]

SUBSETS = {"H+M": "all", "H": "human_annot", "M": "machine_annot"}
"""v0.0 subset -> its annotation folder (v1.0 has one folder per split holding H+M)."""
KINDS = ("data", "camera", "joint_3d")
MISSING_SHOWN = 5
"""Missing image paths listed per split in the report (the counts cover them all)."""


class IncompleteDataError(FileNotFoundError):
    """A split's annotations reference images that are not on disk (see :func:`require_images`)."""


@dataclass
class SplitReport:
    """What one split of a data root holds (:func:`check_data`)."""

    split: str
    annotation_files: List[Dict[str, str]] = field(default_factory=list)
    """Each found annotation file: ``path``, ``layout`` ('v1.0' | 'v0.0'), ``subset`` ('H+M' | 'H' | 'M'), ``kind``."""
    layout: Optional[str] = None
    """The layout the data sets read ('v1.0' first, else 'v0.0'), None without a data file."""
    fps: Optional[str] = None
    rootnet: Optional[str] = None
    mano: Optional[str] = None
    image_folder: bool = False
    captures: Dict[int, Dict[str, int]] = field(default_factory=dict)
    """capture -> ``{"referenced": n, "present": m}`` images."""
    missing_examples: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    present_rows: Optional[np.ndarray] = field(default=None, repr=False)
    """(N,) bool per annotation index row: its image is on disk."""

    @property
    def referenced(self) -> int:
        return sum(c["referenced"] for c in self.captures.values())

    @property
    def present(self) -> int:
        return sum(c["present"] for c in self.captures.values())

    @property
    def found(self) -> bool:
        """Anything of this split is there (annotations or images)."""
        return bool(self.annotation_files) or self.image_folder

    @property
    def complete(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {
            "split": self.split,
            "complete": self.complete,
            "layout": self.layout,
            "fps": self.fps,
            "annotation_files": self.annotation_files,
            "rootnet": self.rootnet,
            "mano": self.mano,
            "referenced": self.referenced,
            "present": self.present,
            "captures": {str(k): v for k, v in self.captures.items()},
            "missing_examples": self.missing_examples,
            "problems": self.problems,
        }

    def text(self) -> str:
        state = "complete" if self.complete else "INCOMPLETE"
        lines = [f"{self.split}: {state}" + (f" ({self.layout} layout)" if self.layout else "")]
        groups: Dict[tuple, List[str]] = {}
        for f in self.annotation_files:
            groups.setdefault((f["layout"], f["subset"], str(Path(f["path"]).parent)), []).append(f["kind"])
        for (layout, subset, folder), kinds in groups.items():
            lines.append(f"  annotations {layout} {subset}: {', '.join(kinds)} in {folder}")
        if not groups:
            lines.append("  annotations: none found")
        lines.append(f"  frame rate: {self.fps or 'unknown'}")
        lines.append(f"  RootNet output: {self.rootnet or 'not found'}")
        lines.append(f"  MANO fits: {self.mano or 'not found'}")
        if self.captures:
            lines.append(f"  images: {self.present} of {self.referenced} referenced are on disk")
            for cap, c in sorted(self.captures.items()):
                flag = "" if c["present"] == c["referenced"] else f"  <- {c['referenced'] - c['present']} missing"
                lines.append(f"    Capture{cap}: {c['present']} / {c['referenced']}{flag}")
        for path in self.missing_examples:
            lines.append(f"  missing e.g. {path}")
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass
class DataReport:
    """:func:`check_data`'s answer: one :class:`SplitReport` per split checked."""

    data_root: str
    splits: Dict[str, SplitReport]

    @property
    def complete(self) -> bool:
        """Every split found is complete, and at least one was found."""
        found = [r for r in self.splits.values() if r.found]
        return bool(found) and all(r.complete for r in found)

    def to_dict(self) -> dict:
        return {
            "data_root": self.data_root,
            "complete": self.complete,
            "splits": {k: v.to_dict() for k, v in self.splits.items()},
        }

    def text(self) -> str:
        parts = [f"data check of {self.data_root}"]
        for r in self.splits.values():
            parts.append(r.text() if r.found else f"{r.split}: not downloaded (no annotations, no images/{r.split})")
        if not any(r.found for r in self.splits.values()):
            parts.append(f"nothing found: is {self.data_root} the InterHand2.6M folder (annotations/, images/)?")
        return "\n".join(parts)

    __str__ = text


# ============================================================================================== the parts
def annotation_files(data_root: Path, split: str) -> List[Dict[str, str]]:
    """The annotation files of ``split`` under ``data_root/annotations`` in either layout."""
    ann = data_root / "annotations"
    found = []
    for layout, subset, folder in [("v1.0", "H+M", ann / split)] + [("v0.0", s, ann / d) for s, d in SUBSETS.items()]:
        for kind in KINDS:
            path = folder / f"InterHand2.6M_{split}_{kind}.json"
            if path.is_file():
                found.append({"path": str(path), "layout": layout, "subset": subset, "kind": kind})
    return found


def _first_file(paths: Iterable[Path]) -> Optional[str]:
    return next((str(p) for p in paths if p.is_file()), None)


def _frame_rate(data_root: Path, index: Optional[AnnotationIndex]) -> Optional[str]:
    """The release's frame rate: from the folder name the release uses (``..._5fps_...``, ``..._30fps_...``),
    a synthetic set's ``synth_info.json``, else the annotations' frame step (1: 30 fps; larger: a subsampled rate)."""
    for part in reversed(data_root.resolve().parts):
        for rate in ("30fps", "5fps"):
            if rate in part.lower():
                return f"{rate[:-3]} fps (folder name {part!r})"
    info = data_root / "synth_info.json"
    if info.is_file():
        try:
            fps = json.loads(info.read_text()).get("sequences", {}).get("fps")
        except (OSError, ValueError, AttributeError):
            fps = None
        if isinstance(fps, (int, float)):
            return f"{fps:g} fps (synth_info.json)"
    if index is None or len(index) < 2:
        return None
    keys = np.stack([np.asarray(index[k], dtype=np.int64) for k in ("capture", "seq_code", "camera", "frame")], axis=1)
    keys = keys[np.lexsort(keys.T[::-1])]
    d = np.diff(keys[:, 3])
    same = (np.diff(keys[:, :3], axis=0) == 0).all(axis=1) & (d > 0)
    if not same.any():
        return None
    steps, counts = np.unique(d[same], return_counts=True)
    step = int(steps[np.argmax(counts)])
    return "30 fps (frame step 1)" if step == 1 else f"frame step {step} (a subsampled release, e.g. 5 fps)"


def folder_lister(image_root: Path) -> Callable[[str], Set[str]]:
    """``names(folder)``: the entries of ``image_root/folder`` (empty when it is absent). One ``os.listdir`` a folder
    and no ``stat`` a file: at full size the file system's per-file cost is what a check pays most."""
    root = str(image_root)

    def names(folder: str) -> Set[str]:
        try:
            return set(os.listdir(os.path.join(root, folder)))
        except (FileNotFoundError, NotADirectoryError):
            return set()

    return names


def referenced_images(index: AnnotationIndex) -> List[str]:
    """The image path (relative to ``images/{split}``) of every index row, in row order."""
    blob = bytes(np.asarray(index["file_name_bytes"])).decode("utf-8")
    offsets = np.asarray(index["file_name_offsets"], dtype=np.int64)
    # offsets are bytes; the names are ASCII in the release, but count characters to be safe with any other
    if len(blob) != int(offsets[-1]):
        raw = bytes(np.asarray(index["file_name_bytes"]))
        return [raw[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    return [blob[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


def compare_images(referenced: Sequence[str], capture: np.ndarray, folder_names: Callable[[str], Set[str]]) -> tuple:
    """(present per row (N,) bool, ``{capture: {"referenced", "present"}}``) of referenced image paths (one per
    index row, with its capture); ``folder_names(folder)`` lists a folder of the split's images (see
    :func:`folder_lister`), called once a folder. Counts are of distinct images."""
    listed: Dict[str, Set[str]] = {}

    def on_disk(path: str) -> bool:
        folder, _, name = path.rpartition("/")
        names = listed.get(folder)
        if names is None:
            names = listed[folder] = folder_names(folder)
        return name in names

    here = np.fromiter(map(on_disk, referenced), dtype=bool, count=len(referenced))
    capture = np.asarray(capture, dtype=np.int64)
    # distinct images (an image annotated on two rows counts once): the last row of each path
    first = np.fromiter({p: i for i, p in enumerate(referenced)}.values(), dtype=np.int64)
    caps, inverse = np.unique(capture[first], return_inverse=True)
    ref_counts = np.bincount(inverse, minlength=len(caps))
    present_counts = np.bincount(inverse, weights=here[first], minlength=len(caps)).astype(np.int64)
    per_capture = {
        int(c): {"referenced": int(r), "present": int(n)} for c, r, n in zip(caps, ref_counts, present_counts)
    }
    return here, per_capture


# ============================================================================================== the check
def check_split(data_root: PathLike, split: str, annot_subset: str = "all", cache: bool = True) -> SplitReport:
    """The :class:`SplitReport` of one split (see the module docstring)."""
    data_root = Path(data_root)
    rep = SplitReport(split=split)
    rep.annotation_files = annotation_files(data_root, split)
    image_root = data_root / "images" / split
    rep.image_folder = image_root.is_dir()
    rep.rootnet = _first_file([data_root / "rootnet_output" / f"rootnet_interhand2.6m_output_{split}.json"])
    mano = f"InterHand2.6M_{split}_MANO_NeuralAnnot.json"
    rep.mano = _first_file([data_root / "annotations" / split / mano, data_root / "annotations" / mano])
    index = None
    if not rep.found:
        return rep
    try:
        sources, rep.layout = resolve_sources(data_root, split, annot_subset)
    except FileNotFoundError as e:
        rep.problems.append(f"no annotation data file: {e}")
        rep.fps = _frame_rate(data_root, None)
        return rep
    absent = [str(p) for p in sources.paths if not p.is_file()]
    if absent:
        rep.problems.append(f"annotation file(s) missing beside {sources.data_json.name}: {', '.join(absent)}")
        return rep
    index = _index(sources, data_root, cache)
    rep.fps = _frame_rate(data_root, index)
    # no RootNet output or MANO file is a problem: trans_test='gt' needs no RootNet and nothing reads MANO (reported)
    names = referenced_images(index)
    rep.present_rows, rep.captures = compare_images(names, np.asarray(index["capture"]), folder_lister(image_root))
    missing_rows = np.flatnonzero(~rep.present_rows)
    if missing_rows.size:
        rep.missing_examples = [str(image_root / names[r]) for r in missing_rows[:MISSING_SHOWN]]
        rep.problems.append(
            f"{rep.referenced - rep.present} of {rep.referenced} images the annotations reference are not in "
            f"{image_root} (a partial download or extraction? extract every tar part of images/{split})"
        )
    return rep


def _index(sources: IndexSources, data_root: Path, cache: bool) -> AnnotationIndex:
    return load_index(sources, data_root, cache=cache)


def check_data(
    data_root: PathLike, splits: Optional[Sequence[str]] = None, annot_subset: str = "all", cache: bool = True
) -> DataReport:
    """The :class:`DataReport` of ``data_root`` (its ``text()`` is what the command line prints; notebooks show it
    before any long work). ``splits``: default all three; ``cache``: keep the parsed annotations (as training does)."""
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise FileNotFoundError(f"data_root not found: {data_root}")
    for s in splits or SPLITS:
        if s not in SPLITS:
            raise ValueError(f"split {s!r} must be one of {SPLITS}")
    return DataReport(str(data_root), {s: check_split(data_root, s, annot_subset, cache) for s in splits or SPLITS})


def require_images(cfg: Config, split: str, cache: bool = True) -> Optional[np.ndarray]:
    """Refuse (:class:`IncompleteDataError` with the split's report) to train or evaluate on an InterHand2.6M split
    whose annotations reference images that are not on disk, unless ``cfg.allow_missing_images``; then warn and
    return the index rows whose image is there (None: every image is, or not an InterHand2.6M layout)."""
    if cfg.dataset != "InterHand2.6M":
        return None
    rep = check_split(cfg.data_root, split, cfg.annot_subset, cache)
    if rep.present_rows is None or rep.present_rows.all():
        return None
    report = DataReport(str(cfg.data_root), {split: rep}).text()
    if not cfg.allow_missing_images:
        raise IncompleteDataError(
            f"{report}\nRefusing the incomplete {split} split: its results would not be the split's. Complete the "
            "download, or set allow_missing_images=True to use the images present only."
        )
    warnings.warn(f"{report}\nallow_missing_images=True: using the {rep.present} images present only", stacklevel=2)
    return np.flatnonzero(rep.present_rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m internet.data.check", description="Check an InterHand2.6M download for completeness."
    )
    parser.add_argument("data_root")
    parser.add_argument("--split", action="append", choices=SPLITS, help="check only this split (repeatable)")
    parser.add_argument("--annot-subset", default="all", choices=("all", "human", "machine"))
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-cache", action="store_true", help="do not keep the parsed annotations")
    args = parser.parse_args(argv)
    try:
        report = check_data(args.data_root, args.split, args.annot_subset, cache=not args.no_cache)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.text())
    return 0 if report.complete else 1


if __name__ == "__main__":
    sys.exit(main())


class PresentImages(torch.utils.data.Subset):
    """The samples of ``dataset`` at ``positions`` (those whose image is on disk), with its ``set_epoch`` and
    attributes, and ``eval_targets`` of those samples only: what training and evaluation use of a partial split
    when ``cfg.allow_missing_images`` opts in."""

    def __getattr__(self, name: str):
        if name in ("dataset", "indices"):  # not set yet (unpickling): no recursion through the data set
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def eval_targets(self) -> Dict[str, np.ndarray]:
        rows = np.asarray(self.indices, dtype=np.int64)
        return {k: np.asarray(v)[rows] for k, v in self.dataset.eval_targets().items()}


def build_checked_dataset(cfg: Config, split: str, mode: str):
    """``internet.data.build_dataset(cfg, split, mode)`` after :func:`require_images`: refused when referenced
    images are missing, or (``cfg.allow_missing_images``) restricted to the samples whose image is there."""
    from internet.data import build_dataset

    present = require_images(cfg, split)
    dataset = build_dataset(cfg, split, mode)
    if present is None:
        return dataset
    rows = getattr(dataset, "rows", None)
    rows = np.arange(len(dataset)) if rows is None else np.asarray(rows)
    keep = np.flatnonzero(np.isin(rows, present))  # data set positions whose index row has its image
    return PresentImages(dataset, keep.tolist())
