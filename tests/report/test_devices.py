"""The devices comparison of a run on several phones: agreement per configuration, and disagreement flagged."""

from __future__ import annotations

import copy
import json

from harness.report import write_report
from harness.report.devices import compare_devices
from tests.report.conftest import _record

import numpy as np


def _device_records(phones=("vphone0", "vphone1")) -> list[dict]:
    rng = np.random.default_rng(3)
    ids = list(range(20))
    out = []
    for q in ("float", "int8"):
        outcomes = rng.random(20) < 0.6
        for i, p in enumerate(phones):
            r = _record("tensorflow", "mobilenet_v2", "fgsm", q, "device", ids, outcomes, np.random.default_rng(9), 1.0)
            r.update(configuration=f"tensorflow-mobilenet_v2-fgsm-{q}-device", phone=p,
                     device={"serial": f"127.0.0.1:4000{i}", "serialno": p, "model": "Virtual", "abi": "arm64-v8a"},
                     per_sample_clean_agreement=[True] * 20, per_sample_adversarial_agreement=[True] * 20,
                     digests={"adversarial_logits": f"a{q}", "adversarial_predictions": f"p{q}",
                              "clean_logits": f"c{q}", "clean_predictions": f"cp{q}"})
            out.append(r)
    return out


def test_phones_that_measured_the_same_bits_are_identical():
    cmp = compare_devices(_device_records())
    assert cmp["phones"] == ["vphone0", "vphone1"]
    assert cmp["devices"]["vphone1"] == {"serial": "127.0.0.1:40001", "model": "Virtual", "abi": "arm64-v8a"}
    assert cmp["summary"] == {"configurations": 2, "compared": 2, "identical": 2, "disagree": []}
    row = cmp["configurations"][0]
    assert row["status"] == "identical" and row["agreement"] == 1.0 and row["differing_samples"] == 0
    assert row["logits_identical"] is True and row["predictions_identical"] is True
    assert set(row["phones"]) == {"vphone0", "vphone1"}


def test_a_phone_whose_outcome_differs_on_one_sample_is_flagged():
    records = _device_records()
    bad = next(r for r in records if r["phone"] == "vphone1" and r["quantization"] == "int8")
    bad["per_sample_success"][4] = not bad["per_sample_success"][4]
    bad["success_rate"] = float(np.mean(bad["per_sample_success"]))
    bad["digests"]["adversarial_predictions"] = "other"
    bad["digests"]["adversarial_logits"] = "other"
    cmp = compare_devices(records)
    assert cmp["summary"]["disagree"] == ["tensorflow-mobilenet_v2-fgsm-int8-device"]
    row = next(r for r in cmp["configurations"] if r["configuration"].endswith("int8-device"))
    assert row["status"] == "DISAGREE" and row["differing_samples"] == 1 and row["agreement"] == 19 / 20
    assert row["identical"] is False and row["logits_identical"] is False and row["predictions_identical"] is False


def test_logits_that_differ_with_the_same_outcomes_are_a_disagreement():
    records = _device_records()
    next(r for r in records if r["phone"] == "vphone0")["digests"]["clean_logits"] = "drift"
    cmp = compare_devices(records)
    row = cmp["configurations"][0]
    assert row["differing_samples"] == 0 and row["logits_identical"] is False and row["status"] == "DISAGREE"


def test_a_missing_or_failed_phone_is_named_not_compared():
    records = _device_records(("a", "b", "c"))
    records = [r for r in records if not (r["phone"] == "c" and r["quantization"] == "float")]
    failed = next(r for r in records if r["phone"] == "b" and r["quantization"] == "float")
    failed["error"] = "DeviceLost: cable pulled"
    cmp = compare_devices(records)
    row = next(r for r in cmp["configurations"] if r["configuration"].endswith("float-device"))
    assert row["missing"] == ["c"] and row["phones"]["b"] == {"error": "DeviceLost: cable pulled"}
    assert row["compared"] == 1 and row["status"] == "not compared"
    assert cmp["summary"]["compared"] == 1


def test_one_phone_is_no_comparison():
    assert compare_devices(_device_records(("only",))) is None
    assert compare_devices([]) is None


def test_the_report_has_the_devices_table_and_statistics(tmp_path, records, run_info):
    device = _device_records()
    bad = device[-1]
    bad["per_sample_success"][0] = not bad["per_sample_success"][0]
    primary = [copy.deepcopy(r) for r in device if r["phone"] == "vphone0"]
    paths = write_report(records + primary, run_info, tmp_path / "run", device_records=device)
    stats = json.loads(paths.statistics_json.read_text())
    assert stats["devices"]["summary"]["disagree"] == ["tensorflow-mobilenet_v2-fgsm-int8-device"]
    page = paths.report_html.read_text()
    assert '<h2 id="devices">Devices</h2>' in page and "success vphone1" in page and "DISAGREE" in page
    assert "1 of 2 configurations compared are identical" in page


def test_without_several_phones_the_report_has_no_devices_section(tmp_path, records, run_info):
    paths = write_report(records, run_info, tmp_path / "run")
    assert "devices" not in json.loads(paths.statistics_json.read_text())
    assert 'id="devices"' not in paths.report_html.read_text()
