"""A kubelet's metrics through the API (``harness.kube.kubelet_metrics``) on the local cluster: an identity without
the ``nodes/proxy`` right is refused, which reads as no calls seen (None), never an error; and the pod tracker's
CSI stages (``harness.runtime.kubernetes.csi_stages``) then mark nothing and say why, once. The stages themselves,
from a real driver's calls, are in test_ceph_csi.py (test 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.kube.api import KubeApi
from harness.kube.kubelet_metrics import CsiCalls, csi_calls
from harness.kube.pods import PodInfo
from harness.runtime.kubernetes.csi_stages import CsiStages

DRIVER = "refused.csi.example.com"  # no such driver runs: only the PV's spec names it
CLAIM = "data"
# What the reader may do: what the tracker reads besides the kubelet's metrics, and nothing more.
READER_RULES = [{"apiGroups": [""], "resources": ["nodes", "persistentvolumes", "persistentvolumeclaims"]}]


@pytest.fixture
def reader_kubeconfig(
    api_client: Any, kubeconfig: Path, kube_context: str, namespace: str, tmp_path: Path
) -> Iterator[Path]:
    """A kubeconfig of a ServiceAccount of ``namespace`` that may get and list nodes, PVs and claims (a ClusterRole
    named after the namespace, deleted after) but not ``nodes/proxy``."""
    from kubernetes import client

    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    name = f"harness-test-{namespace}"
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    rules = [{**rule, "verbs": ["get", "list"]} for rule in READER_RULES]
    rbac.create_cluster_role({"metadata": {"name": name, "labels": {"harness.prom/test": "1"}}, "rules": rules})
    binding = {
        "metadata": {"name": name, "labels": {"harness.prom/test": "1"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
    }
    rbac.create_cluster_role_binding(binding)
    try:
        request = {"spec": {"audiences": [], "expirationSeconds": 600}}
        token = core.create_namespaced_service_account_token("reader", namespace, request).status.token
        admin = yaml.safe_load(kubeconfig.read_text())
        context = next(c["context"] for c in admin["contexts"] if c["name"] == kube_context)
        cluster = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": "reader", "user": {"token": token}}],
            "contexts": [{"name": "reader", "context": {"cluster": cluster["name"], "user": "reader"}}],
            "current-context": "reader",
        }
        path = tmp_path / "reader.kubeconfig"
        path.write_text(json.dumps(config))
        yield path
    finally:
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)


@pytest.fixture
def csi_claim(api_client: Any, namespace: str) -> Iterator[str]:
    """Claim ``CLAIM`` of ``namespace`` bound to a PV whose spec names the CSI driver ``DRIVER`` (no pod mounts it, so
    nothing calls the driver); the PV is deleted after."""
    from kubernetes import client

    from tests.k8s.helpers import wait_for

    core = client.CoreV1Api(api_client)
    pv = f"harness-test-{namespace}"
    core.create_persistent_volume(
        {
            "metadata": {"name": pv, "labels": {"harness.prom/test": "1"}},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "persistentVolumeReclaimPolicy": "Retain",
                "csi": {"driver": DRIVER, "volumeHandle": pv},
                "claimRef": {"namespace": namespace, "name": CLAIM},
            },
        }
    )
    try:
        claim = {
            "metadata": {"name": CLAIM},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": pv,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
        core.create_namespaced_persistent_volume_claim(namespace, claim)
        wait_for(
            core.list_namespaced_persistent_volume_claim,
            lambda c: c.metadata.name == CLAIM and c.status.phase == "Bound",
            timeout=60,
            namespace=namespace,
            what=f"claim {namespace}/{CLAIM} bound to pv/{pv}",
        )
        yield CLAIM
    finally:
        core.delete_namespaced_persistent_volume_claim(CLAIM, namespace)
        core.delete_persistent_volume(pv)


def _pod(namespace: str, uid: str, node: str) -> PodInfo:
    return PodInfo(namespace, "prometheus-0", uid, node, "Running", "10.0.0.1", True, False)


@pytest.mark.cluster
def test_a_kubelet_refused_through_the_api_gives_no_calls_and_the_tracker_says_why_once(
    kubeconfig: Path, kube_context: str, namespace: str, reader_kubeconfig: Path, csi_claim: str
) -> None:
    admin = KubeApi(str(kubeconfig), context=kube_context)
    reader = KubeApi(str(reader_kubeconfig), context="reader")
    try:
        node = admin.nodes()[0].name
        seen = csi_calls(admin, node, DRIVER)
        assert isinstance(seen, CsiCalls) and seen.calls == {}, "no call to the driver is no calls, not a refusal"
        assert csi_calls(reader, node, DRIVER) is None  # 403: no nodes/proxy right

        stages = CsiStages(reader, namespace, csi_claim, interval_s=0.1)
        stages.arm(_pod(namespace, "old", node), [])
        new = _pod(namespace, "new", node)
        stages.placed(new)
        stages.settle(new)
        marks, note = stages.collect()
        assert marks == ()
        assert note == (
            f"volume_staged and volume_published not shown: node {node}'s kubelet served no metrics through the API "
            "(403 or 404: no nodes/proxy right?)"
        )
        assert stages.collect() == ((), ""), "said once: the next recovery (no fault armed) says nothing"
    finally:
        reader.close()
        admin.close()
