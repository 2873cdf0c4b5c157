"""Storage backends of the local runtime: what each pod generation mounts, and that teardown removes only ours."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.datapath.mounts import filesystem_of, is_mount_point, why_no_kernel_iscsi, why_no_kernel_nfs
from harness.errors import StorageUnavailable
from harness.scenario.model import EphemeralStorage, IscsiStorage, LocalStorage, NfsStorage
from harness.storage import provision


def test_local_directory_is_shared_by_every_generation(tmp_path: Path) -> None:
    mine = tmp_path / "user-data.txt"
    mine.write_text("not ours")
    vol = provision(LocalStorage.model_validate({"backend": "local", "path": str(tmp_path)}), tmp_path, "r1")
    first = vol.data_dir_for(1)
    (first / "wal").mkdir()
    assert vol.data_dir_for(2) == first
    vol.release(1)
    assert (first / "wal").is_dir()  # a persistent volume keeps its data when the pod goes
    vol.teardown()
    assert not first.exists()
    assert mine.read_text() == "not ours"  # never anything we did not create


def test_local_path_must_exist(tmp_path: Path) -> None:
    spec = LocalStorage.model_validate({"backend": "local", "path": str(tmp_path / "nope")})
    with pytest.raises(StorageUnavailable, match="does not exist"):
        provision(spec, tmp_path, "r1")


def test_ephemeral_gives_each_pod_a_fresh_directory(tmp_path: Path) -> None:
    vol = provision(EphemeralStorage(backend="ephemeral"), tmp_path, "r1")
    first = vol.data_dir_for(1)
    (first / "chunks_head").mkdir()
    vol.release(1)  # the pod is gone: its emptyDir goes with it
    assert not first.exists()
    second = vol.data_dir_for(2)
    assert second != first and list(second.iterdir()) == []
    vol.teardown()
    assert not vol.root.exists()


def test_mount_path_that_is_not_a_mount_is_refused(tmp_path: Path) -> None:
    spec = IscsiStorage.model_validate(
        {"backend": "iscsi", "target_portal": "t.example:3260", "iqn": "iqn.x:y", "mount_path": str(tmp_path)}
    )
    with pytest.raises(StorageUnavailable, match="not a mount point"):
        provision(spec, tmp_path, "r1")


def test_filesystem_of_root() -> None:
    assert filesystem_of(Path("/")).mount_point == Path("/")
    assert is_mount_point(Path("/proc"))


@pytest.mark.root(reason="loop devices and mount need root")
@pytest.mark.parametrize("fs", ["ext4", "xfs"])
def test_loop_mounted_image(tmp_path: Path, fs: str) -> None:
    spec = LocalStorage.model_validate(
        {"backend": "local", "path": str(tmp_path), "image": {"filesystem": fs, "size": "320Mi"}}
    )
    vol = provision(spec, tmp_path, "r1")
    try:
        assert vol.describe()["filesystem"] == fs
        data = vol.data_dir_for(1)
        (data / "x").write_text("y")
        assert filesystem_of(data).fstype == fs
    finally:
        vol.teardown()
    assert not is_mount_point(tmp_path / "harness-r1-mnt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("spec", "why_not"),
    [
        (
            NfsStorage.model_validate({"backend": "nfs", "server": "127.0.0.1", "export": "/e", "client": "kernel"}),
            why_no_kernel_nfs,
        ),
        (
            IscsiStorage.model_validate(
                {"backend": "iscsi", "target_portal": "127.0.0.1:3260", "iqn": "iqn.x:y", "client": "kernel"}
            ),
            why_no_kernel_iscsi,
        ),
    ],
    ids=["nfs", "iscsi"],
)
def test_a_kernel_client_asked_for_where_there_is_none_says_why(
    spec: NfsStorage | IscsiStorage, why_not: Callable[[], str | None], tmp_path: Path
) -> None:
    reason = why_not()
    if reason is None:
        pytest.skip("this host has the kernel client: the refusal cannot be seen here")
    with pytest.raises(StorageUnavailable, match=f"storage.client is kernel, but {re.escape(reason)}"):
        provision(spec, tmp_path, "r1")
    assert list(tmp_path.iterdir()) == []
