"""The statistics compare uses to tell a real change from noise, in one place (asv's ``_stats.py`` is the model).

The unit of a sample is one independent repetition: a fio job's whole-run aggregate (one per repetition, per run),
one fault's recovery, one run's worst loss; never the per-second points inside one fio job, which are
autocorrelated (a slow second is followed by a slow second) and would make every p-value far too small.

Two sides are told apart by SciPy's two-sided Mann-Whitney U test (exact for small samples without ties, the normal
approximation otherwise). All the metrics of one comparison are one family: their p-values are adjusted together
with SciPy's Benjamini-Hochberg procedure (``false_discovery_control``), so a comparison of thirty metrics does not
find a "regression" by chance one night in two. When nothing changed (the case a nightly gate must not cry wolf in)
that procedure bounds the chance of any false finding by the level itself; metrics of one fio job move together
(bandwidth and IOPS are one measurement), the positive dependence under which the procedure holds. With fewer than
``MIN_VALUES`` on a side there is no test: the result says "not enough data".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy.stats import false_discovery_control, mannwhitneyu
from scipy.stats import t as student_t

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


def new_run_p_value(runs: list[float], new: float) -> float | None:
    """Two-sided p-value that a new run's value ``new`` comes from the runs ``runs`` came from: Student's t
    prediction for one new observation from a normal sample of ``k`` runs (``k - 1`` degrees of freedom), the test of
    a value against a prediction interval; on the log scale when all values are positive. None with fewer than two
    runs: one run says nothing of how runs vary.

    Repetitions inside one run share that run's conditions (the machine's load that minute), so a run whose
    repetitions all differ from the baseline's can still be an ordinary run: this is what tells the two apart."""
    k = len(runs)
    if k < MIN_VALUES:
        return None
    if min(runs) > 0 and new > 0:
        # A run on a busier minute of the machine is slower by a factor, not by an amount (its p99 latency 3x, its
        # IOPS a third): on the log scale that noise is symmetric and closer to the normal the test assumes.
        runs, new = [math.log(r) for r in runs], math.log(new)
    mean, sd = statistics.fmean(runs), statistics.stdev(runs)
    if sd == 0:
        return 1.0 if new == mean else 0.0
    t = abs(new - mean) / (sd * math.sqrt(1 + 1 / k))
    return min(1.0, float(2 * student_t.sf(t, k - 1)))


def adjust_p_values(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values of one family of tests, in the same order (empty in, empty out)."""
    if not p_values:
        return []
    return [min(1.0, float(p)) for p in false_discovery_control(p_values, method="bh")]


def min_p_value(n1: int, n2: int) -> float:
    """The smallest two-sided p-value the exact test can give for these sizes (all of one side beats the other)."""
    return min(1.0, 2 / math.comb(n1 + n2, n1))


def values_needed(alpha: float, family_size: int = 1) -> int:
    """Repetitions per side (equal sizes) with which the exact test can reach ``alpha / family_size``: what to
    tell a user whose comparison could never be significant. The best-ranked p of a family must clear that."""
    n = MIN_VALUES
    while min_p_value(n, n) >= alpha / max(1, family_size) and n < 100:
        n += 1
    return n


def quartiles(values: list[float]) -> tuple[float, float]:
    """The first and third quartiles (both the value itself for a single value)."""
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def relative_spread(values: list[float]) -> float:
    """Interquartile range over the median (0 for a single value)."""
    if len(values) < 2:
        return 0.0
    median = statistics.median(values)
    q1, q3 = quartiles(values)
    if median == 0:
        return 0.0 if q3 == q1 else math.inf
    return (q3 - q1) / abs(median)
