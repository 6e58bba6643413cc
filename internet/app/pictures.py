"""The README's pictures from a finished demo: ``python -m internet.app.pictures`` after ``make demo``.

Picks the interacting test sample with the median MPJPE among up to ``--samples`` of them (a typical case, not the
best or the worst) and writes ``demo_2d_overlay.png`` (ground truth and prediction on the image, side by side) and
``demo_3d_root.png`` (root-aligned 3D, the oblique default view; kaleido where a browser is installed) in the shared
look of ``internet.vis.style``; then, from the test split's first interacting sequence (notebook 06's default),
``sequence_player.png`` (the player's static picture at the sequence's worst frame) and ``sequence_multiview.png``
(that frame from every camera, with the prediction projected).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from internet.app import explore, replay
from internet.app.notebook import load_model, params_to_config, resolve_checkpoint, zoom_to_box
from internet.data import build_dataset
from internet.data.sequences import SequenceIndex
from internet.evaluation.protocol import per_sample_mpjpe
from internet.infer.predict import place_predictions, predict
from internet.infer.predictor import Predictor
from internet.utils.atomic import atomic_write_bytes
from internet.vis import hands_figure, overlay_figure
from internet.vis.export import figure_png


def readme_pictures(data_root: Path, output_dir: Path, out: Path, samples: int = 40, png: str = "auto") -> dict:
    """Write the two pictures to ``out``; returns the sample shown, its MPJPE and how the 3D PNG was made."""
    cfg = params_to_config(dict(data_root=str(data_root), output_dir=str(output_dir), trans_test="gt"), preset="cpu")
    model, cfg, _ = load_model(resolve_checkpoint("latest", cfg), cfg)
    ds = build_dataset(cfg, "test", "test")
    targets = ds.eval_targets()
    rows = explore.browse_indices(targets["hand_type"], samples, types=("interacting",)).tolist()
    pred = place_predictions(predict(model, ds, cfg, indices=rows), targets, cfg)
    gt = explore.select_rows(targets, np.asarray(rows))
    err = per_sample_mpjpe(pred, gt, cfg)
    k = int(np.argsort(np.where(np.isfinite(err), err, np.inf))[np.isfinite(err).sum() // 2])
    i = rows[k]
    title = f"test #{i} ({gt['hand_type'][k]}), MPJPE {err[k]:.1f} mm"
    img, gt_2d, pred_2d, _ = zoom_to_box(
        ds.load_image(i).astype(np.uint8), gt["bbox"][k], explore.gt_joint_img(gt)[k], pred["pred_img"][k]
    )
    fig2d = overlay_figure(img, gt_2d=gt_2d, pred_2d=pred_2d, joint_valid=gt["joint_valid"][k], title=title)
    buf = io.BytesIO()
    fig2d.savefig(buf, format="png", dpi=100)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "demo_2d_overlay.png", buf.getvalue())
    fig3d = hands_figure(
        pred["pred_cam"][k], gt["joint_cam"][k], gt["joint_valid"][k], space="root", title=title + " - root-aligned"
    )
    data, via, _ = figure_png(fig3d, method=png, width=900, height=620)
    atomic_write_bytes(out / "demo_3d_root.png", data)
    shown = {"sample": i, "mpjpe": float(err[k]), "png_via": via}
    return {**shown, **sequence_pictures(data_root, model, cfg, out)}


def sequence_pictures(data_root: Path, model, cfg, out: Path) -> dict:
    """``sequence_player.png`` and ``sequence_multiview.png`` of the test split's default sequence (notebook 06's) at
    its frame of largest interacting-hands MPJPE; returns the sequence, the frame and its MPJPE."""
    seqs = SequenceIndex(data_root, "test")
    key = seqs.default_sequence()
    track = seqs.track(key.capture, key.seq_name, key.camera)
    pred = replay.predict_track(Predictor(model, cfg, cfg.device), seqs, track)
    curves = replay.track_curves(track, pred)
    worst = curves["interacting"] if np.isfinite(curves["interacting"]).any() else curves["all"]
    t = int(np.nanargmax(worst)) if np.isfinite(worst).any() else 0
    get_frame = replay.player_frames(seqs, track, pred, key, curves)
    _, player_picture, _ = replay.sequence_player(
        get_frame, len(track["rows"]), seqs.fps, curves, track["time_s"], current=t
    )
    atomic_write_bytes(out / "sequence_player.png", player_picture)
    pred_view = {"camera": key.camera, "pred_cam": pred["pred_cam"][t], "pred_valid": pred["pred_valid"][t]}
    grid, _, _ = replay.multiview_figures(
        seqs, key.capture, key.seq_name, int(track["frame"][t]), max_views=12, pred=pred_view
    )
    buf = io.BytesIO()
    grid.savefig(buf, format="png", dpi=80)
    atomic_write_bytes(out / "sequence_multiview.png", buf.getvalue())
    return {"sequence": str(key), "frame": t, "frame_mpjpe": float(worst[t])}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="data/synthetic/InterHand2.6M", help="the demo's data set")
    parser.add_argument("--output-dir", default="output", help="the demo's output folder (its checkpoint)")
    parser.add_argument("--out", default="docs/images", help="where the pictures go (docs/images)")
    parser.add_argument("--samples", type=int, default=40, help="interacting test samples considered (40)")
    parser.add_argument("--png", default="auto", choices=("auto", "kaleido", "matplotlib"), help="3D PNG renderer")
    args = parser.parse_args(argv)
    done = readme_pictures(Path(args.data_root), Path(args.output_dir), Path(args.out), args.samples, args.png)
    print(
        f"test #{done['sample']} (MPJPE {done['mpjpe']:.1f} mm), 3D PNG via {done['png_via']}; sequence "
        f"{done['sequence']} frame {done['frame']} (MPJPE {done['frame_mpjpe']:.1f} mm): {args.out}"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
