"""Where the annotation index is cached, and when a cache may be used without reading the source files again.

The cache directory is keyed by a fingerprint of the source files' content (SHA-1 of their bytes, with their
absolute paths and the index format version), so any edit rebuilds it, even one that keeps the size and the
modification time (a restored backup, a copy with preserved times, a coarse-mtime file system). Hashing the full
train split takes many times a cached start (benchmarks/RESULTS.md section 3), too long for every start, so each cache
also records every source file's (device, inode, size, mtime_ns, ctime_ns) as it was when its content was hashed,
and a later start whose files all still show those values uses the cache without reading them. That shortcut is
content-safe because the kernel sets ctime to the current time on every write, rename or ``utime`` and no
user-level tool can set it back (``touch``, ``cp -p``, ``rsync -t`` and ``tar`` all leave a new ctime); a file whose
ctime or mtime lies within :data:`RACY_NS` of the moment it was hashed is not recorded (a later edit in the same
timestamp tick could not be told apart, as in git's "racy clean" rule), so the next start hashes it again. When the
recorded values differ (a touch, a copy), the files are hashed again: the same content reuses the cache, other
content builds a new one. It is written to a temporary directory and renamed into place, so a crash never leaves a
half-written cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

from internet.data.index import INDEX_VERSION, AnnotationIndex, IndexSources, read_meta
from internet.data.index_build import build_interhand_index
from internet.utils.atomic import atomic_write_text

RACY_NS = 2_000_000_000
"""A source file changed this close (ns) before it was hashed is hashed again on the next start (timestamps of coarse
file systems: FAT 2 s)."""
_HASH_CHUNK = 1 << 22


def source_stats(paths: Iterable[Path]) -> List[list]:
    """Each file's [device, inode, size, mtime_ns, ctime_ns]."""
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append([st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
    return out


def fingerprint(paths: Iterable[Path]) -> Tuple[str, list]:
    """A digest of the index version and of each file's absolute path and content (SHA-1 of its bytes), and the
    per-file items hashed (path, size, sha1)."""
    items = []
    for p in paths:
        h = hashlib.sha1()
        size = 0
        with open(p, "rb", buffering=0) as f:
            while chunk := f.read(_HASH_CHUNK):
                h.update(chunk)
                size += len(chunk)
        items.append({"path": str(Path(p).resolve()), "size": size, "sha1": h.hexdigest()})
    digest = hashlib.sha256(json.dumps([INDEX_VERSION, items]).encode()).hexdigest()
    return digest, items


def _settled(stats: List[list], hashed_at_ns: int) -> List[Optional[list]]:
    """The stats worth recording: None for a file changed within RACY_NS of the moment its hashing began."""
    return [st if max(st[3], st[4]) < hashed_at_ns - RACY_NS else None for st in stats]


def _stats_unchanged(meta: dict, stats: List[list]) -> bool:
    recorded = meta.get("source_stats")
    return (
        isinstance(recorded, list)
        and len(recorded) == len(stats)
        and None not in recorded
        and [list(r) for r in recorded] == stats
    )


def _record_stats(directory: Path, meta: dict, stats: List[Optional[list]]) -> None:
    """Store ``stats`` in the cache's meta.json (atomically; best effort: a read-only cache is hashed each time)."""
    if meta.get("source_stats") == stats or not _marked_writable(directory):
        return
    meta = {**meta, "source_stats": stats}
    with contextlib.suppress(OSError):
        atomic_write_text(directory / "meta.json", json.dumps(meta, indent=1))


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/internet`` or ``~/.cache/internet``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "internet"


def _marked_writable(directory: Path) -> bool:
    """Whether we may create files under ``directory``: its nearest existing ancestor must be writable by us and
    carry a write bit. The mode-bit test keeps root from writing into folders that are deliberately read-only."""
    d = directory
    while not d.exists():
        if d.parent == d:
            return False
        d = d.parent
    try:
        mode = d.stat().st_mode
    except OSError:
        return False
    return bool(mode & 0o222) and os.access(d, os.W_OK | os.X_OK)


def cache_roots(data_root: Path, cache_dir: Optional[Path]) -> List[Path]:
    """Where an index cache may live, in order of preference."""
    if cache_dir is not None:
        return [Path(cache_dir)]
    return [Path(data_root) / ".cache", user_cache_dir()]


def load_index(
    sources: IndexSources,
    data_root: Path,
    cache: bool = True,
    cache_dir: Optional[Path] = None,
) -> AnnotationIndex:
    """The index of ``sources``: from a matching cache (memory-mapped) if there is one, otherwise built, saved
    atomically to the first writable cache root and re-opened memory-mapped. ``cache=False`` builds in memory."""
    for p in sources.paths:
        if not p.is_file():
            raise FileNotFoundError(f"annotation file not found: {p}")
    if not cache:
        return build_interhand_index(sources)
    roots = cache_roots(data_root, cache_dir)
    stats = source_stats(sources.paths)
    # a cache whose files still show the stats recorded when their content was hashed (see the module docstring)
    for root in roots:
        for candidate in sorted(root.glob(f"{sources.name}-*")) if root.is_dir() else ():
            meta = read_meta(candidate)
            if meta is not None and meta.get("version") == INDEX_VERSION and _stats_unchanged(meta, stats):
                index = _open_or_discard(candidate)
                if index is not None:
                    return index
    hashed_at = time.time_ns()
    digest, items = fingerprint(sources.paths)
    settled = _settled(stats, hashed_at)
    dirname = f"{sources.name}-{digest[:24]}"
    for root in roots:
        candidate = root / dirname
        meta = read_meta(candidate)
        if meta is not None and meta.get("fingerprint") == digest:
            index = _open_or_discard(candidate)
            if index is not None:
                _record_stats(candidate, meta, settled)  # same content, new stats (a touch, a copy)
                return index
    index = build_interhand_index(sources)
    meta = {
        "version": INDEX_VERSION,
        "fingerprint": digest,
        "sources": items,
        "source_stats": settled,
        "count": len(index),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    for root in roots:
        if not _marked_writable(root):
            continue
        try:
            return _save_atomically(index, root, dirname, sources.name, meta)
        except OSError as e:
            warnings.warn(f"could not write the annotation cache under {root}: {e}", stacklevel=2)
    warnings.warn(
        f"no writable cache directory among {[str(r) for r in roots]}: the annotation index stays in "
        "memory and DataLoader workers receive copies of it",
        stacklevel=2,
    )
    return index


def _open_or_discard(candidate: Path) -> Optional[AnnotationIndex]:
    """The cache in ``candidate``, or None after warning about (and removing) a damaged one."""
    try:
        return AnnotationIndex.open(candidate)
    except (OSError, ValueError) as e:
        warnings.warn(f"ignoring a damaged annotation cache {candidate}: {e}; rebuilding it", stacklevel=2)
        if _marked_writable(candidate):
            shutil.rmtree(candidate, ignore_errors=True)
        return None


def _save_atomically(index: AnnotationIndex, root: Path, dirname: str, name: str, meta: dict) -> AnnotationIndex:
    root.mkdir(parents=True, exist_ok=True)
    final = root / dirname
    tmp = Path(tempfile.mkdtemp(prefix=f".{dirname}.tmp-", dir=root))
    try:
        index.save(tmp, meta)
        if final.exists():  # a damaged copy, or one that a concurrent process just finished
            if _complete(final, meta):
                shutil.rmtree(tmp, ignore_errors=True)
                return AnnotationIndex.open(final)
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not _complete(final, meta):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale(root, name, keep=dirname)
    return AnnotationIndex.open(final)


def _complete(directory: Path, meta: dict) -> bool:
    m = read_meta(directory)
    return m is not None and m.get("fingerprint") == meta["fingerprint"] and m.get("version") == meta["version"]


def _remove_stale(root: Path, name: str, keep: str, max_tmp_age_s: float = 86400.0) -> None:
    """Remove caches of the same split built from older versions of the files, and temporary directories left by
    crashed builds (only old ones: a concurrent build may own a fresh one). Best effort."""
    now = time.time()
    for d in root.glob(f"{name}-*"):
        if d.name != keep and d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
    for d in root.glob(f".{name}-*.tmp-*"):
        try:
            if now - d.stat().st_mtime > max_tmp_age_s:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass
