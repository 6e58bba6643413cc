"""The InterNet network and its ResNet backbone."""
from internet.model.internet import BackboneNet, InterNet, PoseNet
from internet.model.resnet import RESNET_SPECS, BasicBlock, Bottleneck, ResNet

__all__ = ["InterNet", "BackboneNet", "PoseNet", "ResNet", "BasicBlock", "Bottleneck", "RESNET_SPECS"]
