"""Tiny model files written the way the world writes them, for the batch-shape tests.

Third-party ``.tflite`` files (TensorFlow's converter, Model Maker, MediaPipe, the model zoos)
have a fixed batch: a Keras model whose ``keras.Input`` has ``batch_size=1`` converted by
``tf.lite.TFLiteConverter.from_keras_model`` with default options, or full-integer. A
``.ptl`` traced with ``x.reshape(1, -1)`` takes one image only; a ``.pte`` exported by
``torch.export`` without dynamic shapes takes exactly its example's batch. Every model here
is a 32x32 input, one convolution and one dense layer: each file takes about a second to write.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.data.preprocessing import normalization_for
from harness.frameworks import import_keras, import_torch
from harness.zoo.base import ModelSpec

SIZE, CLASSES = 32, 10
TF_SPEC = ModelSpec("test", "tensorflow", "fixed_batch", SIZE, CLASSES, normalization_for("tensorflow", "mobilenet_v2"))
TORCH_SPEC = ModelSpec("test", "pytorch", "fixed_batch", SIZE, CLASSES, normalization_for("pytorch", "mobilenet_v2"))


def images(n: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def keras_model(batch_size: int | None, seed: int = 0):
    """Conv + dense on a 32x32 RGB input; ``batch_size`` None is a dynamic batch. The same seed
    gives the same weights whatever the batch (the batch-1 and dynamic twins)."""
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3), batch_size=batch_size)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(CLASSES)(x)
    return keras.Model(inputs, outputs)


def representative(batch: int, n: int = 8):
    rng = np.random.default_rng(1)

    def generate():
        for _ in range(n):
            yield [TF_SPEC.normalization(rng.integers(0, 256, (batch, SIZE, SIZE, 3), dtype=np.uint8))]

    return generate


def tflite_bytes(model, quantization: str = "float") -> bytes:
    """``from_keras_model`` with default options (``float``) or full-integer (``uint8``/``int8``
    input and output tensors, builtin int8 ops only), as a user would write it."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization != "float":
        batch = model.inputs[0].shape[0] or 1
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative(batch)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = {"uint8": tf.uint8, "int8": tf.int8}[quantization]
        converter.inference_input_type = converter.inference_output_type = dtype
    return converter.convert()


def write_tflite(directory: Path, name: str, batch_size: int | None, quantization: str = "float") -> Path:
    path = Path(directory) / f"{name}.tflite"
    path.write_bytes(tflite_bytes(keras_model(batch_size), quantization))
    return path


def concrete_tflite(directory: Path, name: str, input_shape: list[int], rows_out: int) -> Path:
    """A file from a ``tf.function`` whose input has ``input_shape`` and whose output has ``rows_out``
    rows whatever the batch (bad files: batch 0, or one output row for a batch of two)."""
    import tensorflow as tf

    weights = tf.constant(np.random.default_rng(0).normal(size=(3, CLASSES)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec(input_shape, tf.float32)])
    def forward(x):
        pooled = tf.reduce_mean(x, axis=[1, 2])  # (batch, 3)
        pooled = tf.reshape(tf.reduce_mean(pooled, axis=0), [1, 3]) * tf.ones([rows_out, 1])
        return tf.matmul(pooled, weights)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([forward.get_concrete_function()], forward)
    path = Path(directory) / f"{name}.tflite"
    path.write_bytes(converter.convert())
    return path


def torch_module(baked_batch: bool, seed: int = 0):
    torch = import_torch()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, stride=2)
            self.fc = torch.nn.Linear(4 * 15 * 15, CLASSES)

        def forward(self, x):
            x = torch.relu(self.conv(x))
            # what a traced app model often does: a batch of one baked in
            x = x.reshape(1, -1) if baked_batch else x.flatten(1)
            return self.fc(x)

    torch.manual_seed(seed)
    return Net().eval()


def write_ptl(directory: Path, name: str, baked_batch: bool) -> Path:
    """A ``.ptl`` traced on one image (``baked_batch``: with ``x.reshape(1, -1)``)."""
    torch = import_torch()
    module = torch_module(baked_batch)
    with torch.no_grad():
        traced = torch.jit.trace(module, torch.zeros(1, 3, SIZE, SIZE))
    path = Path(directory) / f"{name}.ptl"
    traced._save_for_lite_interpreter(str(path))
    return path


def write_pte(directory: Path, name: str, batch: int | None, max_batch: int = 64) -> Path:
    """A ``.pte`` of :func:`torch_module` (flatten) exported by ``torch.export`` at a static
    ``batch``, or (None) with a dynamic batch up to ``max_batch``, lowered with XNNPACK as
    :mod:`harness.convert.executorch` does."""
    torch = import_torch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    module = torch_module(False)
    sample = (torch.zeros(batch or 2, 3, SIZE, SIZE),)
    dims = None if batch else ({0: torch.export.Dim("batch", min=1, max=max_batch)},)
    exported = torch.export.export(module, sample, dynamic_shapes=dims, strict=False)
    program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
    path = Path(directory) / f"{name}.pte"
    path.write_bytes(program.buffer)
    return path
