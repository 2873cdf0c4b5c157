"""The ``harness`` command: validate, schema, run, report, compare, trend, nightly, doctor, values, cleanup.

Exit codes: 0 every check passed; 1 a check failed (the storage under test lost data or was too slow); 2 bad input
or a broken environment (never a traceback for those: the message says what to fix); 130 interrupted (the partial
result is kept).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

from harness import __version__, ui
from harness.errors import HarnessError, ScenarioError
from harness.runtime import RUNTIME_NAMES
from harness.settings import Settings


def _cmd_validate(args: argparse.Namespace) -> int:
    from harness.scenario.loader import load_scenario

    problems = 0
    for path in args.files:
        try:
            scenario = load_scenario(Path(path))
        except ScenarioError as e:
            problems += len(e.problems)
            for p in e.problems:
                print(p, file=sys.stderr)
            continue
        print(f"{path}: ok (scenario {scenario.name!r}, {scenario.storage.backend} storage)")
    if problems:
        print(f"{problems} problem(s) found", file=sys.stderr)
        return 2
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from harness.scenario.model import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.pipeline import RunOptions, execute

    outcome = execute(
        RunOptions(
            scenario_path=Path(args.scenario),
            settings=args.settings,
            runtime=args.runtime,
            reports_root=Path(args.reports),
            # Absolute: Prometheus runs in a directory of its own and is handed paths under this one.
            workdir_root=Path(args.workdir).absolute() if args.workdir else None,
            render_report=not args.no_report,
            doctor=not args.skip_doctor,
            keep_data=args.keep_data,
            kubeconfig=args.kubeconfig,
            context=args.context,
            overrides=tuple(args.overrides),
        )
    )
    if outcome.result is not None:
        _print_summary(outcome.result)
        _write_run_outputs(args, outcome.result)
    return outcome.exit_code


def _write_run_outputs(args: argparse.Namespace, result: object) -> None:
    """JUnit and JSON of the run's checks for CI (--junit, --json); --expect-verdict names the verdict it must end
    with (the emptyDir baseline must fail), which its gate test case checks."""
    from harness.report.ci import write_run_outputs
    from harness.results.model import RunResult, Status

    assert isinstance(result, RunResult)
    expected = Status(args.expect_verdict) if args.expect_verdict else None
    write_run_outputs(
        result,
        junit=Path(args.junit) if args.junit else None,
        summary=Path(args.json) if args.json else None,
        expected=expected,
    )


def _print_summary(result: object) -> None:
    from harness.results.model import RunResult, Status

    assert isinstance(result, RunResult)
    if result.overrides:
        # Said with the verdict: this run is of the file as modified, not of the file as written.
        ui.info(f"  scenario file {result.scenario_file} overridden: {' '.join(result.overrides)}")
    colour = {Status.PASSED: "green", Status.FAILED: "red"}.get(result.verdict, "magenta")
    for check in result.checks:
        # PARTIAL in yellow: not a pass (the run is FAILED), not a loss found either; the reason says what was unseen.
        colours = {Status.PASSED: "green", Status.FAILED: "red", Status.SKIPPED: "dim", Status.PARTIAL: "yellow"}
        c = colours.get(check.status, "magenta")
        line = "  [{c}]{status}[/{c}] {name}: {reason}"
        ui.info(ui.markup(line, c=c, status=f"{check.status.value:7}", name=check.name, reason=check.reason))
    if result.error:
        ui.info(ui.markup("  [magenta]ERROR[/magenta]   {error}", error=result.error.splitlines()[0]))
    ui.info(ui.markup("verdict: [bold {c}]{verdict}[/bold {c}]", c=colour, verdict=result.verdict.value))


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.report import render_report

    for run_dir in args.run_dirs:
        print(render_report(Path(run_dir)))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from harness.errors import UsageError
    from harness.report.ci import write_comparison_outputs
    from harness.report.compare import Rules, compare_paths, compare_runs, render_comparison, summary_text

    defaults = Rules()  # unset options keep compare's own defaults, which its docstring explains
    rules = Rules(
        threshold=defaults.threshold if args.threshold is None else args.threshold,
        alpha=defaults.alpha if args.alpha is None else args.alpha,
        fail_on_threshold_only=args.fail_on_threshold_only,
        allow_different=frozenset(args.allow_different or ()),
    )
    if args.baseline or args.candidate:
        if args.results or not (args.baseline and args.candidate):
            raise UsageError("give --baseline RUN... and --candidate RUN... together, and no RUN_DIR before them")
        comparison = compare_paths([Path(p) for p in args.baseline], [[Path(p) for p in args.candidate]], rules)
    elif len(args.results) < 2:
        raise UsageError(
            "compare needs at least two results (the first one is the baseline), or --baseline/--candidate"
        )
    else:
        comparison = compare_runs([Path(p) for p in args.results], rules=rules)
    for skipped in comparison.skipped:
        ui.warn(f"left out {skipped.path}: {skipped.reason}")
    print(summary_text(comparison))
    if args.output:
        print(render_comparison(comparison, Path(args.output)))
    write_comparison_outputs(
        comparison, junit=Path(args.junit) if args.junit else None, summary=Path(args.json) if args.json else None
    )
    # A nightly job fails on a regression; "unstable", "inconclusive" or "threshold only" changes are reported but
    # do not fail it (unless --fail-on-threshold-only).
    return 1 if comparison.regressed else 0


def _cmd_trend(args: argparse.Namespace) -> int:
    from harness.report.ci import write_trend_outputs
    from harness.report.trend import build_trend, summary_text
    from harness.report.trend_html import render_trend

    results = Path(args.results_dir)
    trend = build_trend(results, scenarios=args.scenario, last=args.last, ack_path=Path(args.ack) if args.ack else None)
    print(summary_text(trend))
    print(render_trend(trend, Path(args.output) if args.output else results / "trend.html"))
    write_trend_outputs(
        trend, junit=Path(args.junit) if args.junit else None, summary=Path(args.json) if args.json else None
    )
    # Only a change for the worse that the latest night is the first to confirm, unacknowledged, fails: once per step.
    return 1 if trend.regressed else 0


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run a scenario and write reports/<scenario>/<run>/")
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--runtime", choices=RUNTIME_NAMES, default="local", help="where Prometheus runs")
    p.add_argument("--reports", default="reports", help="root directory of run results (default: reports)")
    p.add_argument("--workdir", help="where TSDB data and fio files go for the local default storage (default: /tmp)")
    p.add_argument("--no-report", action="store_true", help="store result.json only, no report.html")
    p.add_argument("--skip-doctor", action="store_true", help="do not run the storage doctor before the run")
    p.add_argument("--keep-data", action="store_true", help="keep the TSDB and fio files this run created")
    p.add_argument("--kubeconfig", help="kubernetes runtime: the cluster to use (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument(
        "--context",
        help="kubernetes runtime: the kube context to use (required unless the current-context is listed in "
        "kubernetes.allowed_contexts of the harness config, ~/.config/prom-harness/config.yaml or $HARNESS_CONFIG)",
    )
    _override_option(p, "--set", "--override")
    _ci_outputs(p)
    p.add_argument(
        "--expect-verdict",
        choices=["PASSED", "FAILED"],
        help="--junit/--json: the verdict this scenario must end with (its gate); a check failing as expected is "
        "reported skipped. The exit code stays the verdict's",
    )
    p.set_defaults(func=_cmd_run)


def _override_option(p: argparse.ArgumentParser, *names: str, each: str = "") -> None:
    """The scenario overrides of `harness run` (``--set``, as for `harness values`, or ``--override``) and of `harness
    nightly` (``--override``: its ``--set`` picks the files): one option, one form, one message for a bad one."""
    p.add_argument(
        *names,
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help=f"set a key of {each or 'the'} scenario before it is validated, for what the file cannot name for "
        "you, e.g. storage.node=node-1 storage.path=/mnt/disks/prom (the value is YAML; repeatable); a bad key "
        "or value is refused like a bad file (exit 2). The result records the settings: the run is of the file "
        "as modified",
    )


def _add_trend(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("trend", help="every metric's history over the stored runs, with change points")
    p.add_argument("results_dir", metavar="RESULTS_DIR", help="the results root, e.g. reports/")
    p.add_argument("--scenario", action="append", help="only this scenario (repeatable; default: all)")
    p.add_argument("--last", type=int, metavar="N", help="only the last N runs of each scenario")
    p.add_argument("--ack", metavar="FILE", help="ack file of accepted changes (default: RESULTS_DIR/acks.yaml)")
    p.add_argument("-o", "--output", help="the HTML trend report (default: RESULTS_DIR/trend.html)")
    _ci_outputs(p, cases="metric series")
    p.set_defaults(func=_cmd_trend)


def _cmd_nightly(args: argparse.Namespace) -> int:
    import shlex

    from harness.nightly import NIGHTLY, NightOptions, parse_set, run_night

    options = NightOptions(
        results=Path(args.results).absolute(),
        runtime=args.runtime,
        context=args.context,
        scenarios=parse_set(",".join(args.set)) if args.set else NIGHTLY,
        overrides=tuple(args.overrides),
        compare_args=tuple(shlex.split(args.compare_args or "")),
        baseline_runs=args.baseline_runs,
    )
    return run_night(options).exit_code


def _add_nightly(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from harness.nightly import BASELINE_RUNS

    p = sub.add_parser(
        "nightly",
        help="the nightly gate: each scenario of a set held to its exit code and compared with its previous runs, "
        "then the trend",
        description="Run each scenario of the set once and hold it to the exit code it must end with, compare each "
        "run with the scenario's previous runs, then draw the trend of every stored history; JUnit and JSON of each "
        "step and of the night in RESULTS/nightly/<utc>/. Exit 0 the night passed, 1 a scenario ended otherwise than "
        "it must or a regression, 2 the harness or the environment broke (or a bad --set or --override).",
    )
    p.add_argument("--results", default="reports", help="results root, kept between nights (default: reports)")
    p.add_argument("--runtime", choices=RUNTIME_NAMES, default="local", help="where Prometheus runs")
    p.add_argument("--context", help="kubernetes runtime: the kube context to use (as for `harness run`)")
    p.add_argument(
        "--set",
        action="append",
        metavar="FILE=CODE,...",
        help="the scenarios and the exit code each must end with (0 or 1), instead of the shipped set "
        "(repeatable); each file's scenario name picks its history under RESULTS/<name>/",
    )
    _override_option(p, "--override", each="each")
    p.add_argument(
        "--compare-args",
        metavar="ARGS",
        help='options added to each `harness compare`, one string: --compare-args="--allow-different node"',
    )
    p.add_argument(
        "--baseline-runs",
        type=int,
        default=BASELINE_RUNS,
        metavar="N",
        help=f"compare each run with this many previous runs of its scenario, pooled (default {BASELINE_RUNS})",
    )
    p.set_defaults(func=_cmd_nightly)


def _ci_outputs(p: argparse.ArgumentParser, cases: str = "check and gate") -> None:
    p.add_argument("--junit", metavar="FILE", help=f"also write JUnit XML here (one test case per {cases})")
    p.add_argument("--json", metavar="FILE", help="also write a JSON summary here")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Storage benchmarking and data-durability test harness for Prometheus on Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (every command and its argv)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check scenario files without running anything")
    p.add_argument("files", nargs="+", metavar="SCENARIO")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of scenario files (for editor completion)")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=_cmd_schema)

    _add_run(sub)

    p = sub.add_parser("report", help="re-render report.html from a stored result")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("compare", help="compare stored results (runs, nights, storages)")
    p.add_argument("results", nargs="*", metavar="RUN_DIR", help="the first is the baseline, each other is compared")
    p.add_argument("--baseline", nargs="+", metavar="RUN_DIR", help="runs pooled into the baseline (e.g. last nights)")
    p.add_argument("--candidate", nargs="+", metavar="RUN_DIR", help="runs pooled into the side compared with it")
    p.add_argument("-o", "--output", help="also write an HTML comparison here")
    _ci_outputs(p)
    p.add_argument("--threshold", type=float, help="relative change a regression needs (default 0.10)")
    p.add_argument("--alpha", type=float, help="level of the adjusted p-values a regression needs (default 0.002)")
    p.add_argument(
        "--fail-on-threshold-only",
        action="store_true",
        help="also fail on metrics with one value per side that got worse by more than the threshold (no test)",
    )
    p.add_argument(
        "--allow-different",
        action="append",
        choices=["runtime", "node", "kernel", "prometheus", "fio", "load", "fio-settings"],
        help="compare runs although this differs (repeatable; e.g. node for CI runners with new names every night)",
    )
    p.set_defaults(func=_cmd_compare)

    _add_trend(sub)
    _add_nightly(sub)

    from harness.doctor import command as doctor_command

    p = sub.add_parser("doctor", help="check the storage a scenario names for the known traps, before deploying")
    doctor_command.configure(p)
    p.set_defaults(func=doctor_command.execute)

    from harness import values

    p = sub.add_parser(
        "values",
        help="print the kube-prometheus-stack values and the PV/StorageClass manifests for a scenario's storage",
        description="Print what a team applies with helm for the scenario's storage: the kube-prometheus-stack "
        "values (prometheusSpec.storageSpec, securityContext, retention, resources), then the PersistentVolume and "
        "StorageClass manifests, as YAML documents commented with where each goes and the doctor's findings. "
        "Exit 0 printed, 1 printed but the doctor found a BLOCKER, 2 bad input.",
    )
    values.configure(p)
    p.set_defaults(func=values.execute)

    from harness.cleanup import command as cleanup_command

    p = sub.add_parser(
        "cleanup",
        help="remove what interrupted runs left (work directories, mounts, loop devices, processes, namespaces, "
        "PVs, StorageClasses, cordons), found by their ownership marks only",
        description="Remove what interrupted (e.g. SIGKILLed) runs left behind, on this host and, with an allowed "
        "kube context, in the cluster. Only what carries a run's marks is touched (a work directory's "
        "harness-run.json, the harness/run-id label, a node's harness/cordoned-by annotation); a run that is still "
        "running never is. The data of a PV the run created is never deleted; a PV a provisioner made for the "
        "run's claim (dynamic storage) goes with the namespace as its reclaimPolicy says (Delete: with its data; "
        "the namespace's line says so). The cluster's objects go first: an embedded server a killed kubernetes run "
        "kept for its PV is stopped after them, once no node is connected to it (waited for up to 120 s), from its "
        "record in the work area. Exit 0 when done, 2 when something could not be removed.",
    )
    cleanup_command.configure(p)
    p.set_defaults(func=cleanup_command.execute)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        # The one read of the environment for settings (harness.settings): handed down from here, as args.settings.
        args.settings = Settings.from_environ(os.environ)
        code: int = args.func(args)
    except ScenarioError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return e.exit_code
    except HarnessError as e:
        ui.error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        ui.error("interrupted")
        return 130
    except Exception as e:  # noqa: BLE001 - a bug (ours or a library's): exit 2 with one line, never a traceback
        with tempfile.NamedTemporaryFile("w", prefix="harness-traceback-", suffix=".txt", delete=False) as f:
            f.write(traceback.format_exc())
        ui.error(f"internal error: {type(e).__name__}: {e} (a bug of the harness: please report it with {f.name})")
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
