"""Model files written the way the field's tools write them by default, made at test time.

Every file starts from the mini zoo's trained networks (so the models classify the committed
Fashion-MNIST images and the attacks have something to move) and is written by the tool a
mobile engineer would use, with that tool's defaults where nothing else is said:

* TensorFlow's ``TFLiteConverter.from_keras_model`` on a Keras model whose input has a fixed
  batch of 1 (``keras.Input(shape, batch_size=1)``, as Model Maker, MediaPipe and the hosted
  models have it): float32; float16 weights (``supported_types = [tf.float16]``); dynamic range
  (``Optimize.DEFAULT``, no representative data); full integer with the legacy uint8 interface
  (``inference_input_type = inference_output_type = tf.uint8``), 1001 outputs with a background
  first and a softmax inside, as the quantized MobileNets ship; full integer int8 in and out;
  full-integer operators behind a float interface (QUANTIZE/DEQUANTIZE at the edges); 16-bit
  activations with 8-bit weights; a model with two outputs (the logits and an embedding);
* tflite-support's metadata writer (``ImageClassifierWriter.create_for_inference``) on the
  float file: normalisation options and the label file embedded, so it needs no card;
* ``torch.export`` at a static batch (1 and 4) lowered to ExecuTorch with the XNNPACK partitioner;
* ``torch.jit.trace`` of a module with its batch baked into a ``reshape`` (a ``.ptl``).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from harness.data import fashion_mnist
from harness.data.preprocessing import normalization_for
from harness.frameworks import import_keras, import_tensorflow, import_torch

MEAN = STD = 127.5  # the mini Keras models' input: (pixel - 127.5) / 127.5
LABELS = tuple(fashion_mnist.CLASS_NAMES)


def _convert(converter) -> bytes:
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def batch1(keras_model, softmax: bool = False, background: bool = False, second_output: bool = False,
           size: int | None = None):
    """``keras_model`` behind a fixed batch-1 input, optionally with a background output first (1001
    outputs), a softmax on top, a second output (the penultimate features), or a larger input
    (``size`` px, average-pooled down to the model's)."""
    keras = import_keras()
    own = keras_model.input_shape[1]
    inputs = keras.Input((size or own, size or own, 3), batch_size=1, name="image")
    x = inputs if not size or size == own else keras.layers.AveragePooling2D(size // own, name="downscale")(inputs)
    logits = keras_model(x)
    if background:
        kernel = np.zeros((logits.shape[-1], 1001), np.float32)
        kernel[np.arange(logits.shape[-1]), np.arange(1, logits.shape[-1] + 1)] = 1.0
        bias = np.full(1001, -40.0, np.float32)
        bias[1:logits.shape[-1] + 1] = 0.0
        widen = keras.layers.Dense(1001, name="background_1001", trainable=False)
        logits = widen(logits)
        widen.set_weights([kernel, bias])
    outputs = keras.layers.Softmax(name="probabilities")(logits) if softmax else \
        keras.layers.Identity(name="logits")(logits)
    if second_output:
        features = keras.layers.Dense(16, name="embedding")(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, {"logits": outputs, "embedding": features})
    return keras.Model(inputs, outputs)


def _representative(calibration: np.ndarray):
    data = ((np.asarray(calibration, np.float32) - MEAN) / STD)
    return lambda: ([data[i:i + 1]] for i in range(len(data)))


def tflite(keras_model, out: Path, recipe: str = "float32", calibration: np.ndarray | None = None) -> Path:
    """``keras_model`` through ``TFLiteConverter`` with ``recipe``'s options (else the defaults).
    ``calibration``: uint8 images, normalised here, for the integer recipes."""
    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    if recipe == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif recipe == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif recipe in ("uint8", "int8", "float_edges_int8", "int16x8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration)
        if recipe == "int16x8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        else:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if recipe in ("uint8", "int8"):
            converter.inference_input_type = converter.inference_output_type = getattr(tf, recipe)
    elif recipe != "float32":
        raise ValueError(f"unknown recipe {recipe!r}")
    out.write_bytes(_convert(converter))
    return out


def with_metadata(model: Path, out: Path, labels=LABELS, mean=(MEAN,), std=(STD,)) -> Path:
    """``model`` with TFLite Model Metadata written by tflite-support's image classifier writer:
    normalisation options and a label file (``labels.txt``) embedded in the file."""
    from harness.frameworks import import_torch as _torch_first

    _torch_first()  # the writers import TensorFlow
    from tensorflow_lite_support.metadata.python.metadata_writers import image_classifier, writer_utils

    labels_file = out.with_name(out.stem + "-labels.txt")
    labels_file.write_text("\n".join(labels) + "\n")
    writer = image_classifier.MetadataWriter.create_for_inference(
        writer_utils.load_file(str(model)), list(mean), list(std), [str(labels_file)])
    writer_utils.save_file(writer.populate(), str(out))
    labels_file.unlink()
    return out


def static_pte(torch_module, out: Path, batch: int, size: int = 32, calibration: np.ndarray | None = None) -> Path:
    """``torch.export`` at a static batch, lowered with the XNNPACK partitioner, as ExecuTorch's
    export tutorial does (no dynamic shapes); with ``calibration`` (normalised NCHW float images)
    first quantized the tutorial's way: PT2E with ``XNNPACKQuantizer``'s symmetric config."""
    torch = import_torch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    sample = (torch.zeros(batch, 3, size, size),)
    program = torch.export.export(torch_module.eval(), sample)
    if calibration is not None:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        prepared = prepare_pt2e(program.module(), XNNPACKQuantizer().set_global(get_symmetric_quantization_config()))
        with torch.no_grad():
            for first in range(0, len(calibration) - batch + 1, batch):
                prepared(torch.from_numpy(np.ascontiguousarray(calibration[first:first + batch])))
        program = torch.export.export(convert_pt2e(prepared), sample)
    out.write_bytes(to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)
    return out


def baked_batch_ptl(torch_module, out: Path, size: int = 32) -> Path:
    """A traced ``.ptl`` whose graph holds its batch of 1 (``reshape(1, -1)`` after the network):
    what ``torch.jit.trace`` writes for a model that flattens with a literal batch."""
    torch = import_torch()

    class Baked(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x).reshape(1, -1)

    traced = torch.jit.trace(Baked(torch_module.eval()), torch.zeros(1, 3, size, size))
    traced._save_for_lite_interpreter(str(out))
    return out


def write_corpus(root: Path) -> Path:
    """Every file of :data:`tests.conformance.corpus.WRITTEN` (and its card) into ``root``."""
    from harness.zoo import registry
    from tests.conformance.corpus import WRITTEN

    keras_model = registry.load("mini", "tensorflow", "mobilenet_v2").module
    torch_module = registry.load("mini", "pytorch", "mobilenet_v2").module
    calibration = fashion_mnist.load("train", "fixtures").images[:100]
    root.mkdir(parents=True, exist_ok=True)
    tflite(batch1(keras_model), root / "float32_batch1.tflite")
    tflite(batch1(keras_model), root / "float16_batch1.tflite", "float16")
    tflite(batch1(keras_model), root / "dynamic_range_batch1.tflite", "dynamic_int8")
    tflite(batch1(keras_model, softmax=True, background=True), root / "uint8_1001_softmax_batch1.tflite", "uint8",
           calibration)
    tflite(batch1(keras_model), root / "int8_batch1.tflite", "int8", calibration)
    big = np.asarray([np.asarray(Image.fromarray(image).resize((128, 128), Image.BILINEAR)) for image in calibration])
    tflite(batch1(keras_model, background=True, size=128), root / "int8_1001_128px_batch1.tflite", "int8", big)
    tflite(batch1(keras_model), root / "float_edges_int8_batch1.tflite", "float_edges_int8", calibration)
    tflite(batch1(keras_model), root / "int16x8_batch1.tflite", "int16x8", calibration)
    tflite(batch1(keras_model, second_output=True), root / "two_outputs_batch1.tflite")
    with_metadata(root / "float32_batch1.tflite", root / "metadata_float32_batch1.tflite")
    static_pte(torch_module, root / "static_batch1.pte", 1)
    static_pte(torch_module, root / "static_batch4.pte", 4)
    torch_normalization = normalization_for("pytorch", "mobilenet_v2")
    static_pte(torch_module, root / "int8_static_batch1.pte", 1, calibration=torch_normalization(calibration[:32]))
    baked_batch_ptl(torch_module, root / "baked_batch1.ptl")
    failing_op_tflite(root / "failing_op.tflite")  # for the errors' tests, not a corpus entry
    for entry in WRITTEN:
        if not (root / entry.file).is_file():
            raise FileNotFoundError(f"{root / entry.file}: the corpus lists it, write_corpus did not write it")
        if entry.card is not None:
            (root / (entry.file + ".card.toml")).write_text(entry.card)
    return root


def failing_op_tflite(out: Path, size: int = 32) -> Path:
    """A float .tflite that loads and runs on zeros but fails at run time on real photos: a GATHER
    whose index is computed from the first pixel (LiteRT: "gather index out of bounds")."""
    tf = import_tensorflow()
    table = tf.constant(np.arange(100, dtype=np.float32).reshape(10, 10))

    class Failing(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32)])
        def serve(self, x):
            return tf.gather(table, tf.cast(x[:, 0, 0, 0] * 1000.0, tf.int32))

    module = Failing()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    out.write_bytes(_convert(converter))
    return out
