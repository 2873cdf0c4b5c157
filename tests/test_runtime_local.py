"""The local runtime against the real prometheus binary: start, container restarts, new pods, security context."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import InfraError
from harness.prom import PromClient
from harness.runtime.local import LocalRuntime
from harness.scenario.model import EphemeralStorage, LocalStorage, PrometheusSpec
from harness.storage import provision
from harness.storage.base import ProvisionedStorage

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


def _runtime(storage: ProvisionedStorage, workdir: Path, **kw: object) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(SPEC, storage, workdir=workdir, logs_dir=workdir / "logs", **kw)  # type: ignore[arg-type]
    try:
        yield rt
    finally:
        rt.stop()
        storage.teardown()


@pytest.fixture
def local_rt(workdir: Path) -> Iterator[LocalRuntime]:
    storage = provision(LocalStorage(backend="local"), workdir, "t")
    yield from _runtime(storage, workdir)


@pytest.fixture
def ephemeral_rt(workdir: Path) -> Iterator[LocalRuntime]:
    storage = provision(EphemeralStorage(backend="ephemeral"), workdir, "t")
    yield from _runtime(storage, workdir)


def test_start_sigkill_and_restart_keep_the_volume(local_rt: LocalRuntime) -> None:
    local_rt.start()
    assert local_rt.version()[0].isdigit()
    first = local_rt.container
    assert first is not None
    injection = local_rt.inject("sigkill")
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
    ephemeral_rt.start()
    first = ephemeral_rt.container
    assert first is not None
    injection = ephemeral_rt.inject("reschedule")
    ephemeral_rt.wait_recovered(60)
    second = ephemeral_rt.container
    assert second is not None
    assert second.node != first.node and second.generation == 2
    assert second.data_dir != first.data_dir
    assert not first.data_dir.exists()  # the old pod's emptyDir went with it
    assert "empty emptyDir" in injection.detail


def test_sigterm_on_ephemeral_keeps_the_pod_volume(ephemeral_rt: LocalRuntime) -> None:
    ephemeral_rt.start()
    first = ephemeral_rt.container
    assert first is not None
    ephemeral_rt.inject("sigterm")
    ephemeral_rt.wait_recovered(60)
    assert ephemeral_rt.container is not None and ephemeral_rt.container.data_dir == first.data_dir
    assert first.daemon.popen.returncode == 0  # a clean shutdown on SIGTERM


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the security context's uid needs root")
def test_runs_as_the_security_context_with_fs_group(local_rt: LocalRuntime) -> None:
    local_rt.start()
    container = local_rt.container
    assert container is not None
    assert _uid_of(container.daemon.pid) == 1000
    assert container.data_dir.stat().st_gid == 2000  # the fsGroup the kubelet would apply


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the security context's uid needs root")
def test_unwritable_volume_is_explained(workdir: Path) -> None:
    spec = PrometheusSpec.model_validate(
        {"ready_timeout": "30s", "security_context": {"run_as_user": 65534, "run_as_group": 65534, "fs_group": None}}
    )
    storage = provision(LocalStorage(backend="local"), workdir, "t")
    data = storage.data_dir_for(1)
    data.chmod(0o755)  # owned by root: uid 65534 cannot write, as on the field notes' NFS export
    rt = LocalRuntime(spec, storage, workdir=workdir, logs_dir=workdir / "logs")
    try:
        with pytest.raises(InfraError, match="not writable"):
            rt.start()
    finally:
        rt.stop()
        storage.teardown()


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
    storage = provision(LocalStorage(backend="local"), public_tmp, "v")
    rt = LocalRuntime(spec, storage, workdir=public_tmp, logs_dir=public_tmp / "logs")
    try:
        rt.start()
        major = rt.version().split(".")[0]
        assert major in ("2", "3")
        url = rt.base_url()
        assert url is not None and PromClient(url, timeout_s=5).build_version().startswith(major)
        rt.inject("sigkill")
        recovery = rt.wait_recovered(60)
        assert recovery.wal_replay_s is not None  # the log line is parsed in both log formats
    finally:
        rt.stop()
        storage.teardown()
