"""The generated RQ answers carry the computed numbers and their wording follows them."""

from __future__ import annotations

from harness.report.stats import compute_statistics, format_a, format_p, format_pp

from .conftest import make_records


def test_answers_contain_the_computed_numbers(records):
    s = compute_statistics(records)
    for rq in ("rq1", "rq2", "rq3"):
        summary = s[rq]["mobile"]
        text = s["answers"][rq]
        assert format_p(summary["wilcoxon"]["p_value"]) in text
        assert format_a(summary["a"]) in text
        assert f"({summary['a_magnitude']})" in text
        assert f"{summary['n_x_lower']} of {summary['n_pairs']}" in text
        assert format_pp(summary["median_difference"]) in text
        assert summary["largest"]["x_id"] in text and summary["largest"]["y_id"] in text


def test_rq3_wording_follows_a_decrease():
    text = compute_statistics(make_records(seed=1, int8_effect=-0.2))["answers"]["rq3"]
    assert "lowered the attack success rate in 18 of 18" in text
    assert "statistically significant" in text and "more robust" in text
    assert "less robust" not in text


def test_rq3_wording_follows_an_increase():
    s = compute_statistics(make_records(seed=2, int8_effect=0.3))
    summary, text = s["rq3"]["mobile"], s["answers"]["rq3"]
    assert summary["n_x_higher"] == 18 and summary["median_difference"] > 0
    assert f"raised it in {summary['n_x_higher']}" in text
    assert "less robust" in text and "more robust" not in text


def test_rq3_wording_without_a_difference():
    records = make_records(seed=3)
    # int8 outcomes identical to float: every paired difference is zero
    float_by_key = {(r["framework"], r["model"], r["attack"]): r for r in records
                    if r["platform"] == "mobile" and r["quantization"] == "float"}
    for r in records:
        if r["quantization"] == "int8":
            twin = float_by_key[(r["framework"], r["model"], r["attack"])]
            r["per_sample_success"] = list(twin["per_sample_success"])
            r["success_rate"] = twin["success_rate"]
    s = compute_statistics(records)
    text = s["answers"]["rq3"]
    assert s["rq3"]["mobile"]["wilcoxon"]["status"] == "all_zero"
    assert "all 18 paired differences are zero" in text.lower()
    assert "Largest gap" not in text
    assert "not statistically significant" in text
    assert "left it unchanged in 18" in text
