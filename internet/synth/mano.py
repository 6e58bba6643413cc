"""The synthetic hand as a MANO-format model (not MANO): a skinned mesh of the generator's own hand, and the
NeuralAnnot-style fits of every synthetic frame.

The mesh (778 vertices, 1538 faces, MANO's 16-joint kinematic tree and its tip vertices 745/317/445/556/673) is a
tube per phalanx and a palm, built linearly from the rest joints of :func:`internet.synth.hand_model.shape_from_betas`,
so its ``shapedirs`` span exactly the generator's 10 shape coefficients and its joints regress exactly onto the
synthetic skeleton. ``posedirs`` are zero and each tip vertex follows its last phalanx only: skinning the fitted
parameters reproduces the synthetic joints (to float rounding). Fits come from analytic inverse kinematics: the
palm's rotation (Kabsch), then for each phalanx the swing that points it at its child joint.

:func:`write_mano_files` writes ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` in the official pickle layout (chumpy/scipy
globals, Python 2 protocol), with the left file carrying the right hand's ``shapedirs`` as the official one does
(the InterHand2.6M left fix applies), and ``synthetic_not_mano: True`` with a note.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from internet.synth.hand_model import (
    NUM_BETAS,
    default_hand_shape,
    hand_joints,
    pose_angles,
    sample_poses,
    shape_from_betas,
)
from internet.synth.mano_pickle import ch, csc, dumps_py2, select
from internet.utils.atomic import atomic_write_bytes

NOTE = (
    "Synthetic stand-in written by internet.synth: NOT the MANO model. Same keys, shapes, kinematic tree and "
    "pickle globals as MANO_RIGHT/LEFT.pkl, but the mesh is a tube hand built from the synthetic skeleton."
)
MANO_FIRST_JOINT = (13, 1, 4, 10, 7)  # thumb, index, middle, ring, pinky -> MANO joint of their first segment
TIP_IDS = (745, 317, 445, 556, 673)
PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14])
WRIST_OFFSET_MM = np.array([95.7, 6.4, 6.2])  # where the template's wrist sits (MANO's rest wrist is off the origin)
N_VERTS, N_FACES, RING, PALM_RING = 778, 1538, 12, 24
_SEG_T = ((0.0, 1 / 3, 2 / 3), (0.0, 1 / 3, 2 / 3), (0.0, 1 / 3, 2 / 3, 0.92))
_RADIUS = (10.0, 9.0, 9.5, 9.0, 8.0)
_PALM_S = (0.0, 0.2, 0.4, 0.6, 0.8, 0.93, 1.0)
IH_FROM_POINT = np.array([4 * d + k for d in range(5) for k in (4, 3, 2, 1)] + [0])
"""InterHand2.6M joint j of one hand is rest point ``IH_FROM_POINT[j]`` (0 wrist, 1 + 4 d + k: digit d, joint k)."""


def rest_points(betas) -> np.ndarray:
    """(21, 3) mm: the wrist and, per digit, its 4 joints (base .. tip) of the template (straight digits along the
    default directions, wrist at :data:`WRIST_OFFSET_MM`)."""
    shape = shape_from_betas(np.zeros(NUM_BETAS) if betas is None else betas)
    along = default_hand_shape().base_frame[:, :, 1]
    pts = np.zeros((21, 3))
    for d in range(5):
        pts[1 + 4 * d] = shape.base_pos[d]
        for k in range(3):
            pts[2 + 4 * d + k] = pts[1 + 4 * d + k] + shape.seg_len[d, k] * along[d]
    return pts + WRIST_OFFSET_MM


class _Builder:
    """Vertices as linear recipes of the 21 rest points (``C`` rows, offsets ``O``), skinning weights, faces."""

    def __init__(self):
        self.C, self.O, self.W, self.faces, self.jreg = [], [], [], [], {}

    def ring(self, centre: dict, offsets: np.ndarray, weight: dict) -> list:
        start = len(self.C)
        for o in offsets:
            c, wt = np.zeros(21), np.zeros(16)
            for p, w in centre.items():
                c[p] += w
            for j, w in weight.items():
                wt[j] += w
            self.C.append(c)
            self.O.append(o)
            self.W.append(wt)
        return list(range(start, start + len(offsets)))

    def tube(self, rings: List[list]) -> None:
        for a, b in zip(rings[:-1], rings[1:]):
            for i in range(len(a)):
                i2 = (i + 1) % len(a)
                self.faces += [(a[i], b[i], b[i2]), (a[i], b[i2], a[i2])]

    def fan(self, rim: list, apex: int) -> None:
        self.faces += [(rim[i], rim[(i + 1) % len(rim)], apex) for i in range(len(rim))]


def _digits(b: _Builder) -> None:
    """One tube per digit along its three segments, closed by a tip vertex at the tip joint."""
    frames = default_hand_shape().base_frame
    theta = np.arange(RING) * 2 * np.pi / RING
    for d in range(5):
        lat, pal = frames[d][:, 0], frames[d][:, 2]
        m0, rings = MANO_FIRST_JOINT[d], []
        for k, ts in enumerate(_SEG_T):
            for t in ts:
                r = _RADIUS[d] * (1 - 0.1 * (k + t)) * (0.65 if t > 0.9 else 1.0)
                offs = r * (np.cos(theta)[:, None] * lat + np.sin(theta)[:, None] * pal)
                owner, parent = m0 + k, (0 if k == 0 else m0 + k - 1)
                weight = {owner: 0.5, parent: 0.5} if t == 0.0 else {owner: 1.0}
                rings.append(b.ring({1 + 4 * d + k: 1 - t, 2 + 4 * d + k: t}, offs, weight))
                if t == 0.0:
                    b.jreg[owner] = rings[-1]  # the joint is the mean of its ring
        b.tube(rings)
        b.fan(rings[-1], b.ring({4 + 4 * d: 1.0}, np.zeros((1, 3)), {m0 + 2: 1.0})[0])


def _palm(b: _Builder) -> None:
    """From an ellipse around the wrist to the knuckle line (index MCP .. pinky MCP), closed there."""
    th = np.arange(PALM_RING) * 2 * np.pi / PALM_RING
    ex, ez = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    palm = []
    for s in _PALM_S:
        idx = []
        for a in th:
            c = (1 + np.cos(a)) / 2
            off = (1 - s) * (28 * np.cos(a) * ex + 14 * np.sin(a) * ez) + s * (8 * np.cos(a) * ex + 11 * np.sin(a) * ez)
            idx += b.ring({0: 1 - s, 5: s * c, 17: s * (1 - c)}, off[None], {0: 1.0})
        palm.append(idx)
        if s == 0.0:
            b.jreg[0] = idx
    b.tube(palm)
    b.fan(palm[-1], b.ring({5: 0.5, 17: 0.5}, np.zeros((1, 3)), {0: 1.0})[0])


@lru_cache(maxsize=1)
def _layout():
    """The mesh as a linear recipe of the rest points: vertices ``C @ P + O``; weights, faces, J_regressor; padded
    to MANO's vertex and face counts, the tips moved to MANO's tip vertex ids."""
    b = _Builder()
    _digits(b)
    _palm(b)
    n, faces = len(b.C), b.faces
    if n > N_VERTS or len(faces) > N_FACES:
        raise AssertionError(f"synthetic mesh too big: {n} vertices, {len(faces)} faces")
    pad = b.ring({0: 1.0}, np.zeros((N_VERTS - n, 3)), {0: 1.0})
    faces = faces + [(pad[0], pad[0], pad[0])] * (N_FACES - len(faces))  # unused slots of MANO's face count
    C, O, W, F = np.array(b.C), np.array(b.O), np.array(b.W), np.array(faces, dtype=np.int64)
    J = np.zeros((16, N_VERTS))
    for j, verts in b.jreg.items():
        J[j, verts] = 1.0 / len(verts)
    tips_old = [int(np.nonzero((C[:, 4 + 4 * d] == 1.0) & (np.abs(O).sum(1) == 0))[0][0]) for d in range(5)]
    order = [-1] * N_VERTS
    for old, new in zip(tips_old, TIP_IDS):
        order[new] = old
    rest = iter(i for i in range(N_VERTS) if i not in tips_old)
    order = np.array([o if o >= 0 else next(rest) for o in order])
    inv = np.argsort(order)
    return C[order], O[order], W[order], inv[F], J[:, order]


def rest_vertices(betas=None) -> np.ndarray:
    """(778, 3) mm: the template mesh of shape ``betas`` (linear in them)."""
    C, O, _, _, _ = _layout()
    return C @ rest_points(betas) + O


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) of the smallest rotation taking unit vectors ``a`` onto ``b``."""
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.arctan2(s, np.sum(a * b, -1, keepdims=True))
    return np.where(s > 1e-12, axis / np.maximum(s, 1e-300) * angle, 0.0)


