"""ResNet backbones (18/34/50/101/152) in plain torch, with torchvision's parameter names.

The official InterNet backbone is torchvision's ResNet ("v1.5": stride in the 3x3 conv of the Bottleneck) without
``avgpool`` and ``fc``. Keeping torchvision's names (``conv1``, ``bn1``, ``layer1..4``, ``downsample.0/.1``) lets an
ImageNet ``resnet*-*.pth`` state dict load unchanged, and keeps the official checkpoints' key names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Union

import torch
from torch import nn

from internet.model.checkpoint import CheckpointError, check_state_compatible, load_checkpoint

# depth -> (block type, blocks per stage), as torchvision
RESNET_SPECS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        """in_channels: input channels; channels: width of the block (output = channels); stride: of the first conv."""
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, "v1.5") -> 1x1 (x4 channels) with a residual connection (ResNet-50/101/152)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        """in_channels: input channels; channels: inner width (output = 4 * channels); stride: of the 3x3 conv."""
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """Projection shortcut (``downsample.0`` conv, ``downsample.1`` BN) when the shape changes, else identity."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class ResNet(nn.Module):
    """ResNet trunk up to C5 (stride 32): conv1 -> bn1 -> relu -> maxpool -> layer1..layer4. No avgpool, no fc."""

    def __init__(self, depth: int = 50) -> None:
        """depth: 18, 34, 50, 101 or 152."""
        super().__init__()
        if depth not in RESNET_SPECS:
            raise ValueError(f"resnet depth {depth!r} is not supported; choose one of {sorted(RESNET_SPECS)}")
        kind, blocks = RESNET_SPECS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_channels = 64
        for stage, (n_blocks, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
            layers = []
            for i in range(n_blocks):
                stride = 2 if (i == 0 and stage > 1) else 1
                layers.append(block(in_channels, width, stride))
                in_channels = width * block.expansion
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.out_channels: int = in_channels
        """Channels of the C5 output: 512 (ResNet-18/34) or 2048 (ResNet-50/101/152)."""
        self.init_weights()

    def init_weights(self) -> None:
        """Official initialisation: conv weights N(0, 0.001), BN weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, mean=0.0, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def load_torchvision(self, source: Union[str, Path, Mapping[str, torch.Tensor]]) -> None:
        """Load an ImageNet state dict in torchvision's format (a local ``resnet50-*.pth`` path or the dict itself).

        ``fc.*`` keys are ignored (the trunk has no classifier). Old torchvision files lack ``num_batches_tracked``;
        those counters are then left at 0. Anything else missing, unexpected or of the wrong shape raises
        :class:`internet.model.checkpoint.CheckpointError` naming the keys and, when it applies, the other depth.
        """
        # checkpoint.py depends only on torch, so importing it here keeps the data flow one-way.

        where = str(source) if isinstance(source, (str, Path)) else "the given state dict"
        state = load_checkpoint(source) if isinstance(source, (str, Path)) else source
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{where}: expected a torchvision ResNet state dict, got {type(state).__name__}")
        if "state_dict" in state and isinstance(state["state_dict"], Mapping):  # some zoos wrap it
            state = state["state_dict"]
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        own = self.state_dict()
        for k, v in own.items():
            if k.endswith("num_batches_tracked") and k not in state:
                state[k] = torch.zeros_like(v)
        check_state_compatible(own, state, where=where, model_name=f"ResNet-{self.depth} backbone")
        self.load_state_dict(state, strict=True)
