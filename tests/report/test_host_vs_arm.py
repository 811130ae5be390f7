"""The arm64 platform in the report: the host-vs-ARM table, and PC comparisons on its sample subset."""

from __future__ import annotations

import copy
import json
import re

from harness.report import write_report
from harness.report.stats import compute_statistics, paired_rates

from .conftest import make_records, make_run_info

SUBSET = 40


def arm64_records(records: list[dict]) -> list[dict]:
    """An arm64 twin of every mobile record on the first SUBSET samples; int8 bit-exact, float not."""
    out = []
    for r in records:
        if r["platform"] != "mobile":
            continue
        a = copy.deepcopy(r)
        a["platform"] = "arm64"
        a["sample_ids"], a["per_sample_success"] = r["sample_ids"][:SUBSET], r["per_sample_success"][:SUBSET]
        a["n_samples"], a["success_rate"] = SUBSET, sum(a["per_sample_success"]) / SUBSET
        exact = r["quantization"] == "int8"
        diff = 0.0 if exact else 1.1e-5
        a.update(emulated=True, runtime_versions={"torch": "2.9.1+cpu"} if r["framework"] == "pytorch" else {},
                 host_runtime_versions={"torch": "2.14.1"} if r["framework"] == "pytorch" else {},
                 runtime_versions_differ=["torch"] if r["framework"] == "pytorch" else [],
                 transport={"emulated": True, "qemu": "10.0.2", "cpu_model": "cortex-a76", "host_cpu": "x86"},
                 host_vs_arm={"clean": {"prediction_agreement": 1.0, "max_abs_logit_diff": diff, "bit_exact": exact},
                              "adversarial": {"prediction_agreement": 1.0, "max_abs_logit_diff": diff,
                                              "bit_exact": exact},
                              "arm_seconds_per_image": 0.2, "host_seconds_per_image": 0.001})
        out.append(a)
    return out


def test_paired_rates_use_the_shared_samples_only():
    full = {"sample_ids": [1, 2, 3, 4], "per_sample_success": [True, True, False, False]}
    subset = {"sample_ids": [3, 4], "per_sample_success": [True, False]}
    assert paired_rates(subset, full) == (0.5, 0.0)
    assert paired_rates(full, full) == (0.5, 0.5)


def test_the_report_has_a_host_vs_arm_table_and_compares_arm64_with_the_pc_on_its_subset(tmp_path):
    records = make_records()
    records += arm64_records(records)
    paths = write_report(records, make_run_info(), tmp_path / "run")
    page = paths.report_html.read_text()
    section = page[page.index('id="host-vs-arm"'):]
    section = section[:section.index("<h2", 10)]
    assert section.count("<tr>") == 36 + 1  # one row per arm64 configuration, plus the header
    assert "qemu 10.0.2 emulating cortex-a76" in section and "torch 2.9.1+cpu vs host 2.14.1" in section
    rows = re.findall(r"<tr>(.*?)</tr>", section)[1:]
    assert all(("-int8-arm64" in row) == (">yes<" in row) for row in rows)
    assert "(emulated)" in section
    stats = json.loads(paths.statistics_json.read_text())
    arm_vs_pc = [c for c in stats["platform_comparisons"] if c["platform"] == "arm64"]
    assert len(arm_vs_pc) == 36 and all(c["n_paired"] == SUBSET for c in arm_vs_pc)
    by = {r["config_id"] if "config_id" in r else "-".join(r[k] for k in ("framework", "model", "attack",
                                                                          "quantization", "platform")): r
          for r in records}
    one = next(c for c in arm_vs_pc if c["reference_quantization"] == "float")
    pc = by[one["reference_id"]]
    assert one["reference_success_rate"] == sum(pc["per_sample_success"][:SUBSET]) / SUBSET
    assert "rq2" in stats and "arm64" in stats["rq2"]


def test_no_arm64_records_no_table(tmp_path):
    paths = write_report(make_records(), make_run_info(), tmp_path / "run")
    assert 'id="host-vs-arm"' not in paths.report_html.read_text()
    assert compute_statistics(make_records())["platform_comparisons"]
