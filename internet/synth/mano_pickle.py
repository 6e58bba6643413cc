"""Writing a MANO-format pickle as the official files are written: Python 2 protocol 2, with the globals of chumpy
(``chumpy.ch.Ch``, ``chumpy.reordering.Select``), scipy (``scipy.sparse.csc.csc_matrix``) and numpy
(``numpy.core.multiarray._reconstruct``), byte strings as Python 2 ``str`` (read back with ``encoding='latin1'``).

Neither chumpy nor scipy is needed: small stand-in objects reduce to the same GLOBAL opcodes, written by a pickler
that names them explicitly. Used for the synthetic generator's stand-in model and for tests of the safe loader.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any, Tuple

import numpy as np


class Foreign:
    """An object pickled as an instance of ``module.name`` (never imported) with ``state`` set by BUILD."""

    def __init__(self, module: str, name: str, state: dict):
        self.module, self.name, self.state = module, name, state


def ch(x: np.ndarray) -> Foreign:
    """A ``chumpy.ch.Ch`` holding ``x``."""
    return Foreign("chumpy.ch", "Ch", {"x": np.asarray(x)})


def select(a: np.ndarray) -> Foreign:
    """A ``chumpy.reordering.Select`` whose value is ``a`` (as MANO's ``shapedirs``): ``Ch(a.ravel())`` with all
    indices and ``a``'s shape."""
    a = np.asarray(a)
    return Foreign(
        "chumpy.reordering",
        "Select",
        {"a": ch(a.ravel()), "idxs": np.arange(a.size, dtype=np.int64), "preferred_shape": tuple(a.shape)},
    )


def csc(dense: np.ndarray) -> Foreign:
    """A ``scipy.sparse.csc.csc_matrix`` of ``dense`` (2D), in scipy's pickled state."""
    dense = np.asarray(dense, dtype=np.float64)
    cols = [np.nonzero(dense[:, c])[0] for c in range(dense.shape[1])]
    indices = np.concatenate(cols).astype(np.int32) if cols else np.zeros(0, np.int32)
    indptr = np.concatenate([[0], np.cumsum([len(c) for c in cols])]).astype(np.int32)
    data = np.concatenate([dense[c_idx, c] for c, c_idx in enumerate(cols)]) if cols else np.zeros(0)
    state = {"_shape": tuple(dense.shape), "data": data, "indices": indices, "indptr": indptr, "maxprint": 50}
    return Foreign("scipy.sparse.csc", "csc_matrix", state)


_PY2_NAMES = {
    ("numpy._core.multiarray", "_reconstruct"): ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"): ("numpy.core.multiarray", "scalar"),
    ("copyreg", "_reconstructor"): ("copy_reg", "_reconstructor"),
    ("builtins", "object"): ("__builtin__", "object"),
}


class _Py2Pickler(pickle._Pickler):
    """Protocol 2 with Python 2 names: GLOBAL opcodes written directly, bytes as ``str`` (BINSTRING)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _global(self, module: str, name: str) -> None:
        module, name = _PY2_NAMES.get((module, name), (module, name))
        self.write(pickle.GLOBAL + module.encode("ascii") + b"\n" + name.encode("ascii") + b"\n")

    def save_global(self, obj, name=None):
        self._global(getattr(obj, "__module__", None) or "", name or obj.__qualname__)
        self.memoize(obj)

    def save_bytes(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes

    def save_foreign(self, obj: Foreign):
        self._global(obj.module, obj.name)
        self.write(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
        self.memoize(obj)
        self.save(obj.state)
        self.write(pickle.BUILD)

    dispatch[Foreign] = save_foreign

    def save_ndarray(self, arr: np.ndarray):
        # numpy's own reduction, with its globals renamed to numpy 1 / Python 2 names by _global.
        func, args, state = arr.__reduce__()
        self._global(func.__module__, func.__name__)
        cls, shape, dtype_code = args
        self.save((_Named("numpy", "ndarray"), shape, dtype_code))
        self.write(pickle.REDUCE)
        self.memoize(arr)
        version, shp, dtype, fortran, raw = state
        self.save((version, shp, dtype, fortran, raw if isinstance(raw, bytes) else bytes(raw)))
        self.write(pickle.BUILD)

    dispatch[np.ndarray] = save_ndarray

    def save_dtype(self, dt: np.dtype):
        func, args, state = dt.__reduce__()
        self._global("numpy", "dtype")
        self.save(args)
        self.write(pickle.REDUCE)
        self.memoize(dt)
        self.save(state)
        self.write(pickle.BUILD)

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, np.dtype) and self.memo.get(id(obj)) is None:
            return self.save_dtype(obj)
        if isinstance(obj, _Named):
            return self._global(obj.module, obj.name)
        if isinstance(obj, np.generic):
            obj = obj.item()
        return super().save(obj, save_persistent_id)


class _Named:
    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


def dumps_py2(obj: Any) -> bytes:
    """``obj`` (dicts, lists, tuples, numbers, str, numpy arrays, :class:`Foreign`) as a Python 2 style pickle."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def os_system_payload(command: str = "echo pwned") -> bytes:
    """A malicious pickle that would call ``os.system(command)`` when loaded by a plain unpickler (for tests)."""
    return b"cos\nsystem\n(" + pickle.dumps(command, protocol=0)[:-1].split(b"\n", 1)[0] + b"\ntR."


def unlisted_global_payload(module: str = "collections", name: str = "OrderedDict") -> Tuple[bytes, str]:
    """A pickle naming a harmless but unlisted global (the loader must still refuse it)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n)R.", f"{module}.{name}"
