"""internet.data.json_stream: the members of a big JSON object, piece by piece, equal to json.load's, with the same
error positions."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from internet.data import json_stream
from internet.data.io import DataFileError, read_json
from internet.data.json_stream import iter_members


def _document(seed: int) -> dict:
    g = np.random.default_rng(seed)

    def item(k):
        return {
            "id": int(k),
            "bbox": [float(v) for v in g.normal(0, 1e3, 4)],
            "joint_valid": [[1]] * 3 + [[0]],
            "name": f'Capture{k}/cam\u00e9ra "{k}"\\x',
            "flag": bool(k % 2),
            "none": None,
            "big": int(g.integers(-(10**12), 10**12)),
            "exp": float(g.normal()) * 1e-30,
        }

    return {
        "info": {"version": "v1.0", "nested": [1, [2, [3]]]},
        "images": [item(k) for k in range(57)],
        "annotations": [item(k) for k in range(130)],
        "numbers": [int(v) for v in g.integers(-(10**15), 10**15, 300)] + [float(v) for v in g.normal(0, 1e9, 300)],
        "empty": [],
        "text": "end",
        "number": 12345.678e-3,
    }


def _collect(path, stream, batch_size):
    out, pieces = {}, {}
    for key, value, first in iter_members(path, "test file", stream=stream, batch_size=batch_size):
        if first is None:
            out[key] = value
        else:
            assert first == len(out.setdefault(key, []))
            assert len(value) <= batch_size
            out[key].extend(value)
            pieces[key] = pieces.get(key, 0) + 1
    return out, pieces


@pytest.mark.parametrize("read_chars", [1, 7, 64, 1 << 22])
@pytest.mark.parametrize("indent", [None, 1])
def test_members_equal_json_load(tmp_path, monkeypatch, read_chars, indent):
    """Every read size (down to one character, so every value is cut by a buffer end somewhere) and layout gives
    exactly json.load's members, in file order, the streamed arrays in pieces of batch_size items."""
    monkeypatch.setattr(json_stream, "_READ_CHARS", read_chars)
    doc = _document(0)
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(doc, indent=indent, ensure_ascii=False), encoding="utf-8")
    out, pieces = _collect(path, {"images", "annotations", "numbers", "empty", "number"}, batch_size=50)
    assert out == doc and list(out) == list(doc)
    assert pieces == {"images": 2, "annotations": 3, "numbers": 12, "empty": 1}  # 'number' is not an array


def test_byte_order_mark_and_empty_object(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"a": [1, 2]}).encode())
    assert list(iter_members(path, stream={"a"})) == [("a", [1, 2], 0)]
    path.write_text(" { } \n")
    assert list(iter_members(path)) == []


def _position(message: str):
    return re.search(r"line (\d+) column (\d+) \(char (\d+)\)", message).groups()


@pytest.mark.parametrize("read_chars", [5, 1 << 22])
def test_truncation_and_corruption_are_reported_where_json_load_reports_them(tmp_path, monkeypatch, read_chars):
    """Cut a document at every 7th character, or corrupt one character: iter_members fails with a DataFileError
    naming the file, at the same line, column and character as json.load (read_json)."""
    monkeypatch.setattr(json_stream, "_READ_CHARS", read_chars)
    text = json.dumps({"images": [{"id": 1, "v": [1.5, 2]}, {"id": 2}], "x": {"y": "z"}, "n": 10}, indent=1)
    path = tmp_path / "cut.json"
    cases = [text[:cut] for cut in range(0, len(text), 7)]
    cases += [text[:k] + c + text[k + 1 :] for k, c in ((12, "#"), (30, ","), (len(text) - 1, "]"))]
    cases += [text + " {}", '{"a" 1}', '{"a": 1 "b": 2}', "{1: 2}"]
    for case in cases:
        path.write_text(case)
        with pytest.raises(DataFileError) as expected:
            read_json(path, "test file")
        with pytest.raises(DataFileError) as got:
            for _ in iter_members(path, "test file", stream={"images"}, batch_size=1):
                pass
        assert str(path) in str(got.value) and "malformed test file" in str(got.value)
        assert _position(str(got.value)) == _position(str(expected.value)), case


@pytest.mark.parametrize("text,kind", [("[1, 2]", "list"), ('"a"', "str"), ("3", "number"), ("null", "NoneType")])
def test_a_top_level_that_is_not_an_object_is_named(tmp_path, text, kind):
    path = tmp_path / "top.json"
    path.write_text(text)
    with pytest.raises(DataFileError, match=rf"top.json: the top level must be a JSON object, got {kind}"):
        list(iter_members(path))


def test_missing_file_and_bad_batch_size(tmp_path):
    with pytest.raises(FileNotFoundError, match="test file not found: .*nope.json"):
        list(iter_members(tmp_path / "nope.json", "test file"))
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(ValueError, match="batch_size"):
        list(iter_members(tmp_path / "a.json", batch_size=0))


def test_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin.json"
    path.write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(DataFileError, match="latin.json: not UTF-8 text"):
        list(iter_members(path))


# ----------------------------------------------------------------------------------------------------- the index
def test_index_build_holds_one_piece_of_data_json_at_a_time(tmp_path, monkeypatch):
    """The InterHand2.6M index reads data.json piece by piece: with 100-record pieces the Python heap's peak while
    reading it stays a fraction of what json.load of the file needs, and the index built is the same."""
    import tracemalloc

    from internet.data import index as index_module
    from internet.data import index_build
    from internet.synth import generate

    root = tmp_path / "synth"
    generate(root, seed=0, n_train=3000, n_val=0, n_test=0, with_images=False)
    folder = root / "annotations" / "train"
    sources = index_module.IndexSources(
        *(folder / f"InterHand2.6M_train_{kind}.json" for kind in ("data", "camera", "joint_3d")), name="t"
    )

    def peak(fn):
        tracemalloc.start()
        try:
            result = fn()
            return result, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    whole, whole_peak = peak(lambda: read_json(sources.data_json))
    del whole
    monkeypatch.setattr(index_build, "_PIECE", 100)
    monkeypatch.setattr(json_stream, "_READ_CHARS", 1 << 16)  # the text buffer (4 M characters) would hold it all
    columns, small_peak = peak(lambda: index_build.read_data_json(sources.data_json))
    assert len(columns[0]["ann_id"]) == 3000
    assert small_peak < whole_peak / 4, (small_peak, whole_peak)
    small = index_build.build_interhand_index(sources)
    monkeypatch.setattr(index_build, "_PIECE", 1 << 20)  # one piece: the whole list at once
    big = index_build.build_interhand_index(sources)
    assert len(small) == len(big) > 2900
    for name in index_module.FIELDS:
        np.testing.assert_array_equal(small[name], big[name], err_msg=name)
    assert [small.file_name(i) for i in range(0, len(small), 97)] == [big.file_name(i) for i in range(0, len(big), 97)]


def test_the_collector_is_paused_only_while_parsing(tmp_path):
    import gc

    from internet.data.io import gc_paused

    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with gc_paused():
            assert not gc.isenabled()
            raise RuntimeError("a bad file")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller's own choice is kept
    finally:
        gc.enable()
