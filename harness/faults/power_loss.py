"""``power_loss``: the power fails under Prometheus' data directory. What was written but not yet fsynced there is
lost, and Prometheus dies with it (SIGKILL at the same instant); it restarts on what was durable.

Prometheus' WAL write()s every commit before a remote write is acknowledged but fsyncs only when a segment is
completed or closed, so a power loss may take acknowledged samples back to the last fsync: that is the finding, and
``checks.history_survival.max_samples_lost`` says whether it is acceptable. The fault records when the last fsync
under the WAL directory happened (``FaultRecord.last_wal_fsync_at_s``): the loss window starts no earlier. The
runtime hands out the fault layer (``FaultLayerControl``: ``harness.datapath.fault_fuse`` over the data directory).

Below the filesystem the storage may hold more that a power loss takes (``VolatileBelow``): with ``rbd`` and
``cache: writeback``, librbd's write-back cache in qemu-storage-daemon's memory. The cut then also SIGKILLs that
daemon while Prometheus is down, attaches the image again and mounts the filesystem again (journal replay) before
Prometheus restarts: what Prometheus fsynced must still be there if the storage honours flushes. The detail says
which layers the cut took.
"""

from __future__ import annotations

from harness.capabilities.fault_layer import FaultLayerControl
from harness.capabilities.volatile_below import VolatileBelow
from harness.faults.base import Acted, Injector
from harness.runtime.base import Runtime
from harness.scenario.model import PowerLossFault
from harness.undo import UndoLog


class PowerLoss(Injector[PowerLossFault]):
    action = "power_loss"
    needs = frozenset({FaultLayerControl, VolatileBelow})
    below_prometheus = True

    def act(self, spec: PowerLossFault, runtime: Runtime, undo: UndoLog) -> Acted:
        cut = runtime.capability(FaultLayerControl).power_cut(runtime.capability(VolatileBelow))
        return Acted(cut.at_unix_s, cut.detail, last_wal_fsync_unix_s=cut.last_wal_fsync_unix_s)


FAULT = PowerLoss()
