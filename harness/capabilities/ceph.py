"""Ceph under Prometheus, for the Ceph faults: kill this run's Ceph client (``ceph-fuse`` for CephFS,
``qemu-storage-daemon`` with librbd for RBD), and stop and start an OSD or the CephFS MDS of the cluster the run
started itself.

The storage gives them or not: a client only a Ceph backend mounted (``cephfs``, ``rbd``) or, on a cluster, a volume
of ceph-csi's CephFS driver (``backend: dynamic`` naming its ``provisioner``), whose node plugin on Prometheus' node
holds the client (ceph-fuse with ``mounter: fuse``) and is restarted by the scenario's command; an OSD only a cluster
the run started (``monitors: embedded``), and its MDS only with CephFS; the harness never stops a daemon of a cluster
it did not start.
"""

from __future__ import annotations

from abc import abstractmethod

from harness.capabilities import StorageGiven
from harness.kube.inventory import ceph_csi_kind
from harness.scenario.faults import CephClientCrashFault
from harness.scenario.model import CephClientSpec, CephFsStorage, DynamicStorage, Scenario

CEPH_BACKENDS = ("cephfs", "rbd")
CEPHFS_CSI_DRIVER = "cephfs.csi.ceph.com"


class CephClientControl(StorageGiven):
    does = "kill the Ceph client process under Prometheus"
    lacking = "it reaches no Ceph client under Prometheus"

    @classmethod
    def storage_refusal(cls, scenario: Scenario) -> str | None:
        storage = scenario.storage
        restarts = [f.node_plugin_restart for f in scenario.faults if isinstance(f, CephClientCrashFault)]
        if storage.backend in CEPH_BACKENDS:
            if any(r is not None for r in restarts):
                return (
                    f"ceph_client_crash's node_plugin_restart is for a ceph-csi volume on a cluster (backend dynamic); "
                    f"on backend {storage.backend} the harness kills its own client: drop node_plugin_restart"
                )
            return None
        if isinstance(storage, DynamicStorage):
            if ceph_csi_kind(storage.provisioner) != "cephfs":
                return (
                    f"storage.provisioner must name ceph-csi's CephFS driver ({CEPHFS_CSI_DRIVER}, or Rook's "
                    f"<namespace>.{CEPHFS_CSI_DRIVER}; the doctor checks that class {storage.storage_class} names it),"
                    f" not {storage.provisioner or 'nothing'}: the fault restarts that driver's node plugin"
                )
            if any(r is None for r in restarts):
                return (
                    "ceph_client_crash on a ceph-csi volume restarts the driver's node plugin on Prometheus' node: "
                    "give it node_plugin_restart, the command that does (argv, {node} replaced by the node's name)"
                )
            return None
        return (
            f"storage.backend {storage.backend} has no Ceph client under Prometheus: use backend cephfs (ceph-fuse) or"
            " rbd (qemu-storage-daemon with librbd) on the local runtime, or dynamic on a ceph-csi CephFS class on a"
            " cluster"
        )

    @abstractmethod
    def kill_client(self, node_plugin_restart: list[str] | None) -> tuple[float, str]:
        """Kill the client that serves Prometheus' volume: the run's own process (SIGKILL), or on a cluster the CSI
        node plugin on Prometheus' node by running ``node_plugin_restart``; when, and what was done and seen (the
        mount's answer right after, in its own words, or what Prometheus met)."""


def _not_the_runs(storage: CephClientSpec, daemon: str) -> str | None:
    """Why the harness stops no ``daemon`` of this cluster: it did not start it (None: it did)."""
    if storage.embedded_cluster is None:
        return (
            f"the Ceph cluster at {storage.monitors} is not the run's: the harness stops only the {daemon} of a "
            "cluster it started itself (monitors: embedded), never a daemon of someone else's cluster"
        )
    return None


class CephOsdControl(StorageGiven):
    does = "stop and start an OSD of the Ceph cluster under Prometheus"
    lacking = "it stops no Ceph daemon"

    @classmethod
    def storage_refusal(cls, scenario: Scenario) -> str | None:
        storage = scenario.storage
        if not isinstance(storage, CephClientSpec):
            return f"storage.backend {storage.backend} is no Ceph storage: use backend cephfs or rbd"
        return _not_the_runs(storage, "OSD")

    @abstractmethod
    def stop_osd(self) -> tuple[float, str]:
        """Stop the OSD (SIGTERM, bounded); when, and what was done."""

    @abstractmethod
    def start_osd(self) -> tuple[float, str]:
        """Start the OSD ``stop_osd`` stopped, on the same data; returns once the cluster reports it up."""


class CephMdsControl(StorageGiven):
    does = "stop and start the CephFS metadata server under Prometheus"
    lacking = "it stops no Ceph daemon"

    @classmethod
    def storage_refusal(cls, scenario: Scenario) -> str | None:
        storage = scenario.storage
        if not isinstance(storage, CephFsStorage):
            return f"storage.backend {storage.backend} has no CephFS metadata server: use backend cephfs"
        return _not_the_runs(storage, "MDS")

    @abstractmethod
    def stop_mds(self) -> tuple[float, str]:
        """Stop the MDS (SIGTERM, bounded); when, and what was done and what the monitor then says of it."""

    @abstractmethod
    def start_mds(self) -> tuple[float, str]:
        """Start the MDS ``stop_mds`` stopped, on its journal; returns once it is active again for the file system."""
