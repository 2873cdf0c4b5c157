"""``disk_full``: the filesystem under Prometheus' data directory is full for the spec's ``for``, then freed.

The runtime fills it with one file of ours beside the TSDB directory (``Runtime.fill_data_volume``; locally
``harness.fill``), as root, so Prometheus gets ENOSPC whatever its uid; the undo step that deletes the file is
recorded first, so a fill that breaks half way, an error or Ctrl-C during the window frees the space too.
Prometheus keeps running and the load keeps writing: what Prometheus could not put in its WAL must be rejected
(recorded by the load with Prometheus' answer), never acknowledged, and every acknowledged sample must survive.
The runtime needs the ``fill-volume`` capability.
"""

from __future__ import annotations

from harness.faults.base import WindowInjector
from harness.runtime.base import Runtime
from harness.scenario.model import DiskFullFault
from harness.undo import UndoLog, UndoStep


class DiskFull(WindowInjector[DiskFullFault]):
    action = "disk_full"
    requires = frozenset({"fill-volume"})

    def begin(self, spec: DiskFullFault, runtime: Runtime, undo: UndoLog) -> tuple[float, str, UndoStep]:
        step = undo.record("delete the disk_full fill file (the space comes back)", runtime.free_data_volume)
        filled = runtime.fill_data_volume()
        return filled.at_unix_s, filled.detail, step


FAULT = DiskFull()
