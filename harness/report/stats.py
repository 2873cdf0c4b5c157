"""The statistics compare uses to tell a real change from noise, in one place (asv's ``_stats.py`` is the model).

A two-sided Mann-Whitney U test (SciPy's: exact for small samples without ties, normal approximation otherwise),
the smallest p-value the exact test can reach for given sample sizes, and a robust measure of how widely a run's
values spread. With fewer than ``MIN_VALUES`` on a side there is no test: the result says "not enough data".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy.stats import mannwhitneyu

# One value per side can never be significant (the exact p is 1), so it gets a reason instead of a misleading p.
MIN_VALUES = 2


@dataclass(frozen=True)
class UTest:
    """A Mann-Whitney U test: ``u`` of the first sample and the two-sided ``p_value``, or why there is none."""

    u: float | None
    p_value: float | None
    reason: str = ""


def mann_whitney_u(a: list[float], b: list[float]) -> UTest:
    """Two-sided Mann-Whitney U test of ``a`` against ``b``."""
    if len(a) < MIN_VALUES or len(b) < MIN_VALUES:
        return UTest(None, None, f"not enough data: {len(a)} vs {len(b)} values (at least {MIN_VALUES} per side)")
    if len(set(a)) == 1 and set(a) == set(b):
        # All values equal on both sides: SciPy's variance is 0 and its p NaN; the sets are indistinguishable.
        return UTest(len(a) * len(b) / 2, 1.0)
    result = mannwhitneyu(a, b, alternative="two-sided", method="auto")
    return UTest(float(result.statistic), min(1.0, float(result.pvalue)))


def min_p_value(n1: int, n2: int) -> float:
    """The smallest two-sided p-value the exact test can give for these sizes (all of one side beats the other)."""
    return min(1.0, 2 / math.comb(n1 + n2, n1))


def relative_spread(values: list[float]) -> float:
    """Interquartile range over the median (0 for a single value)."""
    if len(values) < 2:
        return 0.0
    median = statistics.median(values)
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    if median == 0:
        return 0.0 if q3 == q1 else math.inf
    return (q3 - q1) / abs(median)
