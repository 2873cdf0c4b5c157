"""``harness values``: the kube-prometheus-stack values and the PV/StorageClass manifests of each shipped scenario, and
that the claim the values describe binds the PV printed, by the doctor's binding simulation (no cluster here: the
server-side dry run of the manifests is in tests/k8s/test_values_dry_run.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from harness.cli import main
from harness.doctor.binding import simulate_binding
from harness.kube.decode import pv_from_manifest
from harness.kube.inventory import KubeInventory, PvcInfo, StorageClassInfo
from harness.runtime.manifests.common import MANAGED_BY, RUN_ID_LABEL
from harness.scenario.loader import load_scenario
from harness.scenario.units import parse_size_bytes
from harness.storage.base import operator_claim_name
from harness.values import chart_values, duration, prometheus_name

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

# What a cluster needs that the shipped scenarios leave to the local runtime: a local PV's node and path, a real
# NFS server / iSCSI target instead of the embedded one the run would start on this host. 127.0.0.1 refuses at once
# where nothing serves (the doctor's connect check then reports a BLOCKER: exit 1, with everything printed).
CLUSTER_SETTINGS = {
    "local-pv": ["storage.node=node-2", "storage.path=/mnt/disks/prometheus"],
    "nfs": ["storage.server=127.0.0.1", "storage.export=/vol/k8s-prometheus/prometheus_db", "storage.embedded=null"],
    "iscsi": ["storage.target_portal=127.0.0.1:3260", "storage.embedded=null"],
    "ephemeral-baseline": [],
}


def run_values(capsys: pytest.CaptureFixture[str], name: str, *extra: str) -> tuple[int, str, str]:
    sets = [a for s in CLUSTER_SETTINGS.get(name, []) for a in ("--set", s)]
    code = main(["values", str(SCENARIOS / f"{name}.yaml"), *sets, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def flat(text: str) -> str:
    """The comments of ``text`` with their wrapping undone (a comment line is cut at the output's width)."""
    return re.sub(r"\s*\n#\s+", " ", text)


def documents(text: str) -> list[dict[str, Any]]:
    docs = [d for d in YAML(typ="safe", pure=True).load_all(text) if d is not None]
    assert all(isinstance(d, dict) for d in docs)
    return docs


def claim_of(values: dict[str, Any], namespace: str, name: str) -> PvcInfo:
    """The claim the operator makes from ``storageSpec.volumeClaimTemplate``, as the binding simulation reads one."""
    spec = values["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"]
    return PvcInfo(
        namespace=namespace,
        name=name,
        storage_class=spec.get("storageClassName"),
        request_bytes=parse_size_bytes(spec["resources"]["requests"]["storage"]),
        access_modes=tuple(spec["accessModes"]),
        volume_mode=spec.get("volumeMode", "Filesystem"),
        selector=spec.get("selector", {}).get("matchLabels"),
    )


def bound_pv(docs: list[dict[str, Any]]) -> str | None:
    """What the doctor's simulation says the printed claim binds, given only the printed PV and class."""
    values, manifests = docs[0], docs[1:]
    classes = tuple(
        StorageClassInfo(d["metadata"]["name"], d["provisioner"], d["volumeBindingMode"])
        for d in manifests
        if d["kind"] == "StorageClass"
    )
    pvs = tuple(pv_from_manifest(d) for d in manifests if d["kind"] == "PersistentVolume")
    claim = claim_of(values, "monitoring", operator_claim_name(prometheus_name("kube-prometheus-stack")))
    return simulate_binding(claim, KubeInventory(namespace="monitoring", pvs=pvs, storage_classes=classes)).bound_pv


@pytest.mark.parametrize("name", ["local-pv", "nfs", "iscsi"])
def test_the_claim_in_the_values_binds_the_pv_printed(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, err = run_values(capsys, name)
    header = out.split("\nprometheus:", 1)[0]
    assert code == (1 if "\n# BLOCKER " in header else 0), err
    docs = documents(out)
    values, manifests = docs[0], docs[1:]
    spec = values["prometheus"]["prometheusSpec"]
    assert set(spec) == {"retention", "securityContext", "storageSpec"}
    template = spec["storageSpec"]["volumeClaimTemplate"]
    assert set(template) == {"spec"}  # the operator names it prometheus-<name>-db, as operator_claim_name assumes
    assert {"accessModes", "resources", "storageClassName"} <= set(template["spec"])
    [pv] = [d for d in manifests if d["kind"] == "PersistentVolume"]
    assert "claimRef" not in pv["spec"]  # not pre-bound: the operator's claim finds it by class, selector and size
    assert bound_pv(docs) == pv["metadata"]["name"]
    scenario = load_scenario(SCENARIOS / f"{name}.yaml", CLUSTER_SETTINGS[name])
    assert values == chart_values(scenario)  # what is printed is what the function returns, for a later test
    # The harness's run marks would make `harness cleanup` take the team's PV for a run's leftover.
    for doc in manifests:
        assert not {MANAGED_BY[0], RUN_ID_LABEL} & set(doc["metadata"].get("labels", {}))
    assert "kubectl apply -f" in out and "helm upgrade --install kube-prometheus-stack" in out
    assert f"binds pv/{pv['metadata']['name']}" in flat(header)


def test_local_pv_values_carry_the_field_notes_class_and_pv(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_values(capsys, "local-pv")
    assert code == 0
    values, sc, pv = documents(out)
    assert values["prometheus"]["prometheusSpec"]["securityContext"] == {
        "runAsUser": 1000,
        "runAsGroup": 2000,
        "runAsNonRoot": True,
        "fsGroup": 2000,
    }
    assert values["prometheus"]["prometheusSpec"]["retention"] == "1d"
    assert sc == {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "local-storage"},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Retain",
    }
    assert pv["spec"]["local"] == {"path": "/mnt/disks/prometheus"}
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["node-2"]
    assert "prometheus-kube-prometheus-stack-prometheus-db-prometheus-kube-prometheus-stack-prometheus-0" in flat(out)


def test_nfs_values_keep_the_selector_and_the_users_of_the_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_values(capsys, "nfs", "--set", "prometheus.security_context.run_as_user=65534")
    values, pv = documents(out)
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["securityContext"]["runAsUser"] == 65534
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == ""  # explicit: unset would take the cluster's default class
    assert claim["selector"] == {"matchLabels": {"app": "wsg-prometheus"}}
    assert pv["metadata"]["labels"] == {"app": "wsg-prometheus"}
    assert pv["spec"]["nfs"] == {"server": "127.0.0.1", "path": "/vol/k8s-prometheus/prometheus_db"}


def test_the_emptydir_baseline_prints_no_storage_spec_and_says_history_is_lost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_values(capsys, "ephemeral-baseline")
    assert code == 0
    [values] = documents(out)
    assert "storageSpec" not in values["prometheus"]["prometheusSpec"]
    assert "loses all history" in flat(out)
    assert "WARNING ephemeral.history" in out


def test_resources_and_retention_come_from_the_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_values(
        capsys,
        "local-pv",
        "--set",
        "prometheus.resources={memory: 2Gi, cpu_millicores: 500}",
        "--set",
        "prometheus.retention=15d",
        "--only",
        "values",
    )
    [values] = documents(out)
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["resources"] == {
        "requests": {"memory": "2Gi", "cpu": "500m"},
        "limits": {"memory": "2Gi", "cpu": "500m"},
    }
    assert spec["retention"] == "15d"


def test_only_manifests_prints_the_class_and_the_pv_with_the_doctors_findings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = run_values(capsys, "local-pv", "--only", "manifests")
    assert [d["kind"] for d in documents(out)] == ["StorageClass", "PersistentVolume"]
    assert out.startswith("# harness values local-pv") and "INFO k8s.binding" in out


def test_a_claim_that_binds_nothing_is_the_doctors_blocker_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    """The selector names labels the PV lacks: printed all the same, but the doctor's BLOCKER is on top, exit 1, and
    the printed claim binds no printed PV."""
    code, out, _ = run_values(capsys, "local-pv", "--set", "storage.claim.selector={app: prometheus}")
    assert code == 1
    assert "# BLOCKER k8s.binding: The claim will stay Pending" in out
    assert "stays Pending" in flat(out)
    assert bound_pv(documents(out)) is None


def test_the_release_names_the_claim(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_values(capsys, "local-pv", "--release", "monitoring", "--namespace", "obs")
    claim = "obs/prometheus-monitoring-kube-prometheus-prometheus-db-prometheus-monitoring-kube-prometheus-prometheus-0"
    assert f"the claim {claim} binds pv/harness-local-pv" in flat(out)


def test_prometheus_name_follows_the_charts_helpers() -> None:
    assert prometheus_name("kube-prometheus-stack") == "kube-prometheus-stack-prometheus"
    assert prometheus_name("monitoring") == "monitoring-kube-prometheus-prometheus"  # fullname cut to 26
    assert prometheus_name("prom") == "prom-kube-prometheus-stack-prometheus"
    assert prometheus_name("my-kube-prometheus-stack") == "my-kube-prometheus-stack-prometheus"


def test_duration_is_the_operators_format() -> None:
    assert [duration(s) for s in (86400, 9000, 45, 0, 15 * 86400 + 1)] == ["1d", "2h30m", "45s", "0s", "15d1s"]


def test_a_missing_file_is_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["values", str(tmp_path / "nope.yaml")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "nope.yaml: no such file" in err


def test_an_invalid_scenario_is_exit_2_with_file_line_and_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["values", str(SCENARIOS / "local-pv.yaml"), "--set", "storage.claim.size=lots"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "local-pv.yaml:" in err and "storage.claim.size" in err


def test_storage_a_cluster_cannot_use_is_exit_2_naming_set(capsys: pytest.CaptureFixture[str]) -> None:
    """As shipped, the NFS scenario starts its own server on 127.0.0.1: no cluster node can mount that."""
    assert main(["values", str(SCENARIOS / "nfs.yaml")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "embedded" in err and "--set storage.KEY=VALUE" in err
    assert main(["values", str(SCENARIOS / "local-pv.yaml")]) == 2
    assert "storage.node" in capsys.readouterr().err
