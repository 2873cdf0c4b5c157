"""``ceph_client_crash``: the Ceph client process under Prometheus dies (SIGKILL) and nothing mounts the volume
again, as when ceph-csi's node plugin restarts with ``mounter: fuse`` and takes its ceph-fuse mounts with it.

CephFS: ceph-fuse's mount answers every call with "Transport endpoint is not connected". RBD: qemu-storage-daemon
(librbd) goes, the FUSE file the loop device reads is dead, and every I/O of the filesystem on it fails. Prometheus
keeps running on the dead volume (the load keeps writing to it and records what it refuses); it has recovered only
when it takes writes again, which, with nothing to remount the volume, it does not: the fault is expected to end
FAILED (exit 1), Prometheus not back, with the acknowledged history checked up to the crash. The measured outcome
per backend is in docs/faults/ceph.md.
"""

from __future__ import annotations

from harness.capabilities.ceph import CephClientControl
from harness.faults.base import Acted, Injector
from harness.runtime.base import Runtime
from harness.scenario.faults import CephClientCrashFault
from harness.undo import UndoLog


class CephClientCrash(Injector[CephClientCrashFault]):
    action = "ceph_client_crash"
    needs = frozenset({CephClientControl})
    keeps_instance = True  # Prometheus runs on; what it does on a dead volume is the finding
    below_prometheus = True

    def act(self, spec: CephClientCrashFault, runtime: Runtime, undo: UndoLog) -> Acted:
        # Nothing to undo: the volume's teardown unmounts a dead client's mount (lazily) at the end of the run.
        return Acted(*runtime.capability(CephClientControl).kill_client(spec.node_plugin_restart))


FAULT = CephClientCrash()
