"""Change points in one metric's nightly history: where its level stepped, found once, at the night it happened.

The only module that imports ``ruptures``. PELT (``ruptures.Pelt``, least-squares cost: a shift of the mean) proposes
the change points on the history scaled by its noise; each proposal is then kept only when it is large enough to
matter and clearly outside the noise, the way Hunter/Otava filter E-divisive's candidates (a size threshold and a
significance rule), weakest first, re-judging the rest after each removal:

- the shift of the median between the neighbouring segments is at least ``MIN_RELATIVE_CHANGE`` of the level before,
  and at least ``Z_MIN`` robust standard deviations of the difference of the two medians (the noise from median
  absolute deviations, so one outlier or one step does not inflate it);
- a segment of fewer than ``MIN_SEGMENT`` nights in the middle of the history is an outlier (one bad night), not a
  level: both its edges are dropped. Only the newest nights may form a short segment: a change at the latest
  night must be seen the night it happens.

A change with fewer than ``MIN_HISTORY`` nights before it cannot be judged against the noise (there is none to
measure): it is reported, ``confirmed=False``, on the size threshold alone. The same history always gives the same
change points (no randomness), so a nightly verdict can be reproduced from the stored results.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np
import ruptures

# A step smaller than 10% of the level is noise on shared CI machines (the comparison's threshold, too).
MIN_RELATIVE_CHANGE = 0.10
# The shift of the two levels' medians in robust standard deviations of their difference. 5 because the noise itself
# is estimated from a short history: simulated nights of pure 5% noise then raise a confirmed change for the worse at
# the latest night about once in 600 histories of 6 nights and almost never from 10 nights on, while a 40% step is
# confirmed at its night in about 7 of 10 histories of 10 nights (and later, as soon as it is clear, in the rest).
Z_MIN = 5.0
MIN_SEGMENT = 3  # nights a level must last, in the middle of the history, to be a level and not an outlier
MIN_HISTORY = 5  # nights before a change needed to measure the noise it is judged against
# PELT's cost of one more change point, per log(nights), in units of the noise variance: BIC's 2 plus a margin,
# since the noise is estimated from the same short history. The filter above has the last word anyway.
PENALTY_PER_LOG_N = 3.0
_MAD_TO_SIGMA = 1.4826  # a median absolute deviation times this estimates the standard deviation of normal noise


@dataclass(frozen=True)
class ChangePoint:
    """A step in a history: ``index`` is the first value of the new level."""

    index: int
    before: float  # median of the segment before the change
    after: float  # median of the segment after it
    z: float  # the shift in robust standard deviations of the noise (inf: no noise at all)
    confirmed: bool  # enough nights before it to judge it against the noise; else judged by size alone

    @property
    def change_pct(self) -> float | None:
        """Relative change of the level, + = larger value; None when the level before was 0."""
        return None if self.before == 0 else 100 * (self.after - self.before) / abs(self.before)


def _noise_floor(values: np.ndarray) -> float:
    """The smallest noise scale assumed: a step of MIN_RELATIVE_CHANGE is then at most Z_MIN of it, so a perfectly
    flat history (all values equal) does not make a 1% wiggle a change point."""
    level = float(np.median(np.abs(values)))
    return max(MIN_RELATIVE_CHANGE * level / Z_MIN, 1e-12)


def noise_scale(values: list[float]) -> float:
    """Robust night-to-night noise: the MAD of successive differences / sqrt(2), which a single step barely moves."""
    x = np.asarray(values, dtype=float)
    floor = _noise_floor(x)
    if len(x) < MIN_HISTORY + 1:
        return floor
    diffs = np.diff(x)
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    return max(_MAD_TO_SIGMA * mad / math.sqrt(2), floor)


def _segment_noise(left: list[float], right: list[float], fallback: float) -> float:
    """Pooled robust noise of the segments of at least MIN_SEGMENT nights around their own medians (the step itself
    excluded); a shorter segment is left out: around its own median its residuals are near 0 by construction."""
    residuals = [v - statistics.median(seg) for seg in (left, right) if len(seg) >= MIN_SEGMENT for v in seg]
    if len(residuals) < MIN_HISTORY + 1:
        return fallback
    mad = statistics.median(abs(r) for r in residuals)
    return max(_MAD_TO_SIGMA * mad, fallback)


def _median_variance(n: int) -> float:
    """Variance of the median of n values, in units of the noise variance (pi/2n for large n; 1 for one value)."""
    return 1.0 if n == 1 else math.pi / (2 * n)


def _candidates(x: np.ndarray, sigma: float) -> list[int]:
    signal = (x / sigma).reshape(-1, 1)
    penalty = PENALTY_PER_LOG_N * max(math.log(len(x)), 1.0)
    ends: list[int] = ruptures.Pelt(model="l2", min_size=1, jump=1).fit(signal).predict(pen=penalty)
    return [int(e) for e in ends[:-1]]  # ruptures ends the list with len(x)


def _judge(
    x: list[float], kept: list[int], k: int, *, floor: float, noise: float, min_shift: float
) -> ChangePoint | None:
    """The k-th kept boundary as a change point, or None when it does not pass the rules of the module docstring."""
    start = kept[k - 1] if k > 0 else 0
    end = kept[k + 1] if k + 1 < len(kept) else len(x)
    left, right = x[start : kept[k]], x[kept[k] : end]
    at_the_end = end == len(x)
    if len(right) < MIN_SEGMENT and not at_the_end:
        return None  # a short-lived level in the middle: an outlier
    if len(left) < MIN_SEGMENT and start > 0:
        return None
    before, after = statistics.median(left), statistics.median(right)
    shift = abs(after - before)
    if shift == 0 or shift < min_shift or (before != 0 and shift / abs(before) < MIN_RELATIVE_CHANGE):
        return None
    confirmed = len(left) >= MIN_HISTORY
    if confirmed:
        # The larger of two estimates: a MAD of a few values around their own medians often shows far too little
        # noise, while successive differences (which the step itself barely moves) see the whole history's.
        sigma = max(_segment_noise(left, right, floor), noise)
        # The shift of two medians, each uncertain: a level that lasted many nights is judged more surely than one.
        z = shift / (sigma * math.sqrt(_median_variance(len(left)) + _median_variance(len(right))))
    else:
        z = shift / floor
    if z < Z_MIN:
        return None
    return ChangePoint(index=kept[k], before=float(before), after=float(after), z=float(z), confirmed=confirmed)


def detect(values: list[float], *, min_shift: float = 0.0) -> list[ChangePoint]:
    """The change points of ``values`` (one per night, oldest first), in order.

    ``min_shift``: the smallest absolute shift that can matter, in the values' unit (times below a second jitter by
    tenths on any machine, whatever their relative change).
    """
    if len(values) < 2:
        return []
    x = np.asarray(values, dtype=float)
    floor = _noise_floor(x)
    noise = noise_scale(values)
    kept = _candidates(x, noise)
    while True:
        judged = [_judge(values, kept, k, floor=floor, noise=noise, min_shift=min_shift) for k in range(len(kept))]
        failing = [k for k, cp in enumerate(judged) if cp is None]
        if not failing:
            return [cp for cp in judged if cp is not None]
        # Drop one boundary at a time (the one with the smallest shift): its neighbours' segments change with it.
        weakest = min(failing, key=lambda k: _shift(values, kept, k))
        del kept[weakest]


def _shift(x: list[float], kept: list[int], k: int) -> float:
    start = kept[k - 1] if k > 0 else 0
    end = kept[k + 1] if k + 1 < len(kept) else len(x)
    return abs(statistics.median(x[kept[k] : end]) - statistics.median(x[start : kept[k]]))
