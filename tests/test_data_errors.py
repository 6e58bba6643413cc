"""Bad InterHand2.6M inputs give clear errors naming the file, key, annotation, capture, camera or frame."""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from vendored import INTERHAND_SAMPLE as SAMPLE

from internet.config import Config
from internet.data import InterHand26M
from internet.data.io import DataFileError, read_image, read_json

ANN_DIR = Path("annotations") / "test"
RIGHT_ID, LEFT_ID, INTER_ID = 471953, 680801, 326750


@pytest.fixture(autouse=True)
def _private_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))


@pytest.fixture
def root(tmp_path) -> Path:
    """A writable copy of the real sample."""
    dst = tmp_path / "ih"
    shutil.copytree(SAMPLE / "annotations", dst / "annotations")
    shutil.copytree(SAMPLE / "images", dst / "images")
    for p in [dst, *dst.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return dst


def path_of(root: Path, kind: str) -> Path:
    return root / ANN_DIR / f"InterHand2.6M_test_{kind}.json"


def edit(root: Path, kind: str, fn) -> None:
    p = path_of(root, kind)
    obj = json.loads(p.read_text())
    fn(obj)
    p.write_text(json.dumps(obj))


def ann(obj: dict, ann_id: int) -> dict:
    return next(a for a in obj["annotations"] if a["id"] == ann_id)


def image(obj: dict, image_id: int) -> dict:
    return next(i for i in obj["images"] if i["id"] == image_id)


def load(root: Path, mode: str = "test", **cfg) -> InterHand26M:
    return InterHand26M(Config(data_root=str(root), **cfg), "test", mode, cache=False)


def image_file(root: Path, ann_id: int) -> Path:
    data = json.loads(path_of(root, "data").read_text())
    return root / "images" / "test" / image(data, ann(data, ann_id)["image_id"])["file_name"]


# ================================================================================================ files
@pytest.mark.parametrize("kind", ["data", "camera", "joint_3d"])
def test_missing_annotation_file_is_named(root, kind):
    path_of(root, kind).unlink()
    with pytest.raises(FileNotFoundError, match=f"InterHand2.6M_test_{kind}.json"):
        load(root)


def test_missing_layout_names_both_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"annotations/test/InterHand2.6M_test_data.json.*v0.0"):
        load(tmp_path)


