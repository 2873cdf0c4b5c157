"""Section 7: how often `harness compare` calls identical real runs a regression: its false-alarm rate.

Nothing changes between the runs: one fio-only scenario (randwrite-4k, ``repeat`` short repetitions per run, no
Prometheus) run ``n + baseline_runs`` times in a row by `harness run`. Each run from the ``baseline_runs + 1``-th on
is then compared, with compare's defaults, the two ways a run is compared:

- the nightly gate's: with the ``baseline_runs`` runs before it, pooled (what `harness nightly` runs:
  ``harness compare --baseline R1 R2 R3 --candidate R4``);
- against the one run before it (``harness compare R3 R4``).

Each side is whole runs, so each comparison meets the machine's run-to-run noise (another job on the cores that
minute), and each can fail: the smallest p-value its sizes allow is far below the level. Every regression found is
therefore a false alarm (and every improvement its mirror image, counted beside it). The comparisons share runs (a
sliding window, as the nightly gate's nights do): the rate is per comparison, not per independent trial. Compare's
stated bound is ``ALPHA`` (0.2%) per comparison; the interval is the exact (Clopper-Pearson) 95% one.

    python -m benchmarks.false_alarms [--n 10] [--repeat 8]   # this section alone
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scipy.stats import binomtest

from benchmarks.common import ROOT, fmt_spread, spread
from harness.nightly import BASELINE_RUNS
from harness.report.compare import ALPHA, Change, Comparison, compare_sides
from harness.report.stats import mann_whitney_u
from harness.results.model import RunResult
from harness.results.store import atomic_write_text, load_result

NAME = "false-alarms"
FORMS = {
    "nightly": "the run against the {k} before it, pooled (the nightly gate)",
    "pair": "the run against the one before it (`harness compare A B`)",
}


def _scenario(repeat: int, runtime: str, size: str) -> str:
    job = f"{{profile: randwrite-4k, runtime: {runtime}, size: {size}, repeat: {repeat}}}"
    return (
        f"name: {NAME}\nduration: 1s\nstorage: {{backend: local}}\nloads: {{tsdb: null, fio: [{job}]}}\n"
        "checks: {history_survival: {enabled: false}}\n"
    )


def harness_run(work: Path, scenario: Path) -> tuple[Path, float]:
    """One `harness run` of the scenario: its run directory and wall time."""
    reports = work / "reports"
    before = set(reports.glob(f"{NAME}/*"))
    argv = [sys.executable, "-m", "harness.cli", "run", str(scenario), "--reports", str(reports)]
    argv += ["--workdir", str(work), "--no-report", "--skip-doctor"]
    t0 = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    wall = time.monotonic() - t0
    new = sorted(set(reports.glob(f"{NAME}/*")) - before)
    if done.returncode != 0 or len(new) != 1:
        raise RuntimeError(f"harness run exited {done.returncode}: {done.stderr[-800:]}")
    return new[0], wall


def smallest_p(n_baseline: int, n_candidate: int) -> float:
    """The smallest p-value compare's test (SciPy's Mann-Whitney U, as compare calls it) gives these sizes."""
    p = mann_whitney_u([float(i) for i in range(n_baseline)], [float(-1 - i) for i in range(n_candidate)]).p_value
    return 1.0 if p is None else p


def judged(candidate: str, comparison: Comparison) -> dict[str, object]:
    tested = [d for d in comparison.deltas if d.p_adjusted is not None]
    return {
        "candidate": candidate,
        "regressed": comparison.regressed,
        # The mirror image: a significant change for the better of identical runs is as false as a regression.
        "improved": any(d.status is Change.IMPROVEMENT for d in comparison.deltas),
        "regressions": [
            {"metric": d.metric, "worse_pct": d.worse_pct, "p_adjusted": d.p_adjusted} for d in comparison.regressions
        ],
        "smallest_p_adjusted": min((d.p_adjusted for d in tested if d.p_adjusted is not None), default=None),
        "statuses": {d.metric: d.status.value for d in comparison.deltas},
    }


def rate(found: int, n: int) -> dict[str, object]:
    """The false-alarm rate with its exact (Clopper-Pearson) 95% interval."""
    if n == 0:
        return {"false_alarms": 0, "comparisons": 0, "rate": None, "ci95": None}
    ci = binomtest(found, n).proportion_ci(confidence_level=0.95, method="exact")
    return {"false_alarms": found, "comparisons": n, "rate": found / n, "ci95": [float(ci.low), float(ci.high)]}


def _median_iops(result: RunResult) -> float:
    return statistics.median(j.write.iops for j in result.fio if j.write is not None)


def run(
    work: Path,
    n: int,
    *,
    repeat: int = 8,
    runtime: str = "500ms",
    size: str = "16Mi",
    baseline_runs: int = BASELINE_RUNS,
) -> dict[str, object]:
    if n < 1 or baseline_runs < 1:
        raise ValueError(f"n and baseline_runs must be at least 1 (got {n}, {baseline_runs})")
    scenario = work / f"{NAME}.yaml"
    scenario.write_text(_scenario(repeat, runtime, size))
    runs: list[tuple[Path, RunResult]] = []
    walls: list[float] = []
    for _ in range(n + baseline_runs):
        path, wall = harness_run(work, scenario)
        runs.append((path, load_result(path)))
        walls.append(wall)
    comparisons: dict[str, list[dict[str, object]]] = {form: [] for form in FORMS}
    for i in range(baseline_runs, len(runs)):
        name = runs[i][0].name
        comparisons["nightly"].append(judged(name, compare_sides([runs[i - baseline_runs : i], [runs[i]]])))
        comparisons["pair"].append(judged(name, compare_sides([[runs[i - 1]], [runs[i]]])))
    return {
        "n": n,
        "repeat": repeat,
        "runtime": runtime,
        "size": size,
        "baseline_runs": baseline_runs,
        "alpha": ALPHA,
        "sizes": {"nightly": [baseline_runs * repeat, repeat], "pair": [repeat, repeat]},
        "smallest_attainable_p": {
            "nightly": smallest_p(baseline_runs * repeat, repeat),
            "pair": smallest_p(repeat, repeat),
        },
        "run_wall_s": spread(walls),
        "run_median_iops": [_median_iops(r) for _, r in runs],
        "rates": {form: rate(sum(c["regressed"] is True for c in cs), len(cs)) for form, cs in comparisons.items()},
        "either_way": {
            form: rate(sum(c["regressed"] is True or c["improved"] is True for c in cs), len(cs))
            for form, cs in comparisons.items()
        },
        "comparisons": comparisons,
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _rate_cell(r: dict[str, Any]) -> str:
    if r["rate"] is None:
        return "n/a"
    low, high = r["ci95"]
    return f"{_pct(r['rate'])} ({_pct(low)}-{_pct(high)})"


def markdown(res: dict[str, Any]) -> str:
    k, n = res["baseline_runs"], res["n"]
    sizes, attainable, rates = res["sizes"], res["smallest_attainable_p"], res["rates"]
    iops = res["run_median_iops"]
    lines = [
        f"{n + k} identical runs of a fio-only scenario in a row (randwrite-4k, {res['repeat']} repetitions of "
        f"{res['runtime']}, size {res['size']}, no Prometheus), each of the last {n} compared with `harness compare`'s "
        "defaults. Nothing changed, so every regression is a false alarm. Compare's stated bound is "
        f"{_pct(res['alpha'])} per comparison; the comparisons share runs (a sliding window, as the "
        "nightly gate's nights do). Interval: exact 95%.",
        "",
        "| compared | values per side | smallest attainable p | false alarms | rate (95% interval) "
        "| a regression or an improvement |",
        "|---|---:|---:|---:|---|---|",
    ]
    for form, text in FORMS.items():
        r = rates[form]
        a, b = sizes[form]
        lines.append(
            f"| {text.format(k=k)} | {a} vs {b} | {attainable[form]:.2g} | {r['false_alarms']} of {r['comparisons']} "
            f"| {_rate_cell(r)} | {res['either_way'][form]['false_alarms']}: {_rate_cell(res['either_way'][form])} |"
        )
    lines += [
        "",
        f"The runs' median randwrite-4k IOPS: {fmt_spread(spread(iops), 0)} (run to run: "
        f"{', '.join(f'{v / 1000:.0f}k' for v in iops)}); one run took {fmt_spread(res['run_wall_s'], 1)} s.",
    ]
    alarms = [(form, c) for form, cs in res["comparisons"].items() for c in cs if c["regressed"] is True]
    if alarms:
        lines += ["", "The false alarms (metric, how much worse, adjusted p):", ""]
        for form, c in alarms:
            listed = "; ".join(
                f"{r['metric']} {r['worse_pct']:+.0f}% (p {r['p_adjusted']:.2g})" for r in c["regressions"]
            )
            lines.append(f"- {form}, run {c['candidate']}: {listed}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10, help="comparisons of each form (runs: N + --baseline-runs)")
    p.add_argument("--repeat", type=int, default=8, help="fio repetitions per run")
    p.add_argument(
        "--baseline-runs", type=int, default=BASELINE_RUNS, help="runs pooled into the nightly gate's baseline"
    )
    p.add_argument("--reports", default=str(ROOT / "reports"), help="the JSON goes to REPORTS/benchmarks/<utc>/")
    p.add_argument("--workdir", default=tempfile.gettempdir(), help="where the fio files go")
    args = p.parse_args()
    started = datetime.now(UTC)
    work = Path(tempfile.mkdtemp(prefix="harness-bench-", dir=args.workdir))
    work.chmod(0o755)
    try:
        res = run(work, args.n, repeat=args.repeat, baseline_runs=args.baseline_runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.reports) / "benchmarks" / started.strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "false-alarms.json", json.dumps(res, indent=2, default=str))
    atomic_write_text(out / "false-alarms.md", markdown(res) + "\n")
    print(markdown(res))
    print(f"written: {out / 'false-alarms.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
