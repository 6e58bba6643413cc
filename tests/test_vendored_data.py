"""The vendored reference data (tests/data/shared) is the original, unedited and complete: every file matches
tests/data/shared.sha256, nothing is missing or added, git keeps every file and converts none, and, where
../shared exists beside the checkout, every file equals its original byte for byte."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from vendored import MANIFEST, UPSTREAM, UPSTREAM_PARTS, VENDORED


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(root: Path) -> set:
    """Every file under root (hidden ones included), as posix paths relative to root."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _manifest() -> dict:
    rows = {}
    for lineno, line in enumerate(MANIFEST.read_text().splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        assert sep and len(digest) == 64, f"{MANIFEST} line {lineno} is not 'sha256  path': {line!r}"
        rows[rel] = digest
    return rows


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=VENDORED, capture_output=True, text=True)


def test_vendored_files_match_their_manifest():
    expected = _manifest()
    assert _files(VENDORED) == set(expected), "files added to or missing from tests/data/shared"
    changed = [rel for rel, digest in expected.items() if _sha256(VENDORED / rel) != digest]
    assert not changed, f"vendored files edited: {changed}"
    # the READMEs (origin, licences, how the fixtures were made) travel with the data
    for part in UPSTREAM_PARTS:
        assert f"{part}/README.md" in expected, part
    # in a git checkout: no file dropped by an ignore rule (*.npz, *.jpg, ...) and none converted on checkout
    if shutil.which("git") is None or _git("rev-parse", "--is-inside-work-tree").returncode != 0:
        return
    paths = [str(VENDORED / rel) for rel in sorted(expected)] + [str(MANIFEST)]
    ignored = _git("check-ignore", "--no-index", *paths)  # the patterns, whether or not the files are tracked
    assert ignored.returncode == 1 and not ignored.stdout, f"ignored by git: {ignored.stdout}"
    attrs = _git("check-attr", "text", *paths).stdout.splitlines()
    assert len(attrs) == len(paths) and all(a.endswith(": text: unset") for a in attrs), attrs


def test_vendored_files_equal_the_originals_in_shared():
    if not UPSTREAM.is_dir():
        pytest.skip(f"{UPSTREAM} is not beside this checkout: the copy is checked against its manifest only")
    for part, original in UPSTREAM_PARTS.items():
        originals = _files(original)
        assert originals, f"{original} holds no file"
        copies = {rel.removeprefix(part + "/") for rel in _files(VENDORED) if rel.startswith(part + "/")}
        assert copies == originals, (
            f"{part}: only in the copy {copies - originals}, only in {original} {originals - copies}"
        )
        differ = [rel for rel in sorted(originals) if _sha256(original / rel) != _sha256(VENDORED / part / rel)]
        assert not differ, f"{part}: the copy differs from {original} in {differ}"
