"""The PV binding simulation, table-driven, with cases from the field notes (selector missing, the Released PV
after a redeploy, node affinity) and the StorageClass rules ("" vs unset vs the default class)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from harness.doctor import blocking, run_doctor
from harness.doctor.binding import NO_PV_NO_CLASS, binding_findings, check_binding, simulate_binding
from harness.kube.inventory import (
    ClaimRef,
    KubeInventory,
    NodeInfo,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PvcInfo,
    PvInfo,
    StorageClassInfo,
)
from harness.results.model import Severity
from harness.storage.base import operator_claim_name
from tests.doctor.scenarios import scenario

Gi = 1024**3
NS = "monitoring"
CLAIM = PvcInfo(namespace=NS, name="prometheus-k8s-db-prometheus-k8s-0", storage_class="", request_bytes=200 * Gi)
NFS_PV = PvInfo(
    name="prometheus-nfs",
    capacity_bytes=200 * Gi,
    access_modes=("ReadWriteOnce", "ReadWriteMany"),
    labels={"app": "wsg-prometheus"},
    source="nfs 172.17.73.37:/vol/k8s-prometheus/prometheus_db",
)
GRAFANA_PV = PvInfo(name="grafana-nfs", capacity_bytes=10 * Gi, labels={"app": "wsg-grafana"})
NODES = (
    NodeInfo("node-1", {"kubernetes.io/hostname": "node-1"}),
    NodeInfo("node-2", {"kubernetes.io/hostname": "node-2"}),
)
LOCAL_SC = StorageClassInfo("local-storage", "kubernetes.io/no-provisioner", "WaitForFirstConsumer")
DEFAULT_SC = StorageClassInfo("standard", "rancher.io/local-path", "Immediate", is_default=True)


def on_host(name: str) -> tuple[NodeSelectorTerm, ...]:
    return (NodeSelectorTerm((NodeSelectorRequirement("kubernetes.io/hostname", "In", (name,)),)),)


LOCAL_PV = PvInfo(
    name="local-pv", capacity_bytes=200 * Gi, storage_class="local-storage", node_affinity=on_host("node-1")
)


@dataclass(frozen=True)
class Case:
    id: str
    claim: PvcInfo
    pvs: tuple[PvInfo, ...]
    binds: str | None
    event: str
    reason: str = ""  # a substring of some PV's rejection reason
    classes: tuple[StorageClassInfo, ...] = ()
    nodes: tuple[NodeInfo, ...] = NODES
    pod_event: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


CASES = [
    Case(
        "field-notes: no selector, the NFS PV was taken by Grafana's claim",
        CLAIM,
        (replace(NFS_PV, phase="Bound", claim_ref=ClaimRef(NS, "prometheus-grafana", "u-1")),),
        None,
        NO_PV_NO_CLASS,
        "already bound to monitoring/prometheus-grafana",
    ),
    Case(
        "no selector, smallest fitting class-less PV", CLAIM, (GRAFANA_PV, NFS_PV), "prometheus-nfs", "bound to volume"
    ),
    Case(
        "no selector and a small claim: it takes Grafana's PV",
        replace(CLAIM, request_bytes=5 * Gi),
        (GRAFANA_PV, NFS_PV),
        "grafana-nfs",
        "bound to volume grafana-nfs",
    ),
    Case(
        "selector picks the labelled PV",
        replace(CLAIM, request_bytes=5 * Gi, selector={"app": "wsg-prometheus"}),
        (GRAFANA_PV, NFS_PV),
        "prometheus-nfs",
        "bound to volume prometheus-nfs",
        "labels (app=wsg-grafana) do not match the selector (app=wsg-prometheus)",
    ),
    Case(
        "selector matches nothing",
        replace(CLAIM, selector={"app": "other"}),
        (NFS_PV,),
        None,
        NO_PV_NO_CLASS,
        "do not match the selector (app=other)",
    ),
    Case(
        "field-notes: Released PV with the stale claimRef of the previous install",
        CLAIM,
        (replace(NFS_PV, phase="Released", claim_ref=ClaimRef(NS, CLAIM.name, "old-uid")),),
        None,
        NO_PV_NO_CLASS,
        "Released: spec.claimRef names a claim of the same name that was deleted",
    ),
    Case("Released PV after its claimRef was cleared", CLAIM, (NFS_PV,), "prometheus-nfs", "bound to volume"),
    Case(
        "pre-bound PV (claimRef without uid) wins over a smaller match",
        replace(CLAIM, request_bytes=5 * Gi),
        (GRAFANA_PV, replace(NFS_PV, claim_ref=ClaimRef(NS, CLAIM.name))),
        "prometheus-nfs",
        "bound to volume prometheus-nfs",
    ),
    Case(
        'claim "" does not bind a PV with a class',
        CLAIM,
        (replace(NFS_PV, storage_class="nfs"),),
        None,
        NO_PV_NO_CLASS,
        'storageClassName "nfs", claim has ""',
    ),
    Case(
        'unset class without a default class behaves like ""',
        replace(CLAIM, storage_class=None),
        (NFS_PV,),
        "prometheus-nfs",
        "bound to volume",
    ),
    Case(
        "unset class with a default class: the NFS PV is skipped, a new volume is provisioned",
        replace(CLAIM, storage_class=None),
        (NFS_PV,),
        None,
        'external provisioner "rancher.io/local-path"',
        'storageClassName "", claim has "standard"',
        classes=(DEFAULT_SC,),
    ),
    Case(
        "PV offers only ReadWriteMany",
        CLAIM,
        (replace(NFS_PV, access_modes=("ReadWriteMany",)),),
        None,
        NO_PV_NO_CLASS,
        "accessModes [ReadWriteMany] lack ReadWriteOnce",
    ),
    Case(
        "PV too small",
        CLAIM,
        (replace(NFS_PV, capacity_bytes=100 * Gi),),
        None,
        NO_PV_NO_CLASS,
        "100Gi < request 200Gi",
    ),
    Case(
        "volume mode",
        CLAIM,
        (replace(NFS_PV, volume_mode="Block"),),
        None,
        NO_PV_NO_CLASS,
        "volumeMode Block, claim wants Filesystem",
    ),
    Case(
        "field-notes: local PV, WaitForFirstConsumer, node exists",
        replace(CLAIM, storage_class="local-storage"),
        (LOCAL_PV,),
        "local-pv",
        "waiting for first consumer to be created before binding (the scheduler will bind pv/local-pv",
        classes=(LOCAL_SC,),
    ),
    Case(
        "local PV whose node is cordoned",
        replace(CLAIM, storage_class="local-storage"),
        (LOCAL_PV,),
        None,
        "waiting for first consumer to be created before binding",
        "matches only unschedulable nodes (node-1: cordoned",
        classes=(LOCAL_SC,),
        nodes=(NodeInfo("node-1", {"kubernetes.io/hostname": "node-1"}, False, "cordoned (spec.unschedulable)"),),
        pod_event="node(s) didn't find available persistent volumes to bind",
    ),
    Case(
        "Immediate binding ignores node affinity; the pod then cannot schedule",
        replace(CLAIM, storage_class="local-immediate"),
        (replace(LOCAL_PV, storage_class="local-immediate", node_affinity=on_host("gone")),),
        "local-pv",
        "bound to volume local-pv",
        classes=(StorageClassInfo("local-immediate", "kubernetes.io/no-provisioner"),),
        pod_event="had volume node affinity conflict",
    ),
    Case(
        "class that does not exist",
        replace(CLAIM, storage_class="fast"),
        (),
        None,
        'storageclass.storage.k8s.io "fast" not found',
    ),
    Case(
        "no-provisioner class with Immediate binding and no PV",
        replace(CLAIM, storage_class="local-immediate"),
        (),
        None,
        "no volume plugin matched name: kubernetes.io/no-provisioner",
        classes=(StorageClassInfo("local-immediate", "kubernetes.io/no-provisioner"),),
    ),
    Case(
        "a selector cannot be dynamically provisioned",
        replace(CLAIM, storage_class="standard", selector={"app": "x"}),
        (),
        None,
        "claim Selector is not supported",
        classes=(DEFAULT_SC,),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_binding(case: Case) -> None:
    inventory = KubeInventory(namespace=NS, pvs=case.pvs, storage_classes=case.classes, nodes=case.nodes)
    outcome = simulate_binding(case.claim, inventory)
    assert outcome.bound_pv == case.binds, outcome.verdict_lines()
    assert case.event in outcome.event
    if case.reason:
        assert any(case.reason in r for v in outcome.verdicts for r in v.reasons), outcome.verdict_lines()
    if case.pod_event:
        assert outcome.pod_event is not None and case.pod_event in outcome.pod_event
    else:
        assert outcome.pod_event is None


def test_selectorless_nfs_claim_names_why_it_stays_pending(tmp_path: Path) -> None:
    """It must show (3): the reason a selector-less NFS claim stays Pending, in the controller's terms."""
    s = scenario(
        tmp_path,
        {
            "backend": "nfs",
            "server": "127.0.0.1",
            "export": "/export",
            "claim": {"storage_class": "", "size": "200Gi"},
            "volume": {"create": False, "name": "prometheus-nfs"},
        },
        name="k8s",
    )
    taken = replace(NFS_PV, phase="Bound", claim_ref=ClaimRef(NS, "prometheus-grafana", "u-1"))
    inventory = KubeInventory(namespace=NS, pvs=(taken, GRAFANA_PV), nodes=NODES, source="test inventory")
    findings = check_binding(s, inventory)
    (f,) = findings
    assert f.severity is Severity.BLOCKER
    assert f.title == f"The claim will stay Pending: {NO_PV_NO_CLASS}"
    assert f'claim {NS}/{operator_claim_name("k8s")}: storageClassName ""' in f.evidence
    assert "selector none" in f.evidence
    assert "pv/prometheus-nfs: already bound to monitoring/prometheus-grafana (uid u-1) (Bound)" in f.evidence
    assert "pv/grafana-nfs: capacity 10Gi < request 200Gi" in f.evidence
    assert "Give the claim a selector" in f.fix