def _rodrigues(aa: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(aa, axis=-1)[..., None, None]
    axis = aa / np.maximum(angle[..., 0], 1e-300)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    K = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * (K @ K)


def _mat_to_aa(R: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> axis-angle, robust near pi (via the quaternion)."""
    tr = np.trace(R, axis1=-2, axis2=-1)
    w = np.sqrt(np.maximum(1 + tr, 0)) / 2
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    diag = np.sqrt(np.maximum(1 + 2 * np.diagonal(R, axis1=-2, axis2=-1) - tr[..., None], 0)) / 2
    sign = np.where(v >= 0, 1.0, -1.0)
    vec = np.where((w > 0.1)[..., None], v / (4 * np.maximum(w, 1e-12))[..., None], diag * sign)
    if np.any(w <= 0.1):  # near pi: fix relative signs from the off-diagonal terms
        big = np.argmax(diag, -1)
        off = np.stack([R[..., 0, 1] + R[..., 1, 0], R[..., 0, 2] + R[..., 2, 0], R[..., 1, 2] + R[..., 2, 1]], -1)
        for i in np.argwhere(w <= 0.1):
            i = tuple(i)
            q = np.zeros(3)
            b = big[i]
            q[b] = diag[i][b]
            pairs = {(0, 1): 0, (0, 2): 1, (1, 2): 2}
            for o in range(3):
                if o != b:
                    q[o] = off[i][pairs[tuple(sorted((b, o)))]] / (4 * q[b])
            wq = v[i][b] / (4 * q[b])
            vec[i] = q * (1.0 if wq >= 0 else -1.0)
            w[i] = abs(wq)
    n = np.linalg.norm(vec, axis=-1, keepdims=True)
    angle = 2 * np.arctan2(n, w[..., None])
    return np.where(n > 1e-12, vec / np.maximum(n, 1e-300) * angle, 2 * vec)


def _kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(N, 3, 3) proper rotations R minimising |R src - dst| for point sets (P, 3) -> (N, P, 3)."""
    s = src - src.mean(0)
    d = dst - dst.mean(1, keepdims=True)
    H = np.einsum("pi,npj->nij", s, d)
    U, _, Vt = np.linalg.svd(H)
    det = np.sign(np.linalg.det(np.swapaxes(Vt, 1, 2) @ np.swapaxes(U, 1, 2)))
    D = np.zeros_like(H)
    D[:, 0, 0] = D[:, 1, 1] = 1.0
    D[:, 2, 2] = det
    return np.swapaxes(Vt, 1, 2) @ D @ np.swapaxes(U, 1, 2)


def inverse_kinematics(world_mm: np.ndarray, betas, side: str = "right") -> Dict[str, np.ndarray]:
    """Full MANO pose (N, 48) axis-angle (absolute, not an offset from ``hands_mean``) and ``trans`` (N, 3) metres of
    the synthetic model that reproduce the InterHand2.6M joints ``world_mm`` (N, 21, 3) of one hand exactly."""
    W = np.asarray(world_mm, dtype=np.float64)
    if side == "left":
        W = W * np.array([-1.0, 1.0, 1.0])
    P = rest_points(betas)
    Wp = W[:, np.argsort(IH_FROM_POINT)]  # (N, 21, 3) in rest-point order
    palm = [0, 1, 5, 9, 13, 17]
    R0 = _kabsch(P[palm], Wp[:, palm])
    n = len(W)
    aa = np.zeros((n, 16, 3))
    aa[:, 0] = _mat_to_aa(R0)
    for d in range(5):
        G = R0
        for k in range(3):
            a = P[2 + 4 * d + k] - P[1 + 4 * d + k]
            b = Wp[:, 2 + 4 * d + k] - Wp[:, 1 + 4 * d + k]
            b_local = np.einsum("nji,nj->ni", G, b / np.linalg.norm(b, axis=-1, keepdims=True))
            local = _swing(np.broadcast_to(a / np.linalg.norm(a), b_local.shape), b_local)
            aa[:, MANO_FIRST_JOINT[d] + k] = local
            G = G @ _rodrigues(local)
    trans = (Wp[:, 0] - P[0]) / 1000.0
    if side == "left":
        aa *= np.array([1.0, -1.0, -1.0])
        trans *= np.array([-1.0, 1.0, 1.0])
    return {"pose": aa.reshape(n, 48), "trans": trans}


@lru_cache(maxsize=1)
def _pose_statistics():
    """hands_mean (the 'relaxed' key pose) and hands_components (principal directions of sampled poses), right."""
    shape = default_hand_shape()
    betas = np.zeros(NUM_BETAS)
    rng = np.random.default_rng(0)
    fams = ["open", "relaxed", "fist", "point", "spread", "pinch", "grasp", "claw", "random"] * 300
    angles = np.concatenate([pose_angles("relaxed")[None], sample_poses(rng, fams, len(fams))])
    J = hand_joints(shape, angles)
    full = inverse_kinematics(J + WRIST_OFFSET_MM, betas)["pose"][:, 3:]
    mean = full[0]
    X = full[1:] - full[1:].mean(0)
    _, sv, Vt = np.linalg.svd(X, full_matrices=False)
    coeffs = (full[1:] - mean) @ Vt.T
    return mean, Vt, coeffs[:100]


def model_dict(side: str = "right") -> dict:
    """The synthetic model as the dict stored in the pickle (arrays in metres; chumpy/scipy stand-ins)."""
    C, O, W, F, J = _layout()
    P = rest_points(None)
    dP = np.stack([rest_points(np.eye(NUM_BETAS)[k]) - P for k in range(NUM_BETAS)], -1)  # (21, 3, 10)
    v = (C @ P + O) / 1000.0
    sd = np.einsum("vp,pcs->vcs", C, dP) / 1000.0  # the right hand's; MANO_LEFT.pkl ships it unflipped too
    mean, comps, coeffs = _pose_statistics()
    if side == "left":
        v = v * np.array([-1.0, 1.0, 1.0])
        mirror = np.tile([1.0, -1.0, -1.0], 15)
        mean, comps, coeffs = mean * mirror, comps * mirror, coeffs
    kintree = np.stack([np.where(PARENTS < 0, 4294967295, PARENTS), np.arange(16)]).astype(np.int64)
    return {
        "synthetic_not_mano": True,
        "note": NOTE,
        "v_template": ch(v),
        "f": F.astype(np.uint32),
        "J_regressor": csc(J),
        "weights": ch(W),
        "kintree_table": kintree,
        "posedirs": ch(np.zeros((N_VERTS, 3, 135))),
        "shapedirs": select(sd),
        "J": ch(J @ v),
        "hands_components": comps,
        "hands_mean": mean,
        "hands_coeffs": coeffs,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def write_mano_files(folder) -> Dict[str, Path]:
    """Write ``MANO_RIGHT.pkl``, ``MANO_LEFT.pkl`` (synthetic stand-ins) and a README into ``folder``."""
    folder = Path(folder)
    out = {}
    for side, name in (("right", "MANO_RIGHT.pkl"), ("left", "MANO_LEFT.pkl")):
        out[side] = atomic_write_bytes(folder / name, dumps_py2(model_dict(side)))
    atomic_write_bytes(folder / "README_SYNTHETIC.txt", (NOTE + "\n").encode())
    return out


def fit_records(frames, world_mm: np.ndarray, present: np.ndarray, betas: Optional[np.ndarray]) -> List[str]:
    """``"frame_idx": {"right": P|null, "left": P|null}`` members of a capture's NeuralAnnot object:
    ``P = {"pose": 48, "shape": 10, "trans": 3}`` in the world frame, metres; ``hand_pose`` relative to
    ``hands_mean`` (flat_hand_mean=False), ``null`` for an absent hand."""
    n = len(frames)
    betas = np.zeros(NUM_BETAS) if betas is None else np.asarray(betas, dtype=np.float64)
    mean, _, _ = _pose_statistics()
    text = {}
    for h, side in enumerate(("right", "left")):
        text[side] = ["null"] * n
        rows = np.nonzero(present[:, h])[0]
        if len(rows) == 0:
            continue
        fit = inverse_kinematics(world_mm[rows, 21 * h : 21 * h + 21], betas, side)
        m = mean if side == "right" else mean * np.tile([1.0, -1.0, -1.0], 15)
        pose = fit["pose"].copy()
        pose[:, 3:] -= m
        shape = json.dumps(betas.tolist())
        for r, p, t in zip(rows, pose.tolist(), fit["trans"].tolist()):
            text[side][r] = f'{{"pose": {json.dumps(p)}, "shape": {shape}, "trans": {json.dumps(t)}}}'
    return [f'"{fr}": {{"right": {r}, "left": {l}}}' for fr, r, l in zip(frames, text["right"], text["left"])]
