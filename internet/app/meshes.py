"""Meshes in the notebooks: the data set's MANO fits (ground truth) and MANO fitted to a prediction, per sample,
as plotly figures and image overlays. Fitted meshes are fits to the predicted joints, not network output.

MANO files come from ``cfg.mano_dir`` (default ``{data_root}/mano``: the synthetic data set's stand-in model);
:func:`load_meshes` returns None with a message when they or the fit file are missing, so a notebook still runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import cv2
import numpy as np
import torch

from internet.data.mano_fits import fits_path
from internet.mano import mano_dir, mano_layers
from internet.mano.fit import fit_to_joints
from internet.mano.gt import GroundTruthMeshes
from internet.utils.atomic import atomic_write_bytes
from internet.vis.export import plotly_bundle
from internet.vis.mesh import LABELS, mesh_figure, render_overlay

HANDS = ("right", "left")


class Meshes:
    """MANO layers of both hands (on ``device``), and the split's ground-truth fits when the file exists."""

    def __init__(self, layers: Dict[str, torch.nn.Module], gt: Optional[GroundTruthMeshes], folder: Path):
        self.layers, self.gt, self.folder = layers, gt, folder
        self.faces = {h: layers[h].faces.cpu().numpy() for h in HANDS}
        self.synthetic = bool(getattr(layers["right"], "synthetic", False))

    def ground_truth(self, capture: int, camera: int, frame: int) -> Dict[str, Optional[dict]]:
        """Per hand ``{"vertices", "joints"}`` camera mm, or None without a fit."""
        if self.gt is None:
            return {h: None for h in HANDS}
        m = self.gt.meshes([capture], [camera], [frame])
        return {h: ({"vertices": m[h]["vertices"][0], "joints": m[h]["joints"][0]} if m[h]["valid"][0] else None)
                for h in HANDS}  # fmt: skip

    def fit_prediction(self, pred_cam: np.ndarray, present: Optional[np.ndarray] = None, iters: int = 150) -> list:
        """MANO fitted to predicted joints ``pred_cam`` (n, 42, 3) camera mm, per sample ``{hand: {"vertices",
        "joints", "error_mm"} or None}``; ``present`` (n, 2) picks the hands to fit (default both)."""
        pred_cam = np.asarray(pred_cam, dtype=np.float64).reshape(-1, 42, 3)
        n = len(pred_cam)
        present = np.ones((n, 2), bool) if present is None else np.asarray(present, bool).reshape(n, 2)
        out = [{h: None for h in HANDS} for _ in range(n)]
        for h, hand in enumerate(HANDS):
            rows = np.nonzero(present[:, h])[0]
            if len(rows) == 0:
                continue
            dev = self.layers[hand].v_template.device
            r = fit_to_joints(self.layers[hand], torch.as_tensor(pred_cam[rows, 21 * h : 21 * h + 21], device=dev),
                              iters=iters)  # fmt: skip
            for k, row in enumerate(rows):
                out[row][hand] = {"vertices": r.vertices[k].cpu().numpy(), "joints": r.joints[k].cpu().numpy(),
                                  "error_mm": float(r.error_mm[k])}  # fmt: skip
        return out

    def mesh_list(self, per_hand: Dict[str, Optional[dict]], kind: str, hands=HANDS) -> list:
        return [{"vertices": per_hand[h]["vertices"], "faces": self.faces[h], "hand": h, "kind": kind}
                for h in hands if per_hand.get(h) is not None]  # fmt: skip

    def figure(self, gt=None, fit=None, title: str = "", hands=HANDS, skeleton: Optional[np.ndarray] = None):
        """3D figure: the GT fit (lighter, translucent when a prediction fit is shown too) and the fit to the
        prediction; ``skeleton`` (42, 3) camera mm drawn on top."""
        meshes = []
        if gt is not None:
            meshes += [{**m, "opacity": 0.45 if fit is not None else 1.0} for m in self.mesh_list(gt, "gt", hands)]
        if fit is not None:
            meshes += self.mesh_list(fit, "pred", hands)
        skel = []
        if skeleton is not None:
            skel = [{"joints": skeleton[21 * h : 21 * h + 21], "hand": hand, "name": f"{hand} predicted joints"}
                    for h, hand in enumerate(HANDS) if hand in hands]  # fmt: skip
        note = " (synthetic stand-in model, not MANO)" if self.synthetic else ""
        fig = mesh_figure(meshes, title=title + note, skeletons=skel)
        fig._mesh_list = meshes  # for display_mesh_figure's static picture
        return fig

    def show(self, fig) -> None:
        """Display a figure from :meth:`figure` (interactive, with a rasterised static PNG)."""
        display_mesh_figure(fig, getattr(fig, "_mesh_list", []))

    def overlay(self, image: np.ndarray, per_hand: Dict[str, Optional[dict]], kind: str, focal, princpt,
                hands=HANDS) -> np.ndarray:  # fmt: skip
        """The image (RGB uint8) with the hands' meshes rasterised on it, depth-ordered."""
        return render_overlay(image, self.mesh_list(per_hand, kind, hands), focal, princpt)


