"""Reading a large JSON object member by member, so that a 0.8 GB annotation file never becomes 8 GB of Python objects.

``json.load`` turns InterHand2.6M's train data.json (794 MB, 1.36 M annotations) into about 9 GB of dicts and lists
before anything can be kept or dropped. :func:`iter_members` walks the top-level object instead and hands over one
member at a time, and the members named in ``stream`` (the big arrays) in pieces of ``batch_size`` items, each
decoded by the standard library's own decoder (``json.JSONDecoder.raw_decode``). The caller turns each piece into
compact numpy columns and lets it go. Syntax errors name the file, line, column and character, as ``read_json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Collection, Iterator, Optional, Tuple

from internet.data.io import DataFileError, json_limit_error

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER_TAIL = re.compile(r"[0-9+\-.eE]*")
_READ_CHARS = 1 << 22  # characters per read: 4 M
_TYPE_OF_FIRST_CHAR = {"[": "list", '"': "str", "t": "bool", "f": "bool", "n": "NoneType"}


class _Reader:
    """A text buffer over a file that keeps only what is not yet consumed, and knows absolute positions."""

    def __init__(self, f, path: Path, what: str):
        self.f, self.path, self.what = f, path, what
        self.buf = ""
        self.pos = 0  # next unread character of buf
        self.base = 0  # absolute character offset of buf[0]
        self.base_line = 1  # line number of buf[0]
        self.base_col_start = 0  # absolute offset of the start of that line
        self.eof = False
        self.decoder = json.JSONDecoder()

    def fill(self, at_least: int = 0) -> bool:
        """Read at least ``_READ_CHARS`` more characters (dropping what is consumed); False at the end of the file."""
        if self.eof:
            return False
        try:
            text = self.f.read(max(at_least, _READ_CHARS))
        except UnicodeDecodeError:
            raise DataFileError(
                f"malformed {self.what} {self.path}: not UTF-8 text after char {self.base + len(self.buf)}"
            ) from None
        if not text:
            self.eof = True
            return False
        done = self.buf[: self.pos]
        newlines = done.count("\n")
        if newlines:
            self.base_line += newlines
            self.base_col_start = self.base + done.rfind("\n") + 1
        self.base += self.pos
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        return True

    def skip_whitespace(self) -> str:
        """Move past whitespace; the next character ('' at the end of the file)."""
        while True:
            self.pos = _WHITESPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""

    def expect(self, chars: str, expecting: str) -> str:
        c = self.skip_whitespace()
        if not c or c not in chars:
            raise self.error(expecting, self.pos)
        self.pos += 1
        return c

    def value(self) -> Any:
        """Decode the JSON value that starts at the next non-blank character."""
        self.skip_whitespace()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                # cut by the end of the buffer, or wrong: read more (doubling, so a bad file costs linear time)
                if self.fill(len(self.buf)):
                    continue
                raise self.error(e.msg, e.pos) from None
            except (ValueError, RecursionError) as e:  # a number of thousands of digits, or deep nesting
                raise json_limit_error(self.what, self.path, e) from None
            if not self.eof and _NUMBER_TAIL.fullmatch(self.buf, end) and self.fill():
                continue  # the text ends where a number could go on ('1' of '1.5', '2' of '2e3'): read on
            self.pos = end
            return value

    def error(self, msg: str, pos: int) -> DataFileError:
        """The syntax error ``msg`` at ``pos`` of the buffer, placed as json.load places it."""
        absolute = self.base + pos
        before = self.buf[:pos]
        newlines = before.count("\n")
        line = self.base_line + newlines
        line_start = self.base + before.rfind("\n") + 1 if newlines else self.base_col_start
        return DataFileError(
            f"malformed {self.what} {self.path}: {msg} at line {line} column "
            f"{absolute - line_start + 1} (char {absolute}); the file may be truncated or corrupt"
        )


def iter_members(
    path: str | Path,
    what: str = "JSON file",
    stream: Collection[str] = (),
    batch_size: int = 32768,
) -> Iterator[Tuple[str, Any, Optional[int]]]:
    """The members of the JSON object in ``path``, in file order: ``(key, value, None)`` for each, except that a
    member named in ``stream`` whose value is an array comes as pieces ``(key, items, first)``: lists of up to
    ``batch_size`` items, ``first`` the index of ``items[0]`` in the array (an empty array gives one empty piece).

    A missing file raises FileNotFoundError; a top level that is not an object, bad syntax and truncation raise
    DataFileError naming the file (and the line, column and character of a syntax error)."""
    path = Path(path)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path, encoding="utf-8-sig", newline="") as f:
        r = _Reader(f, path, what)
        first = r.skip_whitespace()
        if first != "{":
            kind = _TYPE_OF_FIRST_CHAR.get(first, "number" if first and first in "-0123456789" else None)
            if kind is None:  # nothing, or no JSON value
                raise r.error("Expecting value", r.pos)
            raise DataFileError(f"{path}: the top level must be a JSON object, got {kind}")
        r.pos += 1
        if r.skip_whitespace() == "}":
            r.pos += 1
        else:
            while True:
                if r.skip_whitespace() != '"':
                    raise r.error("Expecting property name enclosed in double quotes", r.pos)
                key = r.value()
                r.expect(":", "Expecting ':' delimiter")
                if key in stream and r.skip_whitespace() == "[":
                    yield from _array_pieces(r, key, batch_size)
                else:
                    yield key, r.value(), None
                if r.expect(",}", "Expecting ',' delimiter") == "}":
                    break
        if r.skip_whitespace():
            raise r.error("Extra data", r.pos)


def _array_pieces(r: _Reader, key: str, batch_size: int) -> Iterator[Tuple[str, list, int]]:
    r.pos += 1  # the '['
    items: list = []
    first = 0
    if r.skip_whitespace() == "]":
        r.pos += 1
        yield key, items, 0
        return
    while True:
        items.append(r.value())
        if len(items) == batch_size:
            yield key, items, first
            first += len(items)
            items = []
        if r.expect(",]", "Expecting ',' delimiter") == "]":
            break
    if items or first == 0:
        yield key, items, first
