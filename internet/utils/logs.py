"""Training logs: a readable text log and a JSON-lines log (one object per ``cfg.log_every_iters`` iterations), plus
tqdm progress bars.

Both files are opened in append mode and flushed after every line, so a killed run loses at most the line being
written; a torn last line (no trailing newline) is cut off when the log is reopened, so the JSON-lines file always
parses. A resumed run first removes the records of the steps it will redo (:meth:`TrainLogger.drop_records_after`);
:func:`read_jsonl` still keeps only the last record of each step of a log written otherwise.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, TextIO

from internet.utils.atomic import atomic_write_bytes

TEXT_LOG = "train_logs.txt"
JSONL_LOG = "train_log.jsonl"


def format_duration(seconds: float) -> str:
    """'1d 02:03:04' / '02:03:04' / '03:04' for an ETA."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    hms = f"{h:02d}:{m:02d}:{s:02d}" if h or d else f"{m:02d}:{s:02d}"
    return f"{d}d {hms}" if d else hms


def _cut_torn_line(path: Path) -> None:
    """Drop a partial last line (a write cut by a kill) so appended lines start clean."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


class TrainLogger:
    """Writes ``log_dir/train_logs.txt`` and ``log_dir/train_log.jsonl``; does nothing when ``enabled`` is False
    (the non-zero ranks of a distributed run).

    log_dir: folder of the two files (created). enabled: write at all. echo: also print text lines to stdout.
    """

    def __init__(self, log_dir: Path, enabled: bool = True, echo: bool = False):
        self.log_dir = Path(log_dir)
        self.enabled = enabled
        self.echo = echo
        self._text: Optional[TextIO] = None
        self._jsonl: Optional[TextIO] = None
        if enabled:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            for name in (TEXT_LOG, JSONL_LOG):
                _cut_torn_line(self.log_dir / name)
            self._text = open(self.log_dir / TEXT_LOG, "a", encoding="utf-8")
            self._jsonl = open(self.log_dir / JSONL_LOG, "a", encoding="utf-8")

    @property
    def text_path(self) -> Path:
        return self.log_dir / TEXT_LOG

    @property
    def jsonl_path(self) -> Path:
        return self.log_dir / JSONL_LOG

    def info(self, message: str) -> None:
        """A free-form line in the text log, time-stamped."""
        if not self.enabled:
            return
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        self._text.write(line + "\n")
        self._text.flush()
        if self.echo:
            print(line, flush=True)

    def iteration(self, record: dict, end_epoch: int, iters_per_epoch: int, eta_s: float) -> None:
        """One training iteration: a JSON object (``record`` as given) and a readable text line."""
        if not self.enabled:
            return
        self._jsonl.write(json.dumps(record, allow_nan=True) + "\n")
        self._jsonl.flush()
        losses = " ".join(f"{k[5:]} {record[k]:.4f}" for k in record if k.startswith("loss_"))
        self.info(
            f"epoch {record['epoch']}/{end_epoch} iter {record['iter'] + 1}/{iters_per_epoch} step {record['step']} "
            f"lr {record['lr']:.2e} | {losses} | {record['time']:.3f}s/iter (data {record['data_time']:.3f}s, "
            f"{record['images_per_s']:.1f} img/s) | ETA {format_duration(eta_s)}"
        )

    def drop_records_after(self, step: int) -> int:
        """Remove the JSON-lines records of steps after ``step`` (a resumed run redoes them), so the log agrees with
        the checkpoint it resumed from. The file is rewritten atomically; returns how many records were removed."""
        if not self.enabled or not self.jsonl_path.is_file():
            return 0
        lines = self.jsonl_path.read_bytes().splitlines(keepends=True)
        kept = [line for line in lines if not line.strip() or json.loads(line).get("step", 0) <= step]
        if len(kept) == len(lines):
            return 0
        self._jsonl.close()
        atomic_write_bytes(self.jsonl_path, b"".join(kept))
        self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")
        return len(lines) - len(kept)

    def close(self) -> None:
        for f in (self._text, self._jsonl):
            if f is not None:
                f.close()
        self._text = self._jsonl = None

    def __enter__(self) -> "TrainLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_jsonl(path: Path, dedupe: bool = True) -> List[dict]:
    """The records of a JSON-lines log; with ``dedupe``, the last record of each ``step`` in step order (a resumed
    run repeats the steps after its checkpoint). A torn last line is skipped."""
    records = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if n == len(lines) - 1:  # torn last line of a killed run
                continue
            raise ValueError(f"{path}: line {n + 1} is not valid JSON ({e})") from e
    if dedupe:
        by_step = {r["step"]: r for r in records if "step" in r}
        records = [by_step[s] for s in sorted(by_step)]
    return records


def progress(
    iterable: Iterable, total: Optional[int] = None, desc: str = "", enabled: Optional[bool] = None, initial: int = 0
) -> Iterator:
    """A tqdm bar over ``iterable``; ``enabled=None`` shows it only when stderr is a terminal or inside Jupyter."""
    if enabled is None:
        enabled = sys.stderr.isatty() or "ipykernel" in sys.modules
    if not enabled:
        return iter(iterable)
    if "ipykernel" in sys.modules:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, initial=initial, dynamic_ncols=True, leave=False)
