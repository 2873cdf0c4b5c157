"""The embedded Ceph cluster's refusals and failures, without a cluster that runs: a work area on tmpfs (no O_DIRECT
for BlueStore) is refused before anything starts; an OSD that cannot be made is named with its own log's words, and
the monitor and manager started before it are stopped. The scenario model's Ceph keys refuse what cannot work."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.datapath.ceph_cluster import start_ceph
from harness.datapath.mounts import filesystem_of
from harness.errors import InfraError, StorageUnavailable
from harness.scenario.model import CephFsStorage, RbdStorage

needs_ceph = pytest.mark.skipif(
    shutil.which("ceph-osd") is None or shutil.which("ceph-mon") is None,
    reason="Ceph is missing (Debian packages ceph-mon ceph-mgr ceph-osd ceph-common)",
)


@needs_ceph
def test_a_work_area_on_tmpfs_is_refused_before_anything_starts() -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or filesystem_of(shm).fstype != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm")
    directory = shm / "harness-ceph-test"
    try:
        with pytest.raises(StorageUnavailable, match="on tmpfs: tmpfs has no O_DIRECT, which BlueStore needs"):
            start_ceph(directory, osd_size_bytes=2 * 1024**3, fs_name=None, pool="rbd")
        assert list(directory.iterdir()) == []
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@needs_ceph
def test_an_osd_that_cannot_be_made_is_named_with_its_log_and_nothing_stays_running(tmp_path: Path) -> None:
    """A 1 MiB BlueStore file is too small for BlueFS: ceph-osd --mkfs aborts. The error names osd.0 and quotes the
    log's own failure, not the crash dump after it; mon.a and mgr.x, started before, are gone."""
    with pytest.raises(InfraError) as failed:
        start_ceph(tmp_path / "ceph", osd_size_bytes=1024**2, fs_name=None, pool="rbd")
    said = str(failed.value)
    assert "the embedded Ceph's osd.0 could not be made (ceph-osd --mkfs: exit code" in said, said
    assert "allocation failed" in said and "dump of recent events" not in said, said
    ps = subprocess.run(["ps", "-ww", "-eo", "stat,args"], capture_output=True, text=True, check=True).stdout
    assert [line for line in ps.splitlines() if str(tmp_path) in line and not line.startswith("Z")] == []


@pytest.mark.parametrize(
    ("storage", "said"),
    [
        ({"backend": "rbd", "monitors": "embedded", "keyring": "/k"}, "the embedded cluster makes its own keys"),
        ({"backend": "cephfs", "monitors": "10.0.0.1:6789"}, "exactly one of keyring (a keyring file) or secret_file"),
        (
            {"backend": "cephfs", "monitors": "10.0.0.1", "keyring": "/k", "secret_file": "/s"},
            "exactly one of keyring",
        ),
        ({"backend": "rbd", "monitors": "10.0.0.1:x", "keyring": "/k"}, "'10.0.0.1:x' is not a monitor address"),
        ({"backend": "cephfs", "monitors": "10.0.0.1", "keyring": "/k", "embedded": {}}, "'embedded' describes"),
        ({"backend": "rbd", "monitors": "embedded", "embedded": {"osd_size": "1Gi"}}, "greater than or equal"),
    ],
)
def test_the_ceph_keys_refuse_what_cannot_work(storage: dict[str, object], said: str) -> None:
    model = RbdStorage if storage["backend"] == "rbd" else CephFsStorage
    with pytest.raises(ValueError) as refused:
        model.model_validate(storage)
    assert said in str(refused.value)


def test_monitor_lists_as_ceph_conf_takes_them_are_accepted() -> None:
    for monitors in ("10.0.0.1:6789,10.0.0.2:6789", "[v2:10.0.0.1:3300,v1:10.0.0.1:6789]", "v2:127.0.0.1:3300", "mon1"):
        assert CephFsStorage.model_validate({"backend": "cephfs", "monitors": monitors, "keyring": "/k"})
    assert RbdStorage.model_validate({"backend": "rbd", "monitors": "embedded"}).embedded_cluster is not None
