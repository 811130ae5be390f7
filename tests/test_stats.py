"""The one statistics kernel (harness.stats), checked value for value against SciPy and the
closed forms, and shown refusing broken input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from harness import stats
from harness.metrics import gates
from harness.report import records as report_records
from harness.report import stats as report_stats

FAST = settings(max_examples=80, deadline=None)


def test_gates_and_report_use_the_kernel_itself():
    assert gates.mcnemar_exact is stats.mcnemar_exact
    assert gates.wilson_lower is stats.wilson_lower
    assert gates.benjamini_hochberg is stats.benjamini_hochberg
    assert report_stats.mcnemar_exact is stats.mcnemar_exact
    assert report_stats.wilson_interval is stats.wilson_interval
    assert report_stats.benjamini_hochberg is stats.benjamini_hochberg
    assert report_records.wilson_interval is stats.wilson_interval


# -- McNemar ------------------------------------------------------------------------------------
def test_mcnemar_one_sided_is_the_exact_binomial_on_discordant_pairs():
    before = np.array([0] * 10 + [1] * 10, bool)
    now = before.copy()
    now[:7] = True   # 7 newly fooled
    now[10:12] = False  # 2 no longer fooled
    r = stats.mcnemar_exact(now, before, alternative="greater")
    assert (r.b, r.c, r.n) == (7, 2, 20)
    assert r.p_value == pytest.approx(sp.binom.sf(6, 9, 0.5))  # P(X >= 7), X ~ Bin(9, 1/2)
    assert stats.mcnemar_exact(before, before, alternative="greater").p_value == 1.0


@FAST
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=300),
       st.sampled_from(stats.ALTERNATIVES))
def test_mcnemar_is_scipys_binomtest_bit_for_bit(pairs, alternative):
    x = [a for a, _ in pairs]
    y = [b for _, b in pairs]
    r = stats.mcnemar_exact(x, y, alternative)
    b = sum(a and not c for a, c in pairs)
    c = sum(c and not a for a, c in pairs)
    expected = 1.0 if b + c == 0 else min(1.0, float(sp.binomtest(b, b + c, 0.5, alternative=alternative).pvalue))
    assert (r.b, r.c, r.n, r.p_value) == (b, c, len(pairs), expected)


@pytest.mark.parametrize("first, second, alternative", [
    ([True, False], [True], "two-sided"),            # unequal lengths
    ([[True]], [[True]], "two-sided"),                # not 1-d
    ([True], [False], "bigger"),                      # unknown alternative
])
def test_mcnemar_refuses_broken_input(first, second, alternative):
    with pytest.raises(ValueError, match="mcnemar_exact"):
        stats.mcnemar_exact(first, second, alternative)


# -- Wilson -------------------------------------------------------------------------------------
@FAST
@given(st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.sampled_from([0.9, 0.95, 0.99]))
def test_wilson_interval_is_scipys_interval_kept_around_the_rate(kn, confidence):
    k, n = kn
    ci = sp.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = stats.wilson_interval(k, n, confidence)
    assert low == max(0.0, min(float(ci.low), k / n))
    assert high == min(1.0, max(float(ci.high), k / n))


@pytest.mark.parametrize("k, n", [(-1, 5), (6, 5), (1, 0), (1.5, 3), (True, 3)])
def test_wilson_interval_refuses_bad_counts(k, n):
    with pytest.raises(ValueError, match="wilson_interval needs"):
        stats.wilson_interval(k, n)


def test_wilson_lower_is_scipys_one_sided_bound():
    low = stats.wilson_lower(300, 300, 0.95)
    assert 0.98 < low < 1.0
    assert low == float(sp.binomtest(300, 300).proportion_ci(0.90, method="wilson").low)
    assert stats.wilson_lower(60, 60, 0.95) < low  # fewer samples, a wider interval
    assert stats.wilson_lower(0, 0, 0.95) == 0.0


# -- Benjamini-Hochberg -------------------------------------------------------------------------
@FAST
@given(st.lists(st.one_of(st.none(), st.floats(0.0, 1.0)), max_size=40))
def test_benjamini_hochberg_is_scipys_with_gaps_kept(p_values):
    adjusted = stats.benjamini_hochberg(p_values)
    present = [p for p in p_values if p is not None]
    expected = iter(sp.false_discovery_control(present, method="bh")) if present else iter(())
    assert [a is None for a in adjusted] == [p is None for p in p_values]
    assert [a for a in adjusted if a is not None] == [min(1.0, float(q)) for q in expected]


def test_benjamini_hochberg_refuses_a_p_value_outside_the_unit_interval():
    with pytest.raises(ValueError):
        stats.benjamini_hochberg([0.5, 1.5])
