"""One configuration object for data, model, training and evaluation.

Defaults are the official InterNet settings (``main/config.py`` of the paper's code). Named presets give the paper
recipe and a small CPU recipe; :meth:`Config.from_params` builds a config from papermill/notebook parameters and
rejects unknown names, wrong types and out-of-range values with an error that names the parameter.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Tuple

RESNET_DEPTHS = (18, 34, 50, 101, 152)
TRANS_TEST = ("gt", "rootnet")
ANNOT_SUBSETS = ("all", "human", "machine")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set, named by references (``"module:attribute"``) that are imported only when used, so
    that this registry sits below every layer that uses it."""

    dataset: str
    """The class ``Class(cfg, split, mode)``, following ``internet.data.HandDataset``."""
    evaluator: str
    """Its official protocol: ``evaluate(pred, gt, skeleton=..., cfg=...)`` -> a result with ``to_dict()`` and
    ``table()``."""
    splits: Tuple[str, ...] = SPLITS
    """The splits it has."""


_SINGLE_HAND_EVAL = "internet.evaluation.protocol:evaluate_single_hand"
DATASETS = {
    "InterHand2.6M": DatasetSpec(
        "internet.data.interhand:InterHand26M", "internet.evaluation.protocol:evaluate_interhand"
    ),
    "RHD": DatasetSpec("internet.data.rhd:RHD", _SINGLE_HAND_EVAL, ("train", "test")),
    "STB": DatasetSpec("internet.data.stb:STB", _SINGLE_HAND_EVAL, ("train", "test")),
}
"""The one registry of data sets: ``cfg.dataset`` -> its :class:`DatasetSpec` (class, evaluator, splits). A new data
set is its module and one entry here; :mod:`internet.data` resolves the references (``dataset_class``,
``dataset_evaluator``)."""


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


GROUPS = ("data", "model", "training", "test", "runtime")
"""The config's groups: which samples (data), the network and its heatmap space (model: a checkpoint's saved values
of these rebuild it), the optimisation recipe (training), test-time options (test), and how and where a run executes
(runtime: device, precision, speed, processes, logs, checkpoints). Every field belongs to one; access stays flat
(``cfg.sigma``, ``Config(sigma=...)``, ``cfg.to_dict()``)."""


def _in(group: str, default: Any) -> Any:
    """A config field in ``group`` (one of :data:`GROUPS`), tagged in its metadata."""
    return field(default=default, metadata={"group": group})


