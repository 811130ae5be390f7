"""What the convert, runtime and metrics tests share: the trained mini zoo, converted once per process.

Every expensive step is memoised here (not only in fixtures), so the tests of the three
directories share one conversion and one inference per configuration, and the
artefact cache (``$HARNESS_CACHE_DIR`` or ``.cache/artifacts``) shares them across runs
and pytest-xdist workers.
"""

from __future__ import annotations

import functools

import numpy as np

from harness.attack.profiles import load_profile
from harness.cache import ArtifactCache
from harness.convert import convert
from harness.data import fashion_mnist
from harness.data.dataset import ImageDataset
from harness.data.samples import calibration_set
from harness.metrics import Measurement, measure
from harness.runtime import open_runtime
from harness.zoo import mini
from harness.zoo.base import FRAMEWORKS, MODELS

# The default profile's calibration set, drawn as the study draws it, so these tests and
# the study share their conversions in the artefact cache instead of building 12 twice.
CALIBRATION_SIZE = load_profile("default").calibration
EVALUATION_SIZE = 1000  # the first 1000 of the committed test subset (natural clean accuracy)
SEED = load_profile("default").seed
MINI = [(f, n) for f in FRAMEWORKS for n in MODELS]
MINI_IDS = [f"{f}-{n}" for f, n in MINI]


@functools.cache
def cache() -> ArtifactCache:
    return ArtifactCache()


@functools.cache
def trained(framework: str, name: str):
    return mini.load(framework, name)


@functools.cache
def calibration() -> ImageDataset:
    return calibration_set(fashion_mnist.load("train", "fixtures"), CALIBRATION_SIZE, SEED)


@functools.cache
def evaluation() -> ImageDataset:
    test = fashion_mnist.load("test", "fixtures")
    return test.select(test.ids[:EVALUATION_SIZE])


@functools.cache
def artifact(framework: str, name: str, quantization: str):
    return convert(trained(framework, name), quantization, calibration(), cache())


@functools.cache
def measurement(framework: str, name: str, quantization: str, platform: str) -> Measurement:
    """One configuration measured on the evaluation samples against the PC float logits."""
    model = trained(framework, name)
    reference = None
    if (quantization, platform) != ("float", "pc"):
        reference = measurement(framework, name, "float", "pc")
    art = None if (quantization, platform) == ("float", "pc") else artifact(framework, name, quantization)
    with open_runtime(platform, model, art, quantization=quantization, threads=1) as runtime:
        return measure(runtime, evaluation(), reference)


def logits(framework: str, name: str, quantization: str, platform: str) -> np.ndarray:
    return measurement(framework, name, quantization, platform).logits


@functools.cache
def fully_int8_tflite() -> bytes:
    """A small real LiteRT model whose input and output tensors are int8 (the mini zoo's int8
    files keep float inputs and outputs), at the mini zoo's geometry: 32x32x3 in, 10 logits out."""
    from harness.frameworks import import_keras, import_tensorflow

    tf, keras = import_tensorflow(), import_keras()
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: ([rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)]
                                                 for _ in range(8))
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def with_scale_replaced(data: bytes, scale: float, new: float) -> bytes:
    """``data`` with the one float32 ``scale`` in it replaced by ``new`` (it must occur exactly once)."""
    import struct

    old = struct.pack("<f", scale)
    assert data.count(old) == 1, f"scale {scale!r} occurs {data.count(old)} times in the file"
    return data.replace(old, struct.pack("<f", new))
