"""Ceph under Prometheus, for the Ceph faults: kill this run's Ceph client (``ceph-fuse`` for CephFS,
``qemu-storage-daemon`` with librbd for RBD) and stop and start an OSD of the cluster the run started itself.

The storage gives them or not: a client only a Ceph backend mounted (``cephfs``, ``rbd``), an OSD only a cluster the
run started (``monitors: embedded``); the harness never stops a daemon of a cluster it did not start.
"""

from __future__ import annotations

from abc import abstractmethod

from harness.capabilities import StorageGiven
from harness.scenario.model import CephClientSpec, Scenario

CEPH_BACKENDS = ("cephfs", "rbd")


class CephClientControl(StorageGiven):
    does = "kill the Ceph client process under Prometheus"
    lacking = "it mounts no Ceph client of its own (on a cluster, ceph-csi's node plugin holds the mount)"

    @classmethod
    def storage_refusal(cls, scenario: Scenario) -> str | None:
        backend = scenario.storage.backend
        if backend not in CEPH_BACKENDS:
            return (
                f"storage.backend {backend} has no Ceph client process of this run's: use backend cephfs (ceph-fuse) "
                "or rbd (qemu-storage-daemon with librbd)"
            )
        return None

    @abstractmethod
    def kill_client(self) -> tuple[float, str]:
        """SIGKILL the client process that serves Prometheus' volume; when, and what was done and seen (the mount's
        answer right after, in its own words)."""


class CephOsdControl(StorageGiven):
    does = "stop and start an OSD of the Ceph cluster under Prometheus"
    lacking = "it stops no Ceph daemon"

    @classmethod
    def storage_refusal(cls, scenario: Scenario) -> str | None:
        storage = scenario.storage
        if not isinstance(storage, CephClientSpec):
            return f"storage.backend {storage.backend} is no Ceph storage: use backend cephfs or rbd"
        if storage.embedded_cluster is None:
            return (
                f"the Ceph cluster at {storage.monitors} is not the run's: the harness stops only the OSD of a "
                "cluster it started itself (monitors: embedded), never a daemon of someone else's cluster"
            )
        return None

    @abstractmethod
    def stop_osd(self) -> tuple[float, str]:
        """Stop the OSD (SIGTERM, bounded); when, and what was done."""

    @abstractmethod
    def start_osd(self) -> tuple[float, str]:
        """Start the OSD ``stop_osd`` stopped, on the same data; returns once the cluster reports it up."""
