"""A configuration whose model does not convert: the baseline records it, with the converter's
message, as an expected failure; reading such a baseline refuses malformed entries; a proposal
says when a model stops or starts converting."""

from __future__ import annotations

import json

import pytest

from harness.metrics import gates as gating
from tests.metrics.test_gates import HOST, _baseline, _fingerprint, _fooled, _record

FAILING = "pytorch-resnet50-fgsm-int8-executorch-mobile"
MESSAGE = "mini/pytorch/resnet50 int8 -> .pte: XNNPACK lowering failed: unsupported op"


def _records(failing=(FAILING,)):
    records = []
    for k, config in enumerate(HOST):
        if config.id in failing:
            records.append({"configuration": config.id, "platform": config.platform, "error": f"ConversionError: {MESSAGE}",
                            "conversion_failed": {"message": MESSAGE, "format": "pte", "quantization": "int8"}})
        else:
            records.append(_record(config.id, _fooled(0.3, seed=k)))
    return records


def test_a_proposal_records_the_conversion_failure_and_round_trips(tmp_path):
    baseline = _baseline(_records())
    assert baseline.conversion_failures == {FAILING: MESSAGE} and FAILING not in baseline.entries
    assert baseline.expects_conversion_failure(FAILING) == MESSAGE
    assert baseline.expects_conversion_failure(HOST[0].id) is None
    path = tmp_path / "mini-default.json"
    gating.write_baseline(path, baseline)
    loaded = gating.load_baseline(path, [c.id for c in HOST], "mini", "default")
    assert loaded.conversion_failures == {FAILING: MESSAGE} and set(loaded.entries) == set(baseline.entries)


def test_changes_say_when_a_model_stops_or_starts_converting():
    before, after = _baseline(_records(())), _baseline(_records())
    assert f"{FAILING}: conversion fails: {MESSAGE}" in gating.describe_changes(before, after)
    assert f"{FAILING}: now converts" in gating.describe_changes(after, before)
    assert not any(line.endswith(("added", "removed")) for line in gating.describe_changes(before, after))


@pytest.mark.parametrize("failures, message", [
    ({FAILING: ""}, "must map configuration ids to the converter's message"),
    ({FAILING: 3}, "must map configuration ids to the converter's message"),
    (["x"], "must map configuration ids"),
    ({"pytorch-resnet50-fgsm-int8-coreml-mobile": "m"}, "configurations this run cannot produce"),
    ({HOST[0].id: "m"}, "is both measured"),
])
def test_a_malformed_failure_list_is_refused(tmp_path, failures, message):
    raw = _baseline(_records(())).to_dict()
    raw["conversion_failures"] = failures
    path = tmp_path / "mini-default.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(gating.ThresholdError, match=message):
        gating.load_baseline(path, [c.id for c in HOST], "mini", "default")


def test_a_proposal_keeps_other_platforms_failures():
    old = _baseline(_records())
    device_only = [r for r in _records(()) if r["platform"] == "pc"]
    new = gating.propose(device_only, _fingerprint(), old, {"pc"}, "mini", "default", gating.Policy(), "t")
    assert new.conversion_failures == {FAILING: MESSAGE}  # a mobile case: not re-measured by a pc-only proposal
