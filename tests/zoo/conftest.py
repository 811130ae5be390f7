"""Fixtures of the bring-your-own tests: model files and image folders made once per session."""

from __future__ import annotations

import pytest

from harness.zoo import registry
from tests.zoo import byo_support as byo


@pytest.fixture(scope="session")
def byo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("byo")


@pytest.fixture(scope="session")
def mini_tf():
    return registry.load("mini", "tensorflow", "mobilenet_v2")


@pytest.fixture(scope="session")
def mini_torch():
    return registry.load("mini", "pytorch", "mobilenet_v2")


@pytest.fixture(scope="session")
def byo_images():
    return byo.test_images()


@pytest.fixture(scope="session")
def float_tflite(byo_dir, mini_tf):
    path = byo.float_tflite(mini_tf.module, byo_dir / "float.tflite")
    (byo_dir / "float.card.toml").write_text('[input]\nmean = 127.5\nstd = 127.5\n')
    return path


@pytest.fixture(scope="session")
def uint8_tflite(byo_dir, mini_tf):
    from harness.data import fashion_mnist
    from harness.data.samples import calibration_set

    calibration = calibration_set(fashion_mnist.load("train", "fixtures"), byo.N_CALIBRATION, 0)
    normalised = mini_tf.spec.normalization(calibration.images)
    path = byo.uint8_tflite(byo.background_1001(mini_tf.module), normalised, byo_dir / "uint8_1001.tflite")
    labels = byo.fashion_labels_1001(byo_dir / "labels_1001.txt")
    (byo_dir / "uint8_1001.card.toml").write_text(
        '[input]\nnormalization = "raw"\ndtype = "uint8"\n\n'
        f'[output]\nclasses = 1001\nlabel_offset = 1\nlabels = "{labels.name}"\n')
    return path


@pytest.fixture(scope="session")
def float_ptl(byo_dir, mini_torch):
    path = byo.ptl(mini_torch.module, byo_dir / "float.ptl")
    (byo_dir / "float.ptl.card.toml").write_text(
        '[input]\nsize = 32\nscale = 0.00392156862745098\nmean = [0.485, 0.456, 0.406]\n'
        'std = [0.229, 0.224, 0.225]\n')
    return path


@pytest.fixture(scope="session")
def keras_source(byo_dir, mini_tf):
    path = byo_dir / "source.keras"
    mini_tf.module.save(path)
    return path
