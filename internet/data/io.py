"""Reading the data set's files with errors that name the file and say what is wrong.

``cv2.imread`` returns None for a missing or undecodable file and decodes a truncated JPEG into a half-grey image with
only a warning on stderr; ``json.load`` reports a position but not the file. These helpers turn each case into an
exception that names the path.
"""
from __future__ import annotations

import contextlib
import gc
import json
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

import cv2
import numpy as np

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"


class DataFileError(ValueError):
    """A data file exists but its content is unusable (malformed JSON, undecodable or truncated image, ...)."""


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector. Decoding JSON creates millions of lists and dicts and no reference
    cycles, and the collector's repeated passes over the survivors cost 3-5 times the decoding itself."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Parse a JSON file; missing files raise FileNotFoundError and malformed or truncated ones DataFileError,
    both naming the path (and the line/column/character of a syntax error)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, "rb") as f, gc_paused():
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataFileError(
            f"malformed {what} {path}: {e.msg} at line {e.lineno} column {e.colno} (char {e.pos}); "
            "the file may be truncated or corrupt"
        ) from None
    except UnicodeDecodeError as e:
        raise DataFileError(f"malformed {what} {path}: not UTF-8 text at byte {e.start}") from None


def _truncation_problem(head: bytes, tail: bytes) -> Optional[str]:
    """Why an encoded image looks cut short, or None. Checked before decoding because OpenCV decodes a truncated
    JPEG into a partly grey image with only a warning. Some writers pad after the end marker, so look at the last
    bytes after stripping padding rather than at the last two."""
    tail = tail.rstrip(b"\x00\r\n\t ")[-64:]
    if head.startswith(_JPEG_SOI) and _JPEG_EOI not in tail:
        return "truncated JPEG (no end-of-image marker)"
    if head.startswith(_PNG_SIG) and _PNG_IEND not in tail:
        return "truncated PNG (no IEND chunk)"
    return None


# OpenCV >= 4.10 decodes straight to RGB (same pixels as BGR + cvtColor, one pass less); older ones decode BGR.
_DECODES_RGB = hasattr(cv2, "IMREAD_COLOR_RGB")
_DECODE_FLAGS = (cv2.IMREAD_COLOR_RGB if _DECODES_RGB else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION


def read_image(path: str | Path, expected_size: Optional[Tuple[int, int]] = None, dtype: type = np.float32,
               ) -> np.ndarray:
    """Read an image as RGB (H, W, 3) in [0, 255], ignoring EXIF orientation (as the official loader): float32 (the
    official loader's type) or, with ``dtype=np.uint8``, the decoded bytes, which the training crop converts only
    where it reads them.

    ``expected_size`` = (width, height) from the annotation: a decoded image of another size is an error, because
    the cameras' intrinsics and the boxes refer to that size. Missing files raise FileNotFoundError; empty,
    truncated and undecodable files raise DataFileError; both name the path.
    """
    path = Path(path)
    try:  # no separate existence check: one system call less per training sample
        data = np.fromfile(str(path), dtype=np.uint8)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise FileNotFoundError(f"image not found: {path}") from None
    except OSError as exc:
        raise DataFileError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if data.size == 0:
        raise DataFileError(f"image file is empty: {path}")
    problem = _truncation_problem(data[:8].tobytes(), data[-256:].tobytes())
    if problem is not None:
        raise DataFileError(f"{problem}: {path}")
    img = cv2.imdecode(data, _DECODE_FLAGS)
    if img is None or img.ndim != 3 or img.size == 0:
        raise DataFileError(f"not a decodable image: {path}")
    if expected_size is not None:
        width, height = int(expected_size[0]), int(expected_size[1])
        if img.shape[1] != width or img.shape[0] != height:
            raise DataFileError(
                f"image {path} decodes to {img.shape[1]}x{img.shape[0]} (WxH) but the annotation says "
                f"{width}x{height}; the intrinsics and boxes would not match it"
            )
    if dtype not in (np.float32, np.uint8):
        raise ValueError(f"read_image: dtype must be numpy.float32 or numpy.uint8, got {dtype!r}")
    # BGR -> RGB where the decoder could not write RGB itself (cvtColor: ~10x faster than a strided numpy copy)
    rgb = img if _DECODES_RGB else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return rgb if dtype is np.uint8 else rgb.astype(np.float32)