@dataclass
class Config:
    """Every setting of the project, flat (``cfg.resnet_type``), each field tagged with its group (:data:`GROUPS`,
    :meth:`group_fields`). Field names follow the official code where it has one."""

    # --- data ---
    dataset: str = _in("data", "InterHand2.6M")
    """'InterHand2.6M', 'RHD' or 'STB'."""
    data_root: str = _in("data", "data/InterHand2.6M")
    """Root of the data set in its official layout (``annotations/``, ``images/``, ``rootnet_output/``)."""
    annot_subset: str = _in("data", "all")
    """'all' (H+M), 'human' (H) or 'machine' (M)."""
    human_annot_ids: Optional[str] = _in("data", None)
    """v1.0 only: a text file of human-annotated annotation ids, one per line (defines H and M)."""
    trans_test: str = _in("data", "gt")
    """Test-time box and root depth: 'gt' (ground truth) or 'rootnet' (a RootNet output JSON)."""
    rootnet_path: Optional[str] = _in("data", None)
    """RootNet output JSON for val/test; default
    ``{data_root}/rootnet_output/rootnet_interhand2.6m_output_{split}.json``."""
    mano_dir: Optional[str] = _in("data", None)
    """Folder holding MANO_RIGHT.pkl and MANO_LEFT.pkl (licensed, from https://mano.is.tue.mpg.de; never shipped)
    for the meshes; default ``{data_root}/mano`` (where the synthetic data set keeps its stand-in model)."""
    train_split: str = _in("data", "train")
    test_split: str = _in("data", "test")
    allow_missing_images: bool = _in("data", False)
    """Train or evaluate on a split whose annotations reference images that are not on disk (a partial download),
    using only the images present. Off: such a split is refused with the data check's report
    (``python -m internet.data.check DATA_ROOT``), as its numbers would not be the split's. The check lists the
    split's image folders once (about 20 s for the 2.2 M images of the release: benchmarks/RESULTS.md section 10)."""

    # --- model: the network and its heatmap space (official values) ---
    input_img_shape: tuple = _in("model", (256, 256))
    output_hm_shape: tuple = _in("model", (64, 64, 64))
    """(depth, height, width) of each joint's heatmap volume."""
    sigma: float = _in("model", 2.5)
    bbox_3d_size: float = _in("model", 400.0)
    bbox_3d_size_root: float = _in("model", 400.0)
    output_root_hm_shape: int = _in("model", 64)
    resnet_type: int = _in("model", 50)
    head_channels: int = _in("model", 256)
    """Channels of the deconvolution heads (official: 256; the CPU preset uses fewer)."""
    fc_input_norm: bool = _in("model", False)
    """LayerNorm on the pooled feature that feeds the root-depth and hand-type heads (not in the official network,
    which feeds them the raw non-negative pooled feature; adds ``pose_net.fc_input_norm.{weight,bias}``, so a
    checkpoint says which it was trained with). The CPU preset turns it on: see ``cpu_demo``."""

    # --- training: the optimisation recipe (official values) ---
    pretrained_backbone: Optional[str] = _in("training", None)
    """Path to a torchvision ImageNet ResNet ``.pth`` (state dict) used to initialise the backbone."""
    lr: float = _in("training", 1e-4)
    lr_dec_epoch: tuple = _in("training", (15, 17))
    lr_dec_factor: float = _in("training", 10.0)
    linear_lr_max: Optional[float] = _in("training", None)
    """Upper bound on the learning rate of the ``nn.Linear`` layers (InterNet's root-depth and hand-type heads);
    None: no bound (official). Their inputs are non-negative pooled features and nothing normalises them, so an Adam
    step moves all of a hidden unit's weights the same way: at a rate that suits the BatchNorm'd convolutions (the
    CPU preset's 1e-2) most of their ReLU units die in the first epoch and the heads stop learning."""
    end_epoch: int = _in("training", 20)
    train_batch_size: int = _in("training", 16)
    """Per process (per GPU), as in the official code."""
    loss_weights: tuple = _in("training", (1.0, 1.0, 1.0))
    """Weight of each loss term in the total, in the order of ``InterNetLoss.TERMS`` (joint_heatmap,
    rel_root_depth, hand_type; official: 1, 1, 1). The loss checks them
    (:class:`internet.model.losses.InterNetLoss`)."""
    max_iters_per_epoch: Optional[int] = _in("training", None)
    """Cap on iterations per epoch (demos and tests); None runs the whole epoch."""
    seed: int = _in("training", 0)

    # --- test: test-time options (off by default: the official protocol) ---
    test_batch_size: int = _in("test", 32)
    subvoxel: bool = _in("test", False)
    flip_test: bool = _in("test", False)

    # --- runtime: how and where a run executes (device, precision, speed, processes, logs, checkpoints) ---
    device: str = _in("runtime", "auto")
    """'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'."""
    amp: bool = _in("runtime", True)
    """bf16 autocast where the device supports it."""
    channels_last: bool = _in("runtime", True)
    fast_loss: bool = _in("runtime", True)
    """Heatmap loss from the separable Gaussian, without building the dense target volume (same value)."""
    num_workers: int = _in("runtime", 4)
    loader_timeout_s: float = _in("runtime", 600.0)
    """Longest wait for one batch from a data-loader worker of ``predict`` before it fails naming the stalled
    worker (a stopped or deadlocked worker would otherwise hang the evaluation forever)."""
    retain_freed_memory: bool = _in("runtime", True)
    """Keep freed C-heap memory in the processes that train or run the model (``Trainer``, ``Predictor``) and in
    the data-loader workers (glibc; see ``internet.utils.runtime``), so per-sample and per-step buffers are reused
    instead of page-faulted in again. Costs up to 256 MB of freed memory kept per process."""
    num_gpus: int = _in("runtime", 1)
    """Processes for DistributedDataParallel; 1 trains in this process."""
    log_every_iters: int = _in("runtime", 1)
    """One ``train_log.jsonl`` record per this many iterations (means over them; every epoch's last iteration is
    logged too). The paper preset logs every 20: 85k records for its 1.7 million iterations instead of all."""
    ckpt_every_iters: int = _in("runtime", 0)
    """Also write a checkpoint every N iterations (0: only at the end of each epoch)."""
    continue_train: bool = _in("runtime", False)
    """Resume from the latest checkpoint in ``output_dir/model_dump``."""
    output_dir: str = _in("runtime", "output")

    # ------------------------------------------------------------------ groups
    @classmethod
    def group_fields(cls, group: str) -> Tuple[str, ...]:
        """The names of the fields in ``group`` (one of :data:`GROUPS`), in declaration order."""
        if group not in GROUPS:
            raise ValueError(f"unknown config group {group!r}; groups: {', '.join(GROUPS)}")
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata["group"] == group)

    def group(self, group: str) -> dict:
        """``{name: value}`` of the fields in ``group`` (as :meth:`to_dict`: tuples as lists)."""
        values = self.to_dict()
        return {name: values[name] for name in self.group_fields(group)}

    # ------------------------------------------------------------------ derived paths
    @property
    def model_dump_dir(self) -> Path:
        return Path(self.output_dir) / "model_dump"

    @property
    def log_dir(self) -> Path:
        return Path(self.output_dir) / "log"

    @property
    def result_dir(self) -> Path:
        return Path(self.output_dir) / "result"

    @property
    def vis_dir(self) -> Path:
        return Path(self.output_dir) / "vis"

    # ------------------------------------------------------------------ presets
    @classmethod
    def paper(cls, **overrides: Any) -> "Config":
        """The official recipe for the chosen data set (InterHand2.6M: 20 epochs, decay at 15 and 17;
        RHD/STB: 50 epochs, decay at 45 and 47)."""
        dataset = overrides.get("dataset", "InterHand2.6M")
        base: dict = {"log_every_iters": 20}
        if dataset in ("RHD", "STB"):
            base = dict(end_epoch=50, lr_dec_epoch=(45, 47))
        base.update(overrides)
        return cls.from_params(base)

    @classmethod
    def cpu_demo(cls, **overrides: Any) -> "Config":
        """A small recipe that trains in minutes on a laptop CPU (ResNet-18 from scratch, small input and heads)."""
        # Each setting, and the runs that chose it: benchmarks/RESULTS.md section 7 ("Why each setting").
        base = dict(
            resnet_type=18,
            input_img_shape=(96, 96),
            output_hm_shape=(16, 24, 24),
            sigma=2.5,
            head_channels=64,
            fc_input_norm=True,
            train_batch_size=16,
            test_batch_size=32,
            end_epoch=10,
            lr=1e-2,
            lr_dec_epoch=(7, 9),
            linear_lr_max=1e-3,
            loss_weights=(1.0, 1.0, 10.0),
            num_workers=1,
            device="cpu",
        )
        base.update(overrides)
        return cls.from_params(base)

    # ------------------------------------------------------------------ building and checking
    @classmethod
    def from_params(cls, params: Optional[dict] = None, **overrides: Any) -> "Config":
        """Build a config from a dict of parameters (e.g. papermill's); unknown names, wrong types and out-of-range
        values raise :class:`ConfigError` naming the parameter."""
        merged = dict(params or {})
        merged.update(overrides)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for name, value in merged.items():
            if name not in fields:
                raise ConfigError(f"unknown config parameter {name!r}; known: {', '.join(sorted(fields))}")
            kwargs[name] = _coerce(name, value, fields[name])
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def replace(self, **overrides: Any) -> "Config":
        """A copy with some fields changed (validated)."""
        return type(self).from_params({**self.to_dict(), **overrides})

    def validate(self) -> None:
        def bad(name: str, why: str) -> None:
            raise ConfigError(f"config parameter {name}={getattr(self, name)!r}: {why}")

        if self.dataset not in DATASETS:
            bad("dataset", f"must be one of {tuple(DATASETS)}")
        if self.annot_subset not in ANNOT_SUBSETS:
            bad("annot_subset", f"must be one of {ANNOT_SUBSETS}")
        if self.trans_test not in TRANS_TEST:
            bad("trans_test", f"must be one of {TRANS_TEST}")
        for name in ("train_split", "test_split"):
            if getattr(self, name) not in SPLITS:
                bad(name, f"must be one of {SPLITS}")
        if self.resnet_type not in RESNET_DEPTHS:
            bad("resnet_type", f"must be one of {RESNET_DEPTHS}")
        if len(self.input_img_shape) != 2 or any(int(v) <= 0 or int(v) % 32 for v in self.input_img_shape):
            bad("input_img_shape", "must be (height, width), positive multiples of 32")
        if len(self.output_hm_shape) != 3 or any(int(v) <= 0 for v in self.output_hm_shape):
            bad("output_hm_shape", "must be (depth, height, width) of positive sizes")
        for name in ("sigma", "bbox_3d_size", "bbox_3d_size_root", "lr", "lr_dec_factor"):
            if not getattr(self, name) > 0:
                bad(name, "must be > 0")
        if tuple(int(v) for v in self.output_hm_shape[1:]) != tuple(int(v) // 4 for v in self.input_img_shape):
            bad(
                "output_hm_shape",
                f"height and width must be input_img_shape / 4 = "
                f"{tuple(int(v) // 4 for v in self.input_img_shape)} (three stride-2 deconvolutions after stride 32)",
            )
        for name in (
            "output_root_hm_shape",
            "end_epoch",
            "head_channels",
            "train_batch_size",
            "test_batch_size",
            "num_gpus",
            "log_every_iters",
        ):
            if getattr(self, name) < 1:
                bad(name, "must be >= 1")
        for name in ("num_workers", "ckpt_every_iters", "seed"):
            if getattr(self, name) < 0:
                bad(name, "must be >= 0")
        if not 0 < self.loader_timeout_s < float("inf"):
            bad("loader_timeout_s", "must be > 0 seconds (and finite)")
        if self.linear_lr_max is not None and not 0 < self.linear_lr_max < float("inf"):
            bad("linear_lr_max", "must be > 0 (or None for no bound)")
        if self.max_iters_per_epoch is not None and self.max_iters_per_epoch < 1:
            bad("max_iters_per_epoch", "must be >= 1 or None")
        if list(self.lr_dec_epoch) != sorted(self.lr_dec_epoch) or any(e < 0 for e in self.lr_dec_epoch):
            bad("lr_dec_epoch", "must be increasing non-negative epochs")
        # loss_weights: checked by the loss, which owns its terms (internet.model.losses.InterNetLoss.check_weights)
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            bad("device", "must be 'auto', 'cpu', 'cuda' or 'cuda:N'")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)


def _coerce(name: str, value: Any, f: dataclasses.Field) -> Any:
    """Check one parameter against its field's type; accept ints for floats and lists for tuples."""
    default = f.default if f.default is not dataclasses.MISSING else None
    if f.default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:  # pragma: no cover
        default = f.default_factory()
    optional = "Optional" in str(f.type)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config parameter {name}=None: a value is required")
    if isinstance(default, bool) or str(f.type) == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config parameter {name}={value!r}: expected true/false, got {type(value).__name__}")
    if isinstance(default, tuple):
        if isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            return tuple(value)
        raise ConfigError(f"config parameter {name}={value!r}: expected a list of numbers")
    if isinstance(default, float) or str(f.type) in ("float", "Optional[float]"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"config parameter {name}={value!r}: expected a number, got {type(value).__name__}")
    if isinstance(default, int) or str(f.type) in ("int", "Optional[int]"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"config parameter {name}={value!r}: expected an integer, got {type(value).__name__}")
    if isinstance(default, str) or str(f.type) in ("str", "Optional[str]"):
        if isinstance(value, (str, Path)):
            return str(value)
        raise ConfigError(f"config parameter {name}={value!r}: expected a string, got {type(value).__name__}")
    return value
