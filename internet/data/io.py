"""Reading the data set's files with errors that name the file and say what is wrong.

``cv2.imread`` returns None for a missing or undecodable file and decodes a truncated or corrupt JPEG into a partly
grey or garbled image with only a warning on stderr; ``json.load`` reports a position but not the file. These helpers
turn each case into an exception that names the path.

Corrupt JPEG data. libjpeg reports what it detects in the entropy-coded data (a run of overwritten bytes, a lost
restart marker, data cut short) only as a warning that it writes to file descriptor 2, and OpenCV has no switch to
make it an error. :func:`read_image` therefore points descriptor 2 at a private temporary file while it decodes a
JPEG (a few system calls, microseconds against the milliseconds of the decode) and treats libjpeg's corrupt-data
warnings as errors; any other text written there meanwhile is passed on to the real stderr. Corruption that libjpeg
itself cannot see (bytes that still decode as valid Huffman codes) stays undetectable without a checksum.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

import cv2
import numpy as np

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
MAX_IMAGE_PIXELS = 1 << 27
"""Largest image (width x height, 134 M pixels, e.g. 16384 x 8192) that :func:`read_image` decodes: 0.4 GB as uint8,
1.6 GB as float32. Larger ones get an error naming the file instead of a MemoryError; scale them down first."""


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
    except (ValueError, RecursionError) as e:
        raise json_limit_error(what, path, e) from None


def json_limit_error(what: str, path: Path, e: BaseException) -> DataFileError:
    """The error for valid-looking JSON that the decoder refuses: a number of thousands of digits (Python's limit on
    integer conversion) or arrays/objects nested thousands deep (the recursion limit)."""
    if isinstance(e, RecursionError):
        why = "arrays or objects nested too deeply to decode (thousands of levels)"
    else:
        why = f"a value the JSON decoder refuses ({str(e).split(';')[0]})"
    return DataFileError(
        f"malformed {what} {path}: {why}; no data file of this project holds such values, so the file "
        "is corrupt or not the expected file"
    )


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


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT, JPG, DAC)


def encoded_image_size(data: np.ndarray) -> Optional[Tuple[int, int]]:
    """(width, height) read from a JPEG's frame header or a PNG's IHDR chunk without decoding; None for other formats
    or when the header is not where it should be (the decoder then decides)."""
    mv = memoryview(data)
    n = len(mv)
    if n >= 24 and bytes(mv[:8]) == _PNG_SIG and bytes(mv[12:16]) == b"IHDR":
        return int.from_bytes(mv[16:20], "big"), int.from_bytes(mv[20:24], "big")
    if n < 4 or mv[0] != 0xFF or mv[1] != 0xD8:
        return None
    i = 2
    while i + 9 < n:  # walk the marker segments up to the frame header (usually within the first kilobyte)
        if mv[i] != 0xFF:
            return None
        marker = mv[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:  # markers without a length
            i += 2
            continue
        if marker in _SOF_MARKERS:
            return (mv[i + 7] << 8) | mv[i + 8], (mv[i + 5] << 8) | mv[i + 6]
        if marker in (0xD9, 0xDA):  # end of image, or a scan before any frame header
            return None
        i += 2 + ((mv[i + 2] << 8) | mv[i + 3])
    return None


# libjpeg's warnings that mean the pixels are wrong (jerror.h JWRN_*); others (an unknown JFIF revision, an Adobe
# transform code, a bad ICC profile chunk) leave the pixels right and are passed on to stderr.
_JPEG_CORRUPT_MESSAGES = (
    "Corrupt JPEG data",
    "Premature end of JPEG file",
    "Inconsistent progression sequence",
    "Invalid SOS parameters",
)
_JPEG_HARMLESS_MESSAGES = ("bad ICC marker",)


class _Fd2Capture:
    """A per-process temporary file that file descriptor 2 is pointed at while a JPEG decodes (see the module
    docstring). One decode at a time per process: descriptor 2 is shared by all threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fd: Optional[int] = None

    def decode(self, data: np.ndarray, flags: int) -> Tuple[Optional[np.ndarray], str]:
        """``cv2.imdecode(data, flags)`` and the text written to descriptor 2 meanwhile."""
        with self.lock:
            try:
                if self.fd is None:  # a bare descriptor of an unlinked file: nothing to close at exit
                    self.fd, name = tempfile.mkstemp(prefix="internet-libjpeg-")
                    os.unlink(name)
                fd = self.fd
                saved = os.dup(2)
            except OSError:  # no descriptor 2 (a daemon) or no temporary directory: decode without the check
                return cv2.imdecode(data, flags), ""
            try:
                os.dup2(fd, 2)
                try:
                    img = cv2.imdecode(data, flags)
                finally:
                    os.dup2(saved, 2)
            finally:
                os.close(saved)
            written = os.lseek(fd, 0, os.SEEK_CUR)
            if not written:
                return img, ""
            os.lseek(fd, 0, os.SEEK_SET)
            text = os.read(fd, written).decode("utf-8", "replace")
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            return img, text


