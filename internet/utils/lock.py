"""One training per output folder: an advisory lock that dies with its process.

Two trainings into one ``output_dir`` interleave their ``train_log.jsonl`` rows, replace each other's checkpoints
and mix the curves and ``checkpoint='latest'``. :class:`FolderLock` takes ``fcntl.flock`` on ``{folder}/.lock``:
the kernel drops it when the process ends however it ends (a SIGKILL, a lost node's restart), so a killed run never
blocks the next one, and nothing stale has to be cleaned. The file records who holds it, for the refusal's message.
(``flock`` is advisory and local to a machine on some network file systems; on such a mount two machines are not
kept apart.)
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Optional, Union

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock, trainings are not kept apart
    fcntl = None

LOCK_NAME = ".lock"


class FolderInUseError(RuntimeError):
    """Another process holds the folder's lock."""


class FolderLock:
    """``with FolderLock(folder, what="training"):`` or :meth:`acquire` / :meth:`release`. Non-blocking: a held lock
    raises :class:`FolderInUseError` naming the holder (pid, host, start time, what) and what to do."""

    def __init__(self, folder: Union[str, Path], what: str = "training") -> None:
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_NAME
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "FolderLock":
        if self._fd is not None or fcntl is None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise FolderInUseError(
                f"{self.folder} is in use by another {holder.get('what', 'run')} (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, since {holder.get('since', '?')}; lock file {self.path}). Two runs "
                "in one folder would mix their logs and replace each other's checkpoints: wait for it to end, stop "
                "it, or set output_dir to another folder. The lock ends with that process, even a killed one."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({**record, "what": self.what}).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
