"""Local-path checks (real directories, real uid switching as root), the emptyDir warning, and probe budgets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import main
from harness.doctor.local import check_ephemeral, check_local
from harness.doctor.probes import check_probes
from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import EphemeralStorage, LocalStorage, Probes, SecurityContext
from tests.doctor.scenarios import write_scenario

KPS = SecurityContext()  # kube-prometheus-stack: 1000/2000, fsGroup 2000


def only(findings: list[DoctorFinding], check: str) -> DoctorFinding:
    (f,) = [f for f in findings if f.check == check]
    return f


def local(path: Path | str | None, **extra: object) -> LocalStorage:
    return LocalStorage.model_validate({"backend": "local", "path": None if path is None else str(path), **extra})


def test_an_image_on_the_kubernetes_runtime_is_a_warning_that_the_nodes_directory_is_what_is_measured() -> None:
    spec = local("/mnt/prom", node="node-1", image={"filesystem": "ext4", "size": "256Mi"})
    f = only(check_local(spec, KPS, runtime="kubernetes"), "local.image")
    assert f.severity is Severity.WARNING and "not made on the kubernetes runtime" in f.title
    assert "256Mi ext4" in f.evidence and "mount -o loop" in f.fix
    assert "local.image" not in {
        g.check for g in check_local(local("/mnt/prom", node="node-1"), KPS, runtime="kubernetes")
    }


def test_missing_path_is_a_blocker(tmp_path: Path) -> None:
    f = only(check_local(local(tmp_path / "nope"), KPS, runtime="local"), "local.path")
    assert f.severity is Severity.BLOCKER
    assert f.title == f"storage.path {tmp_path / 'nope'} does not exist"


def test_existing_directory_reports_filesystem_space_and_writability(tmp_path: Path) -> None:
    findings = check_local(local(tmp_path, claim={"size": "1Ki"}), KPS, runtime="local")
    assert only(findings, "local.free_space").severity is Severity.INFO
    assert only(findings, "local.filesystem").title.startswith(f"{tmp_path} is on ")
    assert only(findings, "local.writable").severity is Severity.INFO
    huge = check_local(local(tmp_path, claim={"size": "1000Ti"}), KPS, runtime="local")
    assert only(huge, "local.free_space").severity is Severity.WARNING


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every uid can reach (pytest's tmp_path sits under a 0700 directory of root's)."""
    d = Path(tempfile.mkdtemp(prefix="harness-doctor-test-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)


@pytest.mark.root(reason="switching to another uid needs root")
def test_directory_the_uid_cannot_write(open_dir: Path, tmp_path: Path) -> None:
    hidden = tmp_path / "db"
    hidden.mkdir()
    os.chown(hidden, 1000, 2000)
    f = only(check_local(local(hidden), SecurityContext(fs_group=None), runtime="local"), "local.writable")
    assert f.severity is Severity.BLOCKER
    assert "is not searchable by uid 1000" in f.evidence  # pytest's 0700 base directory, not db itself
    d = open_dir / "db"
    d.mkdir(mode=0o755)  # root-owned, not writable for uid 1000
    no_fs_group = SecurityContext(run_as_user=1000, run_as_group=2000, fs_group=None)
    f = only(check_local(local(d), no_fs_group, runtime="local"), "local.writable")
    assert f.severity is Severity.BLOCKER
    assert f.title == f"Permission denied: uid 1000 gid 2000 cannot write in {d}"
    assert "Permission denied" in f.evidence
    assert f"chown -R 1000:2000 {d}" in f.fix
    assert list(d.iterdir()) == []
    # With fsGroup the kubelet (and the local runtime) group-owns the volume: not a blocker.
    assert only(check_local(local(d), KPS, runtime="local"), "local.writable").severity is Severity.INFO
    os.chown(d, 1000, 2000)
    f = only(check_local(local(d), no_fs_group, runtime="local"), "local.writable")
    assert (f.severity, f.title) == (Severity.INFO, f"uid 1000 gid 2000 can write in {d}")


@pytest.fixture
def tmpfs_dir(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    d = tmp_path / "mnt"
    d.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(d)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)


@pytest.mark.root(reason="mounting a tmpfs needs root")
def test_own_mount_point_and_filesystem_type(tmpfs_dir: Path) -> None:
    findings = check_local(local(tmpfs_dir, claim={"size": "1Gi"}), KPS, runtime="local")
    assert not [f for f in findings if f.check == "local.mount"]  # a mount point of its own: nothing to say
    fs = only(findings, "local.filesystem")
    assert (fs.severity, fs.title) == (Severity.WARNING, f"{tmpfs_dir} is on tmpfs: not persistent storage")
    space = only(findings, "local.free_space")
    assert space.severity is Severity.WARNING
    assert "less than the claim (1Gi)" in space.title


def test_local_pv_on_another_node_is_not_checked_from_here(tmp_path: Path) -> None:
    f = only(check_local(local(tmp_path, node="some-other-node"), KPS, runtime="kubernetes"), "local.path")
    assert f.severity is Severity.INFO
    assert "not checked from" in f.title


def test_default_directory_and_image(tmp_path: Path) -> None:
    assert only(check_local(local(None), KPS, runtime="local"), "local.path").severity is Severity.INFO
    image = check_local(local(tmp_path, image={"size": "1000Ti"}), KPS, runtime="local")
    assert any(f.check == "local.image" and f.severity is Severity.BLOCKER for f in image)


def test_emptydir_warns_that_history_is_lost() -> None:
    (f,) = check_ephemeral(EphemeralStorage(backend="ephemeral"))
    assert f.severity is Severity.WARNING
    assert "all metric history is gone" in f.why


@pytest.mark.parametrize(
    ("probes", "replay_s", "severity", "title"),
    [
        ({}, None, Severity.INFO, "Probe budget 900 s (startup probe: 60 x 15 s); no WAL replay time known yet"),
        ({}, 120.0, Severity.INFO, "WAL replay (120 s) fits the probe budget (900 s): comfortable"),
        (
            {},
            600.0,
            Severity.INFO,
            "WAL replay (600 s) fits the probe budget (900 s): little headroom as the WAL grows",
        ),
        ({}, 901.0, Severity.WARNING, "WAL replay (901 s) outlasts the probe budget (900 s): restart loop"),
        (
            {"startup": None, "liveness": {"period": "10s", "failure_threshold": 3}},
            45.0,
            Severity.WARNING,
            "WAL replay (45 s) outlasts the probe budget (30 s): restart loop",
        ),
    ],
)
def test_probe_budget(probes: dict[str, object], replay_s: float | None, severity: Severity, title: str) -> None:
    (f,) = check_probes(Probes.model_validate(probes), replay_s)
    assert (f.severity, f.title) == (severity, title)


def test_probe_warning_names_the_threshold() -> None:
    (f,) = check_probes(Probes.model_validate({}), 1000.0)
    assert "failureThreshold >= 134 at period 15 s" in f.fix


def test_bad_scenario_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nduration: 1m\nstorage: {backend: nfs}\n")
    assert main(["doctor", str(bad)]) == 2
    assert "server" in capsys.readouterr().err


def test_json_output_for_a_clean_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_scenario(tmp_path, {"backend": "ephemeral"})
    assert main(["doctor", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["blocking"] is False
    assert doc["runtime"] == "local"
    assert {f["check"] for f in doc["findings"]} == {"ephemeral.history", "probes.budget"}
    assert set(doc["findings"][0]) == {"check", "severity", "title", "evidence", "why", "fix"}