_fd2_capture = _Fd2Capture()


def _new_capture_in_child() -> None:  # a forked loader worker must not share the parent's file offset or lock
    global _fd2_capture
    _fd2_capture = _Fd2Capture()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_capture_in_child)


def _jpeg_problem(text: str) -> Optional[str]:
    """libjpeg's corrupt-data warning in ``text``, or None; other text goes on to the real stderr."""
    bad = [
        ln.strip()
        for ln in text.splitlines()
        if any(m in ln for m in _JPEG_CORRUPT_MESSAGES) and not any(m in ln for m in _JPEG_HARMLESS_MESSAGES)
    ]
    other = "".join(ln for ln in text.splitlines(keepends=True) if ln.strip() not in bad)
    if other:
        with contextlib.suppress(OSError):
            os.write(2, other.encode("utf-8", "replace"))
    return bad[0] if bad else None


# OpenCV >= 4.10 decodes straight to RGB (same pixels as BGR + cvtColor, one pass less); older ones decode BGR.
_DECODES_RGB = hasattr(cv2, "IMREAD_COLOR_RGB")
_DECODE_FLAGS = (cv2.IMREAD_COLOR_RGB if _DECODES_RGB else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION


def _check_pixels(width: int, height: int, path: Path) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise DataFileError(
            f"image {path} is {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS:,} this "
            "reader decodes (internet.data.io.MAX_IMAGE_PIXELS); scale it down first"
        )


def read_image(
    path: str | Path,
    expected_size: Optional[Tuple[int, int]] = None,
    dtype: type = np.float32,
) -> np.ndarray:
    """Read an image as RGB (H, W, 3) in [0, 255], ignoring EXIF orientation (as the official loader): float32 (the
    official loader's type) or, with ``dtype=np.uint8``, the decoded bytes, which the training crop converts only
    where it reads them.

    ``expected_size`` = (width, height) from the annotation: a decoded image of another size is an error, because
    the cameras' intrinsics and the boxes refer to that size. Missing files raise FileNotFoundError; empty,
    truncated, corrupt (libjpeg's corrupt-data warnings) and undecodable files, and images of more than
    :data:`MAX_IMAGE_PIXELS`, raise DataFileError; both name the path.
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
    size = encoded_image_size(data)
    if size is not None:
        _check_pixels(size[0], size[1], path)
    try:
        if data[:2].tobytes() == _JPEG_SOI:
            img, messages = _fd2_capture.decode(data, _DECODE_FLAGS)
            problem = _jpeg_problem(messages) if messages else None
            if problem is not None:
                raise DataFileError(
                    f"corrupt JPEG data in {path}: libjpeg says {problem!r}; the decoded pixels "
                    "would be wrong (re-download or re-extract the file)"
                )
        else:
            img = cv2.imdecode(data, _DECODE_FLAGS)
    except (MemoryError, cv2.error) as e:
        raise DataFileError(f"cannot decode image {path}: {type(e).__name__}: {str(e).strip()[:200]}") from None
    if img is None or img.ndim != 3 or img.size == 0:
        raise DataFileError(f"not a decodable image: {path}")
    _check_pixels(img.shape[1], img.shape[0], path)
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
