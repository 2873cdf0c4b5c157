"""An embedded server kept past its run (harness.datapath.kept_server), with the real tgtd and NFS-Ganesha: started
with a record it survives a SIGKILL of the process that started it, its record names it through a restart, its
clients are seen, and it is stopped from the record only while the record's pid is still that process; without a
record (the local runtime) it dies with its starter as before."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.datapath import kept_server
from harness.datapath.servers import start_ganesha
from harness.ownership import RunLock, new_marker, process_alive, process_start
from harness.wait import wait_for
from tests.cli import ROOT
from tests.leftovers import cleanup

needs_tgt = pytest.mark.skipif(shutil.which("tgtd") is None, reason="tgt is missing (Debian tgt)")

STARTER = """
import sys
from pathlib import Path
from harness.datapath.servers import start_tgt
record = None if sys.argv[2] == "-" else Path(sys.argv[2])
target = start_tgt(Path(sys.argv[1]), record=record)
print(target.daemon.pid, flush=True)
sys.stdin.read()  # until killed
"""


def start_in_child(directory: Path, record: Path | None) -> tuple[subprocess.Popen[str], int]:
    """A process of its own starts tgtd in ``directory`` (as `harness run` does); (that process, tgtd's pid)."""
    child = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(directory), str(record) if record else "-"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, int(child.stdout.readline())


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


@needs_tgt
def test_a_recorded_tgtd_outlives_a_sigkill_of_its_starter_and_is_stopped_from_its_record(tmp_path: Path) -> None:
    record = tmp_path / "kept-server.json"
    child, pid = start_in_child(tmp_path / "tgt", record)
    kept = kept_server.read(record)
    assert kept is not None and kept.pid == pid and kept.program == "tgtd" and kept.control_port is not None
    child.kill()
    child.communicate(timeout=30)
    time.sleep(1.0)
    assert kept.alive(), "tgtd died with the process that started it"
    with socket.create_connection((kept.listen, kept.ports[0]), timeout=5):  # a client, as a node's initiator
        wait_for(lambda: kept_server.clients(kept), what="the client to be seen", timeout_s=5)
    wait_for(lambda: not kept_server.clients(kept), what="the client to be gone", timeout_s=10)
    # tgtd ignores SIGTERM while it has a target: deleted over its control port first, it exits by itself
    assert kept_server.stop(kept) == f"its target deleted over control port {kept.control_port}, then it exited"
    assert gone(pid)
    assert kept_server.stop(kept) == "had exited"


@needs_tgt
def test_without_a_record_tgtd_still_dies_with_its_starter(tmp_path: Path) -> None:
    child, pid = start_in_child(tmp_path / "tgt", None)
    child.kill()
    child.communicate(timeout=30)
    wait_for(lambda: gone(pid), what="tgtd to die with its starter (PR_SET_PDEATHSIG)", timeout_s=10)


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    """The record names pid P started at T; P now is a process started at another time: it is left alone."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        start = process_start(other.pid)
        assert start is not None
        record = tmp_path / "kept-server.json"
        kept_server.write(
            record,
            kept_server.ServerRecord("tgtd", other.pid, start - 1, "127.0.0.1", (3260,), control_port=None),
        )
        recorded = kept_server.read(record)
        assert recorded is not None and not recorded.alive()
        said = kept_server.stop(recorded)
        assert said == f"had exited; pid {other.pid} is another process now, left alone"
        assert other.poll() is None and process_alive(other.pid, start)
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait(timeout=10)


def test_an_unreadable_record_is_an_error_not_an_absent_server(tmp_path: Path) -> None:
    record = tmp_path / "kept-server.json"
    record.write_text(json.dumps({"program": "tgtd"}))
    with pytest.raises(Exception, match="cannot be read"):
        kept_server.read(record)


@pytest.mark.skipif(shutil.which("ganesha.nfsd") is None, reason="NFS-Ganesha is missing (Debian nfs-ganesha-vfs)")
def test_a_recorded_ganesha_keeps_its_record_through_halt_and_resume(tmp_path: Path) -> None:
    record = tmp_path / "kept-server.json"
    export = tmp_path / "export"
    export.mkdir()
    server = start_ganesha(tmp_path / "ganesha", export, v3=True, record=record)
    try:
        first = kept_server.read(record)
        assert first is not None and first.alive() and first.program == "ganesha.nfsd"
        assert set(first.ports) == {server.port, server.mount_port}
        server.halt()
        halted = kept_server.read(record)
        assert halted is not None and halted.state == "halted" and not halted.alive()
        assert kept_server.stop(halted).startswith("it was down")
        server.resume()
        again = kept_server.read(record)
        assert again is not None and again.alive() and again.pid == server.daemon.pid != first.pid
    finally:
        server.stop()
    assert not record.exists()


def killed_kubernetes_run(tmp_path: Path, root: Path, run_id: str) -> tuple[Path, dict[str, str]]:
    """The work directory of a SIGKILLed kubernetes run (its marker, its lock free), and the environment of a
    cleanup that looks at no cluster."""
    workdir = root / f"prom-harness-{run_id}-x"
    workdir.mkdir(parents=True)
    owner = "kept-server-test"
    config = tmp_path / "config.yaml"
    config.write_text(f"owner: {owner}\n")
    fields = {"scenario_file": "", "scenario_name": "k", "runtime": "kubernetes", "reports_dir": ""}
    marker = new_marker(
        run_id=run_id, owner=owner, workdir=workdir, kube_context="lab", kubeconfig=None, host_paths=[], **fields
    )
    RunLock.create(workdir, marker).release()
    return workdir, {"HARNESS_CONFIG": str(config), "KUBECONFIG": str(tmp_path / "no-kubeconfig")}


def test_cleanup_keeps_the_work_directory_of_a_server_whose_record_it_cannot_read(tmp_path: Path) -> None:
    root, run_id = tmp_path / "work", "k33p02"
    workdir, env = killed_kubernetes_run(tmp_path, root, run_id)
    record = kept_server.record_path(workdir)
    record.parent.mkdir()
    record.write_text("{not json")
    done = cleanup("--run", run_id, "--workdir", str(root), env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"kept    the run's embedded server: the run's server record {record} cannot be read" in done.stdout
    assert "not removed: the run's embedded server named in" in done.stdout, done.stdout
    assert record.is_file()


@needs_tgt
def test_cleanup_without_the_cluster_keeps_a_killed_kubernetes_runs_server_and_its_work_directory(
    tmp_path: Path,
) -> None:
    """A killed kubernetes run's kept tgtd serves its PV to the cluster's nodes: `harness cleanup` that does not look
    at that cluster (no --context) must not stop it, nor remove the work directory it serves from; it says why and
    exits 2. (With the cluster, tests/k8s/test_iscsi_kubelet.py: its objects first, then the server.)"""
    root, run_id = tmp_path / "work", "k33p01"
    workdir, env = killed_kubernetes_run(tmp_path, root, run_id)
    child, pid = start_in_child(workdir / kept_server.SERVER_DIR / "tgt", kept_server.record_path(workdir))
    child.kill()
    child.communicate(timeout=30)
    record = kept_server.read(kept_server.record_path(workdir))
    assert record is not None and record.pid == pid and record.alive()
    try:
        listed = cleanup("--run", run_id, "--workdir", str(root), "--dry-run", env=env)
        assert f"kept    the run's embedded server {record.describe()}: it serves the run's PV" in listed.stdout
        done = cleanup("--run", run_id, "--workdir", str(root), env=env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "pass --context lab, so the run's objects go first" in done.stdout, done.stdout
        assert f"not removed: the run's embedded server {record.describe()} still serves from it" in done.stdout
        assert record.alive() and workdir.is_dir()
    finally:
        kept_server.stop(record)
    assert not record.alive()
    after = cleanup("--run", run_id, "--workdir", str(root), env=env)
    assert f"removed the run's embedded server {record.describe()} (had exited)" in after.stdout, after.stdout
    assert f"removed work directory {workdir}" in after.stdout and not workdir.exists()