def test_released_pv_fix_is_the_kubectl_patch(tmp_path: Path) -> None:
    s = scenario(
        tmp_path,
        {
            "backend": "nfs",
            "server": "127.0.0.1",
            "export": "/export",
            "claim": {"storage_class": "", "size": "200Gi", "selector": {"app": "wsg-prometheus"}},
            "volume": {"create": False, "name": "prometheus-nfs"},
        },
        name="k8s",
    )
    released = replace(NFS_PV, phase="Released", claim_ref=ClaimRef(NS, operator_claim_name("k8s"), "old-uid"))
    (f,) = check_binding(s, KubeInventory(namespace=NS, pvs=(released,)))
    assert f.severity is Severity.BLOCKER
    assert 'kubectl patch pv prometheus-nfs --type merge -p \'{"spec":{"claimRef":null}}\'' in f.fix


def test_without_a_cluster_the_scenarios_own_pv_is_simulated(tmp_path: Path) -> None:
    s = scenario(
        tmp_path,
        {
            "backend": "nfs",
            "server": "127.0.0.1",
            "export": "/export",
            "claim": {"storage_class": "", "size": "20Gi", "selector": {"app": "wsg-prometheus"}},
            "volume": {"labels": {"app": "wsg-prometheus"}},
        },
        name="own",
    )
    (f,) = check_binding(s, None)
    assert (f.severity, f.title) == (Severity.INFO, "The claim will bind pv/harness-own (smallest matching PV)")
    # The PV the harness creates lacks the selector's labels: the claim would never bind it.
    s2 = scenario(
        tmp_path,
        {
            "backend": "nfs",
            "server": "127.0.0.1",
            "export": "/export",
            "claim": {"storage_class": "", "size": "20Gi", "selector": {"app": "wsg-prometheus"}},
        },
        name="own",
    )
    (f,) = check_binding(s2, None)
    assert f.severity is Severity.BLOCKER
    assert "labels (no labels) do not match the selector (app=wsg-prometheus)" in f.evidence


