"""The paper's full-size architectures (random weights) convert and run on the mobile runtimes.

Weights do not matter for whether the converters and interpreters handle the ops, so
this needs no download: ``harness.zoo.imagenet.build`` builds Keras applications and
torchvision's quantizable models with random weights. Minutes on two cores: ``slow``.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.cache import ArtifactCache
from harness.convert import convert, zoo_model_from_module
from harness.data.dataset import ImageDataset
from harness.runtime import open_runtime
from harness.zoo.base import FRAMEWORKS, MODELS

pytestmark = [pytest.mark.slow, pytest.mark.imagenet]

# int8: every PyTorch model (cheap) and TensorFlow's MobileNetV2 (calibrating 299x299 Keras models is slow)
CONFIGS = ([(f, n, "float") for f in FRAMEWORKS for n in MODELS]
           + [("pytorch", n, "int8") for n in MODELS] + [("tensorflow", "mobilenet_v2", "int8")])


@pytest.fixture(scope="module")
def imagenet_cache(tmp_path_factory):
    # random weights are new on every run: keep their artefacts out of the persistent cache
    return ArtifactCache(tmp_path_factory.mktemp("imagenet-cache"))


def _images(size: int, n: int, seed: int) -> ImageDataset:
    rng = np.random.default_rng(seed)
    # smooth random images (a noise field upsampled), closer to photos than white noise
    coarse = rng.integers(0, 256, size=(n, size // 8 + 1, size // 8 + 1, 3), dtype=np.uint8)
    images = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)[:, :size, :size]
    return ImageDataset("synthetic", "calibration", np.arange(n), np.ascontiguousarray(images),
                        np.zeros(n, np.int64), tuple(str(i) for i in range(1000)))


@pytest.mark.parametrize("framework, name, quantization", CONFIGS, ids=["-".join(c) for c in CONFIGS])
def test_imagenet_architecture_converts_and_runs(framework, name, quantization, imagenet_cache):
    from harness.zoo import imagenet

    spec = imagenet.spec(framework, name)
    if framework == "pytorch":
        import torch

        torch.manual_seed(0)
    else:
        import keras

        keras.utils.set_random_seed(0)
    model = zoo_model_from_module(spec, imagenet.build(framework, name))
    calibration = _images(spec.input_size, 8, seed=1) if quantization == "int8" else None
    art = convert(model, quantization, calibration, imagenet_cache)
    assert art.path.suffix == (".tflite" if framework == "tensorflow" else ".ptl")
    images = _images(spec.input_size, 2, seed=2).images
    with open_runtime("mobile", model, art, threads=2) as runtime:
        logits = runtime.predict_logits(images)
    assert logits.shape == (2, 1000) and logits.dtype == np.float32 and np.isfinite(logits).all()
    if quantization == "float":
        reference = model.predict_logits(images)
        scale = np.abs(reference).max()
        assert np.abs(logits - reference).max() <= 1e-3 * scale + 1e-5
    else:
        float_size = convert(model, "float", None, imagenet_cache).size_bytes
        assert art.size_bytes <= 0.35 * float_size
