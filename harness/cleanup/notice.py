"""What ``harness run`` says when it sees leftovers of earlier killed runs of the same owner: a warning naming the
cleanup command, never a failure (and never a reason to touch them: only ``harness cleanup`` removes anything)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from harness.errors import HarnessError
from harness.ownership import find_runs, released

log = logging.getLogger(__name__)


def earlier_leftovers(
    root: Path | None, owner: str, *, current_run: str, kubeconfig: str | None = None, context: str | None = None
) -> list[str]:
    """One message per place (this host's work area, the cluster of ``context``) holding leftovers of ``owner``."""
    messages = []
    where = root or Path(tempfile.gettempdir())
    workdir_arg = f" --workdir {root}" if root is not None else ""
    runs = find_runs(where, owner=owner)
    with released(runs):
        dead = sorted(
            {
                r.marker.run_id
                for r in runs
                if r.marker is not None
                and not r.alive
                and r.marker.state == "running"
                and r.marker.run_id != current_run
            }
        )
    if dead:
        messages.append(
            f"{len(dead)} earlier run(s) of {owner} were killed and left their work directory in {where} "
            f"({', '.join(dead)}): `harness cleanup --all-mine{workdir_arg}` removes what they left "
            "(`--dry-run` lists it)"
        )
    if context is not None:
        stale = _cluster_leftovers(owner, current_run, kubeconfig, context)
        if stale:
            messages.append(
                f"kube context {context} holds objects of {len(stale)} earlier run(s) of {owner} that are not running "
                f"here ({', '.join(stale)}): `harness cleanup --all-mine --context {context}` removes them "
                "(`--dry-run` lists them)"
            )
    return messages


def _cluster_leftovers(owner: str, current_run: str, kubeconfig: str | None, context: str) -> list[str]:
    from harness.cleanup import cluster
    from harness.kube.api import KubeApi

    try:
        api = KubeApi(kubeconfig, context=context)
        try:
            found = cluster.find(api, run_id=None, owner=owner)
        finally:
            api.close()
    except HarnessError as e:
        log.debug("could not look for earlier runs' leftovers in the cluster: %s", e)  # the run will say so soon
        return []
    stale = []
    for run_id, run in sorted(found.items()):
        made_by = run.owner()
        going = not run.nodes and all(o.deleting for o in (*run.namespaces, *run.volumes, *run.classes))
        if run_id != current_run and not going and not (made_by is not None and made_by.alive_here()):
            stale.append(run_id)
    return stale
