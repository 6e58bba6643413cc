"""``python -m internet.synth --out DIR [--seed S] [--train N] [--val N] [--test N] [--no-images] [--workers K]``

``--format rhd|stb`` writes a single-hand set in InterNet's parsed RHD / STB format instead
(:mod:`internet.synth.single_hand`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from internet.synth.interhand import IMAGE_FORMATS, generate
from internet.synth.scale import expand_split
from internet.synth.single_hand import WRITERS
from internet.utils.cli import non_negative_int, positive_int

SINGLE_HAND_FORMATS = ("rhd", "stb")


def _seed(text: str) -> int:
    value = non_negative_int(text)
    if value >= 2**32:
        raise argparse.ArgumentTypeError(f"seed must be below 2**32, got {value}")
    return value


def _quality(text: str) -> int:
    value = positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"JPEG quality must be in 1..100, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m internet.synth",
        description="Write a synthetic InterHand2.6M v1.0 data set (official layout and JSON formats).",
    )
    p.add_argument("--out", required=True, help="output directory (the data set root)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--train", type=non_negative_int, default=2000, help="train annotations/images (default 2000)")
    p.add_argument("--val", type=non_negative_int, default=200, help="val annotations/images (default 200)")
    p.add_argument("--test", type=non_negative_int, default=400, help="test annotations/images (default 400)")
    p.add_argument("--no-images", action="store_true", help="write only the annotation files")
    p.add_argument(
        "--format",
        choices=IMAGE_FORMATS + SINGLE_HAND_FORMATS,
        default="jpg",
        help="InterHand2.6M image format (default jpg), or 'rhd' / 'stb' for a single-hand set in "
        "InterNet's parsed RHD / STB format (PNG images; uses --train and --test only)",
    )
    p.add_argument("--jpeg-quality", type=_quality, default=92, help="JPEG quality 1..100 (default 92)")
    p.add_argument("--workers", type=positive_int, default=1, help="rendering processes (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--image-pool",
        type=positive_int,
        default=None,
        metavar="K",
        help="render only K images per split and let the requested number of annotations reuse them "
        "(distinct annotation and image ids): e.g. the official test size, --test 849160, in "
        "minutes (internet.synth.scale)",
    )
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.train + args.val + args.test == 0:
        parser.error("--train, --val and --test are all 0: nothing to generate")
    if args.format in SINGLE_HAND_FORMATS:
        if args.train + args.test == 0:
            parser.error("--train and --test are both 0: nothing to generate")

        try:
            summary = WRITERS[args.format](
                args.out, seed=args.seed, n_train=args.train, n_test=args.test, with_images=not args.no_images
            )
        except (FileExistsError, NotADirectoryError) as e:
            parser.error(str(e))
        print(json.dumps(summary, indent=1))
        return 0
    sizes = {"train": args.train, "val": args.val, "test": args.test}
    rendered = {k: min(v, args.image_pool) for k, v in sizes.items()} if args.image_pool else sizes
    try:
        summary = generate(
            args.out,
            seed=args.seed,
            n_train=rendered["train"],
            n_val=rendered["val"],
            n_test=rendered["test"],
            with_images=not args.no_images,
            image_format=args.format,
            num_workers=args.workers,
            jpeg_quality=args.jpeg_quality,
            verbose=not args.quiet,
        )
    except (FileExistsError, NotADirectoryError) as e:
        parser.error(str(e))
    if args.image_pool:
        summary["image_pool"] = [expand_split(args.out, split, n) for split, n in sizes.items() if n > rendered[split]]
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
