"""``harness values scenarios/local-pv.yaml``, applied as a kube-prometheus-stack user would: the printed StorageClass
and PV with ``kubectl apply``, the values' ``storageSpec`` as the ``Prometheus`` resource's ``spec.storage`` (what the
chart's template does with it), reconciled by the real prometheus-operator: its claim binds the PV the doctor named.

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
from harness.kube import KubeApi
from harness.scenario.loader import load_scenario
from harness.storage.base import operator_claim_name
from harness.values import DEFAULT_RELEASE, prometheus_name
from tests.k8s.helpers import wait_for
from tests.test_values import CLUSTER_SETTINGS, SCENARIOS, documents, flat

_operator_tests = pytest.importorskip(
    "tests.k8s.test_operator", reason="no prometheus-operator fixture here (tests/k8s/test_operator.py)"
)
prometheus_operator = _operator_tests.prometheus_operator  # the module-scoped fixture: the operator, its CRDs

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

BIND_TIMEOUT_S = 180  # the operator makes the StatefulSet, the scheduler picks node and PV (WaitForFirstConsumer)


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

    path = node_dir("node-2", f"values-{namespace}")
    settings = [s for s in CLUSTER_SETTINGS["local-pv"] if not s.startswith("storage.path=")]
    settings += [f"storage.path={path}", f"storage.volume.name=values-{namespace}"]
    settings += [f"storage.claim.storage_class=values-{namespace}"]
    scenario_file = SCENARIOS / "local-pv.yaml"
    argv = ["values", str(scenario_file), "--namespace", namespace, "--kubeconfig", str(kubeconfig)]
    code = main([*argv, "--context", kube_context, *(a for s in settings for a in ("--set", s))])
    out = capsys.readouterr().out
    assert code == 0, out
    values, *manifests = documents(out)
    named = re.search(r"binding \(the doctor's simulation\): the claim \S+ binds pv/(\S+)", flat(out))
    assert named is not None, out
    assert named.group(1) == f"values-{namespace}"

    name = prometheus_name(DEFAULT_RELEASE)
    prom = values["prometheus"]["prometheusSpec"]
    scenario = load_scenario(scenario_file, settings)
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "storage": prom["storageSpec"],
            "securityContext": prom["securityContext"],
            "retention": prom["retention"],
            # The local image (the nodes have it; no registry is reachable) and the version the operator needs for it.
            "image": scenario.prometheus.image,
            "version": getattr(scenario.prometheus, "version", "v2.42.0"),
            "imagePullPolicy": "IfNotPresent",
            "replicas": 1,
            "serviceMonitorSelector": {},
        },
    }
    api = KubeApi(str(kubeconfig), context=kube_context)
    try:
        for manifest in manifests:  # kubectl apply -f, the class first
            api.create(manifest)
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            "monitoring.coreos.com", "v1", namespace, "prometheuses", resource
        )
        claim = operator_claim_name(name)
        bound = wait_for(
            client.CoreV1Api(api_client).list_namespaced_persistent_volume_claim,
            lambda c: c.metadata.name == claim and c.status.phase == "Bound",
            timeout=BIND_TIMEOUT_S,
            what=f"the operator's claim {namespace}/{claim} to bind",
            namespace=namespace,
        )
        assert bound.spec.volume_name == named.group(1)
    finally:
        # The namespace fixture deletes the resource and the claim; the PV (Retain) and the class are ours to delete.
        for manifest in reversed(manifests):
            api.delete(manifest["kind"], manifest["metadata"]["name"])
        api.close()
