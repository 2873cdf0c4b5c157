"""``ceph_osd_down``: the OSD of the cluster the run started stops for ``for`` (SIGTERM) and starts again on the
same data, while Prometheus keeps running on the Ceph volume.

With pool size 1 (the embedded cluster) no other copy exists: every I/O to a placement group of that OSD blocks
until it is back (Ceph neither fails nor redirects it), so Prometheus' WAL writes wait in the client (ceph-fuse,
librbd) and the load's remote writes wait or time out with them. Once the OSD is up and its placement groups peer,
the blocked I/O completes: nothing acknowledged is lost. The recovery stages say when the OSD was back, when a write
went through again and when Prometheus took a sample (the "lifted" stage: the OSD up, its placement groups
active); the measured outcome is in docs/faults/ceph.md.

Only a cluster the run started (``monitors: embedded``): a user-named cluster is refused before anything starts.
Starting the OSD again is recorded in the undo log before it is stopped, so Ctrl-C during the window brings it back.
"""

from __future__ import annotations

from harness.capabilities.ceph import CephOsdControl
from harness.faults.base import WindowInjector
from harness.runtime.base import Runtime
from harness.scenario.faults import CephOsdDownFault
from harness.undo import UndoLog, UndoStep


class CephOsdDown(WindowInjector[CephOsdDownFault]):
    action = "ceph_osd_down"
    needs = frozenset({CephOsdControl})

    def begin(self, spec: CephOsdDownFault, runtime: Runtime, undo: UndoLog) -> tuple[float, str, UndoStep]:
        osd = runtime.capability(CephOsdControl)

        def start_again() -> str:
            # The "lifted" stage is when start_osd returned: the OSD up again and its placement groups active.
            return osd.start_osd()[1]

        step = undo.record("start the Ceph OSD again", start_again)
        stopped_at, stopped = osd.stop_osd()
        return stopped_at, f"{stopped}, for {spec.for_s:g} s", step


FAULT = CephOsdDown()
