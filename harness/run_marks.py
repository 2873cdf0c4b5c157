"""A run's marks on this host: the marker that makes its work directory its own, locked for the run's life, and the
warning about earlier runs that were killed (their leftovers are only ever removed by ``harness cleanup``).

The marker's model and its lock are ``harness.ownership`` (a bottom layer); this module fills the marker from what
the run knows (its scenario's storage, its kube context) and asks ``harness.cleanup`` about leftovers, which the
ownership module may not.
"""

from __future__ import annotations

import logging
from pathlib import Path

from harness.errors import HarnessError
from harness.ownership import RunLock, new_marker
from harness.scenario.model import Scenario
from harness.storage import backend_for

log = logging.getLogger(__name__)


def lock_workdir(
    workdir: Path,
    *,
    run_id: str,
    owner: str,
    scenario_file: Path,
    scenario: Scenario,
    runtime: str,
    run_dir: Path,
    kube_context: str | None,
    kubeconfig: str | None,
) -> RunLock:
    """The marker that makes the work directory this run's, locked until ``release``."""
    storage = scenario.storage
    marker = new_marker(
        run_id=run_id,
        owner=owner,
        workdir=workdir,
        scenario_file=str(scenario_file),
        scenario_name=scenario.name,
        runtime=runtime,
        reports_dir=str(run_dir),
        kube_context=kube_context,
        kubeconfig=kubeconfig,
        host_paths=[str(p) for p in backend_for(storage).host_paths(storage)],
    )
    return RunLock.create(workdir, marker)


def leftover_notices(
    workdir_root: Path | None, owner: str, *, current_run: str, kubeconfig: str | None, context: str | None
) -> list[str]:
    """Warnings about earlier runs of ``owner`` that were killed; none when the look around fails (it is not part of
    the run)."""
    from harness.cleanup.notice import earlier_leftovers

    try:
        return earlier_leftovers(workdir_root, owner, current_run=current_run, kubeconfig=kubeconfig, context=context)
    except (HarnessError, OSError) as e:  # a look around, not part of the run
        log.debug("could not look for earlier runs' leftovers: %s", e)
        return []


def release(lock: RunLock | None, *, kept: bool) -> None:
    """The run is over: a work directory kept on purpose (--keep-data) says so, and the lock goes."""
    if lock is None:
        return
    if kept:
        lock.update(state="kept")
    lock.release()
