"""The mini zoo in PyTorch: quantizable, torchvision-style modules with ``fuse_model``.

Each family keeps its defining block: MobileNetV2's inverted
residual with a depthwise convolution, ResNet50's bottleneck residual with an add,
InceptionV3's multi-branch module with a concat. Adds and concats go through
``FloatFunctional`` and the model is wrapped in Quant/DeQuant stubs, as in
``torchvision.models.quantization``, so eager-mode static int8 quantization works.
ReLU stands in for ReLU6 in MobileNetV2, as torchvision's quantizable variant does,
so every conv-BN-activation triple can be fused.

The Keras twins in :mod:`harness.zoo.mini_keras` name every layer after the module
path here (``blocks.1.conv.0`` -> ``blocks_1_conv_0``); :mod:`harness.zoo.port`
relies on that to copy weights across and prove the two are the same network.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules

from harness.zoo import mini_config as cfg

BN_EPS = cfg.BN_EPSILON
BN_MOMENTUM = 1.0 - cfg.BN_KERAS_MOMENTUM  # torch counts momentum the other way round


class ConvBNAct(nn.Sequential):
    """conv (no bias) -> BatchNorm -> optional ReLU: indices 0, 1, 2."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 padding: int | None = None, relu: bool = True):
        if padding is None:
            padding = kernel // 2
        layers = [
            nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=False))
        super().__init__(*layers)

    def fuse(self) -> None:
        fuse_modules(self, ["0", "1", "2"] if len(self) == 3 else ["0", "1"], inplace=True)


class QuantizableMiniNet(nn.Module):
    """Common frame: quant stub -> features -> global average pool -> linear -> dequant."""

    def __init__(self, features: nn.Module, width: int, num_classes: int):
        super().__init__()
        self.quant = QuantStub()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        x = self.pool(self.features(x))
        x = self.classifier(torch.flatten(x, 1))
        return self.dequant(x)

    def fuse_model(self) -> None:
        """Fuse every conv-BN(-ReLU) in place; call in eval mode before quantization."""
        for module in self.modules():
            if isinstance(module, ConvBNAct):
                module.fuse()


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNAct(cin, hidden, 1))
        layers.append(ConvBNAct(hidden, hidden, 3, stride, groups=hidden))
        layers.append(ConvBNAct(hidden, cout, 1, relu=False))
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout
        self.skip_add = FloatFunctional()

    def forward(self, x):
        if self.use_residual:
            return self.skip_add.add(x, self.conv(x))
        return self.conv(x)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, stride: int):
        super().__init__()
        cout = mid * cfg.BOTTLENECK_EXPANSION
        self.conv1 = ConvBNAct(cin, mid, 1)
        self.conv2 = ConvBNAct(mid, mid, 3, stride)
        self.conv3 = ConvBNAct(mid, cout, 1, relu=False)
        self.downsample = (
            ConvBNAct(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else None
        )
        self.skip_add_relu = FloatFunctional()

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.skip_add_relu.add_relu(self.conv3(self.conv2(self.conv1(x))), identity)


class InceptionModule(nn.Module):
    """Branches (1x1 | 1x1-3x3 | 1x1-3x3-3x3 | maxpool-1x1) concatenated on channels."""

    def __init__(self, cin: int, widths: cfg.InceptionWidths):
        super().__init__()
        w = widths
        self.branch1x1 = ConvBNAct(cin, w.b1, 1)
        self.branch3x3 = nn.Sequential(ConvBNAct(cin, w.b3_reduce, 1), ConvBNAct(w.b3_reduce, w.b3, 3))
        self.branch3x3dbl = nn.Sequential(
            ConvBNAct(cin, w.b33_reduce, 1), ConvBNAct(w.b33_reduce, w.b33, 3), ConvBNAct(w.b33, w.b33, 3)
        )
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), ConvBNAct(cin, w.pool_proj, 1))
        self.cat = FloatFunctional()

    def forward(self, x):
        branches = [self.branch1x1(x), self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)]
        return self.cat.cat(branches, 1)


class ReductionModule(nn.Module):
    """Grid reduction (InceptionV3's module B): stride-2 branches and a max pool, concatenated."""

    def __init__(self, cin: int, widths: cfg.ReductionWidths):
        super().__init__()
        w = widths
        self.branch3x3 = ConvBNAct(cin, w.b3, 3, 2, padding=0)
        self.branch3x3dbl = nn.Sequential(
            ConvBNAct(cin, w.b33_reduce, 1), ConvBNAct(w.b33_reduce, w.b33, 3),
            ConvBNAct(w.b33, w.b33, 3, 2, padding=0),
        )
        self.branch_pool = nn.MaxPool2d(3, 2, 0)
        self.cat = FloatFunctional()

    def forward(self, x):
        return self.cat.cat([self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)], 1)


def mobilenet_v2(num_classes: int = cfg.NUM_CLASSES) -> QuantizableMiniNet:
    layers: list[nn.Module] = [ConvBNAct(3, cfg.MOBILENET_STEM, 3, 2)]
    cin = cfg.MOBILENET_STEM
    for expansion, cout, repeats, stride in cfg.MOBILENET_BLOCKS:
        for i in range(repeats):
            layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
            cin = cout
    layers.append(ConvBNAct(cin, cfg.MOBILENET_HEAD, 1))
    return QuantizableMiniNet(nn.Sequential(*layers), cfg.MOBILENET_HEAD, num_classes)


def resnet50(num_classes: int = cfg.NUM_CLASSES) -> QuantizableMiniNet:
    layers: list[nn.Module] = [ConvBNAct(3, cfg.RESNET_STEM, 3, 2)]
    cin = cfg.RESNET_STEM
    for mid, repeats, stride in cfg.RESNET_STAGES:
        for i in range(repeats):
            layers.append(Bottleneck(cin, mid, stride if i == 0 else 1))
            cin = mid * cfg.BOTTLENECK_EXPANSION
    return QuantizableMiniNet(nn.Sequential(*layers), cin, num_classes)


def inception_v3(num_classes: int = cfg.NUM_CLASSES) -> QuantizableMiniNet:
    layers: list[nn.Module] = [ConvBNAct(3, cfg.INCEPTION_STEM, 3, 2)]
    cin = cfg.INCEPTION_STEM
    for kind, widths in cfg.INCEPTION_MODULES:
        if kind == "inception":
            layers.append(InceptionModule(cin, widths))
        else:
            layers.append(ReductionModule(cin, widths))
        cin = widths.out_channels(cin)
    return QuantizableMiniNet(nn.Sequential(*layers), cin, num_classes)


BUILDERS = {"mobilenet_v2": mobilenet_v2, "resnet50": resnet50, "inception_v3": inception_v3}
