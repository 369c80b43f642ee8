"""CondenseNet (Huang, Liu, van der Maaten, Weinberger, CVPR 2018).

Dense blocks of [LearnedGroupConv 1x1 -> BN-ReLU-3x3 group conv], growth rate doubling from
block to block, average-pool transitions so that every block sees the features of every
earlier one (fully dense connectivity), and a condensed classifier.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgecn.layers import BnReluConv, LearnedGroupConv, LearnedLinear
from edgecn.models import Option, register_model


class DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth: int, bottleneck: int, groups: int,
                 condense_factor: int, group_3x3: int):
        super().__init__()
        self.conv_1 = LearnedGroupConv(in_channels, bottleneck * growth, groups, condense_factor)
        self.conv_2 = BnReluConv(bottleneck * growth, growth, 3, padding=1, groups=group_3x3)

    def forward(self, x):
        return torch.cat([x, self.conv_2(self.conv_1(x))], 1)


class CondenseNet(nn.Module):
    """CondenseNet with learned group convolutions.

    Args:
        stages: layers per dense block.
        growth: growth rate per block.
        num_classes: output classes.
        in_channels: input channels.
        stem_stride: 1 for CIFAR-size inputs, 2 for ImageNet-size inputs.
        groups: G of the learned group convs (and of the 3x3 convs unless ``group_3x3``).
        condense_factor: C (defaults to G).
        bottleneck: width of the 1x1 output in units of the growth rate.
        group_3x3: groups of the 3x3 convs (defaults to G).
        classifier_keep: fraction of features the condensed classifier keeps.
    """

    def __init__(self, stages, growth, num_classes=10, in_channels=3, stem_stride=1,
                 groups=4, condense_factor=None, bottleneck=4, group_3x3=None, classifier_keep=0.5):
        super().__init__()
        condense_factor = condense_factor or groups
        group_3x3 = group_3x3 or groups
        width = 2 * growth[0]
        self.features = nn.Sequential()
        self.features.add_module("stem", nn.Conv2d(in_channels, width, 3, stem_stride, 1, bias=False))
        for i, (n, k) in enumerate(zip(stages, growth)):
            block = nn.Sequential()
            for j in range(n):
                block.add_module(f"layer_{j + 1}", DenseLayer(width, k, bottleneck, groups, condense_factor, group_3x3))
                width += k
            self.features.add_module(f"denseblock_{i + 1}", block)
            if i < len(stages) - 1:
                self.features.add_module(f"transition_{i + 1}", nn.AvgPool2d(2, 2))
        self.features.add_module("norm_last", nn.BatchNorm2d(width))
        self.features.add_module("relu_last", nn.ReLU())
        self.features.add_module("pool_last", nn.AdaptiveAvgPool2d(1))
        self.flatten = nn.Flatten(1)
        self.classifier = LearnedLinear(width, num_classes, classifier_keep)
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                m.bias.data.zero_()

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def _variant(stages, growth, default_groups, default_stride):
    def build(num_classes, input_size, in_channels, groups=default_groups, condense_factor=None,
              stem_stride=None, **kw):
        stride = default_stride if stem_stride is None else stem_stride
        return CondenseNet(stages, growth, num_classes, in_channels, stride, groups, condense_factor, **kw)

    return build


OPTIONS = {"groups": Option(int, 1, 256), "condense_factor": Option(int, 1, 256, optional=True),
           "stem_stride": Option(int, 1, 4, optional=True), "bottleneck": Option(int, 1, 16),
           "group_3x3": Option(int, 1, 256, optional=True), "classifier_keep": Option(float, 0.01, 1.0)}

register_model("condensenet-86", family="condensenet", options=OPTIONS, input_size=32, num_classes=10,
               description="CIFAR CondenseNet: 3 blocks x 14 layers, growth 8-16-32, G=C=4")(
    _variant([14, 14, 14], [8, 16, 32], 4, 1))
register_model("condensenet-74-c4", family="condensenet", options=OPTIONS, input_size=224, num_classes=1000,
               description="ImageNet CondenseNet: blocks 4-6-8-10-8, growth 8-16-32-64-128, G=C=4")(
    _variant([4, 6, 8, 10, 8], [8, 16, 32, 64, 128], 4, 2))
register_model("condensenet-74-c8", family="condensenet", options=OPTIONS, input_size=224, num_classes=1000,
               description="ImageNet CondenseNet: blocks 4-6-8-10-8, growth 8-16-32-64-128, G=C=8")(
    _variant([4, 6, 8, 10, 8], [8, 16, 32, 64, 128], 8, 2))
register_model("condensenet-light", family="condensenet", options=OPTIONS, input_size=32, num_classes=10,
               description="small CIFAR-style CondenseNet for quick CPU runs: 3 blocks x 4 layers, growth 8-16-32, G=C=4",
               aliases=("condensenet",))(
    _variant([4, 4, 4], [8, 16, 32], 4, 1))