@pytest.mark.parametrize("kind", ["data", "camera", "joint_3d"])
def test_truncated_json_names_file_and_position(root, kind):
    p = path_of(root, kind)
    text = p.read_text()
    p.write_text(text[: len(text) // 2])
    with pytest.raises(DataFileError, match=rf"InterHand2.6M_test_{kind}.json.*line \d+ column \d+ \(char \d+\)"):
        load(root)


def test_malformed_json_syntax(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"a": 1,\n "b": [1, 2,, 3]}')
    with pytest.raises(DataFileError, match=r"x.json.*line 2 column 13 \(char 21\)"):
        read_json(p)


# ================================================================================================ data.json content
@pytest.mark.parametrize("key", ["bbox", "joint_valid", "hand_type", "hand_type_valid", "image_id"])
def test_annotation_missing_key_names_id_and_key(root, key):
    edit(root, "data", lambda d: ann(d, RIGHT_ID).pop(key))
    with pytest.raises(DataFileError, match=rf"id={RIGHT_ID}.*no key '{key}'"):
        load(root)


@pytest.mark.parametrize(
    "key,value",
    [
        ("bbox", [1.0, 2.0, 3.0]),
        ("bbox", "10 10 50 50"),
        ("joint_valid", [[1]] * 41 + [["yes"]]),
        ("joint_valid", [[1]] * 40),
        ("hand_type_valid", "1"),
        ("hand_type", 3),
    ],
)
def test_annotation_wrong_type_names_id_and_key(root, key, value):
    edit(root, "data", lambda d: ann(d, LEFT_ID).__setitem__(key, value))
    with pytest.raises(DataFileError, match=rf"id={LEFT_ID}.*'{key}'"):
        load(root)


def test_unknown_hand_type_is_named(root):
    edit(root, "data", lambda d: ann(d, LEFT_ID).__setitem__("hand_type", "both"))
    with pytest.raises(DataFileError, match=rf"id={LEFT_ID}.*'both'"):
        load(root)


def test_int_bool_mixes_of_the_real_files_are_accepted(root):
    ref = load(root)
    ref_valid = np.array(ref.index["joint_valid"])

    def to_bools(d):
        for a in d["annotations"]:
            a["joint_valid"] = [[bool(v[0])] for v in a["joint_valid"]]  # as joint_3d.json stores them
            a["hand_type_valid"] = True

    edit(root, "data", to_bools)
    ds = load(root)
    np.testing.assert_array_equal(ds.index["joint_valid"], ref_valid)
    assert ds[0]["hand_type_valid"] == 1.0


def test_image_missing_key_and_unknown_image_id(root):
    edit(root, "data", lambda d: image(d, INTER_ID).pop("frame_idx"))
    with pytest.raises(DataFileError, match=rf"image id={INTER_ID}.*'frame_idx'"):
        load(root)


def test_annotation_pointing_to_no_image(root):
    edit(root, "data", lambda d: ann(d, RIGHT_ID).__setitem__("image_id", 123))
    with pytest.raises(DataFileError, match=rf"id={RIGHT_ID}.*image_id 123"):
        load(root)


def test_duplicate_annotation_ids(root):
    edit(root, "data", lambda d: ann(d, RIGHT_ID).__setitem__("id", LEFT_ID))
    with pytest.raises(DataFileError, match=rf"annotation id {LEFT_ID} occurs more than once"):
        load(root)


# ================================================================================================ camera / joints
def test_capture_missing_from_camera_json(root):
    edit(root, "camera", lambda c: c.pop("4"))
    with pytest.raises(DataFileError, match=r"camera.json: capture 4 is missing"):
        load(root)


def test_camera_missing_from_camera_json(root):
    edit(root, "camera", lambda c: c["7"]["focal"].pop("410053"))
    with pytest.raises(DataFileError, match=r"capture 7 camera 410053 is missing from 'focal'"):
        load(root)


def test_singular_rotation_names_capture_and_camera(root):
    edit(root, "camera", lambda c: c["3"]["camrot"].__setitem__("400026", [[1, 0, 0], [0, 1, 0], [0, 0, 0]]))
    with pytest.raises(DataFileError, match=r"capture 3 camera 400026.*not a rotation"):
        load(root)


@pytest.mark.parametrize("change", [lambda j: j.pop("7"), lambda j: j.__setitem__("7", [1, 2])])
def test_capture_missing_from_joint_3d(root, change):
    """joint_3d.json is read one capture at a time: a capture that is absent (or not an object) is named with the
    frame that needs it."""
    edit(root, "joint_3d", change)
    with pytest.raises(DataFileError, match=r"joint_3d.json: capture 7 is missing \(needed by capture 7 frame 29590\)"):
        load(root)


def test_frame_missing_from_joint_3d(root):
    edit(root, "joint_3d", lambda j: j["7"].pop("29590"))
    with pytest.raises(DataFileError, match=r"joint_3d.json: capture 7 frame 29590 is missing"):
        load(root)


def test_bad_world_coord_shape(root):
    edit(root, "joint_3d", lambda j: j["4"]["2017"].__setitem__("world_coord", [[0, 0, 1]] * 21))
    with pytest.raises(DataFileError, match=r"capture 4 frame 2017: world_coord must be 42x3"):
        load(root)


# ================================================================================================ boxes, validity
@pytest.mark.parametrize(
    "bbox,why",
    [
        ([10, 10, 0, 50], "side under 1 px"),
        ([10, 10, 50, -5], "side under 1 px"),
        ([600, 10, 50, 50], "entirely outside"),
        ([-80, 10, 50, 50], "entirely outside"),
    ],
)
def test_bad_box_names_annotation(root, bbox, why):
    edit(root, "data", lambda d: ann(d, RIGHT_ID).__setitem__("bbox", bbox))
    with pytest.raises(DataFileError, match=rf"id={RIGHT_ID}.*{why}"):
        load(root)


def test_annotations_without_valid_joints_are_skipped_with_a_count(root):
    def clear(d):
        ann(d, RIGHT_ID)["joint_valid"] = [[0]] * 42
        ann(d, LEFT_ID)["joint_valid"] = [[0]] * 21 + [[1]] * 20 + [[0]]  # an invalid root zeroes the hand

    edit(root, "data", clear)
    with pytest.warns(UserWarning, match=r"skipping 2 of 3 annotations"):
        ds = load(root)
    assert len(ds) == 1 and int(ds[0]["ann_id"]) == INTER_ID
    assert ds.eval_targets()["ann_id"].tolist() == [INTER_ID]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = InterHand26M(Config(data_root=str(root)), "test", "test", cache=False, keep_unlabelled=True)
    assert len(kept) == 3 and kept[1]["joint_valid"].sum() == 0


# ================================================================================================ images
def test_missing_image_is_named(root):
    p = image_file(root, RIGHT_ID)
    p.unlink()
    ds = load(root)
    with pytest.raises(FileNotFoundError, match=str(p)):
        ds[1]


def test_empty_image_is_named(root):
    p = image_file(root, RIGHT_ID)
    p.write_bytes(b"")
    with pytest.raises(DataFileError, match=rf"empty: {p}"):
        load(root)[1]


def test_truncated_jpeg_is_named(root):
    p = image_file(root, RIGHT_ID)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DataFileError, match=rf"truncated JPEG.*{p}"):
        load(root)[1]


def test_non_image_is_named(root):
    p = image_file(root, RIGHT_ID)
    p.write_text("this is not an image\n" * 20)
    with pytest.raises(DataFileError, match=rf"not a decodable image: {p}"):
        load(root)[1]


def test_image_size_must_match_the_annotation(root):
    p = image_file(root, RIGHT_ID)
    img = cv2.imread(str(p))
    cv2.imwrite(str(p), cv2.resize(img, (256, 167)))
    with pytest.raises(DataFileError, match=r"decodes to 256x167 .*says 512x334"):
        load(root)[1]


def test_truncated_png_is_detected(tmp_path):
    p = tmp_path / "a.png"
    cv2.imwrite(str(p), np.full((40, 30, 3), 100, np.uint8))
    assert read_image(p, (30, 40)).shape == (40, 30, 3)
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(DataFileError, match="truncated PNG"):
        read_image(p)


# ============================================================================================= RootNet, subsets, args
def test_rootnet_file_missing_ids(root, tmp_path):
    path = tmp_path / "rootnet_output_test.json"
    path.write_text(json.dumps([{"annot_id": INTER_ID, "bbox": [0, 0, 100, 100], "abs_depth": [1000, 1050]}]))
    with pytest.raises(DataFileError, match=rf"lacks 2 of the 3 annotation ids.*{LEFT_ID}.*5 fps vs 30 fps"):
        load(root, trans_test="rootnet", rootnet_path=str(path))


def test_rootnet_default_path_and_bad_entries(root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"rootnet_output/rootnet_interhand2.6m_output_test.json"):
        load(root, trans_test="rootnet")
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"annot_id": INTER_ID, "bbox": [0, 0, 100], "abs_depth": [1000, 1050]}]))
    with pytest.raises(DataFileError, match=rf"entry #0 \(annot_id={INTER_ID}\): bbox must have 4"):
        load(root, trans_test="rootnet", rootnet_path=str(path))
    path.write_text(json.dumps({"annot_id": INTER_ID}))
    with pytest.raises(DataFileError, match="must be a JSON list"):
        load(root, trans_test="rootnet", rootnet_path=str(path))


