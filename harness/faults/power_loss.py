"""``power_loss``: the power fails under Prometheus' data directory. What was written but not yet fsynced there is
lost, and Prometheus dies with it (SIGKILL at the same instant); it restarts on what was durable.

Prometheus' WAL write()s every commit before a remote write is acknowledged but fsyncs only when a segment is
completed or closed, so a power loss may take acknowledged samples back to the last fsync: that is the finding, and
``checks.history_survival.max_samples_lost`` says whether it is acceptable. The fault records when the last fsync
under the WAL directory happened (``FaultRecord.last_wal_fsync_at_s``): the loss window starts no earlier. The
runtime hands out the fault layer (``FaultLayerControl``: ``harness.datapath.fault_fuse`` over the data directory).
"""

from __future__ import annotations

from harness.capabilities.fault_layer import FaultLayerControl
from harness.faults.base import Acted, Injector
from harness.runtime.base import Runtime
from harness.scenario.model import PowerLossFault
from harness.undo import UndoLog


class PowerLoss(Injector[PowerLossFault]):
    action = "power_loss"
    needs = frozenset({FaultLayerControl})
    below_prometheus = True

    def act(self, spec: PowerLossFault, runtime: Runtime, undo: UndoLog) -> Acted:
        cut = runtime.capability(FaultLayerControl).power_cut()
        return Acted(cut.at_unix_s, cut.detail, last_wal_fsync_unix_s=cut.last_wal_fsync_unix_s)


FAULT = PowerLoss()
