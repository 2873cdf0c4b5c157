"""Operator mode in the doctor: the Prometheus CRD missing is a BLOCKER, present or unread is not, and statefulset
mode is not checked at all (inventories written by hand; tests/k8s/test_operator.py reads a real cluster's)."""

from __future__ import annotations

from pathlib import Path

from harness.doctor import blocking, run_doctor
from harness.doctor.operator import check_operator
from harness.kube.inventory import PROMETHEUS_CRD, KubeInventory
from harness.results.model import Severity
from tests.doctor.scenarios import scenario

EPHEMERAL = {"backend": "ephemeral"}
OTHER_CRDS = ("certificates.cert-manager.io", "servicemonitors.monitoring.coreos.com")


def test_a_cluster_without_the_prometheus_crd_blocks_operator_mode(tmp_path: Path) -> None:
    s = scenario(tmp_path, EPHEMERAL, prometheus={"deploy": "operator"})
    findings = run_doctor(s, runtime="kubernetes", kube=KubeInventory(crds=OTHER_CRDS, source="cluster x"))
    [crd] = [f for f in findings if f.check == "operator.crd"]
    assert crd.severity is Severity.BLOCKER and blocking(findings)
    assert PROMETHEUS_CRD in crd.evidence and "2 CRDs" in crd.evidence and "cluster x" in crd.evidence
    assert "prometheus.deploy: statefulset" in crd.fix


def test_the_installed_crd_is_no_blocker_and_the_operators_probes_are_named(tmp_path: Path) -> None:
    s = scenario(tmp_path, EPHEMERAL, prometheus={"deploy": "operator"})
    findings = check_operator(s, KubeInventory(crds=(*OTHER_CRDS, PROMETHEUS_CRD)))
    assert {f.check: f.severity for f in findings} == {"operator.crd": Severity.INFO, "operator.probes": Severity.INFO}
    [probes] = [f for f in findings if f.check == "operator.probes"]
    assert "900 s" in probes.title


def test_crds_not_read_are_not_checked_rather_than_missing(tmp_path: Path) -> None:
    s = scenario(tmp_path, EPHEMERAL, prometheus={"deploy": "operator"})
    for kube in (None, KubeInventory(crds=None, source="a namespaced role")):
        findings = check_operator(s, kube)
        [crd] = [f for f in findings if f.check == "operator.crd"]
        assert crd.severity is Severity.INFO and crd.title.startswith("Not checked")


def test_statefulset_mode_has_no_operator_findings(tmp_path: Path) -> None:
    s = scenario(tmp_path, EPHEMERAL)
    assert check_operator(s, KubeInventory(crds=OTHER_CRDS)) == []
    assert not [f for f in run_doctor(s, runtime="kubernetes") if f.check.startswith("operator.")]