def test_bad_id_list_and_arguments(root, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("326750\nabc\n")
    with pytest.raises(DataFileError, match=r"ids.txt line 2: 'abc'"):
        load(root, annot_subset="human", human_annot_ids=str(ids))
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        load(root, annot_subset="machine", human_annot_ids=str(tmp_path / "nowhere.txt"))
    with pytest.raises(ValueError, match="split='dev'"):
        InterHand26M(Config(data_root=str(root)), "dev", "test", cache=False)
    with pytest.raises(ValueError, match="mode='eval'"):
        InterHand26M(Config(data_root=str(root)), "test", "eval", cache=False)
    with pytest.raises(IndexError, match="out of range"):
        load(root)[3]


# ================================================================================================ domains (issue 21)
# Values of the right type but outside their field's domain used to give silent wrong results.
@pytest.mark.parametrize(
    "key,value,shown",
    [
        ("hand_type_valid", 5, "5"),
        ("hand_type_valid", -1, "-1"),  # would train the hand-type output the wrong way
        ("joint_valid", [[1]] * 41 + [[2]], "2"),
        ("bbox", [10.0, 10.0, 1e39, 50.0], "1e+39"),  # finite in float64, inf in the float32 it is stored in
        ("bbox", [10.0, float("nan"), 50.0, 50.0], "nan"),
        ("id", 1e30, "1e+30"),  # would wrap around in int64
        ("id", 7.5, "7.5"),
        ("image_id", 2**63, str(2**63)),
    ],
)
def test_value_outside_its_domain_names_file_id_key_and_value(root, key, value, shown):
    edit(root, "data", lambda d: ann(d, LEFT_ID).__setitem__(key, value))
    ident = "" if key == "id" else f"id={LEFT_ID}"
    with pytest.raises(
        DataFileError,
        match=rf"InterHand2.6M_test_data.json: annotation {ident}.*key '{key}' must "
        rf"hold .*got .*{re.escape(shown)}",
    ):
        load(root)


@pytest.mark.parametrize("key,value", [("width", 0), ("height", -3), ("width", 1e10), ("capture", 1.5)])
def test_image_value_outside_its_domain(root, key, value):
    edit(root, "data", lambda d: image(d, INTER_ID).__setitem__(key, value))
    with pytest.raises(DataFileError, match=rf"image id={INTER_ID}.*key '{key}' must hold"):
        load(root)


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("focal", [1e39, 1000.0], "finite in float32"),
        ("focal", [0.0, 1000.0], "> 0"),
        ("princpt", [float("inf"), 1.0], "finite"),
    ],
)
def test_camera_value_outside_its_domain(root, field, value, words):
    edit(root, "camera", lambda c: c["7"][field].__setitem__("410053", value))
    with pytest.raises(
        DataFileError,
        match=rf"camera.json: capture 7 camera 410053: key '{field}' must hold.*"
        rf"{re.escape(words)}",
    ):
        load(root)


