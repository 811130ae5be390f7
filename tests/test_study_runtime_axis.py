"""The runtime axis: configuration ids with and without a runtime, and the matrix a zoo's deployments give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.attack.profiles import load_profile

from harness.study import Configuration, matrix, runtime_format
from harness.zoo import mini, registry
from harness.zoo.base import ZooError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("config_id, runtime", [
    ("tensorflow-mobilenet_v2-bim-int8-mobile", None),
    ("pytorch-resnet50-fgsm-float-pc", None),
    ("pytorch-mobilenet_v2-boundary-int8-litert-arm64", "litert"),
    ("tensorflow-inception_v3-fgsm-float-torch_lite-mobile", "torch_lite"),
])
def test_ids_round_trip_with_five_and_six_parts(config_id, runtime):
    config = Configuration.parse(config_id)
    assert config.runtime == runtime
    assert config.id == config_id
    assert Configuration.parse(config.id) == config


def test_the_native_runtime_is_the_five_part_id():
    named = Configuration("pytorch", "mobilenet_v2", "bim", "int8", "mobile", "torch_lite")
    assert named.runtime is None and named.id == "pytorch-mobilenet_v2-bim-int8-mobile"
    assert named == Configuration("pytorch", "mobilenet_v2", "bim", "int8", "mobile")
    assert named.deployed_runtime == "torch_lite"
    assert Configuration.parse("pytorch-mobilenet_v2-bim-int8-torch_lite-mobile").id == named.id
    assert Configuration("tensorflow", "resnet50", "fgsm", "float", "pc").deployed_runtime is None
    assert runtime_format("pytorch", None) == "ptl" and runtime_format("pytorch", "litert") == "tflite"
    assert runtime_format("tensorflow", None) == "tflite"


@pytest.mark.parametrize("config_id, message", [
    ("pytorch-mobilenet_v2-bim-int8", "must be framework-model-attack-quantization-platform or "),
    ("a-b-c-d-e-f-g", "must be framework-model-attack-quantization-platform or "),
    ("pytorch-mobilenet_v2-bim-int8-tflite-mobile", "unknown runtime 'tflite'; expected one of"),
    ("pytorch-mobilenet_v2-bim-float-litert-pc", "platform pc runs the pytorch model itself and has no runtime"),
    ("pytorch-mobilenet_v2--float-mobile", "configuration attack '' must be a non-empty name"),
])
def test_bad_ids_say_what_is_expected(config_id, message):
    with pytest.raises(ValueError, match=message):
        Configuration.parse(config_id)


DEFAULT = load_profile("default").attack_names


def test_default_matrix_keeps_the_papers_ids_and_adds_the_runtime_axis():
    """The mini zoo's 126 paper-shaped cases keep their 5-part ids (the imagenet zoo's matrix,
    which deploys natively); PyTorch's weights add ExecuTorch and LiteRT cases with 6-part ids;
    the committed baseline covers all of them."""
    configs = matrix(attacks=DEFAULT)
    ids = [c.id for c in configs]
    assert len(ids) == len(set(ids)) == 126 + 108
    assert [c.id for c in configs if c.runtime is None] == [c.id for c in matrix(attacks=DEFAULT, zoo="imagenet")]
    extra = [c for c in configs if c.runtime is not None]
    # 3 PyTorch models x 3 attacks x 2 quantizations x 2 runtimes on each of mobile, arm64, device
    assert len(extra) == 3 * 3 * 2 * 2 * 3 and {c.framework for c in extra} == {"pytorch"}
    assert {c.runtime for c in extra} == {"executorch", "litert"} and {c.platform for c in extra} == {
        "mobile", "arm64", "device"}
    assert {"pytorch-resnet50-bim-int8-executorch-arm64", "pytorch-mobilenet_v2-fgsm-float-litert-mobile"} <= set(ids)
    baseline = json.loads((REPO / "thresholds" / "mini-default.json").read_text())
    assert set(baseline["configurations"]) == set(ids)


def test_mini_deploys_pytorch_to_three_runtimes_and_imagenet_natively():
    assert ("pytorch", "resnet50", ("torch_lite", "executorch", "litert")) in registry.deployments("mini")
    assert ("tensorflow", "resnet50", ("litert",)) in registry.deployments("mini")
    assert {r for _, _, runtimes in registry.deployments("imagenet") for r in runtimes} == {"litert", "torch_lite"}
    assert all(len(runtimes) == 1 for _, _, runtimes in registry.deployments("imagenet"))


def test_a_zoo_lists_its_runtimes_in_any_order_native_first(monkeypatch):
    monkeypatch.setattr(mini, "RUNTIMES", {"pytorch": ("litert", "torch_lite")}, raising=False)
    assert ("pytorch", "resnet50", ("torch_lite", "litert")) in registry.deployments("mini")  # native first
    configs = matrix(attacks=DEFAULT, zoo="mini")
    extra = [c for c in configs if c.runtime is not None]
    # 3 PyTorch models x 3 attacks x 2 quantizations on each of mobile, arm64, device; the PC has no runtime
    assert len(extra) == 3 * 3 * 2 * 3 and len(configs) == 126 + len(extra)
    assert {c.runtime for c in extra} == {"litert"} and {c.platform for c in extra} == {"mobile", "arm64", "device"}
    assert "pytorch-resnet50-bim-int8-litert-arm64" in {c.id for c in extra}
    assert [c.id for c in configs if c.runtime is None] == [c.id for c in matrix(attacks=DEFAULT, zoo="imagenet")]


def test_a_zoo_naming_an_unknown_runtime_is_a_zoo_error(monkeypatch):
    monkeypatch.setattr(mini, "RUNTIMES", {"pytorch": ("coreml",)}, raising=False)
    with pytest.raises(ZooError, match="zoo 'mini': unknown runtime 'coreml' for pytorch"):
        registry.deployments("mini")


@pytest.mark.slow
def test_pytorch_weights_on_litert_are_a_configuration_of_the_study():
    """A 6-part case runs end to end: converted by litert-torch, run by the project's LiteRT
    runtime, judged against the same PC model and samples as the lite interpreter's case."""
    from harness.attack.profiles import load_profile
    from harness.cache import ArtifactCache
    from harness.study import Study

    study = Study("mini", load_profile("default"), ArtifactCache(log=lambda m: None), log=lambda m: None)
    try:
        lite = study.evaluate(Configuration.parse("pytorch-mobilenet_v2-fgsm-float-litert-mobile"))
        native = study.evaluate(Configuration.parse("pytorch-mobilenet_v2-fgsm-float-mobile"))
    finally:
        study.close()
    assert lite["configuration"] == "pytorch-mobilenet_v2-fgsm-float-litert-mobile" and lite["runtime"] == "litert"
    assert native["runtime"] == "torch_lite" and native["configuration"] == "pytorch-mobilenet_v2-fgsm-float-mobile"
    assert lite["sample_ids"] == native["sample_ids"]
    assert lite["artifact_key"] != native["artifact_key"]
    assert lite["versions"]["converter"]["litert_torch"] == "0.10.0" and "litert" in lite["versions"]["runtime"]
    assert lite["agreement_with_pc"] == 1.0 and lite["max_abs_logit_diff"] < 1e-3
    assert lite["per_sample_success"] == native["per_sample_success"]  # float: the same classifier


