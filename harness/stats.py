"""The one statistics kernel of the suite: the gates (:mod:`harness.metrics.gates`) and the
report (:mod:`harness.report.stats`) both take their tests and intervals from here.

Every function is a thin, checked wrapper around SciPy:

* :func:`mcnemar_exact`: McNemar's exact test on paired boolean outcomes, the exact
  binomial test of the discordant pairs, ``binomtest(b, b + c, 0.5, alternative)``;
  two-sided for the report, ``alternative="greater"`` for the regression gate
  ("more samples fooled than before"). With no discordant pairs, p = 1.
* :func:`wilson_interval`: the two-sided Wilson score interval,
  ``binomtest(k, n).proportion_ci(method="wilson")``, kept around k/n and inside [0, 1].
* :func:`wilson_lower`: the one-sided lower Wilson bound at ``confidence`` (the lower end
  of the two-sided interval at ``2 * confidence - 1``); 0 for no samples.
* :func:`benjamini_hochberg`: ``false_discovery_control(method="bh")`` over the p-values
  that are present (``None`` entries pass through).

This module imports nothing from the harness, so any stage may use it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _sp

CONFIDENCE = 0.95
ALTERNATIVES = ("two-sided", "greater", "less")


@dataclass(frozen=True)
class McNemarResult:
    b: int  # first True (attack succeeded), second False
    c: int  # second True, first False
    n: int  # paired samples
    p_value: float

    def to_dict(self) -> dict:
        return asdict(self)


def mcnemar_exact(first: Sequence[bool], second: Sequence[bool], alternative: str = "two-sided") -> McNemarResult:
    """McNemar's exact test on paired boolean outcomes (same samples, same order).

    ``alternative="greater"`` asks whether ``first`` is True more often than ``second``
    on the discordant pairs (b > c)."""
    if alternative not in ALTERNATIVES:
        raise ValueError(f"mcnemar_exact: alternative must be one of {', '.join(ALTERNATIVES)}, got {alternative!r}")
    x = np.asarray(first, dtype=bool)
    y = np.asarray(second, dtype=bool)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"mcnemar_exact needs two 1-d sequences of equal length, got {x.shape} and {y.shape}")
    b = int(np.count_nonzero(x & ~y))
    c = int(np.count_nonzero(~x & y))
    p = 1.0 if b + c == 0 else float(_sp.binomtest(b, b + c, 0.5, alternative=alternative).pvalue)
    return McNemarResult(b, c, int(x.size), min(1.0, p))


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided Wilson score interval for k successes out of n (SciPy's binomtest)."""
    if isinstance(k, bool) or isinstance(n, bool) or int(k) != k or int(n) != n:
        raise ValueError(f"wilson_interval needs integer counts, got k={k!r}, n={n!r}")
    k, n = int(k), int(n)
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"wilson_interval needs 0 <= k <= n and n > 0, got k={k}, n={n}")
    ci = _sp.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = float(ci.low), float(ci.high)
    # Guard the last ulp: the interval must contain k/n and stay inside [0, 1].
    rate = k / n
    return max(0.0, min(low, rate)), min(1.0, max(high, rate))


def wilson_lower(successes: int, n: int, confidence: float) -> float:
    """One-sided lower Wilson bound of a proportion at ``confidence`` (0 for n = 0)."""
    if n == 0:
        return 0.0
    interval = _sp.binomtest(successes, n).proportion_ci(confidence_level=2 * confidence - 1, method="wilson")
    return float(interval.low)


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p for the entries that are not None, in input order."""
    present = [p for p in p_values if p is not None]
    if not present:
        return list(p_values)
    adjusted = iter(float(v) for v in _sp.false_discovery_control(present, method="bh"))
    return [None if p is None else min(1.0, next(adjusted)) for p in p_values]
