"""``harness cleanup (--run ID | --all-mine)``: find what interrupted runs left on this host and in the cluster,
and remove it; ``--dry-run`` only lists.

A run's cluster objects go before what it left on this host: an embedded server the run kept past its death serves
their volume to a node (``harness.datapath.kept_server``), and is stopped only once they are gone.

Exit codes: 0 done (also when nothing was left); 2 something could not be removed (the output says what and why),
a run asked for by ``--run`` is still running, or bad input (an invalid run id, an unknown or unallowed context).
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cleanup import RunLeftovers, apply
from harness.config import UserConfig, choose_context, load_user_config
from harness.errors import InfraError, UsageError
from harness.ownership import FoundRun, find_runs, released, valid_run_id

if TYPE_CHECKING:
    from harness.kube.api import KubeApi

EXIT_OK, EXIT_LEFT = 0, 2


def configure(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", metavar="ID", help="the run to clean up (its id: result.json's run_id)")
    which.add_argument(
        "--all-mine",
        action="store_true",
        help="every run of mine that is not running any more (owner: the config's `owner`, default user@host)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    parser.add_argument(
        "--workdir",
        help="where the runs' work directories are (`harness run --workdir`; default: the system temp dir)",
    )
    parser.add_argument(
        "--context",
        help="also clean up in this kube context (default: the current-context if the config allows it, else "
        "this host only)",
    )
    parser.add_argument("--kubeconfig", help="the kubeconfig of --context (default: $KUBECONFIG, ~/.kube/config)")


def execute(args: argparse.Namespace) -> int:
    if args.run is not None and not valid_run_id(args.run):
        raise UsageError(f"--run {args.run!r} is not a run id (lower-case letters and digits, e.g. 3fa2b1)")
    config = load_user_config(args.settings)
    owner = None if args.run is not None else config.effective_owner()
    root = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir())
    context, cluster_note = _cluster_context(args, config)
    found = find_runs(root, run_id=args.run, owner=owner)
    with released(found), _api(args, context) as api:
        if api is not None:
            runs = _cluster(args, api, context or "", found, owner)
        else:
            runs = _kubernetes_runs_unchecked(found, args.run, owner, cluster_note)
        # After the cluster's: a run's kept embedded server goes once its objects are gone (asked of the cluster).
        runs += _local(found, args.run, owner, api)
        outcome = apply(runs, dry_run=args.dry_run)
    for line in outcome.lines:
        print(line)
    looked = f"{root}" + (f" and kube context {context}" if context is not None else "")
    if not runs:
        target = f"run {args.run}" if args.run is not None else f"runs of {owner}"
        print(f"nothing left by {target} (looked in {looked})")
    if cluster_note:
        print(f"note: {cluster_note}")
    if outcome.failed:
        print(f"{len(outcome.failed)} thing(s) could not be removed:", file=sys.stderr)
        for failure in outcome.failed:
            print(f"  {failure}", file=sys.stderr)
        return EXIT_LEFT
    if runs and not args.dry_run:
        print(f"done: {outcome.removed} removed ({looked})")
    return EXIT_OK


def _cluster_context(args: argparse.Namespace, config: UserConfig) -> tuple[str | None, str]:
    """The context to clean up in, or None and why not. Named (--context, --kubeconfig) but not usable: refused."""
    from harness.kube.contexts import kube_contexts

    if args.context is not None or args.kubeconfig is not None:
        return choose_context(args.kubeconfig, args.context, config), ""
    try:
        contexts, current, where = kube_contexts(None)
    except InfraError as e:  # a broken default kubeconfig must not stop the cleanup of this host
        return None, f"no cluster was looked at: {e}"
    if not contexts:
        return None, ""
    if current is not None and current in config.kubernetes.allowed_contexts:
        return current, ""
    return None, (
        f"no cluster was looked at: no --context, and the current-context of {where} ({current}) is not in "
        f"kubernetes.allowed_contexts of {config.path}"
    )


@contextmanager
def _api(args: argparse.Namespace, context: str | None) -> Iterator[KubeApi | None]:
    """The cluster's API for the whole cleanup (None: no cluster is looked at)."""
    if context is None:
        yield None
        return
    from harness.kube.api import KubeApi

    api = KubeApi(args.kubeconfig, context=context)
    try:
        yield api
    finally:
        api.close()


