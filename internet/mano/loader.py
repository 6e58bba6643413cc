"""Loading a MANO model file (``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``) safely, without chumpy or scipy.

The official files are Python 2 pickles holding chumpy objects (``chumpy.ch.Ch``, ``chumpy.reordering.Select``) and
a ``scipy.sparse.csc.csc_matrix``. :class:`RestrictedUnpickler` maps those globals to inert stand-ins that only keep
their state, allows the few numpy reconstructors arrays need, and refuses every other global by name: nothing in the
file can run code. :func:`load_mano` turns the result into a :class:`ManoModel` of plain numpy arrays.

The MANO model is licensed by its authors (https://mano.is.tue.mpg.de); the project never ships nor downloads it.
"""

from __future__ import annotations

import copyreg
import io
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

MANO_URL = "https://mano.is.tue.mpg.de"
MANO_FILES = {"right": "MANO_RIGHT.pkl", "left": "MANO_LEFT.pkl"}
TIP_VERTICES = (745, 317, 445, 556, 673)
"""Vertices used as finger tips by InterHand2.6M: thumb, index, middle, ring, pinky."""
IH26M_FROM_MANO = (
    ("v", 745), ("j", 15), ("j", 14), ("j", 13),
    ("v", 317), ("j", 3), ("j", 2), ("j", 1),
    ("v", 445), ("j", 6), ("j", 5), ("j", 4),
    ("v", 556), ("j", 12), ("j", 11), ("j", 10),
    ("v", 673), ("j", 9), ("j", 8), ("j", 7),
    ("j", 0),
)  # fmt: skip
"""InterHand2.6M's 21 joints of one hand (thumb4..1, index4..1, middle4..1, ring4..1, pinky4..1, wrist) as MANO
joints ('j', k) or mesh vertices ('v', k)."""
REQUIRED_KEYS = ("v_template", "f", "J_regressor", "weights", "kintree_table", "posedirs", "shapedirs")


class ManoFileError(ValueError):
    """A MANO model file is missing, unsafe or malformed."""


# ---------------------------------------------------------------------------------------------- inert stand-ins
class _Stub:
    """An object of a listed foreign class: ``__new__`` and ``BUILD`` only store its state; nothing else runs."""

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"{type(self).__name__}: unexpected state of type {type(state).__name__}")
        self.__dict__.update({str(k): v for k, v in state.items()})


class ChStub(_Stub):
    """``chumpy.ch.Ch``: its value is ``x``."""


class SelectStub(_Stub):
    """``chumpy.reordering.Select``: its value is ``a.ravel()[idxs].reshape(preferred_shape)``."""


class CscStub(_Stub):
    """``scipy.sparse.csc_matrix``: ``data``, ``indices``, ``indptr`` and ``_shape`` (or ``shape``)."""


def _reconstructor(cls, base, state):
    if base is not object:
        raise pickle.UnpicklingError(f"copyreg._reconstructor with base {base!r} is not allowed")
    return copyreg._reconstructor(cls, base, state)


