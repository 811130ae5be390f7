"""Statistics of the report stage: intervals, paired tests, effect sizes, RQ summaries."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.report import stats
from harness.report.stats import (a_magnitude, compare_platforms, compare_quantization, mcnemar_exact,
                                  paired_vargha_delaney_a, paired_wilcoxon, vargha_delaney_a, wilson_interval)


FAST = settings(max_examples=60, deadline=None)


# ----------------------------------------------------------------------------- Wilson
@pytest.mark.parametrize("k, n, low, high", [
    # Newcombe (1998), Statistics in Medicine 17:857-872, Table II, method 3 (Wilson score, no correction)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_published_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=5e-5)
    assert hi == pytest.approx(high, abs=5e-5)


def test_wilson_matches_closed_form():
    k, n, z = 81, 263, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson_interval(k, n) == pytest.approx((centre - half, centre + half), abs=1e-12)


@pytest.mark.parametrize("k, n", [(-1, 10), (11, 10), (0, 0), (1.5, 10)])
def test_wilson_rejects_bad_counts(k, n):
    with pytest.raises(ValueError):
        wilson_interval(k, n)


@FAST
@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_estimate_within_unit_interval(kn):
    k, n = kn
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert lo < hi


@FAST
@given(st.integers(1, 20), st.integers(1, 20), st.integers(2, 50))
def test_wilson_narrows_as_n_grows_at_fixed_p(num, extra, scale):
    den = num + extra  # p = num / den strictly inside (0, 1)
    lo1, hi1 = wilson_interval(num, den)
    lo2, hi2 = wilson_interval(num * scale, den * scale)
    assert hi2 - lo2 < hi1 - lo1


# ----------------------------------------------------------------------------- McNemar
def test_mcnemar_known_examples():
    # b = 0, c = 5: two-sided exact p = 2 * 0.5**5
    r = mcnemar_exact([False] * 5 + [True] * 3, [True] * 5 + [True] * 3)
    assert (r.b, r.c, r.n) == (0, 5, 8)
    assert r.p_value == pytest.approx(0.0625)
    # b = 1, c = 6: p = 2 * (1 + 7) / 2**7
    x = [True] + [False] * 6 + [True, False]
    y = [False] + [True] * 6 + [True, False]
    r = mcnemar_exact(x, y)
    assert (r.b, r.c) == (1, 6)
    assert r.p_value == pytest.approx(0.125)


def test_mcnemar_all_concordant_is_one():
    r = mcnemar_exact([True, False, True], [True, False, True])
    assert (r.b, r.c, r.p_value) == (0, 0, 1.0)


def test_mcnemar_rejects_unequal_lengths():
    with pytest.raises(ValueError):
        mcnemar_exact([True, False], [True])


@FAST
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=200))
def test_mcnemar_swap_is_symmetric(pairs):
    x = [a for a, _ in pairs]
    y = [b for _, b in pairs]
    r1, r2 = mcnemar_exact(x, y), mcnemar_exact(y, x)
    assert (r1.b, r1.c) == (r2.c, r2.b)
    assert r1.p_value == pytest.approx(r2.p_value, rel=1e-12)
    assert 0.0 < r1.p_value <= 1.0


def test_mcnemar_records_pairs_by_sample_id():
    a = {"sample_ids": [1, 2, 3, 4], "per_sample_success": [True, True, False, False]}
    b = {"sample_ids": [4, 3, 2, 9], "per_sample_success": [True, False, False, True]}
    # shared ids 2, 3, 4: a = T, F, F; b = F, F, T -> b=1, c=1
    r = stats.mcnemar_records(a, b)
    assert (r.n, r.b, r.c) == (3, 1, 1)
    assert stats.mcnemar_records(a, {"sample_ids": [7], "per_sample_success": [True]}) is None


# ----------------------------------------------------------------------------- Wilcoxon wrapper
def test_wilcoxon_all_zero_differences_is_clear_result():
    r = paired_wilcoxon([0.2, 0.5, 0.7], [0.2, 0.5, 0.7])
    assert r.status == "all_zero"
    assert r.p_value == 1.0 and r.n == 3 and r.n_nonzero == 0
    assert "zero" in r.note


@pytest.mark.parametrize("x, y", [([], []), ([0.3], [0.1])])
def test_wilcoxon_too_few_pairs(x, y):
    r = paired_wilcoxon(x, y)
    assert r.status == "too_few"
    assert r.p_value is None and r.n == len(x)


def test_wilcoxon_ok_reports_nonzero_count_and_direction_free_p():
    x = [0.5, 0.6, 0.7, 0.8, 0.9, 0.4]
    y = [0.4, 0.5, 0.6, 0.7, 0.9, 0.2]
    r = paired_wilcoxon(x, y)
    assert r.status == "ok" and r.n == 6 and r.n_nonzero == 5
    assert 0 < r.p_value <= 1
    assert paired_wilcoxon(y, x).p_value == pytest.approx(r.p_value)


def test_wilcoxon_rejects_bad_input():
    with pytest.raises(ValueError):
        paired_wilcoxon([0.1, 0.2], [0.1])
    with pytest.raises(ValueError):
        paired_wilcoxon([0.1, float("nan")], [0.1, 0.2])


# ----------------------------------------------------------------------------- Vargha-Delaney
def test_vargha_delaney_known_values():
    assert vargha_delaney_a([3, 4], [1, 2]) == 1.0
    assert vargha_delaney_a([1, 2], [3, 4]) == 0.0
    # pairs: (1,1) tie, (1,2) <, (3,1) >, (3,2) > -> (2 + 0.5) / 4
    assert vargha_delaney_a([1, 3], [1, 2]) == pytest.approx(0.625)
    assert paired_vargha_delaney_a([1, 3, 2], [1, 2, 5]) == pytest.approx(0.5)


def test_a_magnitude_thresholds():
    assert [a_magnitude(a) for a in (0.5, 0.559, 0.56, 0.639, 0.64, 0.709, 0.71, 1.0)] == [
        "negligible", "negligible", "small", "small", "medium", "medium", "large", "large"]
    assert a_magnitude(0.3) == a_magnitude(0.7) == "medium"
    with pytest.raises(ValueError):
        a_magnitude(1.2)


rates = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=30)


@FAST
@given(rates, rates)
def test_vargha_delaney_antisymmetric_and_bounded(x, y):
    a = vargha_delaney_a(x, y)
    assert 0.0 <= a <= 1.0
    assert vargha_delaney_a(y, x) == pytest.approx(1.0 - a, abs=1e-12)


@FAST
@given(rates)
def test_vargha_delaney_self_is_half(x):
    assert vargha_delaney_a(x, x) == pytest.approx(0.5, abs=1e-12)
    assert paired_vargha_delaney_a(x, x) == 0.5


@FAST
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=30))
def test_paired_vargha_delaney_antisymmetric(pairs):
    x = [a for a, _ in pairs]
    y = [b for _, b in pairs]
    assert paired_vargha_delaney_a(x, y) == pytest.approx(1.0 - paired_vargha_delaney_a(y, x), abs=1e-12)


@FAST
@given(rates, st.floats(0.001, 1))
def test_vargha_delaney_shift_dominates(x, shift):
    assert vargha_delaney_a([v + 2 for v in x], x) == 1.0


def test_vargha_delaney_rejects_empty():
    with pytest.raises(ValueError):
        vargha_delaney_a([], [0.1])


# ----------------------------------------------------------------------------- comparisons and RQs
def test_comparisons_pair_the_right_configurations(records):
    plat = compare_platforms(records)
    quant = compare_quantization(records)
    # 36 mobile configurations, each against the PC float model of its framework/model/attack
    assert len(plat) == 36
    assert all(c["reference_id"].endswith("-float-pc") for c in plat)
    assert {c["reference_id"].rsplit("-", 2)[0] for c in plat} == {c["config_id"].rsplit("-", 2)[0] for c in plat}
    # 18 int8 mobile configurations against mobile float
    assert len(quant) == 18
    assert all(c["config_id"].endswith("-int8-mobile") and c["reference_id"].endswith("-float-mobile")
               for c in quant)
    for c in quant:
        assert c["n_paired"] == 120
        assert c["difference"] == pytest.approx(c["success_rate"] - c["reference_success_rate"])
        assert c["p_value_bh"] >= c["p_value"]


def test_rq3_counts_and_tests(records):
    s = stats.rq3_summary(records)
    assert s["n_pairs"] == 18
    # the synthetic int8 models only lose successes
    assert s["n_x_higher"] == 0 and s["n_x_lower"] + s["n_equal"] == 18
    assert s["median_difference"] < 0
    assert s["wilcoxon"]["p_value"] < 0.001
    assert s["a"] < 0.5 and s["a_matched"] <= 0.5 * s["n_equal"] / 18 + 1e-12
    assert set(s["by_attack"]) == {"fgsm", "bim", "boundary"}


def test_rq1_and_rq2_pair_counts(records):
    assert stats.rq1_summary(records)["n_pairs"] == 18
    rq2 = stats.rq2_summary(records)
    assert rq2["n_pairs"] == 18
    assert all(p["y_id"].endswith("-float-pc") and p["x_id"].endswith("-float-mobile") for p in rq2["pairs"])
    assert rq2["int8_vs_pc_float"]["n_pairs"] == 18


def test_summaries_without_pairs_do_not_fail(records):
    pc_only = [r for r in records if r["platform"] == "pc"]
    s = stats.rq3_summary(pc_only)
    assert s["n_pairs"] == 0 and s["wilcoxon"]["status"] == "too_few" and s["a"] is None
    assert "no int8 configuration" in stats.answer_rq3(s)
    assert stats.compute_statistics(pc_only)["answers"]["rq1"].startswith("RQ1: no mobile")


def test_number_formats_used_in_answers():
    assert stats.format_p(0.03049) == "0.030"
    assert stats.format_p(7.62939453125e-06) == "7.6e-06"
    assert stats.format_p(None) == "n/a"
    assert stats.format_pp(-0.0342) == "-3.4 pp"
    assert stats.format_pp(0.125) == "+12.5 pp"
    assert stats.format_pp(-0.0001) == "0.0 pp"
    assert stats.format_a(0.608) == "0.608"
    assert stats.format_pct(0.7427) == "74.3%"
