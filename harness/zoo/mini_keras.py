"""The mini zoo in Keras: the same networks as :mod:`harness.zoo.mini_pytorch`.

Same layers, shapes and parameter counts; every weight-bearing layer is named after
its PyTorch module path with dots turned into underscores. Stride-2 convolutions pad
explicitly (``ZeroPadding2D`` + ``valid``) because Keras' ``same`` pads stride-2
inputs on the bottom/right only, while PyTorch pads both sides: with explicit
padding the two compute the same function, which ``tests/zoo`` proves by copying
weights across.
"""

from __future__ import annotations

from harness.frameworks import import_keras
from harness.zoo import mini_config as cfg

keras = import_keras()
layers = keras.layers


def _conv_bn_act(x, name: str, filters: int, kernel: int, stride: int = 1, depthwise: bool = False,
                 padding: int | None = None, relu: bool = True):
    """Mirror of ``ConvBNAct``: layers ``{name}_0`` (conv), ``{name}_1`` (BN), ``{name}_2`` (ReLU)."""
    if padding is None:
        padding = kernel // 2
    if padding:
        x = layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, "valid", use_bias=False, name=f"{name}_0")(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, "valid", use_bias=False, name=f"{name}_0")(x)
    x = layers.BatchNormalization(epsilon=cfg.BN_EPSILON, momentum=cfg.BN_KERAS_MOMENTUM, name=f"{name}_1")(x)
    if relu:
        x = layers.ReLU(name=f"{name}_2")(x)
    return x


def _head(x, inputs, num_classes: int, model_name: str):
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name=model_name)


def _inputs():
    return keras.Input((cfg.INPUT_SIZE, cfg.INPUT_SIZE, 3), name="image")


def mobilenet_v2(num_classes: int = cfg.NUM_CLASSES):
    inputs = _inputs()
    x = _conv_bn_act(inputs, "features_0", cfg.MOBILENET_STEM, 3, 2)
    cin, index = cfg.MOBILENET_STEM, 1
    for expansion, cout, repeats, stride in cfg.MOBILENET_BLOCKS:
        for i in range(repeats):
            s = stride if i == 0 else 1
            prefix = f"features_{index}_conv"
            y, j = x, 0
            if expansion != 1:
                y = _conv_bn_act(y, f"{prefix}_{j}", cin * expansion, 1)
                j += 1
            y = _conv_bn_act(y, f"{prefix}_{j}", cin * expansion, 3, s, depthwise=True)
            y = _conv_bn_act(y, f"{prefix}_{j + 1}", cout, 1, relu=False)
            x = layers.Add(name=f"features_{index}_skip_add")([x, y]) if s == 1 and cin == cout else y
            cin, index = cout, index + 1
    x = _conv_bn_act(x, f"features_{index}", cfg.MOBILENET_HEAD, 1)
    return _head(x, inputs, num_classes, "mini_mobilenet_v2")


def resnet50(num_classes: int = cfg.NUM_CLASSES):
    inputs = _inputs()
    x = _conv_bn_act(inputs, "features_0", cfg.RESNET_STEM, 3, 2)
    cin, index = cfg.RESNET_STEM, 1
    for mid, repeats, stride in cfg.RESNET_STAGES:
        for i in range(repeats):
            s = stride if i == 0 else 1
            cout = mid * cfg.BOTTLENECK_EXPANSION
            p = f"features_{index}"
            y = _conv_bn_act(x, f"{p}_conv1", mid, 1)
            y = _conv_bn_act(y, f"{p}_conv2", mid, 3, s)
            y = _conv_bn_act(y, f"{p}_conv3", cout, 1, relu=False)
            identity = _conv_bn_act(x, f"{p}_downsample", cout, 1, s, relu=False) if s != 1 or cin != cout else x
            x = layers.Add(name=f"{p}_skip_add")([y, identity])
            x = layers.ReLU(name=f"{p}_relu")(x)
            cin, index = cout, index + 1
    return _head(x, inputs, num_classes, "mini_resnet50")


def _inception(x, p: str, w: cfg.InceptionWidths):
    b1 = _conv_bn_act(x, f"{p}_branch1x1", w.b1, 1)
    b3 = _conv_bn_act(x, f"{p}_branch3x3_0", w.b3_reduce, 1)
    b3 = _conv_bn_act(b3, f"{p}_branch3x3_1", w.b3, 3)
    b33 = _conv_bn_act(x, f"{p}_branch3x3dbl_0", w.b33_reduce, 1)
    b33 = _conv_bn_act(b33, f"{p}_branch3x3dbl_1", w.b33, 3)
    b33 = _conv_bn_act(b33, f"{p}_branch3x3dbl_2", w.b33, 3)
    bp = layers.MaxPooling2D(3, 1, "same", name=f"{p}_branch_pool_0")(x)
    bp = _conv_bn_act(bp, f"{p}_branch_pool_1", w.pool_proj, 1)
    return layers.Concatenate(axis=-1, name=f"{p}_cat")([b1, b3, b33, bp])


def _reduction(x, p: str, w: cfg.ReductionWidths):
    b3 = _conv_bn_act(x, f"{p}_branch3x3", w.b3, 3, 2, padding=0)
    b33 = _conv_bn_act(x, f"{p}_branch3x3dbl_0", w.b33_reduce, 1)
    b33 = _conv_bn_act(b33, f"{p}_branch3x3dbl_1", w.b33, 3)
    b33 = _conv_bn_act(b33, f"{p}_branch3x3dbl_2", w.b33, 3, 2, padding=0)
    bp = layers.MaxPooling2D(3, 2, "valid", name=f"{p}_branch_pool")(x)
    return layers.Concatenate(axis=-1, name=f"{p}_cat")([b3, b33, bp])


def inception_v3(num_classes: int = cfg.NUM_CLASSES):
    inputs = _inputs()
    x = _conv_bn_act(inputs, "features_0", cfg.INCEPTION_STEM, 3, 2)
    for index, (kind, widths) in enumerate(cfg.INCEPTION_MODULES, start=1):
        x = (_inception if kind == "inception" else _reduction)(x, f"features_{index}", widths)
    return _head(x, inputs, num_classes, "mini_inception_v3")


BUILDERS = {"mobilenet_v2": mobilenet_v2, "resnet50": resnet50, "inception_v3": inception_v3}
