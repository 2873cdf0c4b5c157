"""What the Ceph backends (``cephfs``, ``rbd``) share; not a backend of its own.

* ``EmbeddedCephServer``: ``monitors: embedded`` starts a single-host cluster in the run's work area
  (``harness.datapath.ceph_cluster``) and hands the backend the same kind of spec a user-named cluster has: its
  monitors and client.admin's keyring.
* ``connect``: the client configuration for the cluster the spec names, and a first bounded call that says, within
  seconds, which setting is wrong: monitors unreachable, a wrong user or key, a missing file system or pool, a
  cluster in HEALTH_ERR (exit 2, nothing started yet).
* ``CephBackend``: the refusals both share. On Kubernetes a Ceph volume is ceph-csi's (``backend: dynamic`` on its
  StorageClass): these backends are the local runtime's, through user-space clients on this host.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from harness.datapath.ceph_cli import CephClient, CephError, write_client_conf
from harness.datapath.ceph_cluster import CephCluster, start_ceph
from harness.errors import InfraError, StorageUnavailable
from harness.scenario.model import CephClientSpec, CephFsStorage, RbdStorage
from harness.storage.base import Backend, EmbeddedServer

if TYPE_CHECKING:
    from harness.results.model import DoctorFinding
    from harness.scenario.model import SecurityContext

CephSpecT = TypeVar("CephSpecT", bound=CephClientSpec)


class CephBackend(Backend[CephSpecT]):
    """A Ceph backend on the local runtime: a cluster the user names, or one the run starts (``embedded``)."""

    def cluster_refusal(self, spec: CephSpecT) -> str | None:
        return (
            f"storage.backend {self.name} mounts Ceph on the harness host through a user-space client, for the local "
            "runtime; in a cluster Ceph volumes come from ceph-csi: use backend: dynamic with its StorageClass"
        )

    def server_refusal(self, spec: CephSpecT) -> str | None:
        return (
            f"storage.backend {self.name} has no one server to stop and start: a Ceph cluster is several daemons "
            "(monitors, OSDs, MDS), each stopped by a fault of its own"
        )

    def embedded_server(self, spec: CephSpecT, workdir: Path) -> EmbeddedCephServer[CephSpecT] | None:
        embedded = spec.embedded_cluster
        if embedded is None:
            return None
        return EmbeddedCephServer(spec, workdir, embedded.osd_size_bytes)

    def doctor_findings(self, spec: CephSpecT, security_context: SecurityContext, runtime: str) -> list[DoctorFinding]:
        from harness.doctor.ceph import check_ceph

        return check_ceph(spec)


class EmbeddedCephServer(EmbeddedServer[CephSpecT]):
    """A single-host cluster in the run's work area: an MDS and the file system for ``cephfs``, the pool for
    ``rbd``. Its daemons are the run's, stopped by the PIDs it holds."""

    def __init__(self, spec: CephSpecT, workdir: Path, osd_size_bytes: int) -> None:
        self.spec = spec
        self.workdir = workdir
        self.osd_size_bytes = osd_size_bytes
        self.cluster: CephCluster | None = None
        parts = "mon, mgr, OSD" + (", MDS" if isinstance(spec, CephFsStorage) else "")
        self.description = f"embedded Ceph cluster ({parts} on 127.0.0.1, pool size 1)"

    def start(self) -> CephSpecT:
        spec = self.spec
        fs_name = spec.fs_name if isinstance(spec, CephFsStorage) else None
        pool = spec.pool if isinstance(spec, RbdStorage) else None
        # start_ceph stops what it started when a step fails; ``cluster`` is set only for a cluster that runs.
        self.cluster = cluster = start_ceph(
            self.workdir, osd_size_bytes=self.osd_size_bytes, fs_name=fs_name, pool=pool
        )
        update = {
            "monitors": cluster.monitors,
            "keyring": str(cluster.admin_keyring),
            "user": "admin",
            "embedded": None,
        }
        return spec.model_copy(update=update)

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None

    def running(self) -> CephCluster:
        if self.cluster is None:
            raise InfraError("the embedded Ceph cluster was not started")
        return self.cluster


def connect(spec: CephClientSpec, workdir: Path) -> CephClient:
    """client.<user> on the cluster ``spec`` names, checked to answer (bounded: exit 2 within seconds naming what to
    check); its configuration file is written in ``workdir``."""
    keyring = _key_file(spec.keyring, "keyring")
    keyfile = _key_file(spec.secret_file, "secret_file")
    conf = write_client_conf(workdir / "ceph-client.conf", spec.monitors, keyring=keyring, keyfile=keyfile)
    client = CephClient(conf, spec.user)
    status = client.ceph_json("health")
    if status.get("status") == "HEALTH_ERR":
        checks = "; ".join(
            f"{name}: {check.get('summary', {}).get('message', '')}" for name, check in status.get("checks", {}).items()
        )
        raise StorageUnavailable(
            f"the Ceph cluster at {spec.monitors} is in HEALTH_ERR ({checks or 'no detail'}): a run on it would "
            "measure the failure, not the storage. Check `ceph health detail`"
        )
    return client


def _key_file(path: str | None, key: str) -> Path | None:
    if path is None:
        return None
    found = Path(path)
    if not found.is_file():
        raise StorageUnavailable(f"storage.{key} {path!r} is not a file on this host: give the path of the key")
    return found.resolve()


def require(found: bool, what: str, client: CephClient, spec: CephClientSpec, listed: str) -> None:
    """StorageUnavailable naming ``what`` when it is not on the cluster (``listed``: what there is)."""
    if not found:
        raise CephError(
            f"Ceph: {what} does not exist on the cluster at {spec.monitors} (as {client.name}: {listed}). Check the "
            "name in the scenario"
        )
