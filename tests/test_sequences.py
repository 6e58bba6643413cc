"""Hands over time and across cameras: the generator's continuous sequences, internet.data.sequences on the real
sample's layout and the synthetic one, the temporal metrics and the One-Euro filter, the sequence views and exports,
the video path, and notebooks 06 and 07 under papermill."""

from __future__ import annotations

import json
import tracemalloc
from collections import defaultdict
from pathlib import Path

import cv2
import nbformat
import numpy as np
import pytest
from notebook_text import outputs as _outputs
from notebook_text import text as _text

from internet.data.sequences import SequenceIndex, SequenceKey
from internet.evaluation.temporal import OneEuroFilter, one_euro_filter, per_frame_mpjpe, pool, temporal_errors, triples
from internet.skeleton import INTERHAND
from internet.synth import check_interhand, generate
from internet.synth.motion import SmoothMotionRng

MAX_STEP_MM = 150.0
"""Largest joint displacement allowed between consecutive frames of a synthetic sequence (5 fps): 0.75 m/s."""


def _json(path: Path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def seq_data(tmp_path_factory) -> Path:
    """Annotations only, the demo's test size: 400 annotations, one capture, a dozen sequences."""
    root = tmp_path_factory.mktemp("seq") / "InterHand2.6M"
    generate(root, seed=3, n_train=0, n_val=0, n_test=400, with_images=False)
    return root


# ============================================================================================== the generator
def test_generated_sequences_are_continuous_multi_view_and_obey_the_rules(seq_data):
    rep = check_interhand(seq_data, "test", check_images=False)
    assert rep.ok, rep.examples
    info = _json(seq_data / "synth_info.json")
    assert info["sequences"]["fps"] == 5 and info["sequences"]["frame_step"] == 6
    data = _json(seq_data / "annotations/test/InterHand2.6M_test_data.json")
    joints = _json(seq_data / "annotations/test/InterHand2.6M_test_joint_3d.json")
    cams = _json(seq_data / "annotations/test/InterHand2.6M_test_camera.json")
    frames = defaultdict(set)
    views = defaultdict(set)
    for img in data["images"]:
        frames[(img["capture"], img["seq_name"])].add(img["frame_idx"])
        views[(img["capture"], img["frame_idx"])].add(img["camera"])
        assert img["camera"] in cams[str(img["capture"])]["campos"]  # one rig per capture
    assert len(frames) >= 8
    steps, spreads, consecutive, gaps = [], [], 0, 0
    for (capture, seq), fr in frames.items():
        fr = sorted(fr)
        assert len(fr) >= 8, (seq, fr)
        world = [np.array(joints[str(capture)][str(f)]["world_coord"]) for f in fr]
        valid = [np.array(joints[str(capture)][str(f)]["joint_valid"]).ravel().astype(bool) for f in fr]
        for a in range(len(fr) - 1):
            if fr[a + 1] - fr[a] != 6:
                gaps += 1
                continue
            consecutive += 1
            ok = valid[a] & valid[a + 1]
            steps.append(np.linalg.norm(world[a + 1] - world[a], axis=1)[ok].max())
        ok = valid[0] & valid[-1]
        spreads.append(np.linalg.norm(world[-1] - world[0], axis=1)[ok].max())
    assert consecutive >= 0.9 * (consecutive + gaps)  # sequences are runs of consecutive 5 fps frames
    assert max(steps) < MAX_STEP_MM, max(steps)  # joint speed bounded between consecutive frames
    assert np.median(steps) < 40.0
    assert np.median(spreads) > 2 * np.median(steps)  # and the hands do move over a sequence
    assert np.median([len(v) for v in views.values()]) >= 3  # several cameras per frame


def test_smooth_rng_keeps_the_marginals_and_holds_discrete_draws():
    rng = SmoothMotionRng(np.random.default_rng(0), 4000, 3.0)
    z = rng.normal(2.0, 3.0, size=4000)
    assert abs(z.mean() - 2.0) < 0.5 and abs(z.std() - 3.0) < 0.5
    assert np.abs(np.diff(z)).mean() < 0.5 * 3.0  # smooth: neighbours close compared with the spread
    u = rng.uniform(-40.0, 200.0, size=(4000, 2))
    assert u.min() >= -40.0 and u.max() <= 200.0 and abs(u.mean() - 80.0) < 25.0
    for draw in (rng.integers(0, 5, size=(4000, 3)), rng.choice([-1.0, 1.0], size=4000), rng.random((4000, 1, 1))):
        assert (draw == draw[0]).all()  # one value per sequence
    with pytest.raises(ValueError, match="first axis"):
        rng.normal(size=(3, 4000))


# ============================================================================================== internet.data.sequences
def test_sequence_index_on_the_real_sample_layout(shared_dir):
    root = shared_dir / "data" / "interhand26m_sample"
    seqs = SequenceIndex(root, "test", cache=False)  # the vendored copy stays untouched
    data = _json(root / "annotations/test/InterHand2.6M_test_data.json")
    cams = _json(root / "annotations/test/InterHand2.6M_test_camera.json")
    joints = _json(root / "annotations/test/InterHand2.6M_test_joint_3d.json")
    assert seqs.captures() == sorted({img["capture"] for img in data["images"]}) == [3, 4, 7]
    for img in data["images"]:
        c, s, cam, f = img["capture"], img["seq_name"], img["camera"], img["frame_idx"]
        assert seqs.sequences(c) == [s] and seqs.cameras(c) == [cam] and seqs.cameras(c, s) == [cam]
        assert seqs.frames(c, s).tolist() == [f] and seqs.frames(c, s, cam).tolist() == [f]
        row = seqs.row(c, s, cam, f)
        assert seqs.views(c, s, f) == {cam: row} and seqs.rows(c, s, cam).tolist() == [row]
        fr = seqs.frame(row)
        assert fr["image_path"] == root / "images" / "test" / img["file_name"] and fr["image_path"].is_file()
        assert (fr["capture"], fr["seq_name"], fr["camera"], fr["frame"]) == (c, s, cam, f)
        assert seqs.load_image(row).shape == (img["height"], img["width"], 3)
        # joints: the world coordinates of joint_3d.json and their projection by camera.json
        entry = joints[str(c)][str(f)]
        world = np.array(entry["world_coord"])
        ok = fr["joint_valid"]
        np.testing.assert_allclose(seqs.world_joints(row)[ok], world[ok], atol=1e-2)
        R, T = np.array(cams[str(c)]["camrot"][cam]), np.array(cams[str(c)]["campos"][cam])
        xc = (world - T) @ R.T
        uv = xc[:, :2] / xc[:, 2:] * np.array(cams[str(c)]["focal"][cam]) + np.array(cams[str(c)]["princpt"][cam])
        np.testing.assert_allclose(fr["joint_img"][ok], uv[ok], atol=1e-2)
    assert seqs.default_sequence() == SequenceKey(3, "0390_dh_touchROM", "400026")  # the interacting one
    track = seqs.track(3, "0390_dh_touchROM", "400026")
    assert track["frame"].tolist() == [69148] and track["time_s"].tolist() == [0.0]
    with pytest.raises(KeyError, match="capture 5"):
        seqs.sequences(5)
    with pytest.raises(KeyError, match="sequence '0001_x' is not in test"):
        seqs.frames(3, "0001_x")
    with pytest.raises(KeyError, match="Capture3 has no sequence '0007_thumbup_normal'"):
        seqs.frames(3, "0007_thumbup_normal")
    with pytest.raises(KeyError, match="no camera '410053'"):
        seqs.rows(3, "0390_dh_touchROM", "410053")


def test_sequence_index_on_the_synthetic_layout(seq_data):
    seqs = SequenceIndex(seq_data, "test")
    assert seqs.fps == 5.0
    data = _json(seq_data / "annotations/test/InterHand2.6M_test_data.json")
    joints = _json(seq_data / "annotations/test/InterHand2.6M_test_joint_3d.json")
    hand_type = {a["image_id"]: a["hand_type"] for a in data["annotations"]}
    by_key = defaultdict(dict)
    for img in data["images"]:
        by_key[(img["capture"], img["seq_name"], img["camera"])][img["frame_idx"]] = img
    assert sum(len(seqs.cameras(c, s)) for c in seqs.captures() for s in seqs.sequences(c)) == len(by_key)
    for (c, s, cam), imgs in by_key.items():
        frames = sorted(imgs)
        assert seqs.frames(c, s, cam).tolist() == frames
        rows = seqs.rows(c, s, cam)
        assert [seqs.frame(r)["file_name"] for r in rows] == [imgs[f]["file_name"] for f in frames]
        track = seqs.track(c, s, cam)
        np.testing.assert_allclose(track["time_s"], (np.array(frames) - frames[0]) / 6 / 5.0)
        assert track["hand_type"].tolist() == [hand_type[imgs[f]["id"]] for f in frames]
        f = frames[len(frames) // 2]
        assert set(seqs.views(c, s, f)) == {
            i["camera"] for i in data["images"] if (i["capture"], i["seq_name"], i["frame_idx"]) == (c, s, f)
        }
        row = seqs.row(c, s, cam, f)
        entry = joints[str(c)][str(f)]
        ok = seqs.frame(row)["joint_valid"]
        np.testing.assert_allclose(seqs.world_joints(row)[ok], np.array(entry["world_coord"])[ok], atol=1e-2)
    key = seqs.default_sequence()
    assert seqs.hand_types(key.capture, key.seq_name)["interacting"] > 0
    assert key.camera == seqs.busiest_camera(key.capture, key.seq_name)


def test_every_camera_of_a_frame_sees_the_projected_annotation(seq_data):
    from internet.app.replay import frame_views

    seqs = SequenceIndex(seq_data, "test")
    key = seqs.default_sequence()
    frame = int(seqs.frames(key.capture, key.seq_name)[3])
    info = frame_views(seqs, key.capture, key.seq_name, frame, images=False)
    annotated = [v for v in info["views"] if "max_px" in v]
    assert len(annotated) == len(seqs.views(key.capture, key.seq_name, frame)) >= 2
    assert len(info["views"]) == len(seqs.rig(key.capture)["names"])
    assert max(v["max_px"] for v in annotated) < 0.05  # every camera's annotation = projection of the world joints
    # a wrong calibration shows at a glance: give one annotated camera another camera's rotation
    rig = seqs.rig(key.capture)
    a = rig["names"].index(annotated[0]["name"])
    b = (a + 1) % len(rig["names"])
    rig["camrot"][[a, b]] = rig["camrot"][[b, a]]
    bad = frame_views(seqs, key.capture, key.seq_name, frame, images=False)
    assert max(v["max_px"] for v in bad["views"] if "max_px" in v) > 20


def test_the_prediction_in_every_view_sits_at_the_ground_truth_root_depth(seq_data):
    """frame_views draws the prediction of one camera in all of them: its guessed absolute depth would shift it in every
    other view, so it is placed at the ground truth's root depth first (official trans_test='gt')."""
    from internet.app.replay import frame_views
    from internet.geometry.camera import at_root_depth, world2cam

    seqs = SequenceIndex(seq_data, "test")
    key = seqs.default_sequence()
    frame = int(seqs.frames(key.capture, key.seq_name)[3])
    info = frame_views(seqs, key.capture, key.seq_name, frame, images=False)
    rig = seqs.rig(key.capture)
    c = rig["names"].index(key.camera)
    gt_cam = world2cam(info["world"], rig["camrot"][c], rig["campos"][c])
    root = INTERHAND.root_idx["right"] if info["valid"][INTERHAND.root_idx["right"]] else INTERHAND.root_idx["left"]
    # a perfect pose at a wrong absolute depth (300 mm further along the rays: the same image in its own camera)
    far = at_root_depth(gt_cam, root, gt_cam[root, 2] + 300.0, rig["focal"][c], rig["princpt"][c])
    pred = {"camera": key.camera, "pred_cam": far, "pred_valid": info["valid"]}
    placed = frame_views(seqs, key.capture, key.seq_name, frame, images=False, pred=pred)
    guessed = frame_views(seqs, key.capture, key.seq_name, frame, images=False, pred={**pred, "root_depth": "guess"})
    ok = info["valid"]
    for v, g in zip(placed["views"], guessed["views"]):
        seen = ok & v["pred_valid"]
        assert np.abs(v["pred_img"][seen] - v["joint_img"][seen]).max() < 1e-3, v["name"]
        if v["name"] != key.camera:
            assert np.abs(g["pred_img"][seen] - g["joint_img"][seen]).max() > 5.0, g["name"]


# ============================================================================================== temporal metrics
def test_temporal_metrics_are_zero_for_the_ground_truth_and_match_a_hand_computation():
    rng = np.random.default_rng(0)
    gt = rng.normal(0.0, 30.0, size=(6, 42, 3))
    r = temporal_errors(gt, gt)
    assert r["accel_error"] == 0.0 and r["jitter"] == pytest.approx(r["jitter_gt"]) and r["count"] == 4 * 42
    # hand computation: 4 frames, no root alignment, one joint pushed by d in frame 1
    gt = np.zeros((4, 42, 3))
    gt[:, :, 0] = (np.arange(4) ** 2)[:, None] * 1.5  # constant acceleration 3 mm/frame^2 along x
    pred = gt.copy()
    d = np.array([4.0, 0.0, 3.0])  # |d| = 5 mm
    pred[1, 7] += d
    r = temporal_errors(pred, gt, root_align=False)
    # triples (0,1,2) and (1,2,3): joint 7's acceleration differs by -2d then +d; the other 41 joints by 0
    assert r["count"] == 2 * 42
    assert r["accel_error"] == pytest.approx((2 * 5.0 + 5.0) / (2 * 42))
    assert r["jitter_gt"] == pytest.approx(3.0)
    a1 = np.array([3.0, 0, 0]) - 2 * d
    a2 = np.array([3.0, 0, 0]) + d
    assert r["jitter"] == pytest.approx((41 * 2 * 3.0 + np.linalg.norm(a1) + np.linalg.norm(a2)) / 84)
    # an invalid joint is left out of the triples it is in; a frame gap breaks the chain
    valid = np.ones((4, 42), dtype=bool)
    valid[2, 7] = False
    assert temporal_errors(pred, gt, valid, root_align=False)["accel_error"] == 0.0
    assert triples([0, 6, 12, 24, 30, 36]).tolist() == [[0, 1, 2], [3, 4, 5]]
    assert temporal_errors(pred, gt, frame=[0, 6, 18, 24], root_align=False)["count"] == 0
    # root alignment: moving a whole hand rigidly changes nothing
    moved = gt.copy()
    moved[:, 21:] += np.array([0.0, 5.0, 0.0]) * (np.arange(4) ** 3)[:, None, None]
    assert temporal_errors(moved, gt)["accel_error"] == pytest.approx(0.0, abs=1e-9)
    assert temporal_errors(moved, gt, root_align=False)["accel_error"] > 1.0
    # pooled: weighted by the number of joint-triples
    p = pool(
        [
            {"accel_error": 1.0, "jitter": 2.0, "jitter_gt": 0.0, "count": 1},
            {"accel_error": 4.0, "jitter": 2.0, "jitter_gt": 3.0, "count": 3},
        ]
    )
    assert (p["accel_error"], p["jitter"], p["jitter_gt"], p["count"]) == (3.25, 2.0, 2.25, 4)


def test_per_frame_mpjpe_by_hand():
    gt = np.zeros((2, 42, 3))
    pred = gt.copy()
    pred[0, 3] = [3.0, 4.0, 0.0]  # right hand joint: 5 mm
    pred[1, 25] = [0.0, 0.0, 42.0]  # left hand joint: 42 mm
    valid = np.ones((2, 42), dtype=bool)
    valid[1, INTERHAND.root_idx["right"]] = False  # the right hand of frame 1 has no root: left out
    m = per_frame_mpjpe(pred, gt, valid)
    assert m["right"][0] == pytest.approx(5.0 / 21) and np.isnan(m["right"][1])
    assert m["left"].tolist() == [0.0, pytest.approx(2.0)]
    assert m["all"].tolist() == [pytest.approx(5.0 / 42), pytest.approx(2.0)]


def test_one_euro_filter_smooths_noise_and_follows_motion():
    rng = np.random.default_rng(1)
    t = np.arange(200)
    signal = np.stack([np.sin(t / 15.0) * 50.0, np.zeros(200)], axis=1)
    noisy = signal + rng.normal(0.0, 5.0, size=signal.shape)
    smooth = one_euro_filter(noisy, 30.0, min_cutoff=1.0, beta=0.0)  # strong smoothing, lags behind the motion
    assert np.abs(np.diff(smooth, 2, axis=0)).mean() < 0.15 * np.abs(np.diff(noisy, 2, axis=0)).mean()
    follow = one_euro_filter(noisy, 30.0, min_cutoff=1.0, beta=0.05)  # the speed term cuts the lag
    assert np.abs(follow - signal).mean() < 0.7 * min(np.abs(noisy - signal).mean(), np.abs(smooth - signal).mean())
    assert np.abs(np.diff(follow, 2, axis=0)).mean() < 0.4 * np.abs(np.diff(noisy, 2, axis=0)).mean()
    np.testing.assert_allclose(one_euro_filter(np.full((5, 3), 7.0), 5.0), 7.0)
    fast = one_euro_filter(noisy, 30.0, min_cutoff=1e6)  # a huge cut-off passes the input through
    np.testing.assert_allclose(fast, noisy, atol=1e-3)
    stream = OneEuroFilter(30.0, 1.0, 0.0)
    np.testing.assert_allclose(np.stack([stream(x) for x in noisy]), smooth)
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroFilter(30.0, min_cutoff=0.0)


# ============================================================================================== views and exports
def _frame(k: int, n_valid: int = 42) -> dict:
    rng = np.random.default_rng(k)
    valid = np.zeros(42, dtype=bool)
    valid[:n_valid] = True
    img = np.full((60, 40, 3), 30 + 20 * k, dtype=np.uint8)
    gt = rng.normal(0.0, 30.0, size=(42, 3)) + [0.0, 0.0, 500.0]
    return {
        "img": img,
        "joint_img": rng.uniform(0, 40, size=(42, 2)),
        "joint_cam": gt,
        "joint_valid": valid,
        "pred_cam": gt + rng.normal(0, 5, size=(42, 3)),
        "pred_img": rng.uniform(0, 40, size=(42, 2)),
        "title": f"frame {k}",
        "label": str(k),
    }


def test_player_frames_keep_their_traces_and_leave_invalid_joints_out():
    from internet.vis.player import player_figure

    frames = [_frame(0), _frame(1, n_valid=30), _frame(2)]
    curves = {"right": np.array([1.0, 2.0, 3.0]), "left": np.array([2.0, np.nan, 1.0])}
    fig = player_figure(frames, fps=5.0, curves=curves)
    hands = [i for i, t in enumerate(fig.data) if t.meta["part"] == "hand"]
    assert len(hands) == 2 * 2  # (GT, pred) x (right, left), in every frame at the same places
    assert all(list(f.traces)[1 : 1 + len(hands)] == hands for f in fig.frames)

    def left_gt(k):
        return [t for t in fig.frames[k].data if t.meta.get("source") == "gt" and t.meta.get("hand") == "left"][0]

    # frame 1: joints 30..41 invalid, the left root (41) among them: the root-aligned left hand is left out (gaps)
    assert all(v is None for v in left_gt(1).x) and sum(v is not None for v in left_gt(0).x) == 2 * 20
    assert fig.frames[2].data[-1].x == (2.0, 2.0)  # the cursor on frame 2


def test_animation_html_and_video_exports(tmp_path, monkeypatch):
    from internet.vis import sequence as S
    from internet.vis import video_io
    from internet.vis.video_io import write_video

    frames = [_frame(k) for k in range(4)]
    fig = S.hands_animation_figure(frames, fps=5.0)
    assert len(fig.frames) == 4 and all(len(f.data) == len(fig.data) for f in fig.frames)
    assert fig.frames[0].data[0].x != fig.frames[1].data[0].x
    html = S.save_animation_html(fig, tmp_path / "a.html").read_text()
    assert "plotly" in html[:100000].lower() and '"frames"' in html and "cdn.plot.ly" not in html[:2000]
    out = write_video((f["img"] for f in frames), tmp_path / "v.mp4", 5.0)
    assert out["format"] == "mp4" and out["frames"] == 4
    cap = cv2.VideoCapture(str(out["path"]))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 4
    # no encoder: a GIF instead
    monkeypatch.setattr(
        video_io.cv2,
        "VideoWriter",
        lambda *a, **k: type("W", (), {"isOpened": lambda s: False, "release": lambda s: None})(),
    )
    gif = write_video((f["img"] for f in frames), tmp_path / "g.mp4", 5.0)
    assert gif["format"] == "gif" and gif["path"] == tmp_path / "g.gif" and not (tmp_path / "g.mp4").exists()
    from PIL import Image

    with Image.open(gif["path"]) as im:
        assert im.n_frames == 4
    with pytest.raises(ValueError, match="no frames"):
        write_video(iter(()), tmp_path / "e.mp4", 5.0)


# ============================================================================================== your own video
class _StubPredictor:
    """Fixed joints around the box centre: the video loop's plumbing without a network."""

    def predict(self, image, bbox, focal=None, princpt=None):
        x, y, w, h = bbox
        joints = np.array([[x + w / 2 + 5.0, y + h / 2 + 3.0]] * 42) + np.linspace(-10, 10, 42)[:, None]
        return {
            "joint_img": joints,
            "joint_cam_rel": np.zeros((42, 3)),
            "hand_type": np.array([0.9, 0.8]),
            "hands_present": np.array([True, True]),
        }


def test_video_is_streamed_with_a_box_that_follows(tmp_path):
    from internet.app.video import BoxFollower, iter_frames, predict_video, video_info
    from internet.vis.video_io import write_video

    h, w = 240, 320

    def run(n: int, name: str):
        frames = (np.full((h, w, 3), k % 200, dtype=np.uint8) for k in range(n))
        src = write_video(frames, tmp_path / f"{name}.mp4", 30.0)["path"]
        assert video_info(src)["frames"] == n
        tracemalloc.start()
        try:
            res = predict_video(_StubPredictor(), src, [100, 80, 60, 60], tmp_path / name, stem="v", max_html_frames=20)
            return src, res, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    _, _, peak_short = run(60, "short")
    src, res, peak_long = run(240, "long")
    n = 240
    extra = (240 - 60) * h * w * 3
    # frames are streamed, not held: four times the frames cost (almost) no more memory
    assert peak_long - peak_short < extra / 10, (peak_short, peak_long, extra)
    assert res["frames"] == n and res["joint_img"].shape == (n, 42, 2) and res["frame"].tolist() == list(range(n))
    assert Path(res["overlay"]).is_file() and Path(res["html"]).is_file() and Path(res["npz"]).is_file()
    assert sum(1 for _ in iter_frames(res["overlay"])) == n
    # the box follows the predicted hands (offset +5, +3 from the centre each frame), damped
    centres = res["bbox"][:, :2] + res["bbox"][:, 2:] / 2
    assert centres[1, 0] - centres[0, 0] == pytest.approx(2.5, abs=1e-3) and centres[-1, 0] > centres[0, 0] + 100
    fixed = predict_video(
        _StubPredictor(), src, [100, 80, 60, 60], tmp_path / "fixed", max_frames=5, follow=False, every=2
    )
    assert (
        fixed["frames"] == 5
        and (fixed["bbox"] == fixed["bbox"][0]).all()
        and fixed["frame"].tolist() == [0, 2, 4, 6, 8]
    )
    follower = BoxFollower([10, 10, 20, 20], 100, 100, momentum=0.0)
    follower.update(np.full((42, 2), 500.0), np.array([True, False]))
    assert follower.box[0] < 100 and follower.box[1] < 100  # stays within reach of the image
    with pytest.raises(ValueError, match="outside"):
        predict_video(_StubPredictor(), src, [1000, 1000, 10, 10], tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match="video not found"):
        video_info(tmp_path / "missing.mp4")


# ============================================================================================== notebooks
def test_sequences_notebook_in_the_demo(demo_run):
    nb = nbformat.read(str(demo_run.output_dir / "notebooks" / "06_sequences.ipynb"), as_version=4)
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
    text = _text(nb)
    seqs = SequenceIndex(demo_run.data_root, "test")
    key = seqs.default_sequence()
    assert f"sequence {key}:" in text and "accel_error" in text and "One-Euro" in text
    plotly = [
        o["data"]["application/vnd.plotly.v1+json"]
        for o in _outputs(nb)
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ]
    players = [p for p in plotly if (p["layout"].get("meta") or {}).get("kind") == "sequence_player"]
    n_frames = len(seqs.frames(key.capture, key.seq_name, key.camera))
    assert len(players) == 1 and len(players[0]["frames"]) == n_frames, "the player plays every frame in the browser"
    player_out = [
        o
        for o in _outputs(nb)
        if "application/vnd.plotly.v1+json" in o.get("data", {})
        and o["data"]["application/vnd.plotly.v1+json"] is players[0]
    ]
    assert "image/png" in player_out[0]["data"]  # its static picture for viewers without JavaScript
    assert not [o for o in _outputs(nb) if "VBox(" in o.get("data", {}).get("text/plain", "")]
    curves = [p for p in plotly if (p["layout"].get("meta") or {}).get("kind") == "mpjpe_curve"]
    assert not curves  # the error curve is drawn once, in the player
    vis = demo_run.output_dir / "vis"
    stem = f"06_test_Capture{key.capture}_{key.seq_name}_cam{key.camera}"
    cap = cv2.VideoCapture(str(vis / f"{stem}.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == len(seqs.frames(key.capture, key.seq_name, key.camera))
    html = (vis / f"{stem}_player.html").read_text()
    assert '"frames"' in html and "plotly" in html[:100000].lower() and "plotly_click" in html
    grid = cv2.imread(str(vis / "06_test_multiview.png"))
    assert grid is not None and min(grid.shape[:2]) > 200 and grid.std() > 5


def test_sequences_notebook_without_a_checkpoint_and_its_parameter_errors(execute_notebook, tiny_data, tmp_path):
    nb = execute_notebook(
        "06_sequences",
        tmp_path / "06.ipynb",
        data_root=str(tiny_data),
        output_dir=str(tmp_path / "out"),
        checkpoint=None,
        png_export="matplotlib",
        export=False,
    )
    text = _text(nb)
    assert "no checkpoint: ground truth only" in text and "no temporal metrics" in text
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError, match="seq_name"):
        execute_notebook(
            "06_sequences",
            tmp_path / "bad.ipynb",
            data_root=str(tiny_data),
            checkpoint=None,
            output_dir=str(tmp_path / "out"),
            seq_name="9999_nothing",
        )


def test_your_video_notebook(execute_notebook, trained_checkpoint, tiny_data, tmp_path):
    nb = execute_notebook(
        "07_your_video",
        tmp_path / "07.ipynb",
        data_root=str(tiny_data),
        output_dir=str(tmp_path / "out"),
        checkpoint=str(trained_checkpoint),
        one_euro={"min_cutoff": 1.0, "beta": 0.0},
    )
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
    vis = tmp_path / "out" / "vis"
    summary = _json(vis / "07_your_video.json")
    seqs = SequenceIndex(tiny_data, "test")
    key = seqs.default_sequence()
    assert summary["frames"] == len(seqs.frames(key.capture, key.seq_name, key.camera))
    pred = np.load(vis / "07_your_video_pred.npz")
    assert pred["joint_img"].shape == (summary["frames"], 42, 2) and np.isfinite(pred["joint_img"]).all()
    assert (vis / "07_your_video_overlay.mp4").is_file()
    assert "plotly_click" in (vis / "07_your_video_player.html").read_text()
    figures = [
        o["data"]["application/vnd.plotly.v1+json"]
        for o in _outputs(nb)
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ]
    players = [f for f in figures if (f["layout"].get("meta") or {}).get("kind") == "sequence_player"]
    assert len(players) == 1 and len(players[0]["frames"]) == summary["frames"]  # the result plays in the notebook
    assert len(figures) == 2  # and the last frame's hands as meshes (MANO fitted to the prediction)
    assert f"frame {summary['frames']}/{summary['frames']}" in _text(nb)  # progress was shown


# ============================================================================ docs/usage.md recipes and benchmark
def test_readme_sequence_recipes_run(tiny_data, trained_checkpoint, tmp_path):
    import re

    from internet.app.notebook import load_model
    from internet.app.video import video_from_sequence
    from internet.config import Config
    from internet.infer.predictor import Predictor

    text = (Path(__file__).resolve().parents[1] / "docs" / "usage.md").read_text()
    section = text.split("### Sequences, cameras and video")[1].split("\n### ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    ns: dict = {}
    exec(blocks[0].replace('"data/synthetic/InterHand2.6M"', repr(str(tiny_data))), ns)
    seqs = SequenceIndex(tiny_data, "test")
    assert ns["key"] == seqs.default_sequence()
    key = ns["key"]
    assert ns["track"]["frame"].tolist() == seqs.frames(key.capture, key.seq_name, key.camera).tolist()
    assert ns["key"].camera in ns["views"]
    # the clip of docs/usage.md: a camera's sequence written as a video, with its first annotated box
    clip, box = video_from_sequence(seqs, ns["key"], tmp_path / "clip.mp4")
    model, cfg, _ = load_model(trained_checkpoint, Config.cpu_demo())
    code = (
        blocks[1]
        .replace('"clip.mp4"', repr(str(clip)))
        .replace("[69, 137, 165, 153]", repr(box.tolist()))
        .replace('"output/vis"', repr(str(tmp_path / "vis")))
    )
    ns2 = {"Predictor": Predictor, "model": model, "cfg": cfg}
    exec(code, ns2)
    result = ns2["result"]
    assert result["frames"] == len(ns["track"]["frame"]) and result["one_euro"] == {"min_cutoff": 1.0, "beta": 0.05}
    assert all(Path(result[k]).is_file() for k in ("overlay", "html", "npz"))


def test_temporal_filter_benchmark_quick(tmp_path):
    from test_benchmarks import run_bench

    out = run_bench("bench_temporal_filter", "--quick", tmp_path=tmp_path)
    noisy = out["noisy_gt"]
    assert out["data"]["camera_sequences"] > 5 and noisy["raw"]["count"] > 0
    assert noisy["raw"]["accel_error"] > 2 * noisy["raw"]["jitter_gt"]  # the noise dominates the motion
    for f in noisy["filtered"]:
        assert f["jitter"] < noisy["raw"]["jitter"] and f["accel_error"] < noisy["raw"]["accel_error"]
        assert f["jitter_gt"] == noisy["raw"]["jitter_gt"] and f["count"] == noisy["raw"]["count"]


def test_your_video_without_a_box_shows_the_first_frame_and_asks_for_one(execute_notebook, tiny_data, tmp_path):
    from papermill.exceptions import PapermillExecutionError

    from internet.app.video import video_from_sequence

    seqs = SequenceIndex(tiny_data, "test")
    path, _ = video_from_sequence(seqs, seqs.default_sequence(), tmp_path / "mine.mp4")
    out = tmp_path / "07.ipynb"
    with pytest.raises(PapermillExecutionError, match=r"bbox=None: give the hand box .* e\.g\. bbox = \["):
        execute_notebook("07_your_video", out, video_path=str(path), output_dir=str(tmp_path / "out"))
    nb = nbformat.read(str(out), as_version=4)
    pictures = [o for o in _outputs(nb) if "image/png" in o.get("data", {})]
    assert len(pictures) == 1  # the first frame with the grid and the suggested box, before the prompt
