"""The binding simulation against the real PV controller: same PVs and claim, same verdict.

Runs on the cluster the tests/k8s fixtures give ($KUBECONFIG, else the local one from testbed). It creates
hostPath PVs (binding never mounts them) with a storageClassName unique to the test, so no other PV in the cluster
can interfere, in a throwaway namespace deleted afterwards.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.doctor.binding import simulate_binding
from harness.kube.contexts import load_inventory
from harness.kube.inventory import PvcInfo
from harness.wait import wait_for
from tests.k8s.helpers import context_of

pytestmark = pytest.mark.cluster

# The PV controller syncs a new claim at once; a claim still Pending after this long is not going to bind.
SETTLE_S = 8.0


@dataclass
class Cluster:
    core: Any
    kubeconfig: Path
    namespace: str
    cls: str
    created_pvs: list[str]

    def pv(self, name: str, *, labels: dict[str, str] | None = None, size: str = "1Gi", claim_ref: Any = None) -> str:
        from kubernetes import client

        full = f"{self.namespace}-{name}"
        body = client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=full, labels=labels or {}),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": size},
                access_modes=["ReadWriteOnce"],
                storage_class_name=self.cls,
                persistent_volume_reclaim_policy="Retain",
                host_path=client.V1HostPathVolumeSource(path=f"/tmp/{full}"),
                claim_ref=claim_ref,
            ),
        )
        self.core.create_persistent_volume(body)
        self.created_pvs.append(full)
        return full

    def claim(self, name: str, *, selector: dict[str, str] | None = None, size: str = "1Gi") -> Any:
        from kubernetes import client

        body = client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"],
                storage_class_name=self.cls,
                resources=client.V1VolumeResourceRequirements(requests={"storage": size}),
                selector=client.V1LabelSelector(match_labels=selector) if selector else None,
            ),
        )
        return self.core.create_namespaced_persistent_volume_claim(self.namespace, body)

    def settled_volume(self, name: str) -> str | None:
        """The PV the real controller bound the claim to, or None if it is still Pending after SETTLE_S."""
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            pvc = self.core.read_namespaced_persistent_volume_claim(name, self.namespace)
            if pvc.status.phase == "Bound":
                return str(pvc.spec.volume_name)
            time.sleep(0.5)
        return None


@pytest.fixture
def cluster(kubeconfig: Path, api_client: Any, namespace: str) -> Iterator[Cluster]:
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    c = Cluster(core, kubeconfig, namespace, f"harness-doctor-{namespace}", [])
    try:
        yield c
    finally:
        for pv in c.created_pvs:
            core.delete_persistent_volume(pv)


def _compare(c: Cluster, claim_name: str, selector: dict[str, str] | None, request_bytes: int) -> None:
    # Let the controller settle the PVs (a claimRef to a missing claim becomes Released) before reading them.
    wait_for(
        lambda: all(
            c.core.read_persistent_volume(n).status.phase in ("Available", "Released", "Bound") for n in c.created_pvs
        ),
        what="the PV controller to give every test PV a phase",
        timeout_s=SETTLE_S,
    )
    inventory = load_inventory(str(c.kubeconfig), namespace=c.namespace, context=context_of(c.kubeconfig))
    mine = [pv for pv in inventory.pvs if pv.name in c.created_pvs]
    planned = PvcInfo(c.namespace, claim_name, c.cls, request_bytes, selector=selector)
    simulated = simulate_binding(planned, type(inventory)(namespace=c.namespace, pvs=tuple(mine)))
    c.claim(claim_name, selector=selector)
    assert c.settled_volume(claim_name) == simulated.bound_pv, simulated.verdict_lines()


def test_smallest_match_binds_like_the_controller(cluster: Cluster) -> None:
    cluster.pv("big", size="5Gi")
    cluster.pv("small", size="1Gi")
    _compare(cluster, "prometheus-db", None, 1024**3)


def test_selector_mismatch_stays_pending_like_the_controller(cluster: Cluster) -> None:
    cluster.pv("labelled", labels={"app": "wsg-grafana"})
    _compare(cluster, "prometheus-db", {"app": "wsg-prometheus"}, 1024**3)


def test_released_pv_with_stale_claim_ref_is_not_reused_like_the_controller(cluster: Cluster) -> None:
    from kubernetes import client

    stale = client.V1ObjectReference(namespace=cluster.namespace, name="prometheus-db", uid=secrets.token_hex(8))
    cluster.pv("released", claim_ref=stale)
    _compare(cluster, "prometheus-db", None, 1024**3)
