"""``harness values scenarios/local-pv.yaml``, applied as a kube-prometheus-stack user would: the printed StorageClass
and PV with ``kubectl apply``, the values' ``storageSpec`` as the ``Prometheus`` resource's ``spec.storage`` (what the
chart's template does with it), reconciled by the real prometheus-operator: its claim binds the PV the doctor named.

The PV is not alone: decoys of the same class sit beside it on the same node, each failing the claim on exactly one
point (labels the selector does not match, too small, the wrong access mode, another class), and one that matches
but is bigger, so the doctor has to apply the PV controller's rules (every filter, then the smallest match) to name
the PV the claim gets, and the real binding shows whether it did.

The operator comes from tests/k8s/test_operator.py (built from its Go module by testbed/operator.py and run as a
host process); without it this module is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.kube.api import KubeApi
from harness.kube.contexts import load_inventory
from harness.scenario.loader import load_scenario
from harness.storage.base import operator_claim_name
from harness.values import DEFAULT_RELEASE, build, prometheus_name
from tests.k8s.helpers import wait_for
from tests.test_values import CLUSTER_SETTINGS, SCENARIOS, documents, flat

_operator_tests = pytest.importorskip(
    "tests.k8s.test_operator", reason="no prometheus-operator fixture here (tests/k8s/test_operator.py)"
)
prometheus_operator = _operator_tests.prometheus_operator  # the module-scoped fixture: the operator, its CRDs

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

BIND_TIMEOUT_S = 180  # the operator makes the StatefulSet, the scheduler picks node and PV (WaitForFirstConsumer)
GI = 1024**3
# The values' PV is 5Gi, labelled `app: values-<ns>`, for a claim of 4Gi ReadWriteOnce with that selector. Each decoy
# is a local PV on the same node with the same labels, class and access mode, but for what its entry changes; the
# second item is the word the doctor's reason for turning it down starts with (None: it matches). Every decoy turned
# down is smaller than the values' PV, so a rule the doctor skipped would make that decoy the smallest match.
DECOYS: dict[str, tuple[dict[str, Any], str | None]] = {
    "labels": ({"capacity": 4 * GI, "labels": {"app": "someone-else"}}, "labels"),
    "small": ({"capacity": 1 * GI}, "capacity"),
    "access": ({"capacity": 4 * GI, "access_modes": ["ReadOnlyMany"]}, "accessModes"),
    "class": ({"capacity": 4 * GI, "other_class": True}, "storageClassName"),
    "bigger": ({"capacity": 6 * GI}, None),
}


def _decoy_manifest(
    name: str, path: str, storage_class: str, labels: dict[str, str], how: dict[str, Any]
) -> dict[str, Any]:
    """A local PV on node-2 as the values' PV is, but for the differences ``how`` names."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"harness.prom/test": "1", **how.get("labels", labels)}},
        "spec": {
            "capacity": {"storage": str(how["capacity"])},
            "accessModes": how.get("access_modes", ["ReadWriteOnce"]),
            "volumeMode": "Filesystem",
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": f"{storage_class}-other" if how.get("other_class") else storage_class,
            "local": {"path": path},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-2"]}
                            ]
                        }
                    ]
                }
            },
        },
    }


def test_the_operator_binds_the_pv_harness_values_named(
    prometheus_operator: Path,
    kubeconfig: Path,
    *,
    kube_context: str,
    api_client: Any,
    namespace: str,
    node_dir: Callable[[str, str], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    path = node_dir("node-2", f"values-{namespace}")
    storage_class, labels = f"values-{namespace}", {"app": f"values-{namespace}"}
    settings = [s for s in CLUSTER_SETTINGS["local-pv"] if not s.startswith("storage.path=")]
    settings += [f"storage.path={path}", f"storage.volume.name=values-{namespace}"]
    settings += [f"storage.claim.storage_class={storage_class}", "storage.volume.capacity=5Gi"]
    settings += [f"storage.volume.labels={{app: {labels['app']}}}", f"storage.claim.selector={{app: {labels['app']}}}"]
    scenario_file = SCENARIOS / "local-pv.yaml"
    decoys = {f"values-{namespace}-{kind}": decoy for kind, decoy in DECOYS.items()}
    manifests: list[dict[str, Any]] = []
    api = KubeApi(str(kubeconfig), context=kube_context)
    try:
        # Cluster-scoped, so the namespace fixture does not take them: deleted in the finally below.
        for name, (how, _) in decoys.items():
            core.create_persistent_volume(_decoy_manifest(name, node_dir("node-2", name), storage_class, labels, how))
        argv = ["values", str(scenario_file), "--namespace", namespace, "--kubeconfig", str(kubeconfig)]
        code = main([*argv, "--context", kube_context, *(a for s in settings for a in ("--set", s))])
        out = capsys.readouterr().out
        assert code == 0, out
        values, *manifests = documents(out)
        named = re.search(r"binding \(the doctor's simulation\): the claim \S+ binds pv/(\S+)", flat(out))
        assert named is not None, out
        assert named.group(1) == f"values-{namespace}", out

        # The prediction was made among the decoys: each is seen, and turned down for its one difference only (the
        # bigger one matches), so each of the controller's rules had to hold for the doctor to name the right PV.
        scenario = load_scenario(scenario_file, settings)
        inventory = load_inventory(str(kubeconfig), namespace=namespace, context=kube_context)
        binding = build(scenario, namespace=namespace, inventory=inventory).binding
        assert binding is not None
        reasons = {v.pv.name: v.reasons for v in binding.verdicts}
        for name, (_, rule) in decoys.items():
            assert [r.split()[0] for r in reasons[name]] == ([rule] if rule else []), (name, reasons[name])

        name = prometheus_name(DEFAULT_RELEASE)
        prom = values["prometheus"]["prometheusSpec"]
        resource = {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "Prometheus",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "storage": prom["storageSpec"],
                "securityContext": prom["securityContext"],
                "retention": prom["retention"],
                # The local image (the nodes have it; no registry is reachable) and the version the operator needs.
                "image": scenario.prometheus.image,
                "version": getattr(scenario.prometheus, "version", "v2.42.0"),
                "imagePullPolicy": "IfNotPresent",
                "replicas": 1,
                "serviceMonitorSelector": {},
            },
        }
        for manifest in manifests:  # kubectl apply -f, the class first
            api.create(manifest)
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            "monitoring.coreos.com", "v1", namespace, "prometheuses", resource
        )
        claim = operator_claim_name(name)
        bound = wait_for(
            core.list_namespaced_persistent_volume_claim,
            lambda c: c.metadata.name == claim and c.status.phase == "Bound",
            timeout=BIND_TIMEOUT_S,
            what=f"the operator's claim {namespace}/{claim} to bind",
            namespace=namespace,
        )
        assert bound.spec.volume_name == named.group(1)
        for name in decoys:
            pv = core.read_persistent_volume(name)
            assert (pv.status.phase, pv.spec.claim_ref) == ("Available", None), (name, pv.status, pv.spec.claim_ref)
    finally:
        # The namespace fixture deletes the resource and the claim; the PVs (Retain), the decoys and the class are
        # ours to delete (absent is fine: the test may have stopped before making them).
        for manifest in reversed(manifests):
            api.delete(manifest["kind"], manifest["metadata"]["name"])
        for name in decoys:
            api.delete("PersistentVolume", name)
        api.close()
