"""SqueezeNet v1.0 and v1.1 (Iandola et al., 2016), with no, simple or complex bypass.

Layer sizes follow the paper and torchvision (v1.0 with 1000 classes: 1,248,424 parameters).
Simple bypass wraps Fire 3, 5, 7, 9 (in == out); complex bypass adds a 1x1 conv bypass to
Fire 2, 4, 6, 8 as well.
"""

from __future__ import annotations

from torch import nn

from edgecn.errors import EdgecnError
from edgecn.layers.fire import Fire
from edgecn.models import Option, register_model

# (in, squeeze, expand1x1, expand3x3) for Fire 2..9; "M" is a 3x3/2 max pool.
_V10 = [(96, 16, 64, 64), (128, 16, 64, 64), (128, 32, 128, 128), "M", (256, 32, 128, 128),
        (256, 48, 192, 192), (384, 48, 192, 192), (384, 64, 256, 256), "M", (512, 64, 256, 256)]
_V11 = [(64, 16, 64, 64), (128, 16, 64, 64), "M", (128, 32, 128, 128), (256, 32, 128, 128), "M",
        (256, 48, 192, 192), (384, 48, 192, 192), (384, 64, 256, 256), (512, 64, 256, 256)]
BYPASSES = ("none", "simple", "complex")


class SqueezeNet(nn.Module):
    def __init__(self, version: str = "1_0", num_classes: int = 1000, in_channels: int = 3,
                 bypass: str = "none", dropout: float = 0.5, final_relu: bool = True):
        super().__init__()
        if bypass not in BYPASSES:
            raise EdgecnError(f"unknown bypass {bypass!r}", f"use one of {', '.join(BYPASSES)}")
        if version == "1_0":
            stem, plan = nn.Conv2d(in_channels, 96, 7, stride=2), _V10
        else:
            stem, plan = nn.Conv2d(in_channels, 64, 3, stride=2), _V11
        layers = [stem, nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True)]
        fire_no = 2
        for item in plan:
            if item == "M":
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
                continue
            in_c, s, e1, e3 = item
            kind = None
            if bypass != "none" and fire_no % 2 == 1:
                kind = "simple"
            elif bypass == "complex":
                kind = "conv"
            layers.append(Fire(in_c, s, e1, e3, kind))
            fire_no += 1
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(512, num_classes, 1),
                                        nn.ReLU() if final_relu else nn.Identity(),
                                        nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.zeros_(m.bias)
                if m is self.classifier[1]:
                    # Small weights and a positive bias: every class starts above the ReLU that
                    # precedes global pooling. A class whose pre-activation is negative for every
                    # image gets no gradient again; with a zero bias classes died one by one in the
                    # first epochs (digits at 32x32: 68% held-out instead of 94% with AdamW).
                    nn.init.normal_(m.weight, 0.0, 0.01)
                    nn.init.constant_(m.bias, 0.5)
                else:
                    nn.init.kaiming_uniform_(m.weight)

    def forward(self, x):
        return self.classifier(self.features(x))


def _variant(version: str, default_bypass: str):
    def build(num_classes, input_size, in_channels, bypass=default_bypass, dropout=0.5, final_relu=True):
        return SqueezeNet(version, num_classes, in_channels, bypass, dropout, final_relu)

    return build


OPTIONS = {"bypass": Option(BYPASSES), "dropout": Option(float, 0.0, 0.99), "final_relu": Option(bool)}

for _v in ("1_0", "1_1"):
    for _b in BYPASSES:
        _name = f"squeezenet{_v}" + ("" if _b == "none" else f"-{_b}-bypass")
        register_model(_name, family="squeezenet", options=OPTIONS, input_size=224, num_classes=1000,
                       description=f"SqueezeNet v{_v.replace('_', '.')}, " + ("no bypass" if _b == "none" else f"{_b} bypass"))(_variant(_v, _b))
