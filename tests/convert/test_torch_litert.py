"""PyTorch weights on LiteRT: the litert-torch converter (harness.convert.torch_litert).

The converted files run in the project's own LiteRT runtime (platform ``mobile``), the
same code that runs the TensorFlow models' ``.tflite`` files, and are compared with the
PC PyTorch model on the first 1000 images of the committed test subset. A conversion costs
30-60 s in its child process the first time and is a cache hit afterwards; mobilenet_v2
stands for the mini zoo here, the other two families run with the slow tests.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from harness.cache import ArtifactCache
from harness.convert import ConversionError, convert, converter_for, register_converter, zoo_model_from_module
from harness.convert.base import _CONVERTERS
from harness.convert.torch_litert import LiteRTTorchConverter
from harness.convert.torch_mobile import TorchMobileConverter
from harness.convert.tflite import TFLiteConverter
from harness.data.preprocessing import normalization_for
from harness.runtime import open_runtime
from harness.zoo.base import ModelSpec
from tests.convert import support

SLOW_MODELS = ("resnet50", "inception_v3")
MODELS = [pytest.param("mobilenet_v2")] + [pytest.param(m, marks=pytest.mark.slow) for m in SLOW_MODELS]


@functools.cache
def litert_artifact(name: str, quantization: str):
    return convert(support.trained("pytorch", name), quantization, support.calibration(), support.cache(),
                   format="tflite")


@functools.cache
def litert_logits(name: str, quantization: str) -> np.ndarray:
    """The file run in the project's LiteRT runtime on this host, on the evaluation images."""
    with open_runtime("mobile", support.trained("pytorch", name), litert_artifact(name, quantization),
                      quantization=quantization) as runtime:
        assert type(runtime).__name__ == "LiteRTRuntime"
        return runtime.predict_logits(support.evaluation().images)


@pytest.mark.parametrize("name", MODELS)
def test_float_tflite_from_pytorch_agrees_with_the_pc_model(name, record_property):
    from harness.frameworks import import_tensorflow

    import_tensorflow()  # the conversion's child never imports it, so a process that has is safe
    art = litert_artifact(name, "float")
    assert art.path.suffix == ".tflite" and art.format == "tflite"
    assert art.spec.normalization.layout == "NHWC"  # what the LiteRT runtimes feed
    io = art.artifact.metadata["io"]
    assert io["input"]["shape"] == [-1, 32, 32, 3] and io["input"]["dtype"] == "float32"
    assert art.artifact.metadata["versions"]["litert_torch"] == "0.10.0"
    pc = support.logits("pytorch", name, "float", "pc")
    lite = litert_logits(name, "float")
    agreement = float((lite.argmax(1) == pc.argmax(1)).mean())
    diff = float(np.abs(lite - pc).max())
    record_property("agreement", agreement)
    record_property("max_abs_logit_diff", diff)
    assert agreement == 1.0, f"{name}: float .tflite agrees with the PC model on {agreement:.3f} of 1000"
    assert diff < 1e-3, f"{name}: float .tflite logits differ from the PC model's by up to {diff}"


@pytest.mark.parametrize("name", MODELS)
def test_int8_tflite_from_pytorch_has_int8_io_and_agrees_with_the_pc_model(name, record_property):
    art = litert_artifact(name, "int8")
    io = art.artifact.metadata["io"]
    assert io["input"]["dtype"] == io["output"]["dtype"] == "int8"
    assert io["input"]["scale"] > 0 and io["output"]["scale"] > 0
    assert art.options["calibration_images"] == support.CALIBRATION_SIZE
    assert art.artifact.metadata["child"]["calibration_images"] == support.CALIBRATION_SIZE
    assert art.size_bytes < litert_artifact(name, "float").size_bytes / 3  # int8 weights, not float ones
    pc = support.logits("pytorch", name, "float", "pc")
    lite = litert_logits(name, "int8")
    labels = support.evaluation().labels
    agreement = float((lite.argmax(1) == pc.argmax(1)).mean())
    accuracy, pc_accuracy = float((lite.argmax(1) == labels).mean()), float((pc.argmax(1) == labels).mean())
    record_property("agreement", agreement)
    record_property("accuracy", accuracy)
    record_property("max_abs_logit_diff", float(np.abs(lite - pc).max()))
    # the project's figure for every int8 file (tests/metrics): at most 3 points of clean accuracy
    # lost, and the same classifier as the float model on at least 95% of the images
    assert pc_accuracy - accuracy <= 0.03, f"{name}: int8 .tflite accuracy {accuracy:.3f} vs PC {pc_accuracy:.3f}"
    assert agreement >= 0.95, f"{name}: int8 .tflite agrees with the PC model on {agreement:.3f} of 1000"


def test_a_module_torch_export_rejects_is_a_conversion_error_with_its_message(tmp_path):
    from tests.convert.torch_modules import DataDependentBranch

    import torch

    torch.manual_seed(0)
    spec = ModelSpec("test", "pytorch", "data_dependent", 32, 10, normalization_for("pytorch", "mobilenet_v2"))
    model = zoo_model_from_module(spec, DataDependentBranch().eval())
    cache = ArtifactCache(tmp_path / "cache", log=lambda m: None)
    with pytest.raises(ConversionError) as info:
        convert(model, "float", cache=cache, format="tflite")
    message = str(info.value)
    assert message.startswith("test/pytorch/data_dependent: litert-torch float conversion failed: ")
    assert "data-dependent" in message or "data dependent" in message, message  # torch.export's own words
    assert not list(Path(tmp_path / "cache").rglob("*.tflite")), "a failed conversion left a file in the cache"


def test_a_module_that_cannot_reach_the_child_is_a_conversion_error(tmp_path):
    import torch

    class Local(torch.nn.Module):  # defined in a function: pickle cannot name it
        def forward(self, x):
            return x.mean(dim=(2, 3))

    spec = ModelSpec("test", "pytorch", "local", 32, 3, normalization_for("pytorch", "mobilenet_v2"))
    expected = r"^test/pytorch/local: litert-torch float conversion failed: .*torch\.save"
    with pytest.raises(ConversionError, match=expected):
        convert(zoo_model_from_module(spec, Local()), "float", cache=ArtifactCache(tmp_path, log=lambda m: None),
                format="tflite")


def test_converters_are_keyed_by_framework_and_format():
    assert isinstance(converter_for("pytorch"), TorchMobileConverter)  # the native format by default
    assert isinstance(converter_for("pytorch", "ptl"), TorchMobileConverter)
    assert isinstance(converter_for("pytorch", "tflite"), LiteRTTorchConverter)
    assert isinstance(converter_for("tensorflow"), TFLiteConverter)
    with pytest.raises(ConversionError, match=r"no converter from 'tensorflow' to 'ptl'; have .*pytorch -> \.tflite"):
        converter_for("tensorflow", "ptl")
    with pytest.raises(ConversionError, match="no native mobile format for framework 'jax'"):
        converter_for("jax")


def test_a_second_converter_for_a_framework_sits_beside_the_first():
    class OnnxConverter:
        framework, format = "pytorch", "onnx"

    saved = dict(_CONVERTERS)
    try:
        register_converter(OnnxConverter())
        assert isinstance(converter_for("pytorch", "onnx"), OnnxConverter)
        assert isinstance(converter_for("pytorch"), TorchMobileConverter)
        assert isinstance(converter_for("pytorch", "tflite"), LiteRTTorchConverter)
    finally:
        _CONVERTERS.clear()
        _CONVERTERS.update(saved)
