"""PyTorch weights on ExecuTorch: the XNNPACK converter (harness.convert.executorch).

The converted files run in the project's ExecuTorch runtime (platform ``mobile``) and are
compared with the PC PyTorch model on the first 1000 images of the committed test subset.
A conversion costs 30-60 s in its child process the first time and is a cache hit
afterwards; mobilenet_v2 stands for the mini zoo here, the other two families run with the
slow tests.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from harness.cache import ArtifactCache
from harness.convert import ConversionError, convert, converter_for, zoo_model_from_module
from harness.convert.executorch import MAX_BATCH, ExecuTorchConverter
from harness.convert.torch_mobile import TorchMobileConverter
from harness.data.preprocessing import normalization_for
from harness.runtime import open_runtime
from harness.zoo.base import ModelSpec
from tests.convert import support

SLOW_MODELS = ("resnet50", "inception_v3")
MODELS = [pytest.param("mobilenet_v2")] + [pytest.param(m, marks=pytest.mark.slow) for m in SLOW_MODELS]
QUANTIZATIONS = ("float", "int8")


@functools.cache
def pte_artifact(name: str, quantization: str):
    return convert(support.trained("pytorch", name), quantization, support.calibration(), support.cache(),
                   format="pte")


@functools.cache
def pte_logits(name: str, quantization: str) -> np.ndarray:
    """The file run in the project's ExecuTorch runtime on this host, on the evaluation images."""
    with open_runtime("mobile", support.trained("pytorch", name), pte_artifact(name, quantization),
                      quantization=quantization) as runtime:
        assert type(runtime).__name__ == "ExecuTorchRuntime"
        return runtime.predict_logits(support.evaluation().images)


@pytest.mark.parametrize("name", MODELS)
def test_float_pte_agrees_with_the_pc_model(name, record_property):
    from harness.frameworks import import_tensorflow

    import_tensorflow()  # the conversion's child never imports it, so a process that has is safe
    art = pte_artifact(name, "float")
    assert art.path.suffix == ".pte" and art.format == "pte"
    assert art.spec.normalization.layout == "NCHW"  # what the lite interpreter's file takes too
    metadata = art.artifact.metadata
    assert metadata["batch"] == "dynamic"  # one call per batch, up to the planned batch
    assert metadata["io"] == {"input": {"shape": [MAX_BATCH, 3, 32, 32], "dtype": "float32"},
                              "output": {"shape": [MAX_BATCH, 10], "dtype": "float32"}, "max_batch": MAX_BATCH}
    assert metadata["versions"]["executorch"] == "1.5.1"
    assert set(metadata["versions"]) == {"executorch", "torch", "torchao", "numpy"}
    assert metadata["conversion_seconds"] > 0
    pc = support.logits("pytorch", name, "float", "pc")
    et = pte_logits(name, "float")
    agreement = float((et.argmax(1) == pc.argmax(1)).mean())
    diff = float(np.abs(et - pc).max())
    record_property("agreement", agreement)
    record_property("max_abs_logit_diff", diff)
    record_property("conversion_seconds", metadata["conversion_seconds"])
    assert agreement == 1.0, f"{name}: float .pte agrees with the PC model on {agreement:.3f} of 1000"
    assert diff < 1e-4, f"{name}: float .pte logits differ from the PC model's by up to {diff}"


@pytest.mark.parametrize("name", MODELS)
def test_int8_pte_agrees_with_the_pc_model(name, record_property):
    art = pte_artifact(name, "int8")
    assert art.options["calibration_images"] == support.CALIBRATION_SIZE
    assert art.artifact.metadata["child"]["calibration_images"] == support.CALIBRATION_SIZE
    assert art.artifact.metadata["batch"] == "dynamic"
    assert art.size_bytes < pte_artifact(name, "float").size_bytes / 3  # int8 weights, not float ones
    pc = support.logits("pytorch", name, "float", "pc")
    et = pte_logits(name, "int8")
    labels = support.evaluation().labels
    agreement = float((et.argmax(1) == pc.argmax(1)).mean())
    accuracy, pc_accuracy = float((et.argmax(1) == labels).mean()), float((pc.argmax(1) == labels).mean())
    record_property("agreement", agreement)
    record_property("accuracy", accuracy)
    record_property("max_abs_logit_diff", float(np.abs(et - pc).max()))
    record_property("conversion_seconds", art.artifact.metadata["conversion_seconds"])
    # the project's figure for every int8 file (tests/metrics): at most 3 points of clean accuracy
    # lost, and the same classifier as the float model on at least 95% of the images
    assert pc_accuracy - accuracy <= 0.03, f"{name}: int8 .pte accuracy {accuracy:.3f} vs PC {pc_accuracy:.3f}"
    assert agreement >= 0.95, f"{name}: int8 .pte agrees with the PC model on {agreement:.3f} of 1000"


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
@pytest.mark.parametrize("name", MODELS)
def test_xnnpack_runs_every_convolution_and_the_classifier(name, quantization, record_property):
    import torch

    delegation = pte_artifact(name, quantization).artifact.metadata["delegation"]
    record_property("delegated_fraction", delegation["delegated_fraction"])
    module = support.trained("pytorch", name).module
    convolutions = sum(isinstance(m, torch.nn.Conv2d) for m in module.modules())
    assert delegation["backend"] == "XnnpackBackend"
    assert delegation["delegated_subgraphs"] >= 1
    assert delegation["delegated_ops"]["aten.convolution.default"] == convolutions > 0
    assert delegation["delegated_ops"]["aten.linear.default"] == 1
    assert not any("convolution" in op or "linear" in op for op in delegation["non_delegated_ops"])
    if quantization == "int8":  # the quantize/dequantize pairs become XNNPACK's int8 kernels
        assert delegation["delegated_ops"]["quantized_decomposed.dequantize_per_channel.default"] >= convolutions
        assert not any(op.startswith("quantized_decomposed") for op in delegation["non_delegated_ops"])
    delegated = sum(delegation["delegated_ops"].values())
    total = delegated + sum(delegation["non_delegated_ops"].values())
    assert delegation["delegated_fraction"] == pytest.approx(delegated / total, abs=1e-6)
    assert delegation["delegated_fraction"] >= 0.95, delegation


