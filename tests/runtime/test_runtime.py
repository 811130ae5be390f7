"""Runtimes on the PC and the mobile interpreters: agreement, settings, and bad inputs."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from harness.runtime import (
    PLATFORMS,
    InputMismatchError,
    ModelFileError,
    UnsupportedConfiguration,
    open_runtime,
)
from harness.runtime.litert import RESOLVERS
from tests.convert import support


# -- the figure: float mobile models agree with their PC model ------------------------------------
@pytest.mark.parametrize("framework, name", support.MINI, ids=support.MINI_IDS)
def test_float_mobile_model_agrees_with_its_pc_model(framework, name, record_property):
    mobile = support.measurement(framework, name, "float", "mobile")
    record_property("agreement", mobile.agreement)
    record_property("max_abs_logit_diff", mobile.max_abs_logit_diff)
    assert mobile.n_samples == support.EVALUATION_SIZE
    assert mobile.agreement >= 0.995, f"top-1 agreement {mobile.agreement:.4f}"
    scale = np.abs(support.logits(framework, name, "float", "pc")).max()
    assert mobile.max_abs_logit_diff <= 1e-3 * scale, (mobile.max_abs_logit_diff, scale)


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50", "inception_v3"])
def test_pytorch_int8_on_pc_is_the_same_model_as_in_the_lite_interpreter(name):
    pc = support.measurement("pytorch", name, "int8", "pc")
    mobile = support.measurement("pytorch", name, "int8", "mobile")
    assert pc.engine == mobile.engine == "qnnpack"
    assert (pc.predictions == mobile.predictions).mean() >= 0.995
    assert np.abs(pc.logits - mobile.logits).max() <= 0.05 * np.abs(mobile.logits).max()


# -- what a runtime says about itself -------------------------------------------------------------
def test_runtimes_report_their_configuration():
    model = support.trained("tensorflow", "resnet50")
    art = support.artifact("tensorflow", "resnet50", "int8")
    with open_runtime("mobile", model, art, threads=2, resolver="builtin") as rt:
        assert (rt.framework, rt.platform, rt.quantization, rt.threads, rt.resolver) == (
            "tensorflow", "mobile", "int8", 2, "builtin")
        info = rt.describe()
        assert info["op_resolver_type"] == "BUILTIN_WITHOUT_DEFAULT_DELEGATES"
        assert info["model_file"] == str(art.path) and info["load_seconds"] > 0
    ptl = support.artifact("pytorch", "resnet50", "float")
    with open_runtime("mobile", artifact=ptl, threads=1) as rt:
        assert (rt.framework, rt.platform, rt.quantization, rt.resolver) == ("pytorch", "mobile", "float", None)
    with open_runtime("pc", support.trained("pytorch", "resnet50"), threads=1) as rt:
        assert (rt.platform, rt.quantization, rt.model_path) == ("pc", "float", support.trained("pytorch", "resnet50").weights_path)
    assert {"pc", "mobile"} <= set(PLATFORMS)


def test_litert_op_resolvers_differ_by_at_most_a_few_rounding_steps():
    model = support.trained("tensorflow", "inception_v3")
    art = support.artifact("tensorflow", "inception_v3", "int8")
    images = support.evaluation().images[:300]
    outputs = {}
    for resolver in RESOLVERS:
        with open_runtime("mobile", model, art, threads=1, resolver=resolver) as rt:
            assert rt.resolver == resolver
            outputs[resolver] = rt.predict_logits(images)
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(art.path))
    # the int8 tensor that the final Dequantize reads: its scale is one rounding step of the logits
    out_index = interp.get_output_details()[0]["index"]
    steps = [d["quantization"][0] for d in interp.get_tensor_details()
             if d["dtype"] == np.int8 and tuple(d["shape"][-1:]) == (10,) and d["index"] != out_index]
    assert steps, "no int8 logits tensor found"
    step = max(steps)
    base = outputs["default"]
    for resolver, out in outputs.items():
        assert np.abs(out - base).max() <= 3 * step + 1e-6, resolver
        assert (out.argmax(1) == base.argmax(1)).mean() >= 0.99


@pytest.mark.parametrize("framework", ["tensorflow", "pytorch"])
def test_batched_and_single_image_inference_agree(framework):
    art = support.artifact(framework, "mobilenet_v2", "float")
    images = support.evaluation().images[:40]
    with open_runtime("mobile", artifact=art) as rt:
        batched = rt.predict_logits(images, batch_size=40)
        single = rt.predict_logits(images, batch_size=1)
        uneven = rt.predict_logits(images, batch_size=15)
    np.testing.assert_allclose(single, batched, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(uneven, batched, rtol=1e-4, atol=1e-4)


def test_threads_are_set_per_call_and_restored():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    art = support.artifact("pytorch", "inception_v3", "int8")
    images = support.evaluation().images[:20]
    with open_runtime("mobile", artifact=art, threads=1) as one, open_runtime("mobile", artifact=art, threads=2) as two:
        a, b = one.predict_logits(images), two.predict_logits(images)
    assert torch.get_num_threads() == before
    assert (a.argmax(1) == b.argmax(1)).all()
    tfl = support.artifact("tensorflow", "inception_v3", "float")
    with open_runtime("mobile", artifact=tfl, threads=2) as rt:
        assert rt.threads == 2
        np.testing.assert_allclose(rt.predict_logits(images), support.logits("tensorflow", "inception_v3", "float", "mobile")[:20],
                                   rtol=1e-4, atol=1e-4)


def test_quantized_engine_is_put_back_after_int8_calls():
    torch = pytest.importorskip("torch")
    torch.backends.quantized.engine = "x86"
    try:
        with open_runtime("mobile", artifact=support.artifact("pytorch", "mobilenet_v2", "int8")) as rt:
            assert rt.engine == "qnnpack"
            rt.predict_logits(support.evaluation().images[:4])
        assert torch.backends.quantized.engine == "x86"
    finally:
        torch.backends.quantized.engine = "x86"


def test_no_images_give_no_logits():
    with open_runtime("mobile", artifact=support.artifact("tensorflow", "resnet50", "float")) as rt:
        assert rt.predict_logits(np.zeros((0, 32, 32, 3), np.uint8)).shape == (0, 10)


# -- bad inputs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("framework", ["tensorflow", "pytorch"])
def test_truncated_model_file_is_an_error_naming_the_file(framework, tmp_path):
    art = support.artifact(framework, "mobilenet_v2", "float")
    bad = tmp_path / art.path.name
    data = art.path.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=re.escape(str(bad))):
        open_runtime("mobile", spec=art.spec, artifact=bad, quantization="float")
    bad.write_bytes(b"\x00" * 4096)
    with pytest.raises(ModelFileError, match=re.escape(str(bad))):
        open_runtime("mobile", spec=art.spec, artifact=bad, quantization="float")
    with pytest.raises(ModelFileError, match="not found"):
        open_runtime("mobile", spec=art.spec, artifact=tmp_path / f"missing{art.path.suffix}", quantization="float")


@pytest.mark.parametrize("framework", ["tensorflow", "pytorch"])
@pytest.mark.parametrize("platform", ["pc", "mobile"])
def test_images_of_the_wrong_shape_are_an_error_naming_the_mismatch(framework, platform):
    model = support.trained(framework, "resnet50")
    art = None if platform == "pc" else support.artifact(framework, "resnet50", "float")
    with open_runtime(platform, model, art) as rt:
        source = str(art.path) if art else str(model.weights_path)
        with pytest.raises(InputMismatchError, match=r"\(N, 32, 32, 3\).*\(2, 28, 28, 3\)") as err:
            rt.predict_logits(np.zeros((2, 28, 28, 3), np.uint8))
        assert source in str(err.value)
        with pytest.raises(InputMismatchError, match=r"\(2, 3, 32, 32\)"):
            rt.predict_logits(np.zeros((2, 3, 32, 32), np.uint8))
        with pytest.raises(InputMismatchError, match="expected uint8 pixels, got float32"):
            rt.predict_logits(np.zeros((2, 32, 32, 3), np.float32))
        with pytest.raises(InputMismatchError):
            rt.predict_logits(np.zeros((32, 32, 3), np.uint8))


@pytest.mark.parametrize("framework", ["tensorflow", "pytorch"])
def test_model_file_that_does_not_fit_the_spec_is_an_error(framework):
    art = support.artifact(framework, "mobilenet_v2", "float")
    if framework == "tensorflow":  # a .tflite states its input shape; a .ptl of a conv net takes any size
        wrong = dataclasses.replace(art.spec, input_size=64, name="other")
        with pytest.raises(ModelFileError, match=re.escape(str(art.path)) + r".*\(N, 64, 64, 3\)"):
            open_runtime("mobile", spec=wrong, artifact=art.path, quantization="float")
    wrong_classes = dataclasses.replace(art.spec, num_classes=7, name="other")
    with pytest.raises(ModelFileError, match="7 classes"):
        open_runtime("mobile", spec=wrong_classes, artifact=art.path, quantization="float")


def test_unsupported_requests_are_refused_clearly():
    tf_model = support.trained("tensorflow", "mobilenet_v2")
    with pytest.raises(UnsupportedConfiguration, match="TensorFlow has no PC int8 model"):
        open_runtime("pc", tf_model, quantization="int8")
    with pytest.raises(UnsupportedConfiguration, match="mobile platform runs a converted model file"):
        open_runtime("mobile", tf_model)
    with pytest.raises(UnsupportedConfiguration, match="unknown platform 'phone'"):
        open_runtime("phone", tf_model)
    with pytest.raises(UnsupportedConfiguration, match="artefact is int8, asked for float"):
        open_runtime("mobile", tf_model, support.artifact("tensorflow", "mobilenet_v2", "int8"), quantization="float")
    with pytest.raises(UnsupportedConfiguration, match="spec mismatch"):
        open_runtime("mobile", tf_model, support.artifact("tensorflow", "resnet50", "float"))
    with pytest.raises(UnsupportedConfiguration, match="needs the int8 conversion artefact"):
        open_runtime("pc", support.trained("pytorch", "mobilenet_v2"), quantization="int8")
    with pytest.raises(ValueError, match="unknown LiteRT op resolver 'fast'"):
        open_runtime("mobile", tf_model, support.artifact("tensorflow", "mobilenet_v2", "float"), resolver="fast")
    with pytest.raises(ModelFileError, match="no mobile runtime for format 'onnx'"):
        open_runtime("mobile", spec=tf_model.spec, artifact="model.onnx", quantization="float")


def test_ptl_returning_a_tuple_gives_its_logits(tmp_path):
    """Scripted torchvision Inception3 returns (logits, aux_logits) even without aux logits."""
    torch = pytest.importorskip("torch")
    from typing import Tuple

    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(3, 10)

        def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
            logits = self.head(x.mean(dim=(2, 3)))
            return logits, -logits

    module = TwoHeads().eval()
    path = tmp_path / "two_heads.ptl"
    torch.jit.script(module)._save_for_lite_interpreter(str(path))
    spec = support.trained("pytorch", "mobilenet_v2").spec
    images = support.evaluation().images[:3]
    with open_runtime("mobile", spec=spec, artifact=path, quantization="float") as rt:
        logits = rt.predict_logits(images)
    with torch.no_grad():
        expected = module(torch.from_numpy(spec.normalization(images)))[0].numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)


# -- logits that are not numbers -------------------------------------------------------------------
def _broken_mobilenet(fill: float, classes=slice(None)):
    """The real mini PyTorch MobileNetV2 (a fresh copy) with its classifier's bias set to ``fill``."""
    from harness.frameworks import import_torch
    from harness.zoo import mini

    torch = import_torch()
    model = mini.load("pytorch", "mobilenet_v2")
    linear = [m for m in model.module.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        linear.bias[classes] = fill
    return model


def test_nan_logits_are_refused_naming_the_runtime_and_how_many():
    from harness.metrics import measure
    from harness.runtime import NonFiniteLogits

    model = _broken_mobilenet(float("nan"))
    samples = support.evaluation().select(support.evaluation().ids[:7])
    with open_runtime("pc", model) as rt:
        with pytest.raises(NonFiniteLogits, match=re.escape(
                f"mini/pytorch/mobilenet_v2/float/pc ({model.weights_path}): 70 of 70 logits are not finite "
                "(70 NaN, 0 infinite) in 7 of 7 images")):
            rt.predict_logits(samples.images)
        with pytest.raises(NonFiniteLogits, match="70 of 70 logits are not finite"):
            measure(rt, samples)


def test_infinite_logits_are_refused_too():
    from harness.runtime import NonFiniteLogits

    model = _broken_mobilenet(float("inf"), classes=slice(3, 4))
    with open_runtime("pc", model) as rt:
        with pytest.raises(NonFiniteLogits, match=r": 5 of 50 logits are not finite \(0 NaN, 5 infinite\) in 5 of 5"):
            rt.predict_logits(support.evaluation().images[:5])


def test_finite_logits_pass_the_check_unchanged():
    from harness.runtime.base import check_finite

    logits = np.array([[1.0, -2.0], [3.0, 1e30]], np.float32)
    assert check_finite(logits, "x") is logits


# -- quantization parameters that cannot be used --------------------------------------------------
def _int8_io_details(data: bytes) -> tuple[dict, dict]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    return interpreter.get_input_details()[0], interpreter.get_output_details()[0]


@pytest.mark.parametrize("role", ["input", "output"])
@pytest.mark.parametrize("bad", [0.0, float("nan"), float("inf")])
def test_zero_or_non_finite_quantization_scale_is_an_error_naming_file_and_tensor(tmp_path, role, bad):
    data = support.fully_int8_tflite()
    spec = support.artifact("tensorflow", "mobilenet_v2", "int8").spec
    good = tmp_path / "int8-io.tflite"
    good.write_bytes(data)
    with open_runtime("mobile", spec=spec, artifact=good, quantization="int8") as rt:
        assert rt.input_dtype == rt.output_dtype == np.int8  # the file really is fed through its scales
        assert np.isfinite(rt.predict_logits(support.evaluation().images[:3])).all()
    detail = dict(zip(("input", "output"), _int8_io_details(data)))[role]
    broken = tmp_path / f"{role}-scale.tflite"
    broken.write_bytes(support.with_scale_replaced(data, detail["quantization"][0], bad))
    assert _int8_io_details(broken.read_bytes())[role == "output"]["quantization"][0] != detail["quantization"][0]
    # XNNPACK (the default resolver) refuses a zero input scale itself; the builtin kernels load
    # the file, and the runtime's own division by the scale is what must not happen.
    with pytest.raises(ModelFileError, match=re.escape(
            f"{broken}: {role} tensor {detail['name']!r} (int8) has quantization scale {bad!r}; "
            "expected a positive finite number")):
        open_runtime("mobile", spec=spec, artifact=broken, quantization="int8", resolver="builtin")
