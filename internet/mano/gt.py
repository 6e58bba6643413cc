"""Ground-truth meshes of InterHand2.6M samples: the NeuralAnnot fits skinned and put in each camera by the exact
method (world skinning in mm, then the camera's extrinsics), and their fitting error against the annotated joints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from internet.data.io import read_json
from internet.data.mano_fits import HANDS, ManoFits, fits_path, load_mano_fits
from internet.mano.camera import world_to_camera_mm


class CameraTable:
    """``camera.json`` of a split: ``extrinsics(capture, camera)`` -> (camrot (3, 3), campos (3,) mm)."""

    def __init__(self, path):
        self.path = Path(path)
        self._cams = read_json(self.path, "camera file")

    def extrinsics(self, capture, camera):
        try:
            c = self._cams[str(int(capture))]
            name = str(camera)
            return np.asarray(c["camrot"][name], np.float64), np.asarray(c["campos"][name], np.float64)
        except KeyError as e:
            raise KeyError(f"{self.path}: no camera {camera} in capture {capture} ({e})") from None

    def focal_princpt(self, capture, camera):
        c = self._cams[str(int(capture))]
        return np.asarray(c["focal"][str(camera)], np.float64), np.asarray(c["princpt"][str(camera)], np.float64)


class GroundTruthMeshes:
    """The fits of one split with the MANO ``layers`` ({'right', 'left'}): :meth:`meshes` per batch of samples
    (capture, camera, frame) in camera mm, and :meth:`fitting_errors` against annotated camera-space joints."""

    def __init__(self, data_root, split: str, layers: Dict[str, torch.nn.Module], fits: Optional[ManoFits] = None):
        self.data_root, self.split, self.layers = Path(data_root), split, layers
        self.fits = fits if fits is not None else load_mano_fits(fits_path(data_root, split), data_root)
        self.cameras = CameraTable(self.data_root / "annotations" / split / f"InterHand2.6M_{split}_camera.json")

    def meshes(self, capture, camera, frame) -> Dict[str, Dict[str, np.ndarray]]:
        """Per hand: ``vertices`` (n, V, 3) and ``joints`` (n, 21, 3) camera mm (NaN where there is no fit) and
        ``valid`` (n,) bool, for arrays of captures, cameras and frames."""
        capture, camera, frame = (np.atleast_1d(np.asarray(a)) for a in (capture, camera, frame))
        params, valid = self.fits.get(capture, frame)
        ext = [self.cameras.extrinsics(c, k) for c, k in zip(capture.tolist(), camera.tolist())]
        R = np.stack([e[0] for e in ext]) if ext else np.zeros((0, 3, 3))
        T = np.stack([e[1] for e in ext]) if ext else np.zeros((0, 3))
        out = {}
        for h, hand in enumerate(HANDS):
            layer = self.layers[hand]
            dev, dt = layer.v_template.device, layer.v_template.dtype
            n, V = len(capture), layer.v_template.shape[0]
            verts, joints = np.full((n, V, 3), np.nan), np.full((n, 21, 3), np.nan)
            rows = np.nonzero(valid[:, h])[0]
            if len(rows):
                p = torch.as_tensor(params[rows, h], dtype=dt, device=dev)
                with torch.no_grad():
                    o = layer.mesh_mm(p[:, :48], p[:, 48:58], p[:, 58:])
                    Rt, Tt = (
                        torch.as_tensor(R[rows], dtype=dt, device=dev),
                        torch.as_tensor(T[rows], dtype=dt, device=dev),
                    )
                    verts[rows] = world_to_camera_mm(o.vertices_mm, Rt, Tt).cpu().numpy()
                    joints[rows] = world_to_camera_mm(o.ih26m_mm, Rt, Tt).cpu().numpy()
            out[hand] = {"vertices": verts, "joints": joints, "valid": valid[:, h].copy()}
        return out

    def fitting_errors(self, capture, camera, frame, joint_cam, joint_valid) -> np.ndarray:
        """(n, 2) mean distance (mm) [right, left] between the fit's joints and the valid annotated joints
        ``joint_cam`` (n, 42, 3) camera mm; NaN where a hand has no fit or no valid joint."""
        m = self.meshes(capture, camera, frame)
        jc, jv = np.asarray(joint_cam, np.float64), np.asarray(joint_valid) > 0
        err = np.full((len(jc), 2), np.nan)
        for h, hand in enumerate(HANDS):
            d = np.linalg.norm(m[hand]["joints"] - jc[:, 21 * h : 21 * h + 21], axis=-1)
            v = jv[:, 21 * h : 21 * h + 21] & m[hand]["valid"][:, None]
            with np.errstate(invalid="ignore"):
                err[:, h] = np.where(v.any(1), np.where(v, d, 0).sum(1) / np.maximum(v.sum(1), 1), np.nan)
        return err


def summarise_fitting_errors(err: np.ndarray) -> Dict[str, float]:
    """Summary (mm) of :meth:`GroundTruthMeshes.fitting_errors`: mean per hand and overall, median, 90th
    percentile, max, and how many hands had a fit."""
    err = np.asarray(err, np.float64)
    ok = np.isfinite(err)
    allv = err[ok]
    q = (lambda f: float(f(allv))) if allv.size else (lambda f: float("nan"))
    return {
        "hands": int(ok.sum()),
        "without_fit": int((~ok).sum()),
        "right_mm": float(np.nanmean(err[:, 0])) if ok[:, 0].any() else float("nan"),
        "left_mm": float(np.nanmean(err[:, 1])) if ok[:, 1].any() else float("nan"),
        "mean_mm": q(np.mean),
        "median_mm": q(np.median),
        "p90_mm": q(lambda a: np.percentile(a, 90)),
        "max_mm": q(np.max),
    }