def _allowed() -> Dict[tuple, Any]:
    try:
        from numpy._core import multiarray as ma2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray as ma2
    table = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("copy_reg", "_reconstructor"): _reconstructor,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("__builtin__", "object"): object,
        ("builtins", "object"): object,
        ("__builtin__", "set"): set,
        ("builtins", "set"): set,
        ("chumpy.ch", "Ch"): ChStub,
        ("chumpy.reordering", "Select"): SelectStub,
        ("scipy.sparse.csc", "csc_matrix"): CscStub,
        ("scipy.sparse._csc", "csc_matrix"): CscStub,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = ma2._reconstruct
        table[(mod, "scalar")] = ma2.scalar
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a MANO file needs (see :func:`_allowed`) and refuses any other,
    naming it: ``os.system``, ``builtins.eval``, ``subprocess.Popen``... never get imported."""

    _table = None

    def find_class(self, module: str, name: str):
        if RestrictedUnpickler._table is None:
            RestrictedUnpickler._table = _allowed()
        try:
            return RestrictedUnpickler._table[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global '{module}.{name}' is not allowed in a MANO model file (refused without importing it)"
            ) from None


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` (a Python 2 or 3 pickle) with :class:`RestrictedUnpickler` and ``encoding='latin1'``."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


# ---------------------------------------------------------------------------------------------- unwrapping
def to_array(value: Any, key: str = "?") -> np.ndarray:
    """A numpy array from a plain array, a chumpy ``Ch``/``Select`` stand-in or a csc stand-in (densified)."""
    if isinstance(value, ChStub):
        if "x" not in value.__dict__:
            raise ManoFileError(f"key {key!r}: chumpy Ch without its array 'x'")
        return to_array(value.x, key)
    if isinstance(value, SelectStub):
        try:
            a, idxs, shape = value.a, value.idxs, value.preferred_shape
        except AttributeError as e:
            raise ManoFileError(f"key {key!r}: chumpy Select without {e.name!r}") from None
        return to_array(a, key).ravel()[np.asarray(idxs, dtype=np.int64)].reshape(tuple(shape))
    if isinstance(value, CscStub):
        return _csc_dense(value, key)
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except Exception as e:  # pragma: no cover - defensive
        raise ManoFileError(f"key {key!r}: cannot read a value of type {type(value).__name__}") from e


def _csc_dense(m: CscStub, key: str) -> np.ndarray:
    d = m.__dict__
    shape = d.get("_shape", d.get("shape"))
    if shape is None or not all(k in d for k in ("data", "indices", "indptr")):
        raise ManoFileError(f"key {key!r}: csc_matrix state lacks shape/data/indices/indptr (has {sorted(d)})")
    rows, cols = (int(s) for s in shape)
    data, indices, indptr = (np.asarray(d[k]) for k in ("data", "indices", "indptr"))
    if len(indptr) != cols + 1 or indptr[-1] > len(data) or (len(indices) and indices.max() >= rows):
        raise ManoFileError(f"key {key!r}: inconsistent csc_matrix of shape {(rows, cols)}")
    out = np.zeros((rows, cols), dtype=np.float64)
    col = np.repeat(np.arange(cols), np.diff(indptr))
    np.add.at(out, (indices[: indptr[-1]], col), data[: indptr[-1]])
    return out


# ---------------------------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class ManoModel:
    """A MANO model as numpy float64 arrays in metres (``V`` = 778 vertices, ``J`` = 16 joints for MANO).

    ``v_template`` (V, 3), ``shapedirs`` (V, 3, S), ``posedirs`` (V, 3, 9 (J-1)), ``J_regressor`` (J, V), ``weights``
    (V, J), ``faces`` (F, 3) int64, ``parents`` (J,) with -1 for the root, ``hands_components`` (45, 45) or None,
    ``hands_mean`` (45,) (zeros when absent), ``side`` 'right' or 'left', ``path`` where it was read from,
    ``synthetic`` when it is the synthetic generator's stand-in (not MANO).
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    faces: np.ndarray
    parents: np.ndarray
    hands_components: Optional[np.ndarray]
    hands_mean: np.ndarray
    side: str = "right"
    path: str = ""
    synthetic: bool = False

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.J_regressor.shape[0])

    def ih26m_regressor(self) -> np.ndarray:
        """(21, V): InterHand2.6M's joints of one hand from the mesh (MANO's 16 joint rows plus one-hot rows at the
        tip vertices, in the data set's order); built from this file, never shipped."""
        return ih26m_regressor(self.J_regressor)

    def with_left_shapedirs_fix(self, right: "ManoModel") -> "ManoModel":
        """See :func:`fix_left_shapedirs`."""
        return replace(self, shapedirs=fix_left_shapedirs(self.shapedirs, right.shapedirs))


def ih26m_regressor(J_regressor: np.ndarray) -> np.ndarray:
    """(21, V) regressor of InterHand2.6M's joint order from MANO's (16, V) ``J_regressor`` and the tip vertices."""
    V = J_regressor.shape[1]
    out = np.zeros((21, V), dtype=np.float64)
    for row, (kind, k) in enumerate(IH26M_FROM_MANO):
        if kind == "j":
            out[row] = J_regressor[k]
        else:
            if k >= V:
                raise ManoFileError(f"tip vertex {k} is outside the mesh's {V} vertices")
            out[row, k] = 1.0
    return out


def fix_left_shapedirs(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """InterHand2.6M's fix for ``MANO_LEFT.pkl``, which ships the right hand's ``shapedirs``: negate the x rows when
    they equal the right hand's. The official code tests ``sum|left_x - right_x| < 1``; this tests whether left's x
    rows are nearer the right's than their negation, which agrees on the real files, does not depend on the units and
    makes the fix idempotent (a fixed or correct file is returned unchanged)."""
    left = np.array(left, dtype=np.float64, copy=True)
    lx, rx = left[:, 0, :], np.asarray(right, dtype=np.float64)[:, 0, :]
    if np.abs(lx - rx).sum() < np.abs(lx + rx).sum():
        left[:, 0, :] *= -1.0
    return left


def _parents(kintree: np.ndarray, key: str = "kintree_table") -> np.ndarray:
    kintree = np.asarray(kintree)
    if kintree.ndim != 2 or kintree.shape[0] != 2:
        raise ManoFileError(f"{key} must be (2, J), got {kintree.shape}")
    order = kintree[1].astype(np.int64)
    parents = np.empty(kintree.shape[1], dtype=np.int64)
    pos = {int(j): i for i, j in enumerate(order)}
    for i in range(kintree.shape[1]):
        p = int(kintree[0, i])
        parents[int(order[i])] = -1 if i == 0 else pos.get(p, -2)
    if parents[0] != -1 or np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, len(parents))):
        raise ManoFileError(f"{key}: joints must come after their parents with joint 0 the root, got {parents}")
    return parents


