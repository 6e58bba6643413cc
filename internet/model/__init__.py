"""The InterNet network and its ResNet backbone."""

from internet.model.internet import BackboneNet, InterNet, PoseNet, param_groups
from internet.model.resnet import RESNET_SPECS, BasicBlock, Bottleneck, ResNet

__all__ = ["InterNet", "BackboneNet", "PoseNet", "param_groups", "ResNet", "BasicBlock", "Bottleneck", "RESNET_SPECS"]
