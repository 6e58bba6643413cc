"""The error floor of decoding: what the official hard argmax and the sub-voxel refinement lose on perfect heatmaps.

``python benchmarks/bench_decode_floor.py [--quick] [--jitters 100]``

1. Real frames: the GT target heatmaps (dense official Gaussians) of the three real sample frames, rendered from the
   official test-mode ``joint_coord`` (parity fixture), decoded with the hard argmax and with sub-voxel refinement,
   scored with the official protocol against the real GT camera coordinates (trans_test='gt'). The rel. root depth is
   the GT bin, so MRRPE shows only the wrists' decoding error.
2. Jittered: the same three frames with every joint moved by a random sub-voxel offset (``--jitters`` draws each),
   the GT being the exact back-projection of the moved coordinates: the floor in expectation, not on 3 frames.
3. Flip test on the interacting frame: the ideal outputs of the flipped view (the official flip augmentation's
   targets, i.e. perfect predictions) merged back with ``merge_flip``: the root bin mirrored about the centre
   (``64 - d``, ours) vs negated (``-d``, mmpose); and the x mirror constant of a tensor flip (63.75) vs 64.
Goal: sub-voxel refinement cuts the MPJPE floor >= 5x.
"""

from __future__ import annotations

import argparse
import sys
import time

import _common as C


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10 jitter draws per frame instead of 100")
    p.add_argument("--jitters", type=int, default=None, help="random sub-voxel offsets per frame (default 100)")
    p.add_argument("--device", default="cpu", help="device for rendering and decoding (cpu | cuda)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.jitters = args.jitters or (10 if args.quick else 100)
    return args


def _official(result, err_2d_px=None) -> dict:
    out = {
        "mpjpe_all_mm": result.mpjpe_all,
        "mpjpe_single_mm": result.mpjpe_single,
        "mpjpe_interacting_mm": result.mpjpe_interacting,
        "mrrpe_mm": result.mrrpe,
    }
    if err_2d_px is not None:
        out["mean_2d_error_px (image, valid joints)"] = err_2d_px
    return out


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main(argv=None) -> dict:
    args = parse_args(argv)
    C.limit_threads(args.threads)
    import numpy as np
    import torch

    from internet.config import Config
    from internet.data import AugParams, InterHand26M
    from internet.evaluation.protocol import evaluate_interhand
    from internet.geometry.codec import HeatmapCodec
    from internet.infer.decode import decode_heatmaps, merge_flip
    from internet.model.targets import render_gaussian_heatmap
    from internet.skeleton import INTERHAND

    torch.set_num_threads(args.threads)
    if not (C.SAMPLE.is_dir() and C.FIXTURES.is_dir()):
        raise FileNotFoundError(f"the real sample frames and parity fixtures are needed: {C.SAMPLE}, {C.FIXTURES}")
    dev = torch.device(args.device)
    t_start = time.perf_counter()
    cfg = Config(data_root=str(C.SAMPLE))
    codec = HeatmapCodec.from_config(cfg)
    ds = InterHand26M(cfg, "test", "test", cache=False)
    gt = ds.eval_targets()
    tm = dict(np.load(C.FIXTURES / "data_test_mode.npz"))
    if list(gt["frame"]) != list(tm["frame_idx"]):
        raise RuntimeError(f"datalist order {list(gt['frame'])} differs from the fixture's {list(tm['frame_idx'])}")
    coord = torch.from_numpy(tm["joint_coord"]).to(dev)
    rel_root = tm["rel_root_depth"].reshape(-1)
    hand_type = tm["hand_type"]

    def decode(c: torch.Tensor, subvoxel: bool, batch: int = 4) -> np.ndarray:
        out = []
        for s in range(0, len(c), batch):
            hm = render_gaussian_heatmap(c[s : s + batch], cfg.output_hm_shape, cfg.sigma)
            out.append(decode_heatmaps(hm, subvoxel=subvoxel).cpu().numpy())
        return np.concatenate(out)

    def score(joint_coord, gt_dict, root=rel_root, probs=hand_type):
        return evaluate_interhand(dict(joint_coord=joint_coord, rel_root_depth=root, hand_type=probs), gt_dict, cfg=cfg)

    def error_2d(joint_coord, exact, gt_dict) -> float:
        """Mean image-pixel distance of the valid joints (root alignment hides a shift common to all joints)."""
        a = codec.heatmap_to_image(joint_coord, gt_dict["inv_trans"])[..., :2]
        b = codec.heatmap_to_image(exact, gt_dict["inv_trans"])[..., :2]
        return float(np.linalg.norm(a - b, axis=-1)[gt_dict["joint_valid"] > 0].mean())

    # 1. the real frames
    real = {"exact_coordinates (no decoding)": _official(score(tm["joint_coord"], gt))}
    for name, sub in (("hard_argmax (official)", False), ("subvoxel", True)):
        dec = decode(coord, sub)
        real[name] = _official(score(dec, gt), error_2d(dec, tm["joint_coord"], gt))
    real["ratio_hard_over_subvoxel_mpjpe_all"] = _ratio(
        real["hard_argmax (official)"]["mpjpe_all_mm"], real["subvoxel"]["mpjpe_all_mm"]
    )
    real["ratio_hard_over_subvoxel_mrrpe"] = _ratio(
        real["hard_argmax (official)"]["mrrpe_mm"], real["subvoxel"]["mrrpe_mm"]
    )

    # 2. jittered copies: GT = exact back-projection of the moved coordinates
    g = np.random.default_rng(args.seed)
    k = args.jitters
    jc = np.repeat(tm["joint_coord"].astype(np.float64), k, axis=0)
    jc += g.uniform(-0.5, 0.5, jc.shape)
    jc = np.clip(jc, 1.0, 62.0)  # keep every peak's neighbours inside the volume
    rep = {key: np.repeat(np.asarray(v), k, axis=0) for key, v in gt.items()}
    rep["joint_cam"] = codec.to_camera(jc, None, rep["inv_trans"], rep["focal"], rep["princpt"], rep["abs_depth"])
    jroot, jprobs = np.repeat(rel_root, k), np.repeat(hand_type, k, axis=0)
    jt = torch.from_numpy(jc.astype(np.float32)).to(dev)
    jittered = {}
    for name, sub in (("hard_argmax (official)", False), ("subvoxel", True)):
        dec = decode(jt, sub)
        jittered[name] = _official(score(dec, rep, jroot, jprobs), error_2d(dec, jc, rep))
    # the same with noise on the heatmaps (i.i.d. normal, 2% of the 255 peak): no longer exact Gaussians
    noise = torch.Generator(device=dev).manual_seed(args.seed)
    for name, sub in (("hard_argmax, noisy heatmaps (sd 5.1)", False), ("subvoxel, noisy heatmaps (sd 5.1)", True)):
        dec = []
        for s in range(0, len(jt), 4):
            hm = render_gaussian_heatmap(jt[s : s + 4], cfg.output_hm_shape, cfg.sigma)
            hm += torch.randn(hm.shape, generator=noise, device=dev) * (0.02 * 255)
            dec.append(decode_heatmaps(hm, subvoxel=sub).cpu().numpy())
        dec = np.concatenate(dec)
        jittered[name] = _official(score(dec, rep, jroot, jprobs), error_2d(dec, jc, rep))
    jittered["ratio_hard_over_subvoxel_mpjpe_all (noisy)"] = _ratio(
        jittered["hard_argmax, noisy heatmaps (sd 5.1)"]["mpjpe_all_mm"],
        jittered["subvoxel, noisy heatmaps (sd 5.1)"]["mpjpe_all_mm"],
    )
    jittered["ratio_hard_over_subvoxel_mpjpe_all"] = _ratio(
        jittered["hard_argmax (official)"]["mpjpe_all_mm"], jittered["subvoxel"]["mpjpe_all_mm"]
    )
    jittered["samples"] = int(len(jc))

    # 3. flip test on the interacting frame (perfect outputs for both views)
    i = int(np.flatnonzero(gt["hand_type"] == "interacting")[0])
    one = {key: np.asarray(v)[i : i + 1] for key, v in gt.items()}
    flipped = ds.get_sample(i, AugParams(do_flip=True))  # the official flip augmentation's targets
    hm = render_gaussian_heatmap(coord[i : i + 1], cfg.output_hm_shape, cfg.sigma)
    d = torch.tensor([[float(rel_root[i])]])
    probs = torch.tensor(hand_type[i : i + 1])
    out = dict(joint_heatmap=hm, rel_root_depth=d, hand_type=probs)
    fc = torch.from_numpy(flipped["joint_coord"][None]).to(dev)
    out_crop = dict(
        joint_heatmap=render_gaussian_heatmap(fc, cfg.output_hm_shape, cfg.sigma),
        rel_root_depth=torch.tensor([[float(flipped["rel_root_depth"][0])]]),
        hand_type=torch.tensor(flipped["hand_type"][None]),
    )
    bins = cfg.output_root_hm_shape
    flip = {
        "frame": int(gt["frame"][i]),
        "rel_root_depth_bin_gt": float(rel_root[i]),
        "rel_root_depth_bin_of_flipped_view": float(flipped["rel_root_depth"][0]),
    }

    def merged_score(merged, root_bins):
        for sub in (False, True):
            coords = decode_heatmaps(merged["joint_heatmap"], subvoxel=sub).cpu().numpy()
            res = score(coords, one, np.asarray(root_bins).reshape(1), merged["hand_type"].cpu().numpy())
            yield ("subvoxel" if sub else "hard_argmax"), res, error_2d(coords, tm["joint_coord"][i : i + 1], one)

    merged = merge_flip(out, out_crop, INTERHAND, cfg=codec, flipped_by="crop")
    d_f = float(out_crop["rel_root_depth"][0, 0])
    roots = {
        "ours: mirrored about the centre (bins - d_flipped)": float(merged["rel_root_depth"][0, 0]),
        "mmpose: negated (-d_flipped)": (float(d[0, 0]) + (-d_f)) / 2,
    }
    flip["merged_root_bin"] = roots
    flip["merged_root_error_mm"] = {
        k: abs(v - float(rel_root[i])) * cfg.bbox_3d_size_root / bins for k, v in roots.items()
    }
    flip["flipped_view_alone_root_error_mm"] = {
        "ours (bins - d_flipped)": abs((bins - d_f) - float(rel_root[i])) * cfg.bbox_3d_size_root / bins,
        "mmpose (-d_flipped)": abs(-d_f - float(rel_root[i])) * cfg.bbox_3d_size_root / bins,
    }
    flip["merged_official_metrics (crop flip, c=64)"] = {}
    for root_name, root_bin in roots.items():
        for dec, res, _ in merged_score(merged, root_bin):
            flip["merged_official_metrics (crop flip, c=64)"][f"{dec} / root {root_name}"] = {
                "mpjpe_all_mm": res.mpjpe_all,
                "mrrpe_mm": res.mrrpe,
            }
    # tensor flip (img.flip(-1)): the ideal outputs have x' = 63.75 - x; merging with the wrong constant shifts x
    c_tensor = codec.flip_mirror_constant("tensor")
    tc = coord[i : i + 1][:, INTERHAND.flip_perm].clone()
    tc[..., 0] = c_tensor - tc[..., 0]
    out_tensor = dict(
        joint_heatmap=render_gaussian_heatmap(tc, cfg.output_hm_shape, cfg.sigma),
        rel_root_depth=torch.tensor([[bins - float(d[0, 0])]]),
        hand_type=probs.flip(-1),
    )
    tensor = {}
    for label, flipped_by in (
        ("right constant 63.75 (flipped_by='tensor')", "tensor"),
        ("wrong constant 64 (flipped_by='crop')", "crop"),
    ):
        m = merge_flip(out, out_tensor, INTERHAND, cfg=codec, flipped_by=flipped_by)
        for dec, res, e2d in merged_score(m, m["rel_root_depth"].numpy()):
            tensor[f"{dec} / {label}"] = {"mpjpe_all_mm": res.mpjpe_all, "mrrpe_mm": res.mrrpe, "mean_2d_error_px": e2d}
    flip["tensor_flip_mirror_constant"] = tensor

    ratio = real["ratio_hard_over_subvoxel_mpjpe_all"]
    jratio = jittered["ratio_hard_over_subvoxel_mpjpe_all"]
    return {
        "benchmark": "decode_floor",
        "machine": C.machine_info(args.device),
        "command": C.command("bench_decode_floor.py", sys.argv[1:] if argv is None else argv),
        "quick": args.quick,
        "figures": {
            "real_frames": real,
            "jittered": jittered,
            "flip_test": flip,
            "seconds": round(time.perf_counter() - t_start, 2),
        },
        "goals": {
            "subvoxel cuts the MPJPE floor >= 5x (real frames)": bool(ratio is not None and ratio >= 5),
            "subvoxel cuts the MPJPE floor >= 5x (jittered)": bool(jratio is not None and jratio >= 5),
        },
    }


if __name__ == "__main__":
    C.emit(main())
