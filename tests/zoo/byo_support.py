"""Bring-your-own test inputs, made at test time from the mini zoo (no committed binaries).

* ``float.tflite``: the mini Keras MobileNetV2 through ``TFLiteConverter`` (float32 in and out);
* ``uint8_1001.tflite``: the same network wrapped to put a background logit first and pad to
  1001 outputs (background, the 10 Fashion-MNIST classes, 990 unused), then fully int8 with
  uint8 input and output tensors (``inference_input_type = inference_output_type = tf.uint8``).
  The wrapper is a fixed Dense layer whose extra logits are a constant below every real one,
  so argmax is never background or padding, and the wrapped Keras model is also its source;
* ``float.ptl``: the mini PyTorch MobileNetV2, scripted and saved for the lite interpreter;
* source models: the Keras model as ``.keras``, the PyTorch one as TorchScript and as an
  exported program (``.pt2``);
* broken models: a Keras model with two inputs, and one whose output is (1, 4, 4, 10);
* images: the committed Fashion-MNIST test subset as PNGs in class sub-folders, plus a CSV.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from harness.data import fashion_mnist
from harness.frameworks import import_keras, import_tensorflow, import_torch

N_IMAGES = 40  # 4 per class: enough for top-1 agreement, quick to decode
N_CALIBRATION = 100
FASHION = tuple(fashion_mnist.CLASS_NAMES)


def test_images():
    data = fashion_mnist.load("test", "fixtures")
    rows = np.concatenate([np.flatnonzero(data.labels == k)[:N_IMAGES // 10] for k in range(10)])
    return data.select(data.ids[np.sort(rows)])


def _convert(converter) -> bytes:
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def float_tflite(keras_model, out: Path) -> Path:
    tf = import_tensorflow()
    out.write_bytes(_convert(tf.lite.TFLiteConverter.from_keras_model(keras_model)))
    return out


def background_1001(keras_model, floor: float = -40.0):
    """Keras model: [background, the 10 logits, 990 padding] = 1001 outputs, from standard layers
    only (so it saves as a .keras file any process can load as a source model): a fixed Dense
    layer copies logit k to output k + 1 and gives background and padding the constant ``floor``,
    below every real logit of the mini models, so argmax is never background or padding."""
    keras = import_keras()
    kernel = np.zeros((10, 1001), np.float32)
    kernel[np.arange(10), np.arange(1, 11)] = 1.0
    bias = np.full(1001, floor, np.float32)
    bias[1:11] = 0.0
    inputs = keras.Input(keras_model.input_shape[1:])
    widen = keras.layers.Dense(1001, name="background_1001", trainable=False)
    outputs = widen(keras_model(inputs))
    widen.set_weights([kernel, bias])
    return keras.Model(inputs, outputs)


def uint8_tflite(keras_model, calibration: np.ndarray, out: Path) -> Path:
    """Fully int8, uint8 input and output; ``calibration`` are normalised float inputs."""
    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calibration[i:i + 1]] for i in range(len(calibration)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    out.write_bytes(_convert(converter))
    return out


def two_input_tflite(out: Path) -> Path:
    keras = import_keras()
    a, b = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    return float_tflite(keras.Model([a, b], keras.layers.Dense(10)(x)), out)


def spatial_output_tflite(out: Path) -> Path:
    keras = import_keras()
    a = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(10, 8, strides=8)(a)  # (1, 4, 4, 10)
    return float_tflite(keras.Model(a, x), out)


def ptl(torch_module, out: Path) -> Path:
    import_torch()
    scripted = __import__("torch").jit.script(torch_module.eval())
    scripted._save_for_lite_interpreter(str(out))
    return out


def torchscript(torch_module, out: Path) -> Path:
    torch = import_torch()
    torch.jit.script(torch_module.eval()).save(str(out))
    return out


def exported(torch_module, out: Path) -> Path:
    torch = import_torch()
    program = torch.export.export(torch_module.eval(), (torch.zeros(1, 3, 32, 32),))
    torch.export.save(program, str(out))
    return out


def write_class_folders(data, root: Path, name_of=str) -> Path:
    """PNGs under ``root/<name_of(label)>/<id>.png``."""
    for image, label, sample in zip(data.images, data.labels, data.ids):
        folder = root / name_of(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{int(sample):05d}.png")
    return root


def write_csv_folder(data, root: Path, label_of=str) -> Path:
    (root / "png").mkdir(parents=True, exist_ok=True)
    lines = ["file,label"]
    for image, label, sample in zip(data.images, data.labels, data.ids):
        Image.fromarray(image).save(root / "png" / f"{int(sample):05d}.png")
        lines.append(f"png/{int(sample):05d}.png,{label_of(int(label))}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def write_flat(data, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for image, sample in zip(data.images, data.ids):
        Image.fromarray(image).save(root / f"{int(sample):05d}.png")
    return root


def fashion_labels_1001(out: Path) -> Path:
    """Every output named: background, the 10 classes, 990 unused; offset 1 declared."""
    names = ["background", *FASHION, *(f"unused_{k}" for k in range(990))]
    out.write_text("# offset: 1\n" + "\n".join(names) + "\n")
    return out


def fashion_labels(out: Path) -> Path:
    out.write_text("\n".join(FASHION) + "\n")
    return out


def nchw_tflite(keras_model, out: Path) -> Path:
    """The network behind a channels-first input (N, 3, H, W), as files converted from PyTorch take."""
    keras = import_keras()
    inputs = keras.Input((3, *keras_model.input_shape[1:3]))
    return float_tflite(keras.Model(inputs, keras_model(keras.layers.Permute((2, 3, 1))(inputs))), out)


def grayscale_input_tflite(out: Path) -> Path:
    keras = import_keras()
    a = keras.Input((32, 32, 1))
    return float_tflite(keras.Model(a, keras.layers.Dense(10)(keras.layers.Flatten()(a))), out)


def vector_input_tflite(out: Path) -> Path:
    keras = import_keras()
    a = keras.Input((48,))
    return float_tflite(keras.Model(a, keras.layers.Dense(10)(a)), out)
