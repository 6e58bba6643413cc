"""InterNet: ResNet backbone, two per-hand 2.5D heatmap branches, relative root depth and handedness heads.

Module names reproduce the official network (``backbone_net.resnet.*``, ``pose_net.joint_deconv_{1,2}``,
``pose_net.joint_conv_{1,2}``, ``pose_net.root_fc``, ``pose_net.hand_fc``), so the official ``snapshot_N.pth.tar``
files load unchanged (after removing their ``module.`` prefix, see :mod:`internet.model.checkpoint`). The one addition,
``fc_input_norm`` (off by default), brings its own keys, so a checkpoint cannot silently load into the other variant.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
from torch import nn

from internet.config import Config
from internet.model.resnet import ResNet
from internet.skeleton import INTERHAND

HEAD_CHANNELS = 256  # width of the deconv upsampler (official)
FC_CHANNELS = 512  # hidden width of the root-depth and hand-type MLPs (official)


class BackboneNet(nn.Module):
    """Holds the ResNet trunk under the official name ``resnet``."""

    def __init__(self, resnet_type: int = 50) -> None:
        """resnet_type: ResNet depth (18, 34, 50, 101 or 152)."""
        super().__init__()
        self.resnet = ResNet(resnet_type)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.resnet(img)


def _deconv_layers(channels: Sequence[int]) -> nn.Sequential:
    """[ConvTranspose2d k4 s2 p1 (no bias) -> BN -> ReLU] per step: doubles the resolution each time."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [
            nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, output_padding=0, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


def _mlp(c_in: int, c_hidden: int, c_out: int) -> nn.Sequential:
    """Linear -> ReLU -> Linear (no final activation)."""
    return nn.Sequential(nn.Linear(c_in, c_hidden), nn.ReLU(inplace=True), nn.Linear(c_hidden, c_out))


