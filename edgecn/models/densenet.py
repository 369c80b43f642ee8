"""DenseNet-BC (Huang et al., 2017): the uncondensed reference CondenseNet is compared with."""

from __future__ import annotations

import torch
from torch import nn

from edgecn.layers import BnReluConv
from edgecn.models import Option, register_model


class _Bottleneck(nn.Module):
    def __init__(self, in_channels: int, growth: int, bottleneck: int = 4):
        super().__init__()
        self.conv_1 = BnReluConv(in_channels, bottleneck * growth, 1)
        self.conv_2 = BnReluConv(bottleneck * growth, growth, 3, padding=1)

    def forward(self, x):
        return torch.cat([x, self.conv_2(self.conv_1(x))], 1)


class DenseNetBC(nn.Module):
    """DenseNet with bottleneck layers and compressing transitions.

    Args:
        stages: layers per dense block.
        growth: growth rate k.
        num_classes: output classes.
        in_channels: input channels.
        imagenet_stem: 7x7/2 conv + 3x3/2 max pool (ImageNet) instead of one 3x3 conv.
        compression: transition width factor (0.5 for -BC).
    """

    def __init__(self, stages, growth, num_classes=10, in_channels=3, imagenet_stem=False, compression=0.5):
        super().__init__()
        width = 2 * growth
        if imagenet_stem:
            stem = [nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                    nn.MaxPool2d(3, 2, 1)]
        else:
            stem = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)]
        self.features = nn.Sequential(*stem)
        for i, n in enumerate(stages):
            block = nn.Sequential(*[_Bottleneck(width + j * growth, growth) for j in range(n)])
            self.features.add_module(f"denseblock_{i + 1}", block)
            width += n * growth
            if i < len(stages) - 1:
                out = int(width * compression)
                self.features.add_module(f"transition_{i + 1}",
                                         nn.Sequential(BnReluConv(width, out, 1), nn.AvgPool2d(2, 2)))
                width = out
        self.features.add_module("norm_last", nn.BatchNorm2d(width))
        self.features.add_module("relu_last", nn.ReLU())
        self.features.add_module("pool_last", nn.AdaptiveAvgPool2d(1))
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


@register_model("densenet-bc-100", family="densenet", options={"growth": Option(int, 1, 1024)}, input_size=32, num_classes=10,
                description="CIFAR DenseNet-BC, depth 100, k=12 (the paper's uncondensed reference)")
def densenet_bc_100(num_classes, input_size, in_channels, growth=12):
    return DenseNetBC([16, 16, 16], growth, num_classes, in_channels)


@register_model("densenet-121", family="densenet", options={"growth": Option(int, 1, 1024)}, input_size=224, num_classes=1000,
                description="ImageNet DenseNet-BC-121, k=32")
def densenet_121(num_classes, input_size, in_channels, growth=32):
    return DenseNetBC([6, 12, 24, 16], growth, num_classes, in_channels, imagenet_stem=True)
