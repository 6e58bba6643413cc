"""The compact index reads data.json exactly as pycocotools' COCO API does (the official loader's view of the file).

The index parses the JSON itself (vectorised; pycocotools' per-annotation dicts are what take ~100 GB at full
scale), so this test pins its annotation->image join and fields to pycocotools on the real sample and on a
synthetic set with many captures and cameras.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from vendored import INTERHAND_SAMPLE as SAMPLE

from internet.config import Config
from internet.data import InterHand26M


def coco_view(data_json: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        return COCO(str(data_json))


def check_against_coco(root: Path, split: str, tmp_path: Path) -> int:
    ds = InterHand26M(
        Config(data_root=str(root)), split, mode="test", cache_dir=tmp_path / "cache", keep_unlabelled=True
    )
    coco = coco_view(root / "annotations" / split / f"InterHand2.6M_{split}_data.json")
    assert len(ds) == len(coco.getAnnIds())
    order_single = []
    for i in range(len(ds)):
        ann_id = int(ds.index["ann_id"][i])
        ann = coco.loadAnns(ann_id)[0]
        img = coco.loadImgs(ann["image_id"])[0]
        assert ds.image_path(i) == root / "images" / split / img["file_name"]
        assert int(ds.index["capture"][i]) == img["capture"]
        assert int(ds.index["frame"][i]) == img["frame_idx"]
        assert int(ds.index["camera"][i]) == int(img["camera"])
        np.testing.assert_allclose(ds.index["bbox"][i], ann["bbox"], rtol=1e-6)
        valid = np.array(ann["joint_valid"], dtype=np.float32).reshape(42)
        for hand, root_j in (("right", 20), ("left", 41)):  # official root propagation
            block = slice(0, 21) if hand == "right" else slice(21, 42)
            valid[block] *= valid[root_j]
        np.testing.assert_array_equal(ds.index["joint_valid"][i], valid)
        order_single.append(ann["hand_type"] != "interacting")
    # official datalist order: every single-hand annotation before every interacting one
    assert order_single == sorted(order_single, reverse=True)
    return len(ds)


def test_index_matches_pycocotools_on_real_sample(tmp_path):
    assert check_against_coco(SAMPLE, "test", tmp_path) == 3


def test_index_matches_pycocotools_on_synthetic_set(tmp_path):
    from internet.synth import generate

    root = tmp_path / "synth"
    generate(root, seed=3, n_train=0, n_val=0, n_test=60, with_images=False)
    assert check_against_coco(root, "test", tmp_path) == 60
