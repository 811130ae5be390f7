"""The study's figures on the mini zoo (default profile) and its records' contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.attack.profiles import load_profile
from harness.cache import ArtifactCache
from harness.data import samples
from harness.study import Configuration, Study
from harness.zoo.base import FRAMEWORKS, MODELS


@pytest.fixture(scope="module")
def default_study():
    study = Study("mini", load_profile("default"), ArtifactCache(log=lambda m: None), log=lambda m: None)
    yield study
    study.close()


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("model", MODELS)
def test_bim_fools_at_least_as_often_as_fgsm(default_study, framework, model):
    """The paper's white-box finding, on the default profile: iterating never does worse."""
    fgsm = default_study.adversarial_set(framework, model, "fgsm")
    bim = default_study.adversarial_set(framework, model, "bim")
    assert len(fgsm.ids) == len(bim.ids) == default_study.profile.samples
    assert bim.success_after_rounding >= fgsm.success_after_rounding, (
        f"{framework}/{model}: BIM {bim.success_after_rounding:.3f} < FGSM {fgsm.success_after_rounding:.3f}")
    # the default eps is chosen so success rates can still show differences
    assert 0.05 < fgsm.success_after_rounding < 0.95


def test_selection_is_an_artefact_shared_by_every_study(default_study, mini_models):
    again = Study("mini", load_profile("default"), default_study.cache, log=lambda m: None)
    selection = default_study.selection
    assert again.selection.ids.tolist() == selection.ids.tolist()
    assert selection.pool_size == len(selection.pool) >= default_study.profile.samples
    # the paper's draw: seeded from the pool of images every model gets right
    seed = default_study.profile.seed
    np.testing.assert_array_equal(selection.ids, samples.draw(selection.pool, len(selection.ids), seed))
    assert not np.array_equal(samples.draw(selection.pool, len(selection.ids), seed + 1), selection.ids)
    chosen = default_study.evaluation("tensorflow", "resnet50")
    assert chosen.ids.tolist() == selection.ids.tolist()
    for model in mini_models.values():
        assert (model.predict(chosen.images) == chosen.labels).all(), model.spec.id
    # calibration images come from the other split, so their ids may repeat evaluation ids
    calibration = default_study.calibration("tensorflow", "resnet50")
    assert calibration.split == "train" and len(calibration) == 200
    assert calibration is default_study.calibration("pytorch", "mobilenet_v2"), "one geometry, decoded once"


def test_a_record_carries_every_field_the_report_needs(default_study):
    record = default_study.evaluate(Configuration("pytorch", "resnet50", "fgsm", "int8", "mobile"))
    for field in ("framework", "model", "attack", "quantization", "platform", "n_samples", "success_rate",
                  "success_rate_before_rounding", "clean_accuracy", "agreement_with_pc",
                  "adversarial_agreement_with_pc", "model_bytes", "inference_seconds", "generation_seconds"):
        assert record[field] is not None, field
    assert record["n_samples"] == len(record["per_sample_success"]) == 300
    assert abs(record["success_rate"] - sum(record["per_sample_success"]) / 300) < 1e-12
    pc = default_study.evaluate(Configuration("pytorch", "resnet50", "fgsm", "float", "pc"))
    assert pc["clean_accuracy"] == 1.0, "evaluation samples are the ones every model gets right"
    assert pc["adversarial_agreement_with_pc"] == 1.0 and pc["pc_gap"] == 0.0
    assert record["model_bytes"] < pc["model_bytes"]


def test_a_direct_case_records_the_deployed_models_own_answers(default_study):
    """A direct attack's record: its outcomes are the runtime's answers on the stored images,
    on the first ``direct.samples`` of the same samples the transferred PNGs hold."""
    import dataclasses

    from harness.attack.direct import _load

    params = {"steps": 50, "spherical_step": 0.01, "source_step": 0.01, "init_directions": 20, "init_retries": 2}
    profile = dataclasses.replace(load_profile("default"), direct={"boundary": params}, direct_samples=3)
    study = Study("mini", profile, default_study.cache, log=lambda m: None)
    try:
        record = study.evaluate(Configuration("tensorflow", "mobilenet_v2", "direct_boundary", "int8", "mobile"))
        assert record["sample_ids"] == [int(i) for i in study.evaluation("tensorflow", "mobilenet_v2").ids[:3]]
        result = _load(Path(record["adversarial_pngs"]))
        runtime = study.runtime("tensorflow", "mobilenet_v2", "int8", "mobile")
        answers = runtime.predict_logits(result.adversarials).argmax(axis=1)
        assert record["per_sample_success"] == [bool(a != y) for a, y in zip(answers, result.labels)]
        assert any(record["per_sample_success"]), "a 50-step Boundary fools the mini int8 MobileNetV2 on some sample"
        direct = record["direct"]
        assert len(direct["queries"]) == 3 and min(direct["queries"]) > 0 and direct["queries_total"] == sum(direct["queries"])
        assert record["success_rate_before_rounding"] is None  # every query already was a uint8 image
        pc = study.runtime("tensorflow", "mobilenet_v2", "float", "pc").predict_logits(result.adversarials).argmax(axis=1)
        assert record["per_sample_adversarial_agreement"] == [bool(x) for x in answers == pc]
    finally:
        study.close()


def test_top1_ties_are_counted():
    """Quantized probabilities tie at the top: records count such images (the prediction is then the
    lowest output index among the tied ones, numpy's argmax)."""
    from harness.study import _ties

    outputs = np.array([[0.5, 0.5, 0.0], [0.1, 0.8, 0.1], [0.25, 0.25, 0.25]], np.float32)
    assert _ties(outputs) == 2 and _ties(outputs[1:2]) == 0 and _ties(None) is None
    assert outputs.argmax(axis=1).tolist() == [0, 1, 0]
