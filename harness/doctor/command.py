"""``harness doctor SCENARIO``: run the storage doctor and print its findings as a table (people) or JSON (machines).

Exit codes: 0 nothing blocks the run, 1 a BLOCKER was found (the storage would make the run or the deployment
fail), 2 bad input or a broken environment (invalid scenario, unreadable kubeconfig).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from harness.config import choose_context, load_user_config
from harness.doctor import blocking, run_doctor
from harness.doctor.probes import ReplayRate, replay_rate
from harness.errors import HarnessError, ScenarioError, UsageError
from harness.kube.contexts import load_inventory
from harness.kube.decode import pv_from_manifest
from harness.kube.inventory import KubeInventory
from harness.results.model import DoctorFinding, Severity
from harness.runtime import RUNTIME_NAMES
from harness.scenario.model import Scenario

EXIT_OK, EXIT_BLOCKER, EXIT_USAGE = 0, 1, 2
_STYLE = {Severity.BLOCKER: "bold red", Severity.WARNING: "yellow", Severity.INFO: "green"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file (YAML)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON on stdout")
    parser.add_argument(
        "--runtime",
        choices=RUNTIME_NAMES,
        default="local",
        help="where the run would happen; 'kubernetes' adds the volume-binding simulation (default: local)",
    )
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="read PVs, claims, StorageClasses and nodes from this cluster for the binding simulation "
        "(default: $KUBECONFIG; without one the simulation sees only the PV the scenario creates)",
    )
    parser.add_argument(
        "--context",
        default=None,
        help="the kube context of --kubeconfig to read (required unless the current-context is listed in "
        "kubernetes.allowed_contexts of the harness config)",
    )
    parser.add_argument(
        "--namespace", default=None, help="namespace the claim would be created in (default: the context's)"
    )
    parser.add_argument(
        "--manifests",
        metavar="FILE",
        action="append",
        default=[],
        help="YAML files of PersistentVolumes (kubectl apply files) to check with the cluster's, e.g. the PVs you "
        "are about to create: two naming one NFS path are reported (repeatable)",
    )
    parser.add_argument(
        "--previous-run",
        metavar="RUN_DIR",
        default=None,
        help="a previous run's result directory: on the same storage, its WAL replay rate estimates this scenario's "
        "replay, which is compared with the probe budget; else its longest WAL replay is",
    )


def execute(args: argparse.Namespace) -> int:
    from harness.scenario.host_defaults import with_host_defaults
    from harness.scenario.loader import load_scenario

    try:
        # Loaded as `harness run` loads it: what the scenario leaves open, the host's settings fill.
        scenario = with_host_defaults(load_scenario(Path(args.scenario)), args.settings)
    except ScenarioError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    kube: KubeInventory | None = None
    replay_s: float | None = None
    rate: ReplayRate | None = None
    try:
        if args.runtime == "kubernetes" and (args.kubeconfig or args.context):
            context = choose_context(args.kubeconfig, args.context, load_user_config(args.settings))
            kube = load_inventory(args.kubeconfig, namespace=args.namespace, context=context)
        elif args.namespace:
            kube = KubeInventory(namespace=args.namespace, source="no cluster: only the PV this scenario creates")
        if args.manifests:
            kube = with_manifests(kube, [Path(m) for m in args.manifests])
        if args.previous_run:
            replay_s, rate = previous_replay(Path(args.previous_run), scenario)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    findings = run_doctor(scenario, runtime=args.runtime, kube=kube, previous_wal_replay_s=replay_s, replay_rate=rate)
    if args.json:
        doc = {
            "scenario": scenario.name,
            "runtime": args.runtime,
            "blocking": blocking(findings),
            "findings": [f.model_dump(mode="json") for f in findings],
        }
        print(json.dumps(doc, indent=2))
    else:
        print_table(findings, title=f"Storage doctor: {scenario.name} ({scenario.storage.backend}, {args.runtime})")
    return EXIT_BLOCKER if blocking(findings) else EXIT_OK


def with_manifests(kube: KubeInventory | None, files: list[Path]) -> KubeInventory:
    """``kube`` (or an inventory of its own) with the PersistentVolumes of ``files`` added; other kinds are skipped.
    A PV of the same name as a listed one replaces it: the file is what is about to be applied."""
    pvs = []
    for file in files:
        try:
            docs = list(YAML(typ="safe", pure=True).load_all(file.read_text()))
        except (OSError, YAMLError) as e:
            raise UsageError(f"cannot read the manifests {file}: {e}") from e
        pvs += [pv_from_manifest(d) for d in docs if isinstance(d, dict) and d.get("kind") == "PersistentVolume"]
    names = {pv.name for pv in pvs}
    where = "manifests " + ", ".join(str(f) for f in files)
    if kube is None:
        return KubeInventory(pvs=tuple(pvs), source=where)
    kept = tuple(pv for pv in kube.pvs if pv.name not in names)
    return replace(kube, pvs=kept + tuple(pvs), source=f"{kube.source} and {where}")


def previous_replay(run_dir: Path, scenario: Scenario) -> tuple[float | None, ReplayRate | None]:
    """The longest WAL replay recorded in a stored run (None when it recorded none), and its replay rate if that run
    used this scenario's storage."""
    from harness.results.store import load_result

    result = load_result(run_dir)
    replays = [f.wal_replay_s for f in result.faults if f.wal_replay_s is not None]
    storage = scenario.storage.model_dump(mode="json", by_alias=True)
    return (max(replays) if replays else None), replay_rate(result, storage)


def print_table(findings: list[DoctorFinding], *, title: str, console: Console | None = None) -> None:
    out = console or Console(highlight=False)
    # Titles and plain-str cells are rich markup: the scenario name and check names are data, so they are Text.
    table = Table(title=Text(title), show_lines=True, expand=True)
    table.add_column("Severity", no_wrap=True)
    table.add_column("Check", no_wrap=True)
    table.add_column("Finding and evidence", ratio=3)
    table.add_column("Why it matters / fix", ratio=3)
    for f in findings:
        what = Text(f.title, style="bold")
        if f.evidence:
            what.append("\n" + f.evidence, style="dim")
        why = Text(f.why)
        if f.fix:
            why.append(("\n" if f.why else "") + "Fix:\n" + f.fix)
        table.add_row(Text(f.severity.value, style=_STYLE[f.severity]), Text(f.check), what, why)
    out.print(table)
    blockers = sum(f.severity is Severity.BLOCKER for f in findings)
    warnings = sum(f.severity is Severity.WARNING for f in findings)
    verdict = "[bold red]blocked[/]" if blockers else "[green]nothing blocks the run[/]"
    out.print(f"{blockers} blocker(s), {warnings} warning(s): {verdict}")