class PoseNet(nn.Module):
    """Heads on the C5 feature map: per-hand 3D heatmaps, relative root depth (1D soft-argmax), hand type."""

    def __init__(
        self,
        in_channels: int = 2048,
        joint_num: int = 21,
        depth_bins: int = 64,
        root_bins: int = 64,
        head_channels: int = HEAD_CHANNELS,
        fc_input_norm: bool = False,
    ) -> None:
        """in_channels: backbone output channels; joint_num: joints per hand; depth_bins: heatmap depth D;
        root_bins: bins of the relative root-depth 1D heatmap; head_channels: deconv width (official 256);
        fc_input_norm: LayerNorm on the pooled feature before ``root_fc`` and ``hand_fc`` (not official)."""
        super().__init__()
        self.joint_num = joint_num
        self.depth_bins = depth_bins
        self.root_bins = root_bins
        deconv = [in_channels, head_channels, head_channels, head_channels]
        # Branch 1 gives the right hand (joints 0..20), branch 2 the left hand (21..41), as the official order.
        self.joint_deconv_1 = _deconv_layers(deconv)
        self.joint_conv_1 = nn.Sequential(nn.Conv2d(head_channels, joint_num * depth_bins, 1))
        self.joint_deconv_2 = _deconv_layers(deconv)
        self.joint_conv_2 = nn.Sequential(nn.Conv2d(head_channels, joint_num * depth_bins, 1))
        self.root_fc = _mlp(in_channels, FC_CHANNELS, root_bins)
        self.hand_fc = _mlp(in_channels, FC_CHANNELS, 2)
        # The pooled feature is non-negative and uncentred, so one Adam step shifts a hidden unit's input the same way
        # for every image; at high learning rates most ReLU units die. Centring and scaling it prevents that.
        self.fc_input_norm = nn.LayerNorm(in_channels) if fc_input_norm else None
        self.init_weights()

    def init_weights(self) -> None:
        """Official head init: (de)conv weights N(0, 0.001), conv bias 0, BN 1/0, Linear N(0, 0.01) with bias 0."""
        for m in self.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def joint_heatmaps(self, img_feat: torch.Tensor) -> torch.Tensor:
        """Both hands' 3D heatmaps, (B, 2 * joint_num, depth_bins, h, w), right hand first.

        ``joint_conv_{1,2}`` are 1x1 convolutions; they are computed here as one batched matrix product that writes
        both hands into a single NCHW tensor. Calling the convolutions and concatenating would copy the largest
        tensor of the network twice (channels_last -> NCHW for the reshape, then the concatenation): about 10% of a
        float32 CPU training step of the CPU preset (benchmarks/RESULTS.md section 1). Same weights, same result."""
        feats = [deconv(img_feat) for deconv in (self.joint_deconv_1, self.joint_deconv_2)]
        b, c, h, w = feats[0].shape
        convs = [self.joint_conv_1[0], self.joint_conv_2[0]]
        channels = convs[0].out_channels
        # (B*2, C, h*w): a view per hand whatever the memory format, then one small copy of the C-channel features
        x = torch.stack([f.flatten(2) for f in feats], 1).reshape(b * 2, c, h * w)
        weight = torch.stack([conv.weight.reshape(channels, c) for conv in convs])  # (2, J*D, C)
        bias = torch.stack([conv.bias for conv in convs])  # (2, J*D)
        weight = weight.to(x.dtype).expand(b, 2, channels, c).reshape(b * 2, channels, c)
        bias = bias.to(x.dtype)[None, :, :, None].expand(b, 2, channels, 1).reshape(b * 2, channels, 1)
        out = torch.baddbmm(bias, weight, x)  # (B*2, J*D, h*w), channel = joint * depth_bins + depth_bin
        return out.view(b, 2 * self.joint_num, self.depth_bins, h, w)

    def soft_argmax_1d(self, logits: torch.Tensor) -> torch.Tensor:
        """Expected bin index under softmax(logits), in float32 whatever the autocast dtype: (B, K) -> (B, 1)."""
        prob = torch.softmax(logits.float(), dim=1)
        bins = torch.arange(logits.shape[1], dtype=torch.float32, device=logits.device)
        return (prob * bins).sum(dim=1, keepdim=True)

    def forward(self, img_feat: torch.Tensor) -> dict[str, torch.Tensor]:
        heatmap = self.joint_heatmaps(img_feat)
        feat_gap = torch.nn.functional.avg_pool2d(img_feat, img_feat.shape[2:]).flatten(1)  # GAP, as official
        if self.fc_input_norm is not None:
            feat_gap = self.fc_input_norm(feat_gap)
        rel_root_depth = self.soft_argmax_1d(self.root_fc(feat_gap))
        hand_type_logits = self.hand_fc(feat_gap).float()
        return {
            "joint_heatmap": heatmap,
            "rel_root_depth": rel_root_depth,
            "hand_type_logits": hand_type_logits,
            "hand_type": torch.sigmoid(hand_type_logits),
        }


