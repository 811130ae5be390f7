"""Clean measurements per model x quantization x platform on the trained mini zoo."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.metrics import Measurement, MeasurementError, measure, measure_configuration
from harness.runtime import open_runtime
from tests.convert import support


FIELDS = {
    "model", "zoo", "framework", "name", "quantization", "platform", "resolver", "threads", "engine",
    "n_samples", "batch_size", "accuracy", "agreement", "max_abs_logit_diff", "file_size_bytes", "model_file",
    "load_seconds", "inference_seconds", "seconds_per_image", "reference",
}


# -- the figure: int8 costs at most 3 points of clean accuracy --------------------------------------
@pytest.mark.parametrize("framework, name", support.MINI, ids=support.MINI_IDS)
def test_int8_loses_at_most_three_points_of_clean_accuracy(framework, name, record_property):
    float_pc = support.measurement(framework, name, "float", "pc")
    int8 = support.measurement(framework, name, "int8", "mobile")
    drop = float_pc.accuracy - int8.accuracy
    record_property("float_accuracy", float_pc.accuracy)
    record_property("int8_accuracy", int8.accuracy)
    record_property("int8_agreement", int8.agreement)
    assert drop <= 0.03, f"int8 accuracy {int8.accuracy:.3f} vs float {float_pc.accuracy:.3f}"
    # and int8 is not a different classifier: it agrees with float on most samples
    assert int8.agreement >= 0.95


# -- the record ------------------------------------------------------------------------------------
def test_measurement_record_has_every_field_and_is_json():
    m = support.measurement("tensorflow", "mobilenet_v2", "int8", "mobile")
    record = m.to_dict()
    assert set(record) == FIELDS
    json.dumps(record)  # plain data only: no arrays in the record
    art = support.artifact("tensorflow", "mobilenet_v2", "int8")
    assert record["file_size_bytes"] == art.size_bytes and record["model_file"] == str(art.path)
    assert (record["platform"], record["quantization"], record["resolver"], record["threads"]) == (
        "mobile", "int8", "default", 1)
    assert record["n_samples"] == support.EVALUATION_SIZE and record["reference"] == "pc/float"
    assert record["seconds_per_image"] == pytest.approx(record["inference_seconds"] / record["n_samples"])
    assert record["inference_seconds"] > 0 and record["load_seconds"] > 0
    assert m.logits.shape == (support.EVALUATION_SIZE, 10)
    assert (m.predictions == m.logits.argmax(1)).all()


@pytest.mark.parametrize("framework", ["tensorflow", "pytorch"])
def test_pc_float_is_its_own_reference_and_matches_the_zoo_model(framework):
    model = support.trained(framework, "inception_v3")
    m = support.measurement(framework, "inception_v3", "float", "pc")
    assert m.agreement == 1.0 and m.max_abs_logit_diff == 0.0
    samples = support.evaluation()
    assert m.accuracy == pytest.approx(float((model.predict(samples.images) == samples.labels).mean()))
    assert m.file_size_bytes == model.weights_path.stat().st_size


def test_agreement_and_logit_difference_are_computed_against_the_reference():
    samples = support.evaluation().select(support.evaluation().ids[:50])
    reference = support.logits("pytorch", "resnet50", "float", "pc")[:50].copy()
    with open_runtime("pc", support.trained("pytorch", "resnet50")) as rt:
        exact = measure(rt, samples, reference)
        assert exact.agreement == 1.0 and exact.max_abs_logit_diff == pytest.approx(0.0, abs=1e-5)
        shifted = reference.copy()
        shifted[:10] = -shifted[:10]  # flips the top-1 of (almost) these ten
        changed = (shifted.argmax(1) != reference.argmax(1)).sum()
        m = measure(rt, samples, shifted)
        assert m.agreement == pytest.approx(1 - changed / 50)
        assert m.max_abs_logit_diff == pytest.approx(2 * np.abs(reference[:10]).max(), rel=1e-4)
        with pytest.raises(MeasurementError, match="do not line up"):
            measure(rt, samples, reference[:49])
        with pytest.raises(MeasurementError, match="no samples"):
            measure(rt, samples.select([]))


def test_mobile_without_reference_reports_no_agreement():
    samples = support.evaluation().select(support.evaluation().ids[:20])
    with open_runtime("mobile", artifact=support.artifact("pytorch", "mobilenet_v2", "float")) as rt:
        m = measure(rt, samples)
    assert m.agreement is None and m.max_abs_logit_diff is None and m.reference is None
    assert isinstance(m, Measurement) and m.n_samples == 20


def test_measure_configuration_converts_opens_and_measures_in_one_call():
    samples = support.evaluation().select(support.evaluation().ids[:100])
    reference = support.logits("tensorflow", "resnet50", "float", "pc")[:100]
    m = measure_configuration(support.trained("tensorflow", "resnet50"), "int8", "mobile", samples,
                              support.calibration(), support.cache(), reference, threads=1, resolver="reference")
    assert (m.quantization, m.platform, m.resolver, m.n_samples) == ("int8", "mobile", "reference", 100)
    full = support.measurement("tensorflow", "resnet50", "int8", "mobile")
    assert (m.predictions == full.predictions[:100]).mean() >= 0.98