def test_local_pv_on_kubernetes_needs_a_node_and_probes_are_checked(tmp_path: Path) -> None:
    s = scenario(tmp_path, {"backend": "local", "path": str(tmp_path)}, name="loc")
    findings = run_doctor(s, runtime="kubernetes", previous_wal_replay_s=1000.0)
    checks = {f.check: f for f in findings}
    assert checks["local.node"].severity is Severity.BLOCKER
    assert checks["probes.budget"].severity is Severity.WARNING
    assert checks["k8s.binding"].severity is Severity.INFO
    assert blocking(findings)
    assert findings[0].severity is Severity.BLOCKER  # blockers first


def test_local_pv_class_should_wait_for_the_first_consumer(tmp_path: Path) -> None:
    s = scenario(tmp_path, {"backend": "local", "path": str(tmp_path), "node": "node-1"}, name="loc")
    immediate = replace(LOCAL_SC, volume_binding_mode="Immediate")
    found = check_binding(s, KubeInventory(namespace=NS, nodes=NODES, storage_classes=(immediate,)))
    (warning,) = [f for f in found if f.check == "k8s.storage_class"]
    assert warning.title == 'Local PV without WaitForFirstConsumer: StorageClass "local-storage" binds Immediate'
    assert "volumeBindingMode: WaitForFirstConsumer" in warning.fix
    # A class the cluster lacks is one the run creates (no-provisioner, WaitForFirstConsumer), like its PV.
    missing = check_binding(s, KubeInventory(namespace=NS, nodes=NODES))
    assert [f.check for f in missing] == ["k8s.binding"] and "WaitForFirstConsumer" in missing[0].title
    good = check_binding(s, KubeInventory(namespace=NS, nodes=NODES, storage_classes=(LOCAL_SC,)))
    assert [f.check for f in good] == ["k8s.binding"]
    assert (
        good[0].title == "The claim will bind pv/harness-loc when the pod is scheduled (WaitForFirstConsumer) "
        "(smallest matching PV)"
    )