def test_every_domain_is_stated_once_and_is_checked():
    from internet.data.domains import DOMAINS, outside_domain

    for name, domain in DOMAINS.items():
        shape = domain.resolve_shape(3)
        good = np.ones((2,) + shape)
        assert not outside_domain(good, domain).any(), name
        bad = good.copy()
        bad.reshape(2, -1)[1, 0] = 1e39 if np.dtype(domain.dtype).kind == "f" else 2.0**70
        if domain.finite:
            assert outside_domain(bad, domain).tolist() == [False, True], name


@pytest.mark.parametrize(
    "bbox,why",
    [
        ([100, 100, 1e-30, 1e-30], "side under 1 px"),
        ([100, 100, 0.5, 40], "side under 1 px"),
        ([0, 0, 1e6, 1e6], "over 10 times the longer side"),
    ],
)
def test_degenerate_or_absurd_box_names_annotation(root, bbox, why):
    """A 1e-30 box used to collapse the crop and make every joint a valid target at heatmap pixel (0, 0)."""
    edit(root, "data", lambda d: ann(d, RIGHT_ID).__setitem__("bbox", bbox))
    with pytest.raises(DataFileError, match=rf"InterHand2.6M_test_data.json: annotation id={RIGHT_ID}.*{why}"):
        load(root)


def test_empty_split_says_so(root):
    edit(root, "data", lambda d: d.__setitem__("annotations", []))
    with pytest.raises(DataFileError, match=r"InterHand2.6M_test_data.json: 'annotations' is empty"):
        load(root)


