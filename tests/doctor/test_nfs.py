"""NFS checks against a real NFS-Ganesha export on 127.0.0.1 (started and stopped by the nfs_server fixture)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.datapath.servers import NfsServer, start_ganesha
from harness.doctor import blocking, run_doctor
from harness.doctor.nfs import check_nfs
from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import NfsStorage, Scenario, SecurityContext
from tests.doctor.scenarios import write_scenario


def nfs_storage(server: NfsServer, **extra: Any) -> dict[str, Any]:
    return {"backend": "nfs", "server": "127.0.0.1", "port": server.port, "export": server.pseudo, **extra}


def by_check(findings: list[DoctorFinding], check: str) -> list[DoctorFinding]:
    return [f for f in findings if f.check == check]


def doctor_json(scenario_file: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["doctor", str(scenario_file), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_permission_denied_is_a_blocker_with_the_fix_and_chown_clears_it(
    nfs_server: NfsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It must show (1): export 1000:1000, Prometheus as uid 65534 -> permission finding, exit 1; chown -> exit 0."""
    path = write_scenario(
        tmp_path,
        nfs_storage(nfs_server),
        prometheus={"security_context": {"run_as_user": 65534, "run_as_group": 65534, "fs_group": 2000}},
    )
    code, doc = doctor_json(path, capsys)
    assert code == 1
    assert doc["blocking"] is True
    (writable,) = [f for f in doc["findings"] if f["check"] == "nfs.writable"]
    assert writable["severity"] == "BLOCKER"
    assert "Permission denied" in writable["title"]
    assert "uid 65534" in writable["title"]
    assert "1000:1000" in writable["evidence"]
    assert "drwxr-xr-x (0755)" in writable["evidence"]
    assert "chown -R 65534:65534 /export" in writable["fix"]
    assert "supplementalGroups: [1000]" in writable["fix"]
    assert "fsGroupPolicy: File" in writable["fix"]
    assert "no_root_squash" in writable["fix"]
    assert "fsGroup 2000 does not help" in writable["why"]

    os.chown(nfs_server.export_dir, 65534, 65534)
    code, doc = doctor_json(path, capsys)
    assert code == 0, doc
    (writable,) = [f for f in doc["findings"] if f["check"] == "nfs.writable"]
    assert writable["severity"] == "INFO"
    assert "create, write, fsync, rename, mkdir, rmdir, unlink" in writable["evidence"]
    assert list(nfs_server.export_dir.iterdir()) == []  # the probe cleaned up after itself


def test_the_table_for_people(nfs_server: NfsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_scenario(tmp_path, nfs_storage(nfs_server), prometheus={"security_context": {"run_as_user": 65534}})
    assert main(["doctor", str(path)]) == 1
    out = capsys.readouterr().out
    assert "BLOCKER" in out
    assert "Permission denied" in out
    assert "blocker(s)" in out


def test_prometheus_nfs_warning_is_always_there(nfs_server: NfsServer) -> None:
    spec = NfsStorage.model_validate(nfs_storage(nfs_server))
    findings = check_nfs(spec, SecurityContext(run_as_user=1000, run_as_group=2000))
    (warning,) = by_check(findings, "nfs.supported")
    assert warning.severity is Severity.WARNING
    assert "NFS filesystems (including AWS's EFS) are not supported" in warning.evidence
    assert not blocking(findings)  # uid 1000 owns the export: nothing blocks


def test_mixed_owners_in_an_existing_tsdb(nfs_server: NfsServer) -> None:
    """The 472 vs 1000 case: an earlier writer left the WAL owned by uid 472."""
    db = nfs_server.export_dir / "prometheus-db"
    wal = db / "wal"
    wal.mkdir(parents=True)
    (wal / "00000001").write_bytes(b"\0" * 100)
    (db / "chunks_head").mkdir()
    for p in (db, db / "chunks_head"):
        os.chown(p, 1000, 2000)
    for p in (wal, wal / "00000001"):
        os.chown(p, 472, 472)
    spec = NfsStorage.model_validate(nfs_storage(nfs_server))
    findings = check_nfs(spec, SecurityContext(run_as_user=1000, run_as_group=2000))
    (owners,) = by_check(findings, "nfs.owners")
    assert owners.severity is Severity.BLOCKER
    assert "uid 472" in owners.evidence
    assert "/prometheus-db/wal 472:472" in owners.evidence
    assert "chown -R 1000:2000" in owners.fix
    # Both the export root and the operator's subPath directory were probed, and both are writable for 1000.
    writable = by_check(findings, "nfs.writable")
    assert [f.severity for f in writable] == [Severity.INFO, Severity.INFO]
    assert any("/export/prometheus-db" in f.title for f in writable)


@pytest.mark.root(reason="NFS-Ganesha serves files owned by other uids")
def test_root_squash_is_detected(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    os.chown(export, 1000, 1000)
    server = start_ganesha(tmp_path / "ganesha", export, squash="Root_Squash")
    try:
        spec = NfsStorage.model_validate(nfs_storage(server))
        findings = check_nfs(spec, SecurityContext(run_as_user=65534, run_as_group=65534))
    finally:
        server.stop()
    (squash,) = by_check(findings, "nfs.root_squash")
    assert squash.title == "The export squashes root"
    (writable,) = by_check(findings, "nfs.writable")
    assert "this export squashes root, so an initContainer running as root cannot chown it" in writable.fix


def test_unknown_export_cannot_be_mounted(nfs_server: NfsServer) -> None:
    spec = NfsStorage.model_validate({**nfs_storage(nfs_server), "export": "/vol/k8s-prometheus/prometheus_db"})
    scenario = Scenario.model_validate({"name": "x", "duration": "1m", "storage": spec.model_dump(by_alias=True)})
    findings = run_doctor(scenario, runtime="local")
    (connect,) = by_check(findings, "nfs.connect")
    assert connect.severity is Severity.BLOCKER
    assert "NFS4ERR_NOENT" in connect.evidence or "No such file" in connect.evidence
    assert blocking(findings)


def test_writable_only_through_fs_group_is_a_warning_not_a_blocker(nfs_server: NfsServer) -> None:
    os.chown(nfs_server.export_dir, 0, 2000)
    nfs_server.export_dir.chmod(0o775)
    spec = NfsStorage.model_validate(nfs_storage(nfs_server))
    findings = check_nfs(spec, SecurityContext(run_as_user=1000, run_as_group=3000, fs_group=2000))
    (writable,) = by_check(findings, "nfs.writable")
    assert writable.severity is Severity.WARNING
    assert "only through its fsGroup 2000" in writable.title
    assert not blocking(findings)