def test_a_pv_name_the_run_would_create_that_is_taken_is_a_blocker(tmp_path: Path) -> None:
    """The run never reuses or deletes a PV it did not create: the doctor says so before anything is created."""
    s = scenario(
        tmp_path,
        {"backend": "local", "path": str(tmp_path), "node": "node-1", "volume": {"name": "local-pv"}},
        name="loc",
    )
    (f,) = check_binding(s, KubeInventory(namespace=NS, pvs=(LOCAL_PV,), nodes=NODES, storage_classes=(LOCAL_SC,)))
    assert (f.check, f.severity) == ("k8s.pv_name", Severity.BLOCKER)
    assert f.title == "PersistentVolume local-pv already exists and was not created by this run"
    assert "storage.volume.create: false" in f.fix
    # Asked to use the existing PV, the same inventory binds it.
    s2 = scenario(
        tmp_path,
        {"backend": "local", "path": str(tmp_path), "node": "node-1", "volume": {"name": "local-pv", "create": False}},
        name="loc",
    )
    assert [
        f.check
        for f in check_binding(
            s2, KubeInventory(namespace=NS, pvs=(LOCAL_PV,), nodes=NODES, storage_classes=(LOCAL_SC,))
        )
    ] == ["k8s.binding"]


def test_a_selector_that_matches_a_smaller_pv_too_is_fixed_by_a_label_only_the_intended_one_has() -> None:
    claim = replace(CLAIM, selector={"app": "wsg-prometheus"})
    smaller = replace(NFS_PV, name="prometheus-nfs-old", capacity_bytes=201 * Gi)
    bigger = replace(NFS_PV, capacity_bytes=300 * Gi)
    outcome = simulate_binding(claim, KubeInventory(namespace=NS, pvs=(bigger, smaller), nodes=NODES))
    assert outcome.bound_pv == "prometheus-nfs-old"
    (f,) = binding_findings(outcome, intended="prometheus-nfs", source="test")
    assert (
        f.severity is Severity.WARNING and f.title == "The claim will bind pv/prometheus-nfs-old, not pv/prometheus-nfs"
    )
    # The claim has a selector already: the advice is not to add one, but to make it tell the two apart.
    assert "Without a selector" not in f.why and "set storage.claim.selector" not in f.fix
    assert "a label pv/prometheus-nfs-old does not have" in f.fix
    # Without a selector, the advice is to add one.
    outcome = simulate_binding(CLAIM, KubeInventory(namespace=NS, pvs=(bigger, smaller), nodes=NODES))
    (f,) = binding_findings(outcome, intended="prometheus-nfs", source="test")
    assert "Without a selector" in f.why and "set storage.claim.selector" in f.fix
