"""What the harness host's settings (``harness.settings``) fill into a scenario that leaves it open, applied once when
a scenario is loaded for a run (``harness run``, ``harness doctor``, ``harness values``), so nothing after reads the
environment and the result records what was used:

* a ``node_loss`` fault without ``node_control``: ``HARNESS_NODE_STOP`` and ``HARNESS_NODE_START`` (both, or
  neither: the fault then refuses the run, saying how to give them);
* ``nfs`` / ``iscsi`` storage without ``mount_path``: ``HARNESS_NFS_MOUNT`` / ``HARNESS_ISCSI_MOUNT``.

What the scenario says itself always wins.
"""

from __future__ import annotations

from harness.scenario.model import FaultSpec, IscsiStorage, NfsStorage, NodeControl, NodeLossFault, Scenario
from harness.settings import Settings


def with_host_defaults(scenario: Scenario, settings: Settings) -> Scenario:
    """``scenario`` with what it leaves open filled from ``settings``; the same object when nothing is filled."""
    update: dict[str, object] = {}
    faults = [_with_node_control(spec, settings) for spec in scenario.faults]
    if any(new is not old for new, old in zip(faults, scenario.faults, strict=True)):
        update["faults"] = faults
    storage = scenario.storage
    mount = settings.mounts.get(storage.backend)
    if mount and isinstance(storage, NfsStorage | IscsiStorage) and storage.mount_path is None:
        update["storage"] = storage.model_copy(update={"mount_path": mount})
    return scenario.model_copy(update=update) if update else scenario


def _with_node_control(spec: FaultSpec, settings: Settings) -> FaultSpec:
    if not isinstance(spec, NodeLossFault) or spec.node_control is not None:
        return spec
    if not settings.node_stop or not settings.node_start:
        return spec
    control = NodeControl(stop=list(settings.node_stop), start=list(settings.node_start))
    return spec.model_copy(update={"node_control": control})
