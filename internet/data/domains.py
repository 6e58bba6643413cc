"""What each annotation field may hold: one table, checked when an index is built.

A value outside its field's domain does not fail later, it gives a wrong result: a ``hand_type_valid`` of -1 trains
the hand-type output the wrong way, a box width of 1e39 becomes inf in float32 and silently drops every target of its
sample, an id of 1e30 wraps around in int64. So every numeric field read from an annotation file is checked against
its entry in :data:`DOMAINS`, after the conversion to the type it is stored in, and the first value outside it raises
a DataFileError naming the file, the record (id and position), the key and the value.

Checks that need more than one field live beside the code that has them: a box against its image's size
(:func:`internet.geometry.crop.check_box`, shared with :class:`internet.infer.predictor.Predictor`), ``camrot`` being a
rotation (:func:`internet.geometry.camera.check_rotation`), camera coordinates of valid joints being finite after the
projection.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from internet.data.io import DataFileError

J = "J"
"""In a :class:`Domain` shape: the data set's joints per annotation (42 for InterHand2.6M, 21 for RHD and STB)."""


@dataclass(frozen=True)
class Domain:
    """The values one field may hold."""

    dtype: str
    """Type stored in the index; every value must be representable in it (finite floats, integral ints in range)."""
    shape: Tuple[Union[int, str], ...] = ()
    """Per record; :data:`J` stands for the joints per annotation."""
    flag: bool = False
    """Only 0 and 1."""
    positive: bool = False
    """Greater than 0 (after the conversion: 1e-50 is 0 in float32)."""
    finite: bool = True
    """Floats must be finite in ``dtype`` (world coordinates of invalid joints may not be)."""

    def resolve_shape(self, joints: int = 0) -> Tuple[int, ...]:
        if J in self.shape and joints <= 0:
            raise ValueError("this field's shape needs the number of joints")
        return tuple(joints if s == J else int(s) for s in self.shape)

    def describe(self) -> str:
        """What the values must be, e.g. '0/1 values' or 'numbers > 0 (finite in float32)'."""
        if self.flag:
            return "0/1 values"
        kind = np.dtype(self.dtype).kind
        if kind in "iu":
            info = np.iinfo(self.dtype)
            return f"integers{' > 0' if self.positive else ''} in [{info.min}, {info.max}] ({self.dtype})"
        finite = f" (finite in {self.dtype})" if self.finite else f" ({self.dtype})"
        return f"numbers{' > 0' if self.positive else ''}{finite}"


DOMAINS: Dict[str, Domain] = {
    # 'annotations' of InterHand2.6M's data.json and of the RHD/STB files
    "annotation.id": Domain("int64"),
    "annotation.image_id": Domain("int64"),
    "annotation.bbox": Domain("float32", (4,)),  # [x, y, w, h]; its size against the image: geometry.check_box
    "annotation.joint_valid": Domain("float32", (J,), flag=True),
    "annotation.hand_type_valid": Domain("float32", (), flag=True),  # the hand-type loss weight
    "annotation.joint_img": Domain("float32", (J, 2)),
    "annotation.joint_cam": Domain("float32", (J, 3)),
    # 'images'
    "image.id": Domain("int64"),
    "image.width": Domain("int32", positive=True),
    "image.height": Domain("int32", positive=True),
    "image.capture": Domain("int64"),
    "image.frame_idx": Domain("int64"),
    "image.subject": Domain("int64"),
    # InterHand2.6M's camera.json (per capture and camera) and the RHD/STB images' cam_param
    "camera.campos": Domain("float32", (3,)),
    "camera.camrot": Domain("float32", (3, 3)),  # and a rotation: geometry.check_rotation
    "camera.focal": Domain("float32", (2,), positive=True),
    "camera.princpt": Domain("float32", (2,)),
    # InterHand2.6M's joint_3d.json; invalid joints may hold anything, valid ones are checked after the projection
    "joint_3d.world_coord": Domain("float32", (J, 3), finite=False),
    # RootNet output files
    "rootnet.bbox": Domain("float32", (4,)),
    "rootnet.abs_depth": Domain("float32", (J,), positive=True),  # J: the root depths per entry (2 or 1)
}


def outside_domain(values: np.ndarray, domain: Domain) -> np.ndarray:
    """(N,) bool: which records of ``values`` ((N,) + shape, any numeric dtype, as read) hold a value outside
    ``domain``."""
    n = len(values)
    flat = np.asarray(values).reshape(n, max(1, int(np.prod(np.shape(values)[1:]))))
    target = np.dtype(domain.dtype)
    bad = np.zeros(n, dtype=bool)
    if target.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is what is being checked
            cast = flat.astype(target)
        if domain.finite:
            bad |= ~np.isfinite(cast).all(axis=1)
    else:
        info = np.iinfo(target)
        if flat.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                in_range = (flat >= float(info.min)) & (flat < -float(info.min))  # -min: 2**63, exact in float
                ok = np.isfinite(flat) & (flat == np.floor(flat)) & in_range
            bad |= ~ok.all(axis=1)
            cast = np.where(ok, flat, 0).astype(target)
        else:
            bad |= ~((flat >= info.min) & (flat <= info.max)).all(axis=1)
            cast = flat
    if domain.flag:
        bad |= ((flat != 0) & (flat != 1)).any(axis=1)
    if domain.positive:
        with np.errstate(invalid="ignore"):
            bad |= ~(cast > 0).all(axis=1)
    return bad


def check_column(
    values: np.ndarray, domain: Domain, key: str, where: Callable[[int], str], raw: Optional[Sequence[Any]] = None
) -> np.ndarray:
    """``values`` ((N,) + shape, as read) converted to ``domain.dtype``, or DataFileError naming ``where(i)``, ``key``
    and the value of the first record outside the domain (``raw[i]``, the value as written, when given)."""
    bad = np.flatnonzero(outside_domain(values, domain))
    if len(bad):
        i = int(bad[0])
        record = np.asarray(values[i])
        got = _show(record if raw is None else raw[i])
        if record.ndim:  # name the first offending element: a 42-joint list does not fit in a message
            element = replace(domain, shape=())
            k = int(np.flatnonzero(outside_domain(record.reshape(-1), element))[0])
            got = f"{_show(record.reshape(-1)[k])} at {[int(j) for j in np.unravel_index(k, record.shape)]} of {got}"
        raise DataFileError(f"{where(i)}: key {key!r} must hold {domain.describe()}, got {got}")
    return np.asarray(values).astype(domain.dtype)


def check_value(value: Any, domain_key: str, where: str, joints: int = 0) -> np.ndarray:
    """One record's field (e.g. a camera's ``focal``) as an array of the domain's type and shape, or DataFileError
    naming ``where``, the field and the value."""
    domain = DOMAINS[domain_key]
    key = domain_key.split(".", 1)[1]
    shape = domain.resolve_shape(joints)
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.dtype.kind not in "biuf" or arr.shape != shape:
        size = "x".join(str(d) for d in shape) or "one"
        raise DataFileError(f"{where}: {key} must be {size} numbers, got {_show(value)}")
    return check_column(arr[None], domain, key, lambda _: where)[0]


def _show(value: Any) -> str:
    text = repr(value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value)
    return text if len(text) <= 80 else text[:77] + "..."
