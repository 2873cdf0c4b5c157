"""The ``cephfs`` backend: a CephFS file system, mounted on this host through ``ceph-fuse`` (local runtime).

No kernel CephFS client is needed (many hosts, ours among them, have none): ``ceph-fuse`` runs in the foreground as
the run's own daemon, mounts the file system in the run's work area, and the run writes in a directory of its own
there (``harness-<run_id>``), removed at the end; nothing else in the file system is touched. ceph-fuse is also what
ceph-csi's CephFS driver runs with ``mounter: fuse``, so its failures are the ones ceph-csi users meet (a killed
ceph-fuse leaves ``Transport endpoint is not connected``).

``monitors: embedded`` starts a single-host cluster with one MDS and the file system (``harness.storage.ceph``). A
cluster the user names is checked first (``connect``): reachable, the key right, the file system there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from harness import proc
from harness.datapath.mounts import is_mount_point
from harness.errors import NotRecovered
from harness.scenario.model import CephFsStorage
from harness.storage.ceph import CephBackend, connect, require
from harness.storage.mounted import ServedVolume, provision_or_undo, start_serving

log = logging.getLogger(__name__)


class CephFsBackend(CephBackend[CephFsStorage]):
    name = "cephfs"

    def provision(self, spec: CephFsStorage, workdir: Path, run_id: str) -> CephFsVolume:
        client = connect(spec, workdir)
        names = [fs.get("name") for fs in client.ceph_json("fs", "ls")]
        require(spec.fs_name in names, f"the file system {spec.fs_name!r}", client, spec, f"it has {names or 'none'}")
        volume = CephFsVolume(backend=self.name, root=workdir, persistent=True)

        def mount(v: CephFsVolume) -> None:
            v.mount_point = mount_point = workdir / f"cephfs-mnt-{run_id}"
            mount_point.mkdir()
            where = f"the file system {spec.fs_name} on {spec.monitors} as client.{spec.user}"
            v.daemon = start_serving(
                "ceph-fuse",
                [
                    "ceph-fuse",
                    "-f",
                    "-c",
                    str(client.conf),
                    "--id",
                    spec.user,
                    f"--client_fs={spec.fs_name}",
                    str(mount_point),
                ],
                serves=mount_point,
                log_path=workdir / "ceph-fuse.log",
                what=f"ceph-fuse to mount {where}",
                failed=lambda said: f"ceph-fuse could not mount {where}: {said}. Check the monitors, user and key",
            )
            v.root = v._make_dir(mount_point / f"harness-{run_id}")
            v.access = f"CephFS via ceph-fuse (user space, FUSE) pid {v.daemon.pid}: {where}"

        return provision_or_undo(volume, mount)


@dataclass
class CephFsVolume(ServedVolume):
    """The file system as ceph-fuse (``daemon``) mounts it for this run; the run's directory in it holds the TSDB.

    ceph-fuse can die under Prometheus (a crash, the OOM killer, a CSI node plugin restarted): its mount then
    answers every call with ``Transport endpoint is not connected`` until it is unmounted, as ceph-csi users meet
    it. A new pod on it fails as the kubelet's mount would (FAILED, not a broken harness), and the teardown unmounts
    the dead mount lazily instead of stopping at its first error; the run's directory then stays in the file system
    (nothing reaches it any more), which the teardown says."""

    def data_dir_for(self, generation: int) -> Path:
        try:
            return super().data_dir_for(generation)
        except OSError as e:
            raise NotRecovered(f"the new pod cannot use its volume: {self._dead_client()}: {e.strerror}") from e

    def teardown(self) -> None:
        daemon, mount_point = self.daemon, self.mount_point
        if daemon is not None and not daemon.alive() and mount_point is not None and is_mount_point(mount_point):
            log.warning("%s; unmounted lazily, %s stays in the file system", self._dead_client(), self.root)
            proc.run(["umount", "-l", str(mount_point)], timeout_s=30, check=False)
            self.created.clear()  # they are in the file system, which nothing on this host reaches now
            self.root = mount_point
        super().teardown()

    def _dead_client(self) -> str:
        daemon = self.daemon
        if daemon is None or daemon.alive():
            return "its CephFS mount does not answer"
        return f"ceph-fuse (pid {daemon.pid}) exited with code {daemon.popen.returncode}, its mount is dead"


BACKEND = CephFsBackend()
