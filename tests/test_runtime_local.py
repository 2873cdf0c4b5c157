"""The local runtime against the real prometheus binary: start, container restarts, new pods, security context."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import NotRecovered
from harness.faults import injectors
from harness.prom import PromClient
from harness.runtime.base import Injection
from harness.runtime.local import LocalRuntime
from harness.scenario.model import EphemeralStorage, LocalStorage, PrometheusSpec, Scenario, StorageSpec
from harness.undo import UndoLog

SPEC = PrometheusSpec.model_validate({"ready_timeout": "60s", "scrape_interval": "1s"})
PROMETHEUS3 = Path(os.environ.get("HARNESS_CACHE", "/var/cache/prom-harness")) / "prometheus-v0.316.0" / "prometheus"


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


@pytest.fixture
def workdir(public_tmp: Path) -> Path:
    return public_tmp


def _new(spec: PrometheusSpec, storage: StorageSpec, workdir: Path) -> LocalRuntime:
    rt = LocalRuntime(spec, storage, run_id="t", workdir=workdir, logs_dir=workdir / "logs")
    rt.provision_storage()
    return rt


def _runtime(storage: StorageSpec, workdir: Path) -> Iterator[LocalRuntime]:
    rt = _new(SPEC, storage, workdir)
    try:
        yield rt
    finally:
        rt.stop()
        rt.teardown_storage()


def inject(action: str, rt: LocalRuntime, undo: UndoLog | None = None) -> Injection:
    """A fault through its registered module, as the pipeline injects it (its undo is left to the caller)."""
    fault = {"action": action, "at": "1s"}
    raw = {"name": "t", "duration": "1h", "storage": {"backend": "ephemeral"}, "faults": [fault]}
    spec = Scenario.model_validate(raw).faults[0]
    return injectors()[action].inject(spec, rt, undo if undo is not None else UndoLog())


@pytest.fixture
def local_rt(workdir: Path) -> Iterator[LocalRuntime]:
    yield from _runtime(LocalStorage(backend="local"), workdir)


@pytest.fixture
def ephemeral_rt(workdir: Path) -> Iterator[LocalRuntime]:
    yield from _runtime(EphemeralStorage(backend="ephemeral"), workdir)


def test_start_sigkill_and_restart_keep_the_volume(local_rt: LocalRuntime) -> None:
    local_rt.start([])
    assert local_rt.version()[0].isdigit()
    first = local_rt.container
    assert first is not None
    injection = inject("sigkill", local_rt)
    assert "SIGKILL" in injection.detail
    recovery = local_rt.wait_recovered(60)
    second = local_rt.container
    assert second is not None and second.data_dir == first.data_dir and second.restarts == 1
    assert first.daemon.popen.returncode == -9
    assert recovery.ready_at_unix_s is not None and recovery.ready_at_unix_s >= injection.injected_at_unix_s
    assert recovery.wal_replay_s is not None  # parsed from Prometheus' own log line
    url = local_rt.base_url()
    assert url is not None and PromClient(url, timeout_s=5).ready()


def test_reschedule_on_ephemeral_storage_starts_empty(ephemeral_rt: LocalRuntime) -> None:
    ephemeral_rt.start([])
    first = ephemeral_rt.container
    assert first is not None
    injection = inject("reschedule", ephemeral_rt)
    ephemeral_rt.wait_recovered(60)
    second = ephemeral_rt.container
    assert second is not None
    assert second.node != first.node and second.generation == 2
    assert second.data_dir != first.data_dir
    assert not first.data_dir.exists()  # the old pod's emptyDir went with it
    assert "empty emptyDir" in injection.detail


def test_sigterm_on_ephemeral_keeps_the_pod_volume(ephemeral_rt: LocalRuntime) -> None:
    ephemeral_rt.start([])
    first = ephemeral_rt.container
    assert first is not None
    inject("sigterm", ephemeral_rt)
    ephemeral_rt.wait_recovered(60)
    assert ephemeral_rt.container is not None and ephemeral_rt.container.data_dir == first.data_dir
    assert first.daemon.popen.returncode == 0  # a clean shutdown on SIGTERM


@pytest.mark.root(reason="switching to the security context's uid needs root")
def test_runs_as_the_security_context_with_fs_group(local_rt: LocalRuntime) -> None:
    local_rt.start([])
    container = local_rt.container
    assert container is not None
    assert _uid_of(container.daemon.pid) == 1000
    assert container.data_dir.stat().st_gid == 2000  # the fsGroup the kubelet would apply


@pytest.mark.root(reason="switching to the security context's uid needs root")
def test_unwritable_volume_is_explained(workdir: Path) -> None:
    spec = PrometheusSpec.model_validate(
        {"ready_timeout": "30s", "security_context": {"run_as_user": 65534, "run_as_group": 65534, "fs_group": None}}
    )
    rt = _new(spec, LocalStorage(backend="local"), workdir)
    assert rt.storage is not None
    data = rt.storage.data_dir_for(1)
    data.chmod(0o755)  # owned by root: uid 65534 cannot write, as on the field notes' NFS export
    try:
        # Prometheus exits at once: the runtime says it did not come up, with its own reason.
        with pytest.raises(NotRecovered, match="not writable"):
            rt.start([])
    finally:
        rt.stop()
        rt.teardown_storage()


@pytest.mark.parametrize(
    "binary",
    [
        "prometheus",
        pytest.param(
            str(PROMETHEUS3),
            marks=pytest.mark.skipif(
                not PROMETHEUS3.exists(), reason="no Prometheus 3.x built here (run scripts/build-prometheus3)"
            ),
        ),
    ],
    ids=["debian-2.x", "3.x"],
)
def test_any_prometheus_version_recovers_and_reports_replay(public_tmp: Path, binary: str) -> None:
    spec = PrometheusSpec.model_validate({"binary": binary, "ready_timeout": "60s"})
    rt = _new(spec, LocalStorage(backend="local"), public_tmp)
    try:
        rt.start([])
        major = rt.version().split(".")[0]
        assert major in ("2", "3")
        url = rt.base_url()
        assert url is not None and PromClient(url, timeout_s=5).build_version().startswith(major)
        inject("sigkill", rt)
        recovery = rt.wait_recovered(60)
        assert recovery.wal_replay_s is not None  # the log line is parsed in both log formats
    finally:
        rt.stop()
        rt.teardown_storage()
