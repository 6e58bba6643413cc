"""Testing: predict a split, score it with its data set's official protocol, write the results.

:func:`run_test` scores a model in memory (``Trainer.test``); :func:`evaluate_checkpoint` scores a checkpoint file
on its own, without a Trainer (``python -m internet.engine.train --test``, ``Trainer.test(checkpoint=...)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from internet.config import Config
from internet.data.check import build_checked_dataset
from internet.engine.runtime import Process, resolve_process
from internet.evaluation.protocol import evaluate_dataset
from internet.evaluation.results import write_results
from internet.infer.predict import predict
from internet.model.checkpoint import checkpoint_name
from internet.model.load import load_model


def run_test(
    model: nn.Module,
    test_set: Dataset,
    cfg: Config,
    split: str,
    *,
    device: torch.device,
    amp_dtype: Optional[torch.dtype] = None,
    checkpoint: Optional[Path] = None,
    tag: str = "",
    write: bool = True,
    **predict_kwargs: Any,
) -> tuple:
    """Predict ``test_set`` with :func:`internet.infer.predict.predict`, score it with the data set's official
    protocol and (``write``) write ``result/pred_{split}{tag}.npz`` and ``eval_{split}{tag}.json``
    (:mod:`internet.evaluation.results`); returns ``(EvalResult, path of the eval file or None)``."""
    pred = predict(model, test_set, cfg, device=device, amp_dtype=amp_dtype, **predict_kwargs)
    gt = test_set.eval_targets()
    result = evaluate_dataset(pred, gt, cfg, skeleton=getattr(test_set, "skeleton", None))
    if not write:
        return result, None
    if "ann_id" in gt:
        pred = {**pred, "ann_id": np.asarray(gt["ann_id"])[pred["index"]]}
    meta = {
        "dataset": cfg.dataset,
        "split": split,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "samples": len(pred["index"]),
        "trans_test": cfg.trans_test,
        "subvoxel": cfg.subvoxel,
        "flip_test": cfg.flip_test,
        "amp": amp_dtype is not None,
    }
    return result, write_results(cfg.result_dir, split, pred, result, meta, tag=tag)["eval"]


def checkpoint_path(cfg: Config, checkpoint: Union[str, Path, int]) -> Path:
    """A path as given, or an epoch number's ``snapshot_{N}.pth.tar`` in ``cfg.model_dump_dir``."""
    if isinstance(checkpoint, int) and not isinstance(checkpoint, bool):
        return cfg.model_dump_dir / checkpoint_name(checkpoint)
    return Path(checkpoint)


def evaluate_checkpoint(
    cfg: Config,
    checkpoint: Union[str, Path, int],
    split: Optional[str] = None,
    *,
    process: Optional[Process] = None,
    test_set: Optional[Dataset] = None,
    amp: bool = False,
    **predict_kwargs: Any,
) -> tuple:
    """Score the weights of ``checkpoint`` (a path, or an epoch number in ``cfg.model_dump_dir``) on ``split``
    (default ``cfg.test_split``), as :func:`run_test` does; the network is built from the checkpoint's own config
    (:func:`internet.model.load.load_model`) and the results are tagged ``_snapshot_N``.

    Args:
        cfg: the configuration (the checkpoint's model fields replace its own).
        checkpoint: the weights to evaluate.
        split: the split to score.
        process: this process's setup (default: :func:`internet.engine.runtime.resolve_process`); only its rank 0
            writes the results, every rank predicts its share of the split.
        test_set: a data set instead of ``build_dataset(cfg, split, 'test')``.
        amp: bf16 autocast; off by default because bf16 heatmaps are quantised (steps of 1 between 128 and 256,
            around the peak of 255), which ties and shifts the official argmax.
        **predict_kwargs: passed to :func:`internet.infer.predict.predict` (``progress_bar``, ``num_workers``...).

    Returns ``(EvalResult, path of the eval file or None)``.
    """
    path = checkpoint_path(cfg, checkpoint)
    model, cfg, _ = load_model(path, cfg)
    split = split or cfg.test_split
    process = resolve_process(cfg) if process is None else process
    if test_set is None:  # refused when the split's images are not all there (internet.data.check)
        test_set = build_checked_dataset(cfg, split, "test")
    predict_kwargs.setdefault("worker_init_fn", process.worker_init)
    return run_test(
        model.to(process.device),
        test_set,
        cfg,
        split,
        device=process.device,
        checkpoint=path,
        tag="_" + path.name.split(".pth")[0],
        amp_dtype=process.amp_dtype if amp else None,
        write=process.is_main,
        **predict_kwargs,
    )


def describe_result(result: Any, split: str, tag: str = "", written: Optional[Path] = None) -> str:
    """One log line: the split, the float metrics of ``result`` and where they were written."""
    metrics = {k: v for k, v in vars(result).items() if isinstance(v, float)}
    line = f"test {split}{tag}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
    return line + (f"; written to {written}" if written is not None else "")
