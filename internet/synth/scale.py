"""A split of the official size in minutes: ``n`` distinct annotations whose image entries reuse a small pool of
rendered images.

``expand_split(root, split, n)`` takes a split that :func:`internet.synth.generate` wrote (its annotations and
images are the pool) and rewrites its data.json with ``n`` annotations: annotation and image ids are new and
distinct, annotation ``k`` copies pool entry ``k % pool`` (box, validity, hand type, image file, capture, camera,
frame), so the world joints and cameras of joint_3d.json and camera.json serve them unchanged. The inference
path then reads, decodes and crops real JPEG files for every sample, as on the released test split (849,160
annotations), while only a few hundred images are rendered. ``python -m internet.synth --image-pool K`` does both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Union

from internet.synth import writer as W

OFFICIAL_TEST_SIZE = 849_160
"""InterHand2.6M v1.0 test split (H+M, 5 fps) annotations."""

_CHUNK = 8192  # records formatted per write


def expand_split(root: Union[str, Path], split: str, n: int) -> dict:
    """Rewrite ``root/annotations/{split}/InterHand2.6M_{split}_data.json`` with ``n`` annotations cycling through
    the ones it holds now (the pool). Atomic; returns ``{"split", "annotations", "pool"}``. Raises ValueError when
    ``n`` is smaller than the pool (nothing would be reused) and FileNotFoundError naming a missing file."""
    path = Path(root) / "annotations" / split / f"InterHand2.6M_{split}_data.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {split} split to expand (generate it first)")
    data = json.loads(path.read_text())
    images = {img["id"]: img for img in data["images"]}
    pool = [(ann, images[ann["image_id"]]) for ann in data["annotations"]]
    if not pool:
        raise ValueError(f"{path}: the {split} split has no annotations to reuse")
    if n < len(pool):
        raise ValueError(f"n={n} is smaller than the pool of {len(pool)} annotations in {path}")
    out = W.DataJsonWriter(path)
    try:
        for start in range(0, n, _CHUNK):
            image_part, ann_part = [], []
            for k in range(start, min(n, start + _CHUNK)):
                ann, img = pool[k % len(pool)]
                image_part.append(json.dumps({**img, "id": k}))
                ann_part.append(json.dumps({**ann, "id": k, "image_id": k}))
            out.add(image_part, ann_part)
    except BaseException:
        out.abort()
        raise
    out.close()
    return {"split": split, "annotations": n, "pool": len(pool)}
