"""Records of a framework's weights on another runtime (6-part ids) in the report stage."""

from __future__ import annotations

import copy

import pytest

from harness.report import RecordError, compare_platforms, compare_quantization, compute_statistics, config_id
from harness.report import validate_records, write_report
from tests.report.conftest import make_records, make_run_info


def with_litert(records: list[dict]) -> list[dict]:
    """The PyTorch mobile records again, as if run on LiteRT (outcomes flipped on a few samples)."""
    extra = []
    for r in records:
        if r["framework"] == "pytorch" and r["platform"] == "mobile":
            twin = copy.deepcopy(r)
            twin["runtime"] = "litert"
            twin["per_sample_success"] = [not s if i % 17 == 0 else s for i, s in enumerate(r["per_sample_success"])]
            twin["success_rate"] = sum(twin["per_sample_success"]) / len(twin["per_sample_success"])
            extra.append(twin)
    return records + extra


def test_a_non_native_runtime_gets_the_six_part_id_and_native_ones_keep_five():
    native = make_records()[0] | {"runtime": "litert"}
    assert native["framework"] == "tensorflow" and config_id(native).count("-") == 4
    lite = next(r for r in make_records() if r["framework"] == "pytorch" and r["platform"] == "mobile")
    assert config_id(lite | {"runtime": "torch_lite"}) == config_id(lite)
    assert config_id(lite | {"runtime": "litert"}) == (
        f"pytorch-{lite['model']}-{lite['attack']}-{lite['quantization']}-litert-mobile")
    checked = validate_records([lite | {"runtime": "litert", "configuration": config_id(lite | {"runtime": "litert"})}])
    assert checked[0]["config_id"].endswith("-litert-mobile")


def test_a_bad_runtime_field_names_the_configuration():
    lite = next(r for r in make_records() if r["framework"] == "pytorch" and r["platform"] == "mobile")
    with pytest.raises(RecordError, match=r"field 'runtime': must be None or a non-empty string without '-'"):
        validate_records([lite | {"runtime": "lite-rt"}])


def test_runtimes_of_the_same_weights_are_compared_apart(tmp_path):
    records = with_litert(make_records())
    quant = compare_quantization(records)
    lite = [c for c in quant if "-litert-" in c["config_id"]]
    assert len(lite) == 9 and all(c["reference_id"].endswith("-float-litert-mobile") for c in lite)
    platform = [c for c in compare_platforms(records) if "-litert-" in c["config_id"]]
    assert len(platform) == 18 and all(c["reference_id"].endswith("-float-pc") for c in platform)
    # the paper's questions stay framework-on-its-own-runtime: the LiteRT twins change nothing there
    assert compute_statistics(records)["rq1"] == compute_statistics(make_records())["rq1"]
    page = write_report(records, make_run_info(), tmp_path / "r", update_latest_link=False).report_html.read_text()
    assert "pytorch-mobilenet_v2-bim-int8-litert-mobile" in page
