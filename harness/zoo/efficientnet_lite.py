"""EfficientNet-Lite0 as a quantizable, torchvision-style PyTorch module.

The architecture is the Lite variant of EfficientNet-B0 that TensorFlow's
``efficientnet_lite_builder`` defines: the B0 stages, ReLU6 instead of swish, no
squeeze-and-excitation, stem (32 channels) and head (1280) not scaled, batch norm
epsilon 1e-3. Padding is TensorFlow's ``SAME``: symmetric for stride 1 and, for the
stride-2 convolutions, one pixel more on the bottom/right than on the top/left. The
module reproduces that without a separate padding layer (which would have to pad a
quantized tensor with its zero point): the convolution pads ``left + 2`` on every side
and its first output row and column are dropped, which leaves exactly the windows
``SAME`` gives on the even sizes this network sees at 224x224 (224, 112, 56, 28, 14).

As in ``torchvision.models.quantization``, the network is wrapped in Quant/DeQuant
stubs, the residual add goes through ``FloatFunctional`` and :meth:`fuse_model` fuses
every convolution with its batch norm, so eager-mode static int8 quantization applies.
ReLU6 is kept (quantized on its own): replacing it by ReLU to fuse it, as torchvision's
MobileNetV2 does, would change the float model's outputs.

:func:`state_dict_from_file` renames the keys of the published checkpoint (the
``_conv_stem``/``_blocks.N._bn1`` names of the EfficientNet-PyTorch code it was made
with) to this module's.
"""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TensorFlow's 0.99, counted the other way round
INPUT_SIZE = 224
NUM_CLASSES = 1000
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# (repeats, kernel, stride, expansion, in, out): efficientnet_lite_builder's 'r1_k3_s11_e1_i32_o16', ...
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
DROPOUT = 0.2  # identity in eval mode; kept so the module says how it was trained


class ConvBNReLU6(nn.Module):
    """conv (no bias) -> BatchNorm -> optional ReLU6, with TensorFlow's SAME padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 activation: bool = True):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if stride == 1:
            padding = (kernel - 1) // 2
        else:
            # SAME on an even input of size n: pad (k - 2) in all, (k - 2) // 2 before. Padding
            # ``before + 2`` on both sides shifts every window one output to the right; the
            # first output is then dropped.
            padding = (kernel - 2) // 2 + 2
        self.crop = stride == 2
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.ReLU6() if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        if x.is_quantized:
            # The quantized convolution returns channels-last memory, and this torch's quantized
            # ReLU6/clamp under the qnnpack engine computes garbage on channels-last input
            # (contiguous input is right); float tensors keep their memory format.
            x = x.contiguous()
        x = self.act(x)
        if self.crop:
            x = x[:, :, 1:, 1:]
        return x

    def fuse(self) -> None:
        fuse_modules(self, ["conv", "bn"], inplace=True)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation: expand, depthwise, project."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.expand = ConvBNReLU6(cin, hidden, 1) if expansion != 1 else nn.Identity()
        self.depthwise = ConvBNReLU6(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvBNReLU6(hidden, cout, 1, activation=False)
        self.residual = stride == 1 and cin == cout
        self.skip_add = FloatFunctional()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        if self.residual:
            out = self.skip_add.add(out, x)
        return out


class EfficientNetLite(nn.Module):
    """quant stub -> stem -> 16 MBConv blocks -> head -> average pool -> dropout -> linear -> dequant."""

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = DROPOUT):
        super().__init__()
        self.quant = QuantStub()
        self.stem = ConvBNReLU6(3, STEM_CHANNELS, 3, stride=2)
        blocks = []
        for repeats, kernel, stride, expansion, cin, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expansion))
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNReLU6(STAGES[-1][-1], HEAD_CHANNELS, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        x = self.head(self.blocks(self.stem(x)))
        x = self.dropout(torch.flatten(self.pool(x), 1))
        return self.dequant(self.classifier(x))

    def fuse_model(self) -> None:
        """Fuse every conv-BN pair in place; call in eval mode before quantization."""
        for module in self.modules():
            if isinstance(module, ConvBNReLU6):
                module.fuse()


def efficientnet_lite0() -> EfficientNetLite:
    """EfficientNet-Lite0 with random weights, in eval mode."""
    return EfficientNetLite().eval()


# The published checkpoint's names -> this module's.
_TOP_LEVEL = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn",
              "_fc": "classifier"}
_IN_BLOCK = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
             "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def rename_checkpoint_keys(state: dict) -> dict:
    """The checkpoint's state dict under this module's names; a key it does not know is kept
    as it is, so ``load_state_dict(strict=True)`` names it."""
    renamed = {}
    for key, value in state.items():
        block = _BLOCK_KEY.match(key)
        if block and block.group(2) in _IN_BLOCK:
            key = f"blocks.{block.group(1)}.{_IN_BLOCK[block.group(2)]}.{block.group(3)}"
        else:
            head, _, rest = key.partition(".")
            if head in _TOP_LEVEL and rest:
                key = f"{_TOP_LEVEL[head]}.{rest}"
        renamed[key] = value
    return renamed

