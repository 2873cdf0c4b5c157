"""The shared-export finding: the field notes' own two PVs (Prometheus' and Grafana's on one NFS path), read from
their manifests, and the cases around it (another path: nothing; normalised and nested paths: found)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from harness.cli import main
from harness.doctor.command import with_manifests
from harness.doctor.shared import check_shared_exports
from harness.kube.decode import decode_pv
from harness.kube.inventory import ClaimRef, KubeInventory, PvInfo
from harness.results.model import Severity
from harness.scenario.model import Scenario
from tests.doctor.scenarios import scenario, write_scenario

FIELD_NOTES_PVS = Path(__file__).parent.parent / "data" / "field-notes" / "nfs-pvs.yaml"
NOTES_SERVER, NOTES_PATH = "172.17.73.37", "/vol/k8s-prometheus/prometheus_db"


def nfs_pv(name: str, server: str, path: str) -> PvInfo:
    return PvInfo(name=name, capacity_bytes=10 * 1024**3, volume_source={"nfs": {"server": server, "path": path}})


def notes_scenario(tmp_path: Path, **storage: Any) -> Scenario:
    """Prometheus on the field notes' NFS PV, which exists already (the run creates none)."""
    spec = {"backend": "nfs", "server": NOTES_SERVER, "export": NOTES_PATH, "volume": {"create": False}, **storage}
    return scenario(tmp_path, spec)


def test_the_field_notes_two_pvs_share_prometheus_export(tmp_path: Path) -> None:
    inventory = with_manifests(None, [FIELD_NOTES_PVS])
    assert [pv.name for pv in inventory.pvs] == ["prometheus-pv", "prometheus-grafana-pv"]
    (finding,) = check_shared_exports(notes_scenario(tmp_path), inventory)
    assert finding.check == "nfs.shared_export"
    assert finding.severity is Severity.WARNING
    assert finding.title == (
        "pv/prometheus-pv and pv/prometheus-grafana-pv name the same NFS directory "
        "172.17.73.37:/vol/k8s-prometheus/prometheus_db"
    )
    # Both are on Prometheus' path; the message names the other one as the writer in Prometheus' TSDB directory.
    assert "pv/prometheus-grafana-pv writes into Prometheus' TSDB directory (pv/prometheus-pv)" in finding.why
    assert "472" in finding.why
    assert "sometimes writable" in finding.why
    assert str(FIELD_NOTES_PVS) in finding.evidence
    assert "neither inside the other" in finding.fix


def test_grafana_on_its_own_path_is_no_finding(tmp_path: Path) -> None:
    inventory = with_manifests(None, [FIELD_NOTES_PVS])
    grafana = replace(inventory.pvs[1], volume_source={"nfs": {"server": NOTES_SERVER, "path": "/vol/k8s-grafana"}})
    fixed = replace(inventory, pvs=(inventory.pvs[0], grafana))
    assert check_shared_exports(notes_scenario(tmp_path), fixed) == []
    # A sibling whose name merely starts the same is not inside: /vol/x_db is not in /vol/x.
    sibling = nfs_pv("grafana", NOTES_SERVER, NOTES_PATH + "_grafana")
    assert check_shared_exports(notes_scenario(tmp_path), replace(inventory, pvs=(inventory.pvs[0], sibling))) == []
    # The same path on another server is another directory.
    elsewhere = nfs_pv("grafana", "172.17.73.38", NOTES_PATH)
    assert check_shared_exports(notes_scenario(tmp_path), replace(inventory, pvs=(inventory.pvs[0], elsewhere))) == []


@pytest.mark.parametrize(
    ("server", "path", "said"),
    [
        ("172.17.73.37", NOTES_PATH + "/", "name the same NFS directory"),
        ("172.17.73.37", "/vol//k8s-prometheus/./prometheus_db", "name the same NFS directory"),
        ("172.17.73.37", NOTES_PATH + "/grafana", "lies inside"),
        ("172.17.73.37", "/vol/k8s-prometheus", "lies inside"),
    ],
)
def test_paths_are_normalised_and_nested_ones_found(tmp_path: Path, server: str, path: str, said: str) -> None:
    """No PV names Prometheus' path here: the scenario's storage stands for it (the run would create the PV)."""
    sc = scenario(tmp_path, {"backend": "nfs", "server": "NFS.Example.", "export": NOTES_PATH})
    grafana = nfs_pv("grafana", server.replace("172.17.73.37", "nfs.example"), path)
    (finding,) = check_shared_exports(sc, KubeInventory(pvs=(grafana,)))
    assert said in finding.title
    assert "the scenario's storage" in finding.title
    # The outer directory is named first: Grafana's PV at the parent holds Prometheus' directory, or the reverse.
    assert "Prometheus' TSDB directory" in finding.why or "each other's files" in finding.why


def test_a_local_scenario_and_pvs_on_other_storage_say_nothing(tmp_path: Path) -> None:
    local = scenario(tmp_path, {"backend": "local"})
    iscsi_pv = PvInfo(name="lun", capacity_bytes=1, volume_source={"iscsi": {"targetPortal": "x:3260", "lun": 1}})
    assert check_shared_exports(local, KubeInventory(pvs=(iscsi_pv, nfs_pv("a", "s", "/x")))) == []
    assert check_shared_exports(local, None) == []


def test_the_cli_reads_the_manifests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`harness doctor --manifests`: the two PVs of the file are checked against each other, whatever the scenario's
    storage (a local directory here, so that the doctor tries no NFS server)."""
    path = write_scenario(tmp_path, {"backend": "local", "path": str(tmp_path / "tsdb")})
    code = main(["doctor", str(path), "--json", "--manifests", str(FIELD_NOTES_PVS)])
    doc = json.loads(capsys.readouterr().out)
    (shared,) = [f for f in doc["findings"] if f["check"] == "nfs.shared_export"]
    assert shared["severity"] == "WARNING"
    assert "pv/prometheus-pv and pv/prometheus-grafana-pv" in shared["title"]
    assert code == (1 if doc["blocking"] else 0)


def test_unreadable_manifests_are_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_scenario(tmp_path, {"backend": "local", "path": str(tmp_path / "tsdb")})
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed")
    assert main(["doctor", str(path), "--manifests", str(bad)]) == 2
    assert "cannot read the manifests" in capsys.readouterr().err


def test_a_listed_pv_reads_like_its_manifest() -> None:
    """The cluster's PVs (client models) and the --manifests files go through one reading (pv_from_manifest)."""
    listed = client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name="prometheus-pv", labels={"app": "wsg-prometheus"}),
        spec=client.V1PersistentVolumeSpec(
            capacity={"storage": "800Gi"},
            access_modes=["ReadWriteOnce"],
            persistent_volume_reclaim_policy="Retain",
            nfs=client.V1NFSVolumeSource(server=NOTES_SERVER, path=NOTES_PATH),
            claim_ref=client.V1ObjectReference(namespace="default", name="prometheus-db", uid="u-1"),
        ),
        status=client.V1PersistentVolumeStatus(phase="Released"),
    )
    pv = decode_pv(listed)
    from_file = with_manifests(None, [FIELD_NOTES_PVS]).pvs[0]
    assert replace(pv, phase="Available", claim_ref=None) == from_file
    assert (pv.phase, pv.claim_ref) == ("Released", ClaimRef("default", "prometheus-db", "u-1"))
    assert pv.source == f"nfs {NOTES_SERVER}:{NOTES_PATH}" and pv.capacity_bytes == 800 * 1024**3