@pytest.mark.slow
def test_executorch_cases_carry_delegation_and_agreement_with_the_other_runtimes():
    """An ExecuTorch case on this host: the .pte through the XNNPACK delegate, its versions and
    delegated operators recorded, and its logits compared with the same weights on the lite
    interpreter and on LiteRT, clean and adversarial (the report's numeric table)."""
    from harness.cache import ArtifactCache
    from harness.study import Study

    study = Study("mini", load_profile("default"), ArtifactCache(log=lambda m: None), log=lambda m: None)
    try:
        record = study.evaluate(Configuration.parse("pytorch-mobilenet_v2-fgsm-float-executorch-mobile"))
        native = study.evaluate(Configuration.parse("pytorch-mobilenet_v2-fgsm-float-mobile"))
    finally:
        study.close()
    assert record["runtime"] == "executorch" and record["versions"]["runtime"]["executorch"] == "1.5.1"
    assert record["versions"]["converter"]["executorch"] == "1.5.1"
    assert record["delegation"]["backend"] == "XnnpackBackend" and record["delegation"]["delegated_fraction"] > 0.9
    assert set(record["runtime_agreement"]) == {"torch_lite", "litert"}
    for other in ("torch_lite", "litert"):
        for which in ("clean", "adversarial"):
            numbers = record["runtime_agreement"][other][which]
            assert numbers["n"] == record["n_samples"] and numbers["prediction_agreement"] == 1.0
            assert 0 < numbers["max_abs_logit_diff"] < 1e-3  # float: the same classifier, not the same bits
    # symmetric: the lite interpreter's record holds the same numbers for ExecuTorch
    assert native["runtime_agreement"]["executorch"] == record["runtime_agreement"]["torch_lite"]
