"""The nightly gate (`harness nightly`): each scenario of a set run once and held to the exit code it must end with,
its run compared with its previous runs, then one trend over every stored history; a JUnit and JSON summary of the
night's steps beside each step's own files in ``<results>/nightly/<utc>/``.

Each step is a ``harness`` subprocess (``sys.executable -m harness.cli``), so a run that breaks its process (a
signal, a leak) cannot take the night with it and every step's own exit code is what is judged. Every wait is
bounded: a run by its scenario's own length (duration plus its fio jobs' time) plus ``RUN_MARGIN_S`` for setup,
recovery and cleanup (its waits inside are bounded by the run itself; this one catches a hung run), a comparison and
the trend by ``REPORT_TIMEOUT_S``. On Ctrl-C (or a run over its bound) the run gets SIGINT, as from a terminal, and
``INTERRUPT_WAIT_S`` to clean up after itself.

Exit codes: 0 the night passed; 1 a finding (a scenario ended otherwise than it must, a comparison found a
regression, the trend a change for the worse tonight is the first to confirm); 2 nothing was found but something
broke (a run ended in ERROR or over its bound, a comparison or the trend could not run) or the set or an override
is bad.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness import fmt, proc
from harness.conformance import nightly_set
from harness.errors import CommandFailed, UsageError, WaitTimeout
from harness.scenario.loader import load_scenario
from harness.scenario.model import Scenario

# The nightly set: the durability scenarios of the conformance table (harness/conformance.py, where each row says
# why it ends as it must), each with the exit code it must end with. Paths are relative to the repository root
# (where `nox -s nightly` runs).
NIGHTLY: dict[str, int] = nightly_set()

# Tonight is compared with this many earlier runs of its scenario, pooled: one broken or unreadable night does not
# leave the comparison without a baseline, and nights that disagree among themselves make a metric "unstable". A
# week: tonight must also stand out from how the nights vary among themselves (compare's Student's t test of one run
# against several), and with k nights that test has k - 1 degrees of freedom: at the 0.2% level, 3 nights need a
# change 22 times their spread, 7 nights 6 times.
BASELINE_RUNS = 7
# A run's bound beyond its scenario's own length: Prometheus' start and recovery after each fault, the doctor, a
# filesystem image or server, a pod scheduled; far more than any shipped scenario needs, so only a hung run meets it.
RUN_MARGIN_S = 1800.0
INTERRUPT_WAIT_S = 300.0  # what a run has to clean up after SIGINT (undo its faults, unmount, stop its daemons)
REPORT_TIMEOUT_S = 1800.0  # a comparison or the trend: the trend reads every stored run (~10 s per 200 nights)
HARNESS = (sys.executable, "-m", "harness.cli")


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # a finding: fails the night with exit 1
    ERROR = "error"  # something broke: exit 2 unless there is a finding
    SKIPPED = "skipped"


_JUNIT = {Outcome.PASSED: "", Outcome.FAILED: "failure", Outcome.ERROR: "error", Outcome.SKIPPED: "skipped"}


@dataclass(frozen=True)
class Planned:
    path: Path
    expected: int
    scenario: Scenario

    @property
    def name(self) -> str:
        return self.scenario.name

    def bound_s(self) -> float:
        fio = sum(job.runtime_s * job.repeat for job in self.scenario.loads.fio)
        return self.scenario.duration_s + fio + RUN_MARGIN_S


@dataclass(frozen=True)
class Step:
    scenario: str  # "" for the trend
    kind: str  # run | compare | trend | interrupted (where a Ctrl-C stopped the night)
    outcome: Outcome
    message: str
    exit_code: int | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.kind} {self.scenario}" if self.scenario else self.kind

    def json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario or None,
            "step": self.kind,
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "message": self.message,
            "files": self.files,
        }


@dataclass(frozen=True)
class NightOptions:
    results: Path
    runtime: str = "local"
    context: str | None = None
    scenarios: Mapping[str, int] = field(default_factory=lambda: dict(NIGHTLY))
    compare_args: tuple[str, ...] = ()
    baseline_runs: int = BASELINE_RUNS
    # KEY.PATH=VALUE settings handed to every run of the night (`harness run --override`), e.g. the node and the
    # path of a local PV on a cluster; each run's result records them.
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Night:
    directory: Path
    steps: list[Step]

    @property
    def exit_code(self) -> int:
        outcomes = {s.outcome for s in self.steps}
        return 1 if Outcome.FAILED in outcomes else 2 if Outcome.ERROR in outcomes else 0


# --- the set ---------------------------------------------------------------------------------------------------

_SET_FORM = "FILE=CODE[,FILE=CODE...] with CODE 0 (must pass) or 1 (must fail), e.g. scenarios/demo.yaml=0"


def parse_set(spec: str) -> dict[str, int]:
    """``--set``/HARNESS_NIGHTLY: "file.yaml=0,other.yaml=1" (UsageError, exit 2, for anything else)."""
    parsed: dict[str, int] = {}
    for item in (i.strip() for i in spec.split(",")):
        if not item:
            continue
        path, sep, code = item.rpartition("=")
        if not sep or not path.strip() or code.strip() not in ("0", "1"):
            raise UsageError(f"--set {item!r}: not {_SET_FORM}")
        parsed[path.strip()] = int(code)
    if not parsed:
        raise UsageError(f"--set {spec!r}: names no scenario; give {_SET_FORM}")
    return parsed


def plan(scenarios: Mapping[str, int], overrides: Sequence[str] = ()) -> list[Planned]:
    """Every scenario of the set read and validated (with the night's ``--override`` settings) before anything runs:
    a missing or invalid file, or a setting one of them does not take, is exit 2 with its file:line problems, not a
    failed night hours later. A night runs each scenario name once (its runs are found under <results>/<name>/)."""
    planned: list[Planned] = []
    for path_text, expected in scenarios.items():
        path = Path(path_text)
        if not path.is_file():
            raise UsageError(f"--set {path_text}: no such scenario file (relative paths are from {Path.cwd()})")
        scenario = load_scenario(path, overrides, flag="--override")
        twin = next((p for p in planned if p.name == scenario.name), None)
        if twin is not None:
            raise UsageError(
                f"--set {path_text}: scenario {scenario.name!r} is also {twin.path}; a night runs each name once"
            )
        planned.append(Planned(path, expected, scenario))
    return planned


# --- the steps -------------------------------------------------------------------------------------------------


def _runs(results: Path, name: str) -> list[Path]:
    """The scenario's run directories, oldest first (their names start with the UTC start time)."""
    return sorted(p.parent for p in (results / name).glob("*/result.json"))


def _wait_run(argv: Sequence[str], log_path: Path, bound_s: float) -> int | None:
    """Run ``argv`` with its output in ``log_path``; its exit code, or None when it outlived ``bound_s``."""
    run = proc.start_daemon(log_path.stem, argv, log_path=log_path)
    try:
        return run.wait(bound_s)
    except (KeyboardInterrupt, WaitTimeout) as e:
        # Its own session keeps a terminal's Ctrl-C from it: hand it on, and let it clean up, within a bound.
        run.signal(signal.SIGINT)
        try:
            run.wait(INTERRUPT_WAIT_S)
        except WaitTimeout:
            run.stop()
        if isinstance(e, KeyboardInterrupt):
            raise
        return None


def _run_step(p: Planned, options: NightOptions, night: Path) -> tuple[Step, Path | None]:
    before = set(_runs(options.results, p.name))
    files = {k: str(night / f"{p.name}-run.{k}") for k in ("xml", "json", "log")}
    context = ["--context", options.context] if options.context else []
    verdict = "PASSED" if p.expected == 0 else "FAILED"
    argv = [*HARNESS, "run", str(p.path), "--runtime", options.runtime, *context, "--reports", str(options.results)]
    argv += ["--junit", files["xml"], "--json", files["json"], "--expect-verdict", verdict]
    argv += [arg for setting in options.overrides for arg in ("--override", setting)]
    bound = p.bound_s()
    code = _wait_run(argv, Path(files["log"]), bound)
    new = [r for r in _runs(options.results, p.name) if r not in before]
    latest = new[-1] if new else None
    if latest is not None:
        files["run_dir"] = str(latest)
    if code is None:
        message = f"did not end within {fmt.duration_s(bound)} (its duration and fio time + {RUN_MARGIN_S:g} s)"
        return Step(p.name, "run", Outcome.ERROR, message, None, files), latest
    if code == p.expected:
        return Step(p.name, "run", Outcome.PASSED, f"exit {code} as it must", code, files), latest
    if code in (0, 1):
        verdicts = {0: "PASSED", 1: "FAILED"}
        message = f"exit {code} ({verdicts[code]}), must be {p.expected} ({verdicts[p.expected]})"
        return Step(p.name, "run", Outcome.FAILED, message, code, files), latest
    said = [line for line in Path(files["log"]).read_text(errors="replace").splitlines() if line.strip()][-1:]
    message = (
        f"exit {code}: the harness or the environment broke ({fmt.shorten(''.join(said), 300)}), see {files['log']}"
    )
    return Step(p.name, "run", Outcome.ERROR, message, code, files), latest


def _report_step(kind: str, argv: Sequence[str], files: dict[str, str], found: str) -> tuple[Outcome, str, int | None]:
    """A comparison or the trend: passed (0), a finding (1: ``found`` lists what its JSON names), or broken."""
    log = Path(files["log"])
    try:
        done = proc.run(argv, timeout_s=REPORT_TIMEOUT_S, check=False)
    except CommandFailed as e:
        log.write_text(str(e) + "\n", encoding="utf-8")
        return Outcome.ERROR, f"{kind} could not run: {e}", None
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode == 0:
        return Outcome.PASSED, "no regression", 0
    if done.returncode == 1:
        try:
            listed = json.loads(Path(files["json"]).read_text(encoding="utf-8"))["regressions"]
        except (OSError, ValueError, KeyError):
            listed = []
        return Outcome.FAILED, f"{found}: " + ("; ".join(listed) or f"see {files['html']}"), 1
    last = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
    return Outcome.ERROR, f"{kind} could not run (exit {done.returncode}): {last[0]}", done.returncode


def _compare_step(p: Planned, latest: Path | None, options: NightOptions, night: Path) -> Step:
    if latest is None:
        return Step(p.name, "compare", Outcome.SKIPPED, "the run stored no result")
    previous = [r for r in _runs(options.results, p.name) if r < latest][-options.baseline_runs :]
    if not previous:
        return Step(p.name, "compare", Outcome.SKIPPED, "no earlier run: tonight is the first of the baseline")
    files = {k: str(night / f"{p.name}-compare.{k}") for k in ("xml", "json", "log")}
    files["html"] = str(latest / "compare-previous.html")
    argv = [*HARNESS, "compare", "--baseline", *map(str, previous), "--candidate", str(latest), "-o", files["html"]]
    argv += ["--junit", files["xml"], "--json", files["json"], *options.compare_args]
    found = f"regression against the previous {len(previous)} run(s)"
    outcome, message, code = _report_step("compare", argv, files, found)
    if outcome is Outcome.PASSED:
        message = f"no regression against the previous {len(previous)} run(s)"
    return Step(p.name, "compare", outcome, message, code, files)


def _trend_step(options: NightOptions, night: Path) -> Step:
    """One trend over all scenarios' histories in the results (the ack file is <results>/acks.yaml)."""
    files = {k: str(night / f"trend.{k}") for k in ("xml", "json", "log", "html")}
    argv = [*HARNESS, "trend", str(options.results), "-o", files["html"], "--junit", files["xml"], "--json"]
    argv.append(files["json"])
    found = "a change for the worse tonight is the first to confirm"
    outcome, message, code = _report_step("trend", argv, files, found)
    if outcome is Outcome.PASSED:
        message = "no unacknowledged change for the worse that tonight is the first to confirm"
    return Step("", "trend", outcome, message, code, files)


# --- the night -------------------------------------------------------------------------------------------------


def _line(steps: Sequence[Step]) -> str:
    """One line per scenario: its run's and its comparison's outcome."""
    parts = [f"{s.kind} {s.outcome.value.upper()}: {s.message}" for s in steps]
    return f"{steps[0].scenario}: " + "; ".join(parts)


def _write_summary(night: Night, options: NightOptions, started: datetime) -> tuple[Path, Path]:
    # Here, not at the top: the CLI's parser imports this module for its defaults, and harness.report brings pandas,
    # SciPy and matplotlib, which no other command's start should pay for.
    from harness.report.ci import SUMMARY_VERSION, Case, write_cases, write_summary

    cases = [
        Case(
            f"harness.nightly.{s.scenario or 'all'}",
            s.title,
            _JUNIT[s.outcome],
            message=s.message if s.outcome is not Outcome.PASSED else "",
        )
        for s in night.steps
    ]
    properties = {"results": str(options.results), "runtime": options.runtime, "started": started.isoformat()}
    if options.overrides:
        properties["overrides"] = " ".join(options.overrides)
    title = f"nightly {night.directory.name}"
    junit = write_cases("harness nightly", title, properties, cases, night.directory / "nightly.xml")
    summary = {
        "schema": f"prom-storage-harness/nightly-summary/{SUMMARY_VERSION}",
        "started": started.isoformat(),
        "results": str(options.results),
        "runtime": options.runtime,
        "overrides": list(options.overrides),
        "compare_args": shlex.join(options.compare_args),
        "baseline_runs": options.baseline_runs,
        "exit_code": night.exit_code,
        "passed": night.exit_code == 0,
        "steps": [s.json() for s in night.steps],
        "findings": [f"{s.title}: {s.message}" for s in night.steps if s.outcome is Outcome.FAILED],
        "errors": [f"{s.title}: {s.message}" for s in night.steps if s.outcome is Outcome.ERROR],
    }
    return junit, write_summary(summary, night.directory / "nightly.json")


def run_night(options: NightOptions) -> Night:
    """The whole night (the set validated first); prints one line per scenario and the verdict."""
    if options.baseline_runs < 1:
        raise UsageError(f"--baseline-runs {options.baseline_runs}: at least 1")
    planned = plan(options.scenarios, options.overrides)
    if options.overrides:
        print(f"every run of the night overridden: {' '.join(options.overrides)}", flush=True)
    started = datetime.now(UTC)
    directory = options.results / "nightly" / started.strftime("%Y%m%dT%H%M%SZ")
    directory.mkdir(parents=True, exist_ok=True)
    steps: list[Step] = []
    current = ""
    try:
        for p in planned:
            current = p.name
            run, latest = _run_step(p, options, directory)
            compare = _compare_step(p, latest, options, directory)
            steps += [run, compare]
            print(_line([run, compare]), flush=True)
        current = ""
        trend = _trend_step(options, directory)
    except KeyboardInterrupt:
        # The steps so far stay readable: the summary says where the night stopped.
        steps.append(Step(current, "interrupted", Outcome.ERROR, "interrupted (SIGINT): the night stopped here"))
        _write_summary(Night(directory, steps), options, started)
        raise
    steps.append(trend)
    print(f"trend {trend.outcome.value.upper()}: {trend.message}", flush=True)
    night = Night(directory, steps)
    junit, summary = _write_summary(night, options, started)
    verdict = {0: "night PASSED", 1: "night FAILED", 2: "night ERROR (the harness or environment broke)"}
    print(f"{verdict[night.exit_code]}: {junit}, {summary}", flush=True)
    return night
