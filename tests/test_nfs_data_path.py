"""NFS end to end with no kernel client: the harness mounts the export itself through its user-space client over FUSE
(``harness.datapath.nfs_fuse``; ``client: user-space``, so hosts with a kernel client test it too) against a real
NFS-Ganesha on 127.0.0.1, embedded in the run or started by the test.

The client must behave like the kernel's where the harness depends on it: the server sees the calling process's
uid/gid (the field notes' permission trap reproduces with Prometheus' own log line, and the chown fix makes the same
run pass), errors keep their errno, fsync reaches the server. After every run, interrupted ones too, nothing is left.
The run with faults that iSCSI makes too is in tests/test_data_paths.py, Ctrl-C in tests/test_ctrl_c.py.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.datapath.mounts import is_mount_point
from harness.datapath.servers import NfsServer, start_ganesha
from harness.wait import wait_for
from tests.leftovers import left_behind, run

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.root(reason="the FUSE mount for other users (allow_other) and chown need root"),
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="no /dev/fuse: FUSE is not available here"),
]


def scenario_file(
    tmp_path: Path,
    storage: str,
    *,
    prometheus: str = "",
    duration: str = "10s",
    faults: str = "[{action: sigkill, at: 4s}]",
) -> Path:
    path = tmp_path / "nfs.yaml"
    path.write_text(
        f"name: nfs-user-space\nduration: {duration}\n"
        f"storage: {{backend: nfs, client: user-space, claim: {{storage_class: '', size: 1Gi}}, {storage}}}\n"
        f"{prometheus}"
        "loads: {tsdb: {series: 200}, fio: [{profile: wal-append, runtime: 2s, size: 8Mi}]}\n"
        f"faults: {faults}\n"
    )
    return path


def test_the_field_notes_permission_trap_and_its_fix(area: tuple[Path, Path], tmp_path: Path) -> None:
    """Export owned 1000:1000, Prometheus as uid 65534: Prometheus' own 'permission denied'; after the chown, PASSED."""
    reports, work = area
    nobody = "prometheus: {security_context: {run_as_user: 65534, run_as_group: 65534, fs_group: null}}\n"
    trap = scenario_file(tmp_path, "server: embedded, embedded: {owner: '1000:1000'}", prometheus=nobody)
    out = run(trap, reports / "trap", work, "--skip-doctor").expect(2).output
    assert "the TSDB directory is not writable by the Prometheus user" in out
    assert "permission denied" in out and "queries.active" in out  # Prometheus' own log line, quoted
    assert left_behind(work) == []
    # The doctor sees the same trap before anything starts, with the fix.
    assert "chown -R 65534:65534" in run(trap, reports / "doctor", work).expect(2).output
    fixed = scenario_file(tmp_path, "server: embedded, embedded: {owner: '65534:65534'}", prometheus=nobody)
    run(fixed, reports / "fixed", work).expect(0)
    assert left_behind(work) == [] and list(work.iterdir()) == []


def test_a_wrong_export_or_an_unreachable_server_exit_2_quickly(area: tuple[Path, Path], tmp_path: Path) -> None:
    reports, work = area
    for storage, says in (
        ("server: 127.0.0.1, port: 1, mount_port: 1, export: /nowhere", "could not mount 127.0.0.1:/nowhere"),
        ("server: 127.0.0.1, export: /nowhere, version: '3'", "could not mount 127.0.0.1:/nowhere"),
    ):
        started = time.monotonic()
        out = run(scenario_file(tmp_path, storage), reports, work, "--skip-doctor").expect(2).output
        assert says in out and "Traceback" not in out
        assert time.monotonic() - started < 90
        assert left_behind(work) == []


# --- the FUSE client on its own --------------------------------------------------------------------------------


@pytest.fixture
def fuse_mount(public_tmp: Path) -> Iterator[tuple[Path, Path, NfsServer]]:
    """The client mounting a Ganesha export (owned 1000:2000, 0755) at a mount point; unmounted afterwards."""
    export = public_tmp / "export"
    export.mkdir()
    os.chown(export, 1000, 2000)
    server = start_ganesha(public_tmp / "ganesha", export, pseudo=str(export), v3=True)
    mnt = public_tmp / "mnt"
    mnt.mkdir()
    argv = [sys.executable, "-m", "harness.datapath.nfs_fuse", "127.0.0.1", str(export), str(mnt)]
    argv += ["--port", str(server.port), "--version", "3", "--mount-port", str(server.mount_port)]
    client = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: is_mount_point(mnt) or None, what="the FUSE NFS mount", timeout_s=30)
        yield mnt, export, server
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, check=False, timeout=60)
        client.terminate()
        client.communicate(timeout=30)
        server.stop()


def _as(uid: int, gid: int, code: str) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` as uid/gid (no supplementary groups), as a pod's process would."""
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_server_sees_the_calling_uid_and_errors_keep_their_errno(fuse_mount: tuple[Path, Path, NfsServer]) -> None:
    mnt, export, _ = fuse_mount
    write = (
        "import os\n"
        f"fd = os.open('{mnt}/f', os.O_CREAT | os.O_WRONLY, 0o644)\n"
        "os.write(fd, b'x' * 100_000); os.fsync(fd); os.close(fd)\n"
    )
    denied = _as(65534, 65534, f"import os\ntry:\n  os.mkdir('{mnt}/d')\nexcept OSError as e:\n  print(e.errno)\n")
    assert denied.stdout.strip() == str(errno.EACCES), denied.stderr  # the server said no, as to a pod
    done = _as(1000, 2000, write)
    assert done.returncode == 0, done.stderr
    on_disk = (export / "f").stat()  # what the server stored, read beside it, not through the client
    assert (on_disk.st_uid, on_disk.st_gid, on_disk.st_size) == (1000, 2000, 100_000)
    missing = _as(1000, 2000, f"import os\ntry:\n  os.stat('{mnt}/nope')\nexcept OSError as e:\n  print(e.errno)\n")
    assert missing.stdout.strip() == str(errno.ENOENT)
    renamed = _as(
        1000, 2000, f"import os\nos.mkdir('{mnt}/a'); os.rename('{mnt}/f', '{mnt}/a/g'); print(os.listdir('{mnt}/a'))"
    )
    assert renamed.stdout.strip() == "['g']" and (export / "a" / "g").stat().st_size == 100_000
