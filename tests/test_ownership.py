"""Safety without a cluster: the user config (read and reported like a scenario file), kube contexts used only when
named or allowed, run markers and their lock, and the run id every child process carries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import proc
from harness.cli import main
from harness.config import UserConfig, choose_context, load_user_config
from harness.errors import ConfigError, UsageError
from harness.ownership import (
    RUN_ID_ENV,
    RunLock,
    find_runs,
    new_marker,
    owner_label,
    released,
    valid_run_id,
)
from harness.settings import Settings

SCENARIO = "name: t\nduration: 5s\nstorage: {backend: ephemeral}\n"
# Two contexts on a server nothing listens on: whatever is refused here is refused before any connection.
KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: x}}]
contexts:
  - {name: lab, context: {cluster: c, user: u}}
  - {name: prod, context: {cluster: c, user: u}}
current-context: prod
"""


def _user_config() -> UserConfig:
    """The harness config as the CLI reads it (the file $HARNESS_CONFIG names)."""
    return load_user_config(Settings.from_environ(os.environ))


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """(scenario, kubeconfig, harness config path), the config path in $HARNESS_CONFIG, no file there yet."""
    scenario, kubeconfig, config = tmp_path / "s.yaml", tmp_path / "kubeconfig", tmp_path / "config.yaml"
    scenario.write_text(SCENARIO)
    kubeconfig.write_text(KUBECONFIG)
    monkeypatch.setenv("HARNESS_CONFIG", str(config))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return scenario, kubeconfig, config


