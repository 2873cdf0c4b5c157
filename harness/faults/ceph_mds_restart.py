"""``ceph_mds_restart``: the CephFS metadata server of the cluster the run started stops for ``for`` (SIGTERM) and
starts again on its journal, while Prometheus keeps running on the CephFS volume.

With one MDS (the embedded cluster's) no standby takes over: what needs the MDS waits for it (opening or creating a
file, a rename, the metadata an fsync flushes), while writes to a file the client already holds caps on (the WAL
segment Prometheus appends to) may go on in ceph-fuse's cache. Started again, the MDS replays its journal, waits for
its clients to reconnect and turns active: the ``lifted`` stage. What Prometheus and the load met meanwhile, and how
long the MDS took, is the finding; the measured outcome is in docs/faults/ceph.md.

Only a cluster the run started (``monitors: embedded``) and only with CephFS: anything else is refused before
anything starts. Starting the MDS again is recorded in the undo log before it is stopped, so Ctrl-C during the
window brings it back.
"""

from __future__ import annotations

from harness.capabilities.ceph import CephMdsControl
from harness.faults.base import WindowInjector
from harness.runtime.base import Runtime
from harness.scenario.faults import CephMdsRestartFault
from harness.undo import UndoLog, UndoStep


class CephMdsRestart(WindowInjector[CephMdsRestartFault]):
    action = "ceph_mds_restart"
    needs = frozenset({CephMdsControl})

    def begin(self, spec: CephMdsRestartFault, runtime: Runtime, undo: UndoLog) -> tuple[float, str, UndoStep]:
        mds = runtime.capability(CephMdsControl)

        def start_again() -> str:
            return mds.start_mds()[1]  # returns once the MDS is active again: the "lifted" stage

        step = undo.record("start the CephFS MDS again", start_again)
        stopped_at, stopped = mds.stop_mds()
        return stopped_at, f"{stopped}, for {spec.for_s:g} s", step


FAULT = CephMdsRestart()
