"""Shapes and widths of the mini zoo, shared by the PyTorch and Keras builders.

Input: 32x32 RGB (Fashion-MNIST padded). Every family starts with a stride-2 3x3
stem (16x16) and ends with global average pooling and one linear layer.

Most parameters sit at the coarsest grid (4x4, 2x2 or 7x7), where they cost little
compute: a real mobile model's file is dominated by its weights, and so must these
be, or the int8 file-size saving would be swamped by per-channel overhead: LiteRT
stores a float32 scale and an int64 zero point per output channel of every weight
and bias tensor, which for a depthwise channel costs more than its nine weights.
With these widths the int8 .tflite is 27-30% of the float one (MobileNetV2 is the
tightest), as for the full-size ImageNet models.
"""

from __future__ import annotations

from dataclasses import dataclass

INPUT_SIZE = 32
NUM_CLASSES = 10
# BatchNorm settings both frameworks use (Keras momentum 0.9 == torch momentum 0.1).
BN_EPSILON = 1e-5
BN_KERAS_MOMENTUM = 0.9

# MobileNetV2: (expansion, out channels, repeats, first stride), as in Table 2 of the MobileNetV2 paper.
MOBILENET_STEM = 16
MOBILENET_BLOCKS = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 1, 1), (6, 96, 1, 1), (6, 320, 1, 1))
MOBILENET_HEAD = 1280

# ResNet50: bottleneck stages (mid channels, repeats, first stride); out = 4 * mid.
RESNET_STEM = 32
BOTTLENECK_EXPANSION = 4
RESNET_STAGES = ((16, 1, 1), (32, 1, 2), (64, 1, 2), (160, 1, 2))


@dataclass(frozen=True)
class InceptionWidths:
    b1: int
    b3_reduce: int
    b3: int
    b33_reduce: int
    b33: int
    pool_proj: int

    def out_channels(self, cin: int) -> int:
        return self.b1 + self.b3 + self.b33 + self.pool_proj


@dataclass(frozen=True)
class ReductionWidths:
    b3: int
    b33_reduce: int
    b33: int

    def out_channels(self, cin: int) -> int:
        return self.b3 + self.b33 + cin  # the max-pool branch keeps its input channels


INCEPTION_STEM = 32
INCEPTION_MODULES = (
    ("inception", InceptionWidths(16, 16, 24, 16, 24, 16)),  # 16x16, 80 channels
    ("reduction", ReductionWidths(48, 32, 48)),  # 7x7, 176 channels
    ("inception", InceptionWidths(64, 48, 96, 48, 96, 64)),  # 7x7, 320 channels
    ("inception", InceptionWidths(64, 48, 96, 48, 96, 64)),  # 7x7, 320 channels
)