def test_an_invalid_config_is_reported_like_a_scenario(
    files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    scenario, _, config = files
    config.write_text("kubernetes:\n  allowed_context: [lab]\nowner: 7\n")
    with pytest.raises(ConfigError) as e:
        _user_config()
    assert [str(p) for p in e.value.problems] == [
        f"{config}:2:3: kubernetes.allowed_context: unknown key (not allowed here; check the spelling against the "
        "documented keys)",
        f"{config}:3:1: owner: input should be a valid string, got 7",
    ]
    reports = tmp_path / "reports"
    assert main(["run", str(scenario), "--reports", str(reports)]) == 2
    assert "kubernetes.allowed_context: unknown key" in capsys.readouterr().err
    assert not reports.exists()  # refused before anything was created


def test_no_config_file_means_the_defaults(files: tuple[Path, Path, Path]) -> None:
    config = _user_config()
    assert config.kubernetes.allowed_contexts == []
    assert "@" in config.effective_owner()


def test_the_current_context_is_refused_unless_allowed(
    files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    scenario, kubeconfig, config = files
    reports = tmp_path / "reports"
    argv = ["run", str(scenario), "--runtime", "kubernetes", "--kubeconfig", str(kubeconfig)]
    assert main([*argv, "--reports", str(reports)]) == 2
    err = capsys.readouterr().err
    assert "the current-context of kubeconfig" in err and "'prod'" in err
    assert "--context prod" in err  # the two ways to allow it, the second as the exact snippet
    assert f"allow it in {config}" in err and "kubernetes:\n      allowed_contexts: [prod]" in err
    assert not reports.exists()
    # The doctor reads a cluster under the same rule.
    assert main(["doctor", str(scenario), "--runtime", "kubernetes", "--kubeconfig", str(kubeconfig)]) == 2
    assert "--context prod" in capsys.readouterr().err

    config.write_text("kubernetes: {allowed_contexts: [lab]}\n")
    with pytest.raises(UsageError, match=r"it allows: lab"):
        choose_context(str(kubeconfig), None, _user_config())
    config.write_text("kubernetes: {allowed_contexts: [lab, prod]}\n")
    assert choose_context(str(kubeconfig), None, _user_config()) == "prod"


def test_a_named_context_is_used_exactly_and_must_exist(
    files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    scenario, kubeconfig, _ = files
    assert choose_context(str(kubeconfig), "lab", _user_config()) == "lab"  # not the current one, not listed
    argv = ["run", str(scenario), "--runtime", "kubernetes", "--kubeconfig", str(kubeconfig), "--context", "labb"]
    assert main([*argv, "--reports", str(tmp_path / "reports")]) == 2
    assert "kube context 'labb' is not in kubeconfig" in (err := capsys.readouterr().err)
    assert "its contexts: lab, prod" in err


def test_owner_labels_and_run_ids() -> None:
    assert owner_label("root@build-host.example") == "root-build-host.example"
    assert owner_label("-éx-" + "y" * 80).startswith("x-y") and len(owner_label("y" * 80)) == 63
    assert valid_run_id("3fa2b1") and not valid_run_id("../x") and not valid_run_id("")


def test_a_marker_is_locked_while_its_run_lives(tmp_path: Path) -> None:
    workdir = tmp_path / "prom-harness-abc123-xyz"
    workdir.mkdir()
    fields = {
        "owner": "me",
        "scenario_file": "s.yaml",
        "scenario_name": "s",
        "runtime": "local",
        "reports_dir": "",
        "kube_context": None,
        "kubeconfig": None,
        "host_paths": [],
    }
    lock = RunLock.create(workdir, new_marker(run_id="abc123", workdir=workdir, **fields))
    other = tmp_path / "prom-harness-def456-xyz"
    other.mkdir()
    RunLock.create(other, new_marker(run_id="def456", workdir=other, **fields)).release()
    try:
        runs = find_runs(tmp_path)
        with released(runs):
            state = {r.marker.run_id: r.alive for r in runs if r.marker is not None}
        assert state == {"abc123": True, "def456": False}
        assert [r.directory for r in find_runs(tmp_path, run_id="abc123")] == [workdir]
        assert find_runs(tmp_path, owner="someone else") == []
    finally:
        lock.release()
    runs = find_runs(tmp_path, run_id="abc123")
    with released(runs):
        assert [r.alive for r in runs] == [False]


def test_children_of_a_run_carry_its_id(tmp_path: Path) -> None:
    script = f"import os; print(os.environ.get({RUN_ID_ENV!r}, '-'))"
    with proc.labelled_children("abc123"):
        inside = proc.run([sys.executable, "-c", script], timeout_s=30).stdout.strip()
        daemon = proc.start_daemon("probe", [sys.executable, "-c", script], log_path=tmp_path / "d.log")
        daemon.wait(30)
    outside = proc.run([sys.executable, "-c", script], timeout_s=30).stdout.strip()
    assert (inside, daemon.log_text().strip(), outside) == ("abc123", "abc123", "-")
    # Not through os.environ: processes started later by this one, outside a run, never carry it.
    assert os.environ.get(RUN_ID_ENV) is None
    assert (
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False).stdout.strip()
        == "-"
    )


def test_cluster_objects_carry_the_owner_and_the_process() -> None:
    from harness.ownership import RunOwner
    from harness.runtime.manifests.common import Names, namespace_manifest

    names = Names("unit", "abc123", RunOwner("alice@lab host", "lab", 4242, 99))
    meta = namespace_manifest(names)["metadata"]
    assert meta["labels"]["harness/owner"] == "alice-lab-host" and meta["labels"]["harness/run-id"] == "abc123"
    assert meta["annotations"] == {
        "harness/owner": "alice@lab host",
        "harness/host": "lab",
        "harness/pid": "4242",
        "harness/pid-start": "99",
    }
    assert RunOwner.from_annotations(meta["annotations"]) == names.owner
    assert names.cordon_annotations(cordoned=True) == {
        "harness/cordoned-by": "abc123",
        "harness/cordoned-owner": "alice-lab-host",
    }
    assert set(names.cordon_annotations(cordoned=False).values()) == {None}


def test_a_daemon_meant_to_outlive_its_starter_belongs_to_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """E.g. a test cluster's kubelet restarted by `python -m testbed node restore`, itself a run's child: it
    must not carry the run's id, inherited or not, or `harness cleanup --run ID` would kill it."""
    monkeypatch.setenv(RUN_ID_ENV, "abc123")  # as in a process a run started
    script = f"import os; print(os.environ.get({RUN_ID_ENV!r}, '-'))"
    with proc.labelled_children("abc123"):
        daemon = proc.start_daemon(
            "outliving", [sys.executable, "-c", script], log_path=tmp_path / "d.log", die_with_parent=False
        )
        daemon.wait(30)
    assert daemon.log_text().strip() == "-"
