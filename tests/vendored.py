"""Where the tests find the real sample frames and the official-code parity fixtures.

``tests/data/shared/`` holds byte-identical copies of ``../shared/data`` and ``../shared/reference/official_internet``
(same layout as ``../shared``, their READMEs included; see tests/data/README.md), so every clone carries the parity
evidence and no test depends on a folder beside the checkout. ``tests/data/shared.sha256`` lists their checksums;
test_vendored_data.py checks the files against it, and against ``../shared`` where that folder exists.
A module (not conftest.py) so test files and benchmark subprocesses can import it.
"""

from __future__ import annotations

from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
VENDORED = TESTS_DIR / "data" / "shared"
"""The vendored copy, laid out like ``../shared``: ``data/`` and ``reference/official_internet/``."""
INTERHAND_SAMPLE = VENDORED / "data" / "interhand26m_sample"
"""Three annotated InterHand2.6M v1.0 test frames (official layout) and the official demo's input image."""
RHD_SAMPLE = VENDORED / "data" / "rhd_sample" / "data"
"""Three RHD frames in InterNet's ``data/RHD/data`` layout."""
OFFICIAL = VENDORED / "reference" / "official_internet"
"""What the official InterNet code computes on the three InterHand2.6M frames (its README says how)."""
MANIFEST = TESTS_DIR / "data" / "shared.sha256"
"""``sha256  relative/path`` of every vendored file (relative to VENDORED), as written by ``sha256sum``."""
UPSTREAM = TESTS_DIR.parents[1] / "shared"
"""``../shared`` beside the checkout: the read-only originals (absent from a fresh clone)."""
UPSTREAM_PARTS = {
    "data": UPSTREAM / "data",
    "reference/official_internet": UPSTREAM / "reference" / "official_internet",
}
"""Each vendored folder (relative to VENDORED) and the ``../shared`` folder it copies."""
