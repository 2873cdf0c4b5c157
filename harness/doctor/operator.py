"""Operator mode (``prometheus.deploy: operator``): the run creates a ``Prometheus`` resource, which only a cluster
with the prometheus-operator's CRD and a running operator turns into a pod. Say so before the run rather than
after a namespace was made; and say that the operator, not the scenario, sets the probes."""

from __future__ import annotations

from harness.kube.inventory import PROMETHEUS_CRD, KubeInventory
from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import Scenario

# prometheus-operator v0.85's own startup probe for Prometheus: 60 failures x 15 s unless the resource sets
# maximumStartupDurationSeconds (pkg/prometheus/promcfg.go); the harness does not set it.
OPERATOR_STARTUP_BUDGET_S = 15 * 60


def check_operator(scenario: Scenario, kube: KubeInventory | None) -> list[DoctorFinding]:
    if scenario.prometheus.deploy != "operator":
        return []
    probes = DoctorFinding(
        check="operator.probes",
        severity=Severity.INFO,
        title=f"The operator sets Prometheus' probes (startup budget {OPERATOR_STARTUP_BUDGET_S} s)",
        evidence="prometheus.probes of the scenario apply to statefulset mode only.",
        why="A WAL replay longer than the operator's startup budget makes the kubelet restart Prometheus mid-replay.",
    )
    if kube is None or kube.crds is None:
        where = "no cluster was read" if kube is None else f"the CRDs could not be listed via {kube.source}"
        return [
            probes,
            DoctorFinding(
                check="operator.crd",
                severity=Severity.INFO,
                title="Not checked whether the prometheus-operator is installed",
                evidence=f"{where}.",
                fix="Run `harness doctor --context NAME` against the cluster to check its CRDs.",
            ),
        ]
    if PROMETHEUS_CRD not in kube.crds:
        return [
            probes,
            DoctorFinding(
                check="operator.crd",
                severity=Severity.BLOCKER,
                title="The Prometheus CRD is not installed: no operator can run this Prometheus",
                evidence=f"{PROMETHEUS_CRD} is not among the cluster's {len(kube.crds)} CRDs ({kube.source}).",
                why="prometheus.deploy: operator creates a monitoring.coreos.com/v1 Prometheus resource; without the "
                "CRD the API server rejects it, and without a running operator no pod is made.",
                fix="Install the prometheus-operator (kube-prometheus-stack installs its CRDs and the operator), or "
                "use prometheus.deploy: statefulset.",
            ),
        ]
    return [
        probes,
        DoctorFinding(
            check="operator.crd",
            severity=Severity.INFO,
            title="The Prometheus CRD is installed",
            evidence=f"{PROMETHEUS_CRD} ({kube.source}). Whether an operator runs shows when it reconciles the "
            "resource: the run waits up to $HARNESS_K8S_OPERATOR_WAIT (60 s) for its StatefulSet.",
        ),
    ]
