"""A model a converter refuses: its configurations fail with the converter's own message, the
conversion is tried once per process, and the record says which converter failed and why."""

from __future__ import annotations

import pytest

from harness.frameworks import import_torch

torch = import_torch()

from harness.attack.profiles import load_profile
from harness.cache import ArtifactCache
from harness.convert.base import ConversionError
from harness.convert.weights import zoo_model_from_module
from harness.study import Configuration, Study, error_record
from harness.zoo import mini


class Branching(torch.nn.Module):
    """A mini model behind a branch on a tensor's value, which torch.export refuses (defined at
    module level: the converters hand the module to a child process by pickling it)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        y = self.inner(x)
        if y.sum() > 0:  # data-dependent control flow
            return y
        return -y


@pytest.fixture
def study(monkeypatch):
    real = mini.load("pytorch", "mobilenet_v2")
    refused = zoo_model_from_module(real.spec, Branching(real.module).eval())
    study = Study("mini", load_profile("smoke"), ArtifactCache(log=lambda m: None), log=lambda m: None)
    monkeypatch.setattr(Study, "model", lambda self, f, n: refused if (f, n) == ("pytorch", "mobilenet_v2")
                        else mini.load(f, n))
    yield study
    study.close()


def test_the_converters_message_reaches_the_configurations_record(study):
    config = Configuration.parse("pytorch-mobilenet_v2-fgsm-float-litert-mobile")
    with pytest.raises(ConversionError) as first:
        study.conversion("pytorch", "mobilenet_v2", "float", "litert")
    message = str(first.value)
    assert "mini/pytorch/mobilenet_v2" in message and "export" in message.lower()
    with pytest.raises(ConversionError) as again:  # not converted a second time: the same failure
        study.runtime("pytorch", "mobilenet_v2", "float", "mobile", "litert")
    assert again.value is first.value
    record = error_record(config, first.value, "trace", "mini", "smoke")
    assert record["conversion_failed"] == {"converter": "pytorch -> .tflite", "format": "tflite", "runtime": "litert",
                                           "quantization": "float", "message": message}
    assert record["passed"] is False and record["error"].startswith("ConversionError: ")


def test_a_pc_case_failing_for_another_reason_is_not_a_conversion_failure():
    record = error_record(Configuration.parse("pytorch-mobilenet_v2-fgsm-float-pc"), RuntimeError("boom"), "t",
                          "mini", "smoke")
    assert "conversion_failed" not in record and record["error"] == "RuntimeError: boom"
