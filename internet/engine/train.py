"""``python -m internet.engine.train``: train (and with ``--test`` evaluate) from a shell, under torchrun too.

The pieces: :mod:`internet.engine.trainer` (the loop), :mod:`internet.engine.launch` (multi-process training),
:mod:`internet.engine.evaluate` (testing a model or a checkpoint), :mod:`internet.engine.resume` (the resume state),
:mod:`internet.engine.sampler` (the data order), :mod:`internet.engine.runtime` (device, DDP, precision).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, Optional, Sequence

from internet.config import Config
from internet.engine.evaluate import evaluate_checkpoint
from internet.engine.launch import launch
from internet.engine.runtime import TrainingError
from internet.engine.trainer import Trainer


def parse_args(argv: Optional[Sequence[str]] = None) -> tuple:
    """(the parsed ``--preset``/``--test``/``--checkpoint`` flags, the Config they and the other flags give)."""
    parser = argparse.ArgumentParser(prog="python -m internet.engine.train", description=main.__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=("paper", "cpu"), default="paper")
    parser.add_argument("--test", action="store_true", help="after training, evaluate on cfg.test_split")
    parser.add_argument(
        "--checkpoint", default=None, help="with --test: evaluate this checkpoint (a path or an epoch) and do not train"
    )
    args, rest = parser.parse_known_args(argv)
    params: Dict[str, Any] = {}
    it = iter(rest)
    for flag in it:
        if not flag.startswith("--"):
            parser.error(f"unexpected argument {flag!r}: expected --name value")
        name, has_value, value = flag[2:].partition("=")
        if not has_value:
            try:
                value = next(it)
            except StopIteration:
                parser.error(f"--{name} needs a value")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    if args.checkpoint is not None and not args.test:
        parser.error("--checkpoint is only for --test")
    return args, (Config.paper if args.preset == "paper" else Config.cpu_demo)(**params)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m internet.engine.train [--preset paper|cpu] [--test [--checkpoint PATH|N]] --name value ...``.

    Any Config field is a flag. Values are parsed as JSON where possible (``--lr 1e-4``, ``--lr_dec_epoch [15,17]``,
    ``--amp false``), else taken as strings. Under torchrun each process trains its share (DDP); otherwise
    ``--num_gpus N`` spawns N processes. ``--test`` then scores the checkpoint the run ended with (``--checkpoint``:
    that one, without training) on cfg.test_split; rank 0 prints the table.
    """
    args, cfg = parse_args(argv)
    if args.checkpoint is not None:
        checkpoint = int(args.checkpoint) if args.checkpoint.isdigit() else args.checkpoint
        _print_test(cfg, checkpoint)
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: this process is one rank
        trainer = Trainer(cfg)
        trainer.train()
        if args.test:  # every rank predicts its share of the split with the weights it just trained
            result = trainer.test(cfg.test_split)
            if trainer.is_main:
                print(result.table())
        trainer.close()
    else:
        checkpoint = launch(cfg)
        if args.test:
            if checkpoint is None:
                raise TrainingError(f"--test: no checkpoint in {cfg.model_dump_dir} to evaluate")
            _print_test(cfg, checkpoint)


def _print_test(cfg: Config, checkpoint: Any) -> None:
    """Score ``checkpoint`` (read back from its file, no Trainer) and print the table on rank 0."""
    result, written = evaluate_checkpoint(cfg, checkpoint, cfg.test_split)
    if written is not None:
        print(result.table())


if __name__ == "__main__":
    main()
