"""One model loader: a checkpoint file -> the network it holds, built with the shapes it was trained with.

Every place that loads a checkpoint to run it (``Trainer.test(checkpoint=...)``, ``Predictor(path)``, the notebooks,
the command line) goes through :func:`load_model`, so a checkpoint's saved config always decides the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union

from internet.config import Config
from internet.model.checkpoint import (
    CheckpointError,
    check_format_version,
    infer_fc_input_norm,
    infer_resnet_depth,
    load_checkpoint,
    load_network_state,
    strip_wrapper_prefixes,
)
from internet.model.internet import InterNet

MODEL_FIELDS = Config.group_fields("model")
"""Config fields that must match the network a checkpoint was trained as: the config's model group."""


def load_model(checkpoint: Union[str, Path], cfg: Config) -> Tuple[InterNet, Config, Dict[str, Any]]:
    """Read a checkpoint once and build the model it holds: ``(model, cfg, info)``.

    A checkpoint of this project carries its training config: its :data:`MODEL_FIELDS` replace ``cfg``'s (listed
    in ``info['changed']`` as ``field: (given, used)``), so evaluating never needs the training parameters repeated.
    An official snapshot has no config: the backbone depth and ``fc_input_norm`` are read from its weights, the
    other shapes must be ``cfg``'s (``fc_input_norm`` too for a checkpoint of ours saved before that option
    existed). The model is on the CPU in eval mode. ``info``: path, epoch, changed fields, seed (the training
    seed, else cfg's)."""
    path = Path(checkpoint)
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(ckpt).__name__}, not a checkpoint dict")
    check_format_version(ckpt, str(path))  # before its saved config is read
    train_state = ckpt.get("train_state")
    saved = train_state.get("config") if isinstance(train_state, Mapping) else None
    wanted: Dict[str, Any] = {}
    state = ckpt.get("network", ckpt)
    keys = list(strip_wrapper_prefixes(state)) if isinstance(state, Mapping) else []
    if isinstance(saved, Mapping):
        wanted = {k: saved[k] for k in MODEL_FIELDS if k in saved}
    elif depth := infer_resnet_depth(keys):
        wanted["resnet_type"] = depth
    if keys and "fc_input_norm" not in wanted:  # official snapshots, and ours from before the option existed
        wanted["fc_input_norm"] = infer_fc_input_norm(keys)
    current = cfg.to_dict()
    changed = {
        k: (current.get(k), v)
        for k, v in wanted.items()
        if k in current and (list(v) if isinstance(v, (list, tuple)) else v) != current[k]
    }
    if changed:
        cfg = cfg.replace(**{k: v for k, (_, v) in changed.items()})
    model = InterNet.from_config(cfg)
    load_network_state(model, ckpt, strict=True, where=str(path))
    model.eval()
    seed = saved.get("seed") if isinstance(saved, Mapping) else None
    info = {
        "path": path,
        "epoch": ckpt.get("epoch"),
        "changed": changed,
        "seed": seed if isinstance(seed, int) else cfg.seed,
    }
    return model, cfg, info