def _remaining(api: KubeApi | None, run_id: str) -> Callable[[], str] | None:
    """What of ``run_id`` is still in the cluster, in words, asked when its kept server is about to be stopped."""
    if api is None:
        return None

    def remaining() -> str:
        from harness.cleanup import cluster

        run = cluster.find(api, run_id=run_id, owner=None).get(run_id)
        left = [f"namespace {o.name}" for o in run.namespaces] if run is not None else []
        left += [f"PersistentVolume {o.name}" for o in run.volumes] if run is not None else []
        return ", ".join(left) + (" are" if len(left) > 1 else " is") if left else ""

    return remaining


def _local(found: list[FoundRun], run_id: str | None, owner: str | None, api: KubeApi | None) -> list[RunLeftovers]:
    from harness.cleanup.local import run_leftovers

    runs = []
    for run in found:
        marker = run.marker
        if marker is None:
            continue  # no run id, no owner: nothing says whose it is, so it is nobody's to remove
        if (run_id is not None and marker.run_id != run_id) or (owner is not None and marker.owner != owner):
            continue
        leftovers = run_leftovers(run, _remaining(api, marker.run_id))
        # Asked for by name and still running: what the user asked for stays.
        leftovers.refusal_fails = run_id is not None and run.alive
        if owner is not None and run.alive:
            continue  # --all-mine: a run that is running is not a leftover
        runs.append(leftovers)
    return runs


def _cluster(
    args: argparse.Namespace, api: KubeApi, context: str, found: list[FoundRun], owner: str | None
) -> list[RunLeftovers]:
    from harness.cleanup import cluster

    runs = []
    markers = {r.marker.run_id: r for r in found if r.marker is not None}
    for run_id, objects in sorted(cluster.find(api, run_id=args.run, owner=owner).items()):
        leftovers = cluster.leftovers(api, objects, f"in the cluster (context {context})")
        local_run = markers.get(run_id)
        made_by = objects.owner()
        running = (local_run is not None and local_run.alive) or (made_by is not None and made_by.alive_here())
        if running and owner is not None:
            continue  # --all-mine: a run that is running is not a leftover
        if local_run is not None and local_run.alive:
            leftovers.refused = f"it is running on this host (its lock in {local_run.directory} is held)"
        elif made_by is not None and made_by.alive_here():
            leftovers.refused = f"it is running: harness pid {made_by.pid} on this host is still there"
        elif made_by is not None and owner is not None and made_by.host != socket.gethostname():
            leftovers.refused = (
                f"it was started on {made_by.host}, where it may still run; name it with --run {run_id} to remove it"
            )
        leftovers.refusal_fails = bool(leftovers.refused) and args.run is not None
        runs.append(leftovers)
    return runs


def _kubernetes_runs_unchecked(
    found: list[FoundRun], run_id: str | None, owner: str | None, note: str
) -> list[RunLeftovers]:
    """Runs that the markers here say ran in a cluster, when no cluster was looked at: their objects may remain."""
    runs = []
    for run in found:
        marker = run.marker
        if marker is None or marker.runtime != "kubernetes" or run.alive:
            continue
        if (run_id is not None and marker.run_id != run_id) or (owner is not None and marker.owner != owner):
            continue
        context = marker.kube_context or "?"
        runs.append(
            RunLeftovers(
                marker.run_id,
                f"in the cluster (context {context})",
                refused=f"not looked at ({note or 'no context'}): pass --context {context} to remove its objects",
                refusal_fails=True,
            )
        )
    return runs