@pytest.mark.parametrize(
    "kind,text,words",
    [
        ("data", '{"images": [], "annotations": [{"id": ' + "7" * 5000 + "}]}", "4300 digits"),
        ("data", '{"images": [], "annotations": [' + "[" * 100_000 + "]" * 100_000 + "]}", "nested too deeply"),
        ("camera", '{"7": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ("joint_3d", '{"7": ' + "1" * 5000 + "}", "4300 digits"),
    ],
)
def test_huge_number_or_deep_nesting_names_the_file(root, kind, text, words):
    path_of(root, kind).write_text(text)
    with pytest.raises(DataFileError, match=rf"InterHand2.6M_test_{kind}.json: .*{words}"):
        load(root)


def zero_run(path: Path, at: float = 0.3, length: int = 200) -> None:
    """Overwrite ``length`` bytes in the middle of the entropy-coded data with zeros (end marker intact)."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start : start + length] = bytes(length)
    path.write_bytes(bytes(data))


def test_corrupt_jpeg_data_is_an_error_naming_the_file(root, capfd):
    """libjpeg only warns (on stderr) about a run of zeroed bytes and decodes garbage; that warning is an error."""
    victim = image_file(root, RIGHT_ID)
    zero_run(victim)
    ds = load(root)
    row = int(np.flatnonzero(np.asarray(ds.index["ann_id"]) == RIGHT_ID)[0])
    with pytest.raises(DataFileError, match=rf"corrupt JPEG data in {re.escape(str(victim))}.*Corrupt JPEG data"):
        ds[row]
    os.write(2, b"stderr still goes to the terminal\n")  # descriptor 2 is restored after the decode
    assert "stderr still goes to the terminal" in capfd.readouterr().err


def test_intact_images_decode_without_a_warning_error():
    for path in sorted((SAMPLE / "images").rglob("*.jpg")):
        assert read_image(path, dtype=np.uint8).shape[2] == 3


def test_text_on_stderr_that_is_not_a_corruption_warning_passes_through(capfd):
    from internet.data.io import _jpeg_problem

    assert _jpeg_problem("Warning: unknown JFIF revision number 3.01\n") is None
    assert _jpeg_problem("Corrupt JPEG data: bad ICC marker\n") is None
    assert _jpeg_problem("Corrupt JPEG data: 4 extraneous bytes before marker 0xd9\n").startswith("Corrupt JPEG")
    assert "unknown JFIF revision" in capfd.readouterr().err


def test_huge_image_is_refused_from_its_header(tmp_path, monkeypatch):
    """A 20000 x 20000 JPEG used to die with a MemoryError naming no file: the frame header says the size first."""
    from internet.data import io

    src = next((SAMPLE / "images").rglob("*.jpg")).read_bytes()
    data = bytearray(src)
    sof = next(i for i in range(2, len(data) - 9) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2))
    data[sof + 5 : sof + 9] = (20000).to_bytes(2, "big") * 2
    big = tmp_path / "big.jpg"
    big.write_bytes(bytes(data))
    assert io.encoded_image_size(np.frombuffer(bytes(data), np.uint8)) == (20000, 20000)
    with pytest.raises(DataFileError, match=rf"image {re.escape(str(big))} is 20000x20000 pixels, more than"):
        read_image(big)
    # formats whose header is not read are checked after the decode
    png = tmp_path / "small.png"
    cv2.imwrite(str(png), np.zeros((20, 30, 3), np.uint8))
    monkeypatch.setattr(io, "MAX_IMAGE_PIXELS", 500)
    monkeypatch.setattr(io, "encoded_image_size", lambda data: None)
    with pytest.raises(DataFileError, match=r"small.png is 30x20 pixels"):
        read_image(png)


# ================================================================================================ cache key (issue 21)
def cached(root: Path) -> InterHand26M:
    return InterHand26M(Config(data_root=str(root)), "test", "test")


def flip_hand_type_valid_keeping_size_and_mtime(root: Path, ann_id: int) -> int:
    """Change one annotation's hand_type_valid (1 <-> 0: the same length in the JSON text), then set the file's
    times back; returns the new value."""
    path = path_of(root, "data")
    st = path.stat()
    edit(
        root,
        "data",
        lambda d: ann(d, ann_id).__setitem__("hand_type_valid", 1 - int(ann(d, ann_id)["hand_type_valid"])),
    )
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    return int(ann(json.loads(path.read_text()), ann_id)["hand_type_valid"])


def test_cache_follows_an_edit_that_keeps_size_and_mtime(root, monkeypatch):
    from internet.data import index_cache as index_mod

    monkeypatch.setattr(index_mod, "RACY_NS", 0)  # record the stats at once (the files were written just now)
    edit(root, "data", lambda d: None)  # written as json.dumps writes it, so the edit below keeps the size
    before = cached(root)
    row = int(np.flatnonzero(np.asarray(before.index["ann_id"]) == RIGHT_ID)[0])
    old = float(before.index["hand_type_valid"][row])
    value = flip_hand_type_valid_keeping_size_and_mtime(root, RIGHT_ID)
    assert value != old
    after = cached(root)
    assert float(after.index["hand_type_valid"][row]) == value  # not the cached old value
    assert after.index.directory != before.index.directory


def test_later_loads_read_no_source_while_their_stats_are_unchanged(root, monkeypatch):
    from internet.data import index_cache as index_mod

    hashed = []
    real = index_mod.fingerprint
    monkeypatch.setattr(index_mod, "fingerprint", lambda paths: hashed.append(1) or real(paths))
    cached(root)
    cached(root)
    assert len(hashed) == 2  # just written (within RACY_NS of the hashing): not trusted yet, hashed again
    monkeypatch.setattr(index_mod, "RACY_NS", 0)
    cached(root)
    assert len(hashed) == 3  # hashed again, now recorded
    first = cached(root)
    cached(root)
    assert len(hashed) == 3  # stats unchanged: no file read
    os.utime(path_of(root, "camera"))  # a touch: hashed again, same content, the cache is reused
    builds = []
    real_build = index_mod.build_interhand_index
    monkeypatch.setattr(index_mod, "build_interhand_index", lambda s: builds.append(1) or real_build(s))
    again = cached(root)
    assert len(hashed) == 4 and not builds and again.index.directory == first.index.directory