class InterNet(nn.Module):
    """InterNet (Moon et al., ECCV 2020) for two hands from one RGB crop.

    ``forward(img)`` with ``img`` (B, 3, H, W) in [0, 1] (official input: 256x256, no mean/std) returns a dict:

    - ``joint_heatmap`` (B, 2*joint_num, D, H/4, W/4): unnormalised 3D heatmaps (D = output_hm_shape[0]), right
      hand first; in the autocast dtype under autocast.
    - ``rel_root_depth`` (B, 1) float32: left-minus-right root depth in bins (soft-argmax, 0..root bins - 1).
    - ``hand_type_logits`` (B, 2) float32 and ``hand_type`` (B, 2) their sigmoid: [right, left] presence.
    """

    def __init__(
        self,
        resnet_type: int = 50,
        joint_num: int = 21,
        output_hm_shape: Sequence[int] = (64, 64, 64),
        output_root_hm_shape: int = 64,
        pretrained_backbone: Optional[Union[str, Path]] = None,
        head_channels: int = HEAD_CHANNELS,
        fc_input_norm: bool = False,
    ) -> None:
        """resnet_type: backbone depth (18/34/50/101/152); joint_num: joints per hand; output_hm_shape: heatmap
        (depth, height, width) (height/width follow from the input: input / 4); output_root_hm_shape: bins of the
        root-depth head; pretrained_backbone: optional torchvision ImageNet ``.pth`` loaded into the backbone;
        head_channels: width of the deconvolution heads (official 256; smaller for the CPU preset); fc_input_norm:
        LayerNorm on the pooled feature before the root-depth and hand-type heads (not official; CPU preset)."""
        super().__init__()
        if not (isinstance(joint_num, int) and joint_num >= 1):
            raise ValueError(f"joint_num must be a positive integer, got {joint_num!r}")
        if len(output_hm_shape) != 3 or any(int(v) < 1 for v in output_hm_shape):
            raise ValueError(
                f"output_hm_shape must be (depth, height, width) of positive sizes, got {output_hm_shape!r}"
            )
        if not (isinstance(output_root_hm_shape, int) and output_root_hm_shape >= 1):
            raise ValueError(f"output_root_hm_shape must be a positive integer, got {output_root_hm_shape!r}")
        self.resnet_type = resnet_type
        self.joint_num = joint_num
        self.output_hm_shape = tuple(int(v) for v in output_hm_shape)
        self.output_root_hm_shape = output_root_hm_shape
        self.head_channels = head_channels
        self.fc_input_norm = bool(fc_input_norm)
        self.backbone_net = BackboneNet(resnet_type)
        self.pose_net = PoseNet(
            self.backbone_net.resnet.out_channels,
            joint_num,
            self.output_hm_shape[0],
            output_root_hm_shape,
            head_channels,
            self.fc_input_norm,
        )
        if pretrained_backbone is not None:
            self.backbone_net.resnet.load_torchvision(pretrained_backbone)

    @classmethod
    def from_config(cls, cfg: Config) -> "InterNet":
        """Build from a :class:`internet.config.Config` (backbone, heatmap shapes, head options,
        pretrained_backbone)."""
        # joints per hand: the 42-joint two-hand skeleton the heatmap branches predict, half each
        return cls(
            resnet_type=cfg.resnet_type,
            joint_num=INTERHAND.joint_num // 2,
            output_hm_shape=tuple(cfg.output_hm_shape),
            output_root_hm_shape=cfg.output_root_hm_shape,
            pretrained_backbone=cfg.pretrained_backbone,
            head_channels=cfg.head_channels,
            fc_input_norm=cfg.fc_input_norm,
        )

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f"InterNet expects img of shape (B, 3, H, W), got {tuple(img.shape)}")
        return self.pose_net(self.backbone_net(img))


def param_groups(model: nn.Module, linear_lr_max: Optional[float] = None) -> List[dict]:
    """Adam parameter groups of ``model``, each ``{"params": [...], "lr_max": bound or None}`` (remove ``lr_max``
    before giving them to the optimizer; the schedule's rate for a group is ``min(lr, lr_max)``).

    One group by default: the official layout, so official optimizer states load. With ``linear_lr_max``, the
    ``nn.Linear`` parameters (InterNet's root-depth and hand-type heads) form a second group capped at that rate:
    their input is a non-negative pooled feature, and at a rate that suits the BatchNorm'd convolutions their ReLU
    units die (``Config.linear_lr_max``)."""
    params = list(model.parameters())
    linear = {id(p) for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters()}
    if linear_lr_max is None or not linear:
        return [{"params": params, "lr_max": None}]
    return [
        {"params": [p for p in params if id(p) not in linear], "lr_max": None},
        {"params": [p for p in params if id(p) in linear], "lr_max": float(linear_lr_max)},
    ]