def test_a_second_conversion_is_a_cache_hit():
    first = pte_artifact("mobilenet_v2", "float")
    again = convert(support.trained("pytorch", "mobilenet_v2"), "float", cache=support.cache(), format="pte")
    assert not again.built
    assert again.key == first.key and again.path == first.path
    assert again.artifact.metadata["delegation"] == first.artifact.metadata["delegation"]


def _data_dependent_model():
    from tests.convert.torch_modules import DataDependentBranch

    import torch

    torch.manual_seed(0)
    spec = ModelSpec("test", "pytorch", "data_dependent", 32, 10, normalization_for("pytorch", "mobilenet_v2"))
    return zoo_model_from_module(spec, DataDependentBranch().eval())


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_a_module_torch_export_rejects_is_a_conversion_error_naming_the_stage(quantization, tmp_path):
    cache = ArtifactCache(tmp_path / "cache", log=lambda m: None)
    with pytest.raises(ConversionError) as info:
        convert(_data_dependent_model(), quantization, support.calibration(), cache, format="pte")
    message = str(info.value)
    prefix = f"test/pytorch/data_dependent: executorch {quantization} conversion failed at stage torch.export: "
    assert message.startswith(prefix), message
    assert "data-dependent" in message or "data dependent" in message, message  # torch.export's own words
    assert info.value.stage == "torch.export"
    assert not list(Path(tmp_path / "cache").rglob("*.pte")), "a failed conversion left a file in the cache"


def test_a_module_that_cannot_reach_the_child_is_a_conversion_error(tmp_path):
    import torch

    class Local(torch.nn.Module):  # defined in a function: pickle cannot name it
        def forward(self, x):
            return x.mean(dim=(2, 3))

    spec = ModelSpec("test", "pytorch", "local", 32, 3, normalization_for("pytorch", "mobilenet_v2"))
    expected = r"^test/pytorch/local: executorch float conversion failed: .*torch\.save"
    with pytest.raises(ConversionError, match=expected):
        convert(zoo_model_from_module(spec, Local()), "float", cache=ArtifactCache(tmp_path, log=lambda m: None),
                format="pte")


def test_the_pte_converter_is_pytorchs_second_format_beside_the_native_one():
    assert isinstance(converter_for("pytorch", "pte"), ExecuTorchConverter)
    assert isinstance(converter_for("pytorch"), TorchMobileConverter)  # .ptl stays PyTorch's native format
    with pytest.raises(ConversionError, match=r"no converter from 'tensorflow' to 'pte'; have .*pytorch -> \.pte"):
        converter_for("tensorflow", "pte")


def test_a_file_whose_output_does_not_fit_the_spec_is_refused(tmp_path):
    import torch

    from tests.convert.torch_modules import OneImageAtATime

    torch.manual_seed(0)
    spec = ModelSpec("test", "pytorch", "seven", 32, 10, normalization_for("pytorch", "mobilenet_v2"))
    model = zoo_model_from_module(spec, OneImageAtATime(num_classes=7).eval())  # 7 logits for a 10-class spec
    expected = (r"^test/pytorch/seven: executorch float conversion failed: the file answers "
                r"\{'shape': \[1, 7\], 'dtype': 'float32'\}, expected float32 \[1, 10\]")
    with pytest.raises(ConversionError, match=expected):
        convert(model, "float", cache=ArtifactCache(tmp_path, log=lambda m: None), format="pte")
