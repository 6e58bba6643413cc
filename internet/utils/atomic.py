"""Writing files atomically: the one helper every writer of the package uses (results, checkpoints, figures, the
annotation cache, the synthetic data set, the training log).

A temporary file beside the target is written, flushed and (with ``fsync``) synced, given the permissions a plain
``open`` would give (the umask's; ``mkstemp`` alone makes 0600 files), and renamed onto the target: a reader sees the
old file or the new one, never half of one, and an error leaves the old file untouched and no temporary behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, Union

PathLike = Union[str, Path]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", fsync: bool = True) -> Iterator[IO]:
    """``with atomic_open(path, "wb") as f: ...``: ``f`` is a temporary file beside ``path`` (created with its folder)
    that replaces ``path`` when the block ends without an error; on an error it is removed and the error re-raised.
    ``mode``: "w" (UTF-8 text) or "wb". ``fsync``: sync the data to disk before the rename (off for bulk files whose
    loss on power failure is harmless, e.g. rendered images)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        full = _disk_full(e)
        if full is not None:
            # serialisers wrap the write's OSError in their own error (torch.save: "unexpected pos 101179776 vs
            # 101179668"), which never says the disk is full
            raise OSError(
                full.errno,
                f"no space left on device while writing {path} ({os.strerror(full.errno)}); the previous "
                f"{path.name} is untouched and no partial file was left: free space in {path.parent} and retry",
            ) from e
        raise


_FULL = (errno.ENOSPC, errno.EDQUOT)


def _disk_full(e: BaseException) -> "OSError | None":
    """The out-of-space OSError (ENOSPC, EDQUOT) in ``e`` or the errors it was raised from or during, if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _FULL:
            return e
        e = e.__cause__ or e.__context__
    return None


def atomic_write_bytes(path: PathLike, data: bytes, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`); returns the path."""
    with atomic_open(path, "wb", fsync=fsync) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str, fsync: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_open`); returns the path."""
    with atomic_open(path, "w", fsync=fsync) as f:
        f.write(text)
    return Path(path)


def fsync_dir(folder: PathLike) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems cannot open a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
