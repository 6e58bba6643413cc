"""The results of an evaluation: the official protocol's numbers and the labelled variants, as JSON and as a table.

:class:`EvalResult` holds InterHand2.6M's, :class:`SingleHandEvalResult` RHD's and STB's; the functions that fill
them are :mod:`internet.evaluation.protocol`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

SUBSETS = ("all", "single", "interacting")


def num(x) -> Optional[float]:
    """A JSON-safe number: None for undefined (NaN/None)."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def fmt(x: Optional[float], digits: int = 2) -> str:
    """A metric for a table: ``digits`` decimals, or 'undefined'."""
    return "undefined" if x is None else f"{x:.{digits}f}"


@dataclass
class EvalResult:
    """InterHand2.6M metrics. Official protocol: handedness_accuracy, mrrpe, mpjpe_all/single/interacting (mean of
    per-joint means, wrists included) and per_joint[subset][joint name] (mm). Variants: mpjpe_pooled_* (mmpose:
    mean over all valid joints) and ap_h (see :func:`internet.evaluation.metrics.ap_handedness`). None = undefined
    (see notes)."""

    handedness_accuracy: Optional[float]
    mrrpe: Optional[float]
    mpjpe_all: Optional[float]
    mpjpe_single: Optional[float]
    mpjpe_interacting: Optional[float]
    per_joint: Dict[str, Dict[str, Optional[float]]]
    mpjpe_pooled_all: Optional[float] = None
    mpjpe_pooled_single: Optional[float] = None
    mpjpe_pooled_interacting: Optional[float] = None
    ap_h: Optional[float] = None
    ap_h_per_class: Dict[str, Optional[float]] = field(default_factory=dict)
    counts: Dict[str, int] = field(default_factory=dict)
    excluded_joints: Dict[str, List[str]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-safe dict (None for undefined)."""
        return {
            "official_protocol": {
                "handedness_accuracy": num(self.handedness_accuracy),
                "mrrpe": num(self.mrrpe),
                "mpjpe_all": num(self.mpjpe_all),
                "mpjpe_single": num(self.mpjpe_single),
                "mpjpe_interacting": num(self.mpjpe_interacting),
                "per_joint": {s: {k: num(v) for k, v in d.items()} for s, d in self.per_joint.items()},
            },
            "variants": {
                "mpjpe_pooled_all (mmpose)": num(self.mpjpe_pooled_all),
                "mpjpe_pooled_single (mmpose)": num(self.mpjpe_pooled_single),
                "mpjpe_pooled_interacting (mmpose)": num(self.mpjpe_pooled_interacting),
                "ap_h (paper, average precision of handedness)": num(self.ap_h),
                "ap_h_per_class": {k: num(v) for k, v in self.ap_h_per_class.items()},
            },
            "counts": {k: int(v) for k, v in self.counts.items()},
            "excluded_joints": {k: list(v) for k, v in self.excluded_joints.items()},
            "notes": list(self.notes),
        }

    def summary_row(self) -> dict:
        """One row of a comparison table (notebook 03): the official numbers, then the labelled variants."""
        return {
            "MPJPE all": self.mpjpe_all,
            "single": self.mpjpe_single,
            "interacting": self.mpjpe_interacting,
            "MRRPE": self.mrrpe,
            "handedness acc": self.handedness_accuracy,
            "pooled all (mmpose)": self.mpjpe_pooled_all,
            "AP_h": self.ap_h,
        }

    def table(self) -> str:
        """A readable table; the official protocol's numbers first, the variants labelled below."""
        c = self.counts
        lines = [
            f"InterHand2.6M evaluation: {c.get('samples', 0)} samples "
            f"({c.get('single', 0)} single, {c.get('interacting', 0)} interacting)",
            "== official protocol (InterNet evaluate) ==",
            f"  Handedness accuracy          {fmt(self.handedness_accuracy, 4):>10}   "
            f"(over {c.get('hand_type_valid', 0)} hand_type_valid samples)",
            f"  MRRPE (mm)                   {fmt(self.mrrpe):>10}   ({c.get('mrrpe', 0)} interacting samples)",
            f"  MPJPE all hands (mm)         {fmt(self.mpjpe_all):>10}",
            f"  MPJPE single hand (mm)       {fmt(self.mpjpe_single):>10}",
            f"  MPJPE interacting (mm)       {fmt(self.mpjpe_interacting):>10}",
            "  per-joint MPJPE (mm)         " + "".join(f"{s:>12}" for s in SUBSETS),
        ]
        names = list(next(iter(self.per_joint.values())).keys()) if self.per_joint else []
        for name in names:
            lines.append(f"    {name:<26}" + "".join(f"{fmt(self.per_joint[s].get(name)):>12}" for s in SUBSETS))
        lines += [
            "== variants (not the official printout) ==",
            f"  MPJPE pooled all (mmpose)    {fmt(self.mpjpe_pooled_all):>10}",
            f"  MPJPE pooled single (mmpose) {fmt(self.mpjpe_pooled_single):>10}",
            f"  MPJPE pooled inter. (mmpose) {fmt(self.mpjpe_pooled_interacting):>10}",
            f"  AP_h (avg precision, R/L)    {fmt(self.ap_h, 4):>10}",
        ]
        for s, joints in self.excluded_joints.items():
            if joints:
                lines.append(f"  excluded from the {s} mean (no valid sample): {', '.join(joints)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class SingleHandEvalResult:
    """RHD/STB metrics. Official: handedness_accuracy (all samples) and mpjpe ("EPE": mean of the 21 per-joint means
    of the GT hand, root included). Variants: mpjpe_pooled and the normalised area under the 3D PCK curve over
    ``pck_thresholds`` (20-50 mm), computed over the valid GT-hand joints, root included."""

    handedness_accuracy: Optional[float]
    mpjpe: Optional[float]
    per_joint: Dict[str, Optional[float]]
    mpjpe_pooled: Optional[float] = None
    auc_pck_20_50: Optional[float] = None
    pck_thresholds: List[float] = field(default_factory=list)
    pck: List[float] = field(default_factory=list)
    counts: Dict[str, int] = field(default_factory=dict)
    excluded_joints: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "official_protocol": {
                "handedness_accuracy": num(self.handedness_accuracy),
                "mpjpe": num(self.mpjpe),
                "per_joint": {k: num(v) for k, v in self.per_joint.items()},
            },
            "variants": {
                "mpjpe_pooled": num(self.mpjpe_pooled),
                "auc_pck_20_50mm": num(self.auc_pck_20_50),
                "pck_thresholds_mm": [float(t) for t in self.pck_thresholds],
                "pck": [float(p) for p in self.pck],
            },
            "counts": {k: int(v) for k, v in self.counts.items()},
            "excluded_joints": list(self.excluded_joints),
            "notes": list(self.notes),
        }

    def summary_row(self) -> dict:
        """One row of a comparison table (notebook 03): the official numbers, then the labelled variants."""
        return {
            "MPJPE / EPE (mm)": self.mpjpe,
            "handedness acc": self.handedness_accuracy,
            "PCK AUC 20-50 mm (variant)": self.auc_pck_20_50,
            "pooled MPJPE (variant)": self.mpjpe_pooled,
        }

    def table(self) -> str:
        lines = [
            f"single-hand evaluation: {self.counts.get('samples', 0)} samples",
            "== official protocol (InterNet RHD/STB evaluate) ==",
            f"  Handedness accuracy          {fmt(self.handedness_accuracy, 4):>10}",
            f"  MPJPE / EPE (mm)             {fmt(self.mpjpe):>10}",
        ]
        lines += [f"    {k:<26}{fmt(v):>10}" for k, v in self.per_joint.items()]
        lines += [
            "== variants (not the official printout) ==",
            f"  MPJPE pooled (mm)            {fmt(self.mpjpe_pooled):>10}",
            f"  AUC of 3D PCK, 20-50 mm      {fmt(self.auc_pck_20_50, 4):>10}",
        ]
        if self.excluded_joints:
            lines.append(f"  excluded from the mean (no valid sample): {', '.join(self.excluded_joints)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