def model_from_dict(d: Dict[str, Any], side: str = "right", path: str = "") -> ManoModel:
    """A :class:`ManoModel` from the unpickled dict, checking keys and shapes (errors name the file and key)."""
    where = path or "<MANO dict>"
    missing = [k for k in REQUIRED_KEYS if k not in d]
    if missing:
        raise ManoFileError(f"{where}: missing key(s) {missing}; has {sorted(map(str, d))}")
    a = {k: to_array(d[k], k) for k in REQUIRED_KEYS}
    v = a["v_template"].astype(np.float64)
    V = v.shape[0]
    J = a["J_regressor"].shape[0] if a["J_regressor"].ndim == 2 else -1
    expect = {
        "v_template": (V, 3),
        "J_regressor": (J, V),
        "weights": (V, J),
        "posedirs": (V, 3, 9 * (J - 1)),
    }
    for k, shape in expect.items():
        if a[k].shape != shape:
            raise ManoFileError(f"{where}: key {k!r} has shape {a[k].shape}, expected {shape}")
    sd = a["shapedirs"]
    if sd.ndim != 3 or sd.shape[:2] != (V, 3):
        raise ManoFileError(f"{where}: key 'shapedirs' has shape {sd.shape}, expected ({V}, 3, S)")
    faces = a["f"].astype(np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= V:
        raise ManoFileError(f"{where}: key 'f' must be (F, 3) vertex indices below {V}")
    comps = d.get("hands_components")
    comps = None if comps is None else to_array(comps, "hands_components").astype(np.float64)
    mean = d.get("hands_mean")
    mean = np.zeros(3 * (J - 1)) if mean is None else to_array(mean, "hands_mean").astype(np.float64).ravel()
    if mean.shape != (3 * (J - 1),):
        raise ManoFileError(f"{where}: key 'hands_mean' has shape {mean.shape}, expected ({3 * (J - 1)},)")
    return ManoModel(
        v_template=v,
        shapedirs=sd.astype(np.float64),
        posedirs=a["posedirs"].astype(np.float64),
        J_regressor=a["J_regressor"].astype(np.float64),
        weights=a["weights"].astype(np.float64),
        faces=faces,
        parents=_parents(a["kintree_table"]),
        hands_components=comps,
        hands_mean=mean,
        side=side,
        path=str(path),
        synthetic=bool(d.get("synthetic_not_mano", False)),
    )


def missing_model_message(folder: Union[str, Path], side: str) -> str:
    return (
        f"MANO model file {MANO_FILES[side]} not found in {folder} (config field 'mano_dir'). MANO is licensed by "
        f"its authors and not shipped: register and download 'Models & Code' from {MANO_URL}, then copy "
        f"mano_v*/models/MANO_RIGHT.pkl and MANO_LEFT.pkl into {folder} (or set mano_dir to the folder holding "
        "them). The synthetic data set carries its own stand-in files under <data_root>/mano/."
    )


def load_mano(path: Union[str, Path], side: Optional[str] = None) -> ManoModel:
    """Read a MANO pickle safely. ``side`` defaults to 'left' when the file name contains 'LEFT', else 'right'."""
    path = Path(path)
    if side is None:
        side = "left" if "left" in path.name.lower() else "right"
    if side not in MANO_FILES:
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    if not path.is_file():
        raise FileNotFoundError(missing_model_message(path.parent, side))
    try:
        obj = restricted_loads(path.read_bytes())
    except pickle.UnpicklingError as e:
        raise ManoFileError(f"{path}: {e}") from None
    except Exception as e:
        raise ManoFileError(f"{path}: not a readable MANO pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise ManoFileError(f"{path}: expected a dict of arrays, got {type(obj).__name__}")
    return model_from_dict(obj, side=side, path=str(path))


def load_mano_pair(folder: Union[str, Path], fix_left_shapedirs_flag: bool = True) -> Dict[str, ManoModel]:
    """Both hands from ``folder`` (``MANO_RIGHT.pkl``, ``MANO_LEFT.pkl``), with InterHand2.6M's left-hand
    shapedirs fix (``fix_left_shapedirs_flag``, on for the InterHand2.6M fits; DexYCB-style users turn it off)."""
    folder = Path(folder)
    models = {side: load_mano(folder / name, side) for side, name in MANO_FILES.items()}
    if fix_left_shapedirs_flag:
        models["left"] = models["left"].with_left_shapedirs_fix(models["right"])
    return models
