"""The comparison's types: its rules, the sides compared, each metric's change (``MetricDelta``) and the whole
``Comparison``; what the judge builds and the text, HTML and CI outputs read."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from harness.errors import UsageError
from harness.report.compare.facts import FACTS, Difference, RunRef
from harness.results.model import Status

THRESHOLD = 0.10  # a change smaller than 10% of the baseline is noise on shared CI machines
# Level of the Benjamini-Hochberg adjusted p-values over all metrics of one comparison: asv's strict 0.002. When
# nothing changed, the chance that a comparison reports any regression is then at most 0.2%: a nightly gate cries
# wolf less than once a year. The price: 7 or more values per side (repeat: 7, or pooled nights).
ALPHA = 0.002


@dataclass(frozen=True)
class Rules:
    """How a comparison judges: see ``harness.report.compare.judge``."""

    threshold: float = THRESHOLD
    alpha: float = ALPHA
    fail_on_threshold_only: bool = False  # a worse metric with one value per side fails too
    allow_different: frozenset[str] = frozenset()  # FACTS names whose differences are accepted

    def __post_init__(self) -> None:
        unknown = sorted(self.allow_different - set(FACTS))
        if unknown:
            raise UsageError(f"allow_different: unknown fact(s) {', '.join(unknown)}; known: {', '.join(FACTS)}")
        if not 0 < self.alpha < 1 or self.threshold < 0:
            raise UsageError(f"alpha must be in (0, 1) and threshold >= 0 (got {self.alpha:g}, {self.threshold:g})")


class Change(StrEnum):
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    UNCHANGED = "unchanged"
    INCONCLUSIVE = "inconclusive"  # larger than the threshold, but not statistically supported
    UNSTABLE = "unstable"  # the values spread too much to say anything
    THRESHOLD_ONLY = "threshold only"  # one value on a side: no test possible, the size alone is shown
    NOT_COMPARABLE = "not comparable"  # what was measured differs (settings, versions, node)
    NEW = "new"  # only in the candidate
    MISSING = "missing"  # only in the baseline


# A run's verdict is never PARTIAL (``RunResult.overall`` makes a PARTIAL check FAILED); ranked below FAILED all the
# same, so a result file that says so by hand is compared, not refused.
VERDICT_RANK = {Status.PASSED: 0, Status.SKIPPED: 1, Status.PARTIAL: 2, Status.FAILED: 3, Status.ERROR: 4}


@dataclass(frozen=True)
class Side:
    """The runs of one side of a comparison; their repetitions are pooled into one sample per metric."""

    label: str
    runs: list[RunRef]

    @property
    def verdict(self) -> Status:
        return max((r.verdict for r in self.runs), key=VERDICT_RANK.__getitem__)


@dataclass(frozen=True)
class Skipped:
    """An input left out of the comparison, and why."""

    path: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class MetricDelta:
    """One metric of one candidate side against the baseline (built with keywords only: it has many fields)."""

    group: str  # "fio", "recovery", "WAL replay", "durability", "verdict"
    metric: str
    unit: str
    run_index: int  # index into Comparison.sides (>= 1)
    baseline: str  # formatted for people: median and count
    candidate: str
    change_pct: float | None  # relative change of the median, + = larger value
    worse_pct: float | None  # the same, signed so that + = worse (less throughput, more time, more loss)
    p_value: float | None  # the Mann-Whitney U test's own
    status: Change
    note: str = ""
    p_adjusted: float | None = None  # adjusted over all tested metrics of this side's comparison
    baseline_median: float | None = None
    candidate_median: float | None = None
    n_baseline: int = 0
    n_candidate: int = 0
    per_run: bool = False  # the samples are the runs' medians (both sides hold several runs), not repetitions
    p_runs: float | None = None  # one run against the other side's several runs: Student's t prediction test
    differences: tuple[Difference, ...] = ()  # why it is not comparable (the note names them for people)

    @property
    def worse(self) -> bool:
        return self.worse_pct is not None and self.worse_pct > 0


@dataclass(frozen=True)
class Comparison:
    sides: list[Side]  # sides[0] is the baseline
    deltas: list[MetricDelta]
    notes: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    kind: str = "same setup"  # or "storage comparison"
    differences: list[str] = field(default_factory=list)  # what differs between the runs (beyond storage)
    threshold: float = THRESHOLD
    alpha: float = ALPHA
    fail_on_threshold_only: bool = False

    @property
    def runs(self) -> list[RunRef]:
        return [r for s in self.sides for r in s.runs]

    @property
    def regressions(self) -> list[MetricDelta]:
        return [d for d in self.deltas if d.status is Change.REGRESSION]

    @property
    def failures(self) -> list[MetricDelta]:
        """What fails the comparison: regressions, and worse threshold-only metrics when the user asked for it."""
        extra = [d for d in self.deltas if d.status is Change.THRESHOLD_ONLY and d.worse and self._beyond(d)]
        return self.regressions + (extra if self.fail_on_threshold_only else [])

    @property
    def regressed(self) -> bool:
        return bool(self.failures)

    def _beyond(self, d: MetricDelta) -> bool:
        return d.worse_pct is not None and d.worse_pct > 100 * self.threshold
