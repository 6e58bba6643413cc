"""Error analysis figures (matplotlib, so the static picture is the figure itself): the per-joint error histogram
and the 3D PCK curves with their AUC (``internet.evaluation.pck``), one colour per model."""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from internet.evaluation.pck import pck_report
from internet.vis.overlay import PngFigure

_MODEL_COLOURS = ("#1f3b73", "#d0621f", "#2a9d5c", "#8a3ea8", "#666666")


def error_analysis_figure(
    errors: Mapping[str, np.ndarray],
    range_mm: tuple = (0.0, 50.0),
    title: Optional[str] = None,
    hist_max_mm: Optional[float] = None,
) -> PngFigure:
    """Two panels for ``errors`` (model name -> per-joint root-aligned errors in mm, NaN for invalid joints): the
    histogram of the errors (with each model's median) and the 3D PCK curve over ``range_mm`` with the AUC in the
    legend."""
    if not errors:
        raise ValueError("error_analysis_figure needs at least one model's errors")
    fig = PngFigure(figsize=(11.0, 3.8))
    ax_h, ax_p = fig.subplots(1, 2)
    finite = {k: np.asarray(v, dtype=np.float64)[np.isfinite(v)] for k, v in errors.items()}
    top = hist_max_mm or max(range_mm[1], max((np.percentile(v, 99) for v in finite.values() if len(v)), default=1))
    bins = np.linspace(0.0, float(top), 41)
    for k, (name, e) in enumerate(finite.items()):
        colour = _MODEL_COLOURS[k % len(_MODEL_COLOURS)]
        if len(e):
            ax_h.hist(np.clip(e, 0, top), bins=bins, histtype="step", linewidth=1.8, color=colour, label=name)
            ax_h.axvline(np.median(e), color=colour, linestyle=":", linewidth=1.2)
        rep = pck_report(errors[name], range_mm)
        p = np.array([np.nan if v is None else v for v in rep["pck"]], dtype=np.float64)
        auc = "n/a" if rep["auc"] is None else f"{rep['auc']:.3f}"
        ax_p.plot(rep["thresholds_mm"], 100 * p, color=colour, linewidth=2, label=f"{name} (AUC {auc})")
    ax_h.set_xlabel("root-aligned joint error (mm); dotted: median")
    ax_h.set_ylabel("joints")
    ax_h.set_title("error histogram", fontsize=10)
    ax_h.legend(fontsize=8)
    ax_p.set_xlabel("threshold (mm)")
    ax_p.set_ylabel("PCK (%)")
    ax_p.set_ylim(0, 100)
    ax_p.set_xlim(*range_mm)
    ax_p.grid(alpha=0.3)
    ax_p.set_title(f"3D PCK, AUC over {range_mm[0]:g}-{range_mm[1]:g} mm (extra, not official)", fontsize=10)
    ax_p.legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
