"""``disk_full``: the filesystem under Prometheus' data directory is full for the spec's ``for``, then freed.

The runtime fills it with one file of ours beside the TSDB directory (``VolumeFiller``; locally
``harness.datapath.fill``), as root, so Prometheus gets ENOSPC whatever its uid; the undo step that deletes the file is
recorded first, so a fill that breaks half way, an error or Ctrl-C during the window frees the space too.
Prometheus keeps running and the load keeps writing: what Prometheus could not put in its WAL must be rejected
(recorded by the load with Prometheus' answer), never acknowledged, and every acknowledged sample must survive.
"""

from __future__ import annotations

from harness.capabilities.volume_fill import VolumeFiller
from harness.faults.base import WindowInjector
from harness.runtime.base import Runtime
from harness.scenario.model import DiskFullFault
from harness.undo import UndoLog, UndoStep


class DiskFull(WindowInjector[DiskFullFault]):
    action = "disk_full"
    needs = frozenset({VolumeFiller})

    def begin(self, spec: DiskFullFault, runtime: Runtime, undo: UndoLog) -> tuple[float, str, UndoStep]:
        filler = runtime.capability(VolumeFiller)
        step = undo.record("delete the disk_full fill file (the space comes back)", filler.free)
        filled = filler.fill()
        return filled.at_unix_s, filled.detail, step


FAULT = DiskFull()