def predicted_hands(hand_prob) -> np.ndarray:
    """(n, 2) bool: the hands to fit, those predicted present (probability > 0.5), else the more probable one."""
    prob = np.asarray(hand_prob, dtype=np.float64).reshape(-1, 2)
    present = prob > 0.5
    none = ~present.any(1)
    present[none] = prob[none] == prob[none].max(1, keepdims=True)
    return present


def load_meshes(cfg, split: str, device=None) -> Optional[Meshes]:
    """:class:`Meshes` for ``cfg`` and ``split``, or None (printing why) when the MANO files are missing."""
    folder = mano_dir(cfg)
    try:
        layers = mano_layers(folder, device=device)
    except FileNotFoundError as e:
        print(f"meshes skipped: {e}")
        return None
    fp = fits_path(cfg.data_root, split)
    gt = GroundTruthMeshes(cfg.data_root, split, layers) if fp.is_file() else None
    if gt is None:
        print(f"no MANO fits for {split} ({fp} missing): only fits to predictions are shown")
    return Meshes(layers, gt, folder)


def static_view(meshes: list, size: int = 480, background: int = 235) -> np.ndarray:
    """An RGB picture of camera-space meshes seen from the camera's direction, framed on them (the static PNG of a
    mesh figure: the rasteriser, so no browser is needed)."""
    canvas = np.full((size, size, 3), background, np.uint8)
    pts = np.concatenate([np.asarray(m["vertices"]) for m in meshes]) if meshes else np.zeros((0, 3))
    pts = pts[np.isfinite(pts).all(1)]
    if len(pts) == 0:
        return canvas
    c = pts.mean(0)
    extent = max(np.abs(pts[:, :2] - c[:2]).max(), 1.0)
    depth = 6.0 * extent  # a virtual camera along the same axis, framing the meshes (works for root-relative ones)
    f = 0.42 * size * depth / extent
    shifted = [{**m, "vertices": np.asarray(m["vertices"]) - [c[0], c[1], c[2] - depth]} for m in meshes]
    return render_overlay(canvas, shifted, (f, f), (size / 2, size / 2), alpha=1.0)


def display_mesh_figure(fig, meshes: list) -> None:
    """Show a plotly mesh figure interactively with :func:`static_view` as its static PNG, in one output."""
    from IPython.display import display

    ok, png = cv2.imencode(".png", static_view(meshes)[:, :, ::-1])
    text = f"<plotly figure: {fig.layout.title.text or 'meshes'}>"
    display(plotly_bundle(fig.to_plotly_json(), png.tobytes(), text), raw=True)


def side_by_side(*images: np.ndarray, labels=()) -> np.ndarray:
    """Images (RGB uint8) side by side, each with an optional label, padded to one height."""
    h = max(i.shape[0] for i in images)
    tiles = []
    for k, img in enumerate(images):
        t = np.pad(np.asarray(img, np.uint8), ((0, h - img.shape[0]), (0, 4), (0, 0)))
        if k < len(labels) and labels[k]:
            cv2.putText(t, labels[k], (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(t)
    return np.concatenate(tiles, axis=1)


def write_png(path, rgb: np.ndarray) -> Path:
    """An RGB image as PNG, atomically."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(np.asarray(rgb, np.uint8)[:, :, ::-1]))
    if not ok:
        raise ValueError(f"could not encode {path} as PNG")
    return atomic_write_bytes(path, data.tobytes())


__all__ = [
    "LABELS",
    "Meshes",
    "display_mesh_figure",
    "load_meshes",
    "predicted_hands",
    "side_by_side",
    "static_view",
    "write_png",
]
