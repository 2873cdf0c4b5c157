"""``second_writer`` on the local cluster: Prometheus' pod on the field notes' NFS PV (NFS-Ganesha on this host,
mounted by the kubelets through the harness' user-space client), and the field notes' Grafana (uid 472) writing
into the same export with an NFS client of its own, as its pod on another node would. Its files alongside change
nothing; once Prometheus' files are chowned to 472 (Grafana's init-chown-data), Prometheus' WAL writes are refused
with `permission denied` and nothing is acknowledged until the owners are back; nothing acknowledged is lost."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.datapath.servers import NfsServer, start_ganesha
from harness.results.model import Status
from harness.results.store import load_result
from tests.k8s.helpers import assert_nothing_left, field_notes_nfs_storage, harness_run, write_scenario

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.root(reason="NFS-Ganesha serves files owned by other uids: needs root"),
    pytest.mark.skipif(shutil.which("ganesha.nfsd") is None, reason="ganesha.nfsd is not installed (nfs-ganesha)"),
    pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="no /dev/fuse: the nodes' NFS client needs it"),
]


@pytest.fixture
def field_notes_export(public_tmp: Path, local_cluster: bool) -> Iterator[tuple[Path, NfsServer]]:
    """The field notes' export: drwxrwxrwx owned 1000:2000 (both applications could create files in it), served by
    NFS-Ganesha (v3, no_root_squash) on this host's 127.0.0.1, which only the local cluster's nodes share."""
    if not local_cluster:
        pytest.skip("the NFS server runs on this host's 127.0.0.1, which only the local cluster's nodes share")
    export = public_tmp / "export"
    export.mkdir()
    os.chown(export, 1000, 2000)
    export.chmod(0o777)
    server = start_ganesha(public_tmp / "ganesha", export, pseudo=str(export), v3=True)
    try:
        yield export, server
    finally:
        server.stop()


def test_grafana_writing_into_prometheus_export_from_its_own_client(
    kubeconfig: Path, api_client: Any, tmp_path: Path, field_notes_export: tuple[Path, NfsServer]
) -> None:
    export, server = field_notes_export
    tag = uuid.uuid4().hex[:8]
    storage = field_notes_nfs_storage(export, server.port, server.mount_port, tag)
    text = f"""
name: k8s-second-writer
duration: 22s
{storage}prometheus: {{security_context: {{run_as_user: 1000, run_as_group: 2000, fs_group: 2000}}}}
loads: {{tsdb: {{series: 200, interval: 1s}}}}
faults:
  - {{action: second_writer, at: 3s, for: 4s, interval: 0.5s}}
  - {{action: second_writer, at: 11s, for: 4s, interval: 0.5s, chown_data: true}}
checks: {{history_survival: {{max_samples_lost: 0}}, max_recovery: 30s}}
"""
    reports = tmp_path / "reports"
    proc = harness_run(write_scenario(tmp_path, text), reports, kubeconfig)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = reports.glob("*/*/result.json")
    result = load_result(result_file)
    alongside, chowned = result.faults
    assert [(f.action, f.status) for f in result.faults] == [("second_writer", Status.PASSED)] * 2

    assert "a second writer (uid 472 gid 472, its own NFSv3 client" in alongside.detail, alongside.detail
    assert "created grafana.db, plugins/, png/" in alongside.detail
    assert "entries kept their owners and modes" in alongside.detail
    assert alongside.write_failures == {} and alongside.write_errors == []

    assert "init chown -R 472:472 as root" in chowned.detail and "put back after the window" in chowned.detail
    assert chowned.write_failures.get("rejected", 0) > 0, chowned.write_failures
    assert any("write to WAL" in e and "permission denied" in e for e in chowned.write_errors), chowned.write_errors
    assert any("permission denied" in line for line in chowned.prometheus_log), chowned.prometheus_log
    assert chowned.lifted_at_s is not None and chowned.first_sample_at_s is not None
    assert chowned.first_sample_at_s >= chowned.lifted_at_s

    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    assert result.verdict is Status.PASSED
    # The writer's files went with each window; Prometheus' own are 1000's again.
    assert not {"grafana.db", "plugins", "png"} & {p.name for p in export.iterdir()}
    assert (export / "wal").stat().st_uid == 1000
    assert_nothing_left(api_client, result.run_id, (f"harness-nfs-{tag}",))
