"""The report's direct-vs-transferred comparison: paired by sample id on the same deployment."""

from __future__ import annotations

import copy

from harness.report import stats
from harness.report.writer import write_report
from tests.report.conftest import make_records, make_run_info


def _with_direct(records, attack="boundary", flip_every=3):
    """Add a direct-attack record for each mobile record of ``attack``: the transferred outcomes
    with every ``flip_every``-th failure turned into a success (a direct attack fools more)."""
    out = list(records)
    for rec in records:
        if rec["attack"] != attack or rec["platform"] == "pc":
            continue
        direct = copy.deepcopy(rec)
        direct["attack"] = "direct_" + attack
        outcomes = list(direct["per_sample_success"])
        failures = [i for i, o in enumerate(outcomes) if not o]
        for i in failures[::flip_every]:
            outcomes[i] = True
        direct["per_sample_success"] = outcomes
        direct["success_rate"] = sum(outcomes) / len(outcomes)
        direct["verdicts"] = []
        direct["direct"] = {"queries_median": 812.0, "seconds_per_sample": 0.25, "l2_median": 1.5,
                            "linf_median": 0.08}
        out.append(direct)
    return out


def test_direct_is_paired_with_the_same_attack_transferred_on_the_same_samples():
    records = _with_direct(make_records())
    rows = stats.compute_statistics(records)["direct_comparisons"]
    assert len(rows) == 12  # 2 frameworks x 3 models x (float, int8) mobile
    for row in rows:
        assert row["reference_attack"] == "boundary"
        assert row["reference_id"].replace("-boundary-", "-direct_boundary-") == row["config_id"]
        assert row["c"] == 0 and row["b"] > 0  # the direct attack only adds successes here
        assert row["difference"] > 0 and row["p_value"] < 1
        assert 0 <= row["p_value_bh"] <= 1


def test_direct_without_its_own_transfer_attack_uses_the_strongest_transfer_attack():
    records = [r for r in _with_direct(make_records()) if r["attack"] != "boundary"]
    rows = stats.compute_statistics(records)["direct_comparisons"]
    assert rows and all(row["reference_attack"] in ("fgsm", "bim") for row in rows)
    by_id = {f"{r['framework']}-{r['model']}-{r['attack']}-{r['quantization']}-{r['platform']}": r for r in records}
    for row in rows:
        ref = by_id[row["reference_id"]]
        others = [by_id[row["reference_id"].replace(f"-{ref['attack']}-", f"-{a}-")] for a in ("fgsm", "bim")]
        assert ref["success_rate"] == max(o["success_rate"] for o in others)


def test_direct_records_stay_out_of_the_transfer_comparisons():
    plain = stats.compute_statistics(make_records())
    mixed = stats.compute_statistics(_with_direct(make_records()))
    assert mixed["platform_comparisons"] == plain["platform_comparisons"]
    assert mixed["quantization_comparisons"] == plain["quantization_comparisons"]
    assert mixed["rq1"] == plain["rq1"]


def test_report_shows_the_direct_table(tmp_path):
    out = write_report(_with_direct(make_records()), make_run_info(), tmp_path / "run")
    html = out.report_html.read_text()
    assert 'id="direct-vs-transfer"' in html and "direct_boundary" in html
    assert "812" in html  # median queries
    plain = write_report(make_records(), make_run_info(), tmp_path / "plain")
    assert "direct-vs-transfer" not in plain.report_html.read_text()
