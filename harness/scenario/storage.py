"""The scenario's ``storage``: one model per backend, told apart by ``backend``, with the claim and the
PersistentVolume it implies on Kubernetes and the embedded servers (NFS-Ganesha, tgt, a single-host Ceph) the local
runtime can start.

The behaviour of each backend lives in its module under ``harness/storage/``; this is only what a file may say.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from harness.scenario.strict import Strict
from harness.scenario.units import Bytes, Seconds

AccessMode = Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]


class VolumeClaim(Strict):
    """The PersistentVolumeClaim Prometheus will use (Kubernetes runtime; the doctor simulates its binding)."""

    storage_class: str | None = Field(
        default=None,
        description='StorageClass name. "" binds only to PVs without a class; unset uses the cluster default.',
    )
    size_bytes: Bytes = Field(default=10 * 1024**3, alias="size", description="resources.requests.storage")
    access_modes: list[AccessMode] = Field(
        default_factory=lambda: list[AccessMode](["ReadWriteOnce"]),
        description="spec.accessModes of the claim and of the PV the harness creates",
    )
    volume_mode: Literal["Filesystem", "Block"] = Field(
        default="Filesystem", description="spec.volumeMode of the claim and of the PV the harness creates"
    )
    selector: dict[str, str] | None = Field(
        default=None,
        description="selector.matchLabels. Without a class, an NFS/iSCSI PV is only matched through this.",
    )


class PersistentVolume(Strict):
    """The PersistentVolume the harness creates for static backends (local, nfs, iscsi) on Kubernetes."""

    create: bool = Field(default=True, description="false: use a PV that already exists (never deleted by us)")
    name: str | None = Field(default=None, description="the PV's name; default: harness-<scenario name>")
    labels: dict[str, str] = Field(
        default_factory=dict, description="the PV's metadata.labels, for the claim's selector to match"
    )
    reclaim_policy: Literal["Retain", "Delete", "Recycle"] = Field(
        default="Retain",
        description="persistentVolumeReclaimPolicy: Retain keeps the data when the claim goes, and the PV stays "
        "Released with the deleted claim's claimRef (the field notes' trap after a redeploy)",
    )
    capacity_bytes: Bytes | None = Field(default=None, alias="capacity", description="default: the claim size")


class LoopImage(Strict):
    """A filesystem image the harness creates, loop-mounts and removes (local runtime, needs root)."""

    filesystem: Literal["ext4", "xfs"] = Field(default="ext4", description="the filesystem made on the image")
    size_bytes: Bytes = Field(default=2 * 1024**3, alias="size", description="the image file's size (sparse)")
    direct_io: bool = Field(
        default=False, description="losetup --direct-io=on: bypass the host page cache under the loop device"
    )


class LocalStorage(Strict):
    backend: Literal["local"] = Field(
        description="a directory or disk on one node: a local PersistentVolume (nodeAffinity) on Kubernetes"
    )
    path: str | None = Field(
        default=None, description="host directory for the TSDB; default: a fresh directory in the run directory"
    )
    image: LoopImage | None = Field(default=None, description="create and loop-mount a filesystem image there")
    node: str | None = Field(default=None, description="Kubernetes node that holds the disk (PV nodeAffinity)")
    claim: VolumeClaim = Field(default_factory=lambda: VolumeClaim.model_validate({"storage_class": "local-storage"}))
    volume: PersistentVolume = Field(default_factory=PersistentVolume)


class EphemeralStorage(Strict):
    """The chart's default: an emptyDir. Every new pod (reschedule) starts with an empty TSDB."""

    backend: Literal["ephemeral"] = Field(description="the chart's default emptyDir: it goes with the pod")
    size_limit_bytes: Bytes | None = Field(
        default=None, alias="size_limit", description="the emptyDir's sizeLimit (Kubernetes runtime); default: none"
    )


DataPathClient = Literal["auto", "kernel", "user-space"]

# The word that asks for a server the run starts itself on 127.0.0.1 (local runtime) instead of an address.
EMBEDDED = "embedded"


def _ipv4(value: str) -> str:
    if not re.fullmatch(r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}", value):
        raise ValueError(f"{value!r} is no IPv4 address: name one of this host's, e.g. 127.0.0.1 or 10.244.0.1")
    return value


Listen = Annotated[
    str,
    AfterValidator(_ipv4),
    Field(
        description="the IPv4 address of the harness host the embedded server binds to: 127.0.0.1 (this host only), or "
        "an address a cluster's nodes route to (the local test cluster's bridge, 10.244.0.1); the kubernetes runtime "
        "checks every node reaches it before creating anything"
    ),
]


class EmbeddedExport(Strict):
    """The directory an embedded NFS-Ganesha exports: in the run's work area, owned as the scenario says."""

    owner: str = Field(
        default="1000:2000",
        pattern=r"^\d+:\d+$",
        description="uid:gid of the exported directory (the field notes' trap: 1000:1000 vs Prometheus' uid)",
    )
    mode: str = Field(default="0755", pattern=r"^0?[0-7]{3,4}$", description="its permission bits, octal")
    squash: Literal["no_root_squash", "root_squash"] = Field(
        default="no_root_squash",
        description="root_squash maps a client's root to an anonymous user, so a root process cannot chown in the "
        "export (as an initContainer or Grafana's init-chown-data would)",
    )
    grace_s: Seconds = Field(
        default=0.0,
        alias="grace",
        le=180.0,
        description=(
            "the NFSv4 grace period of every (re)start, as a real server has one (Ganesha's default is 90s): new "
            "NFSv4 state (opens, locks) is refused while clients reclaim theirs; 0s: graceless, it serves at once"
        ),
    )

    listen: Listen = "127.0.0.1"

    @property
    def uid_gid(self) -> tuple[int, int]:
        uid, gid = self.owner.split(":")
        return int(uid), int(gid)

    @property
    def mode_bits(self) -> int:
        return int(self.mode, 8)


class NfsStorage(Strict):
    backend: Literal["nfs"] = Field(description="a static NFS PersistentVolume")
    server: str = Field(
        description="the NFS server's host, or 'embedded': NFS-Ganesha on 127.0.0.1 started for the run (local runtime)"
    )
    export: str = Field(
        default="",
        validate_default=True,
        description="path on the server, e.g. /vol/k8s-prometheus/prometheus_db (an embedded server makes its own)",
    )
    port: int = Field(
        default=2049, ge=1, le=65535, description="the server's NFS port; an embedded server listens on a free one"
    )
    mount_port: int | None = Field(
        default=None, ge=1, le=65535, description="NFSv3 MOUNT port; default: asked from the server's rpcbind"
    )
    version: Literal["3", "4", "4.1", "4.2"] = Field(
        default="4",
        description="the PV's nfsvers mount option and the kernel client's vers; the harness's user-space client "
        "speaks NFSv3 whatever this says",
    )
    mount_path: str | None = Field(
        default=None,
        description="local runtime: where this export is already mounted on this host (else the harness mounts it)",
    )
    embedded: EmbeddedExport | None = Field(default=None, description="with server: embedded; the exported directory")
    client: DataPathClient = Field(
        default="auto",
        description="local runtime: how this host mounts it; auto: the kernel client where there is one, else "
        "the harness's user-space client",
    )
    claim: VolumeClaim = Field(default_factory=lambda: VolumeClaim.model_validate({"storage_class": ""}))
    volume: PersistentVolume = Field(default_factory=PersistentVolume)

    @model_validator(mode="after")
    def _embedded(self) -> NfsStorage:
        if self.embedded is not None and self.server != EMBEDDED:
            raise ValueError(f"'embedded' describes the export of server: {EMBEDDED}, not of {self.server}")
        return self

    @field_validator("export")
    @classmethod
    def _export(cls, v: str, info: ValidationInfo) -> str:
        server = info.data.get("server")
        if not v and server is not None and server != EMBEDDED:
            raise ValueError(f"missing: the path on {server} is required (e.g. /vol/k8s-prometheus/prometheus_db)")
        return v

    @property
    def embedded_export(self) -> EmbeddedExport | None:
        """The directory to export from an embedded server, None for a real one."""
        if self.server != EMBEDDED:
            return None
        return self.embedded if self.embedded is not None else EmbeddedExport()


class EmbeddedLun(Strict):
    """The LUN an embedded iSCSI target (tgt) serves: a sparse file in the run's work area."""

    size_bytes: Bytes | None = Field(default=None, alias="size", description="default: the claim's size (sparse)")
    layout: Literal["blank", "ext4", "xfs", "partitioned"] = Field(
        default="blank",
        description="what the LUN holds before the run: nothing, a whole-disk filesystem, or a GPT partition table "
        "(the field notes' trap: never formatted, the mount fails)",
    )
    listen: Listen = "127.0.0.1"


class IscsiStorage(Strict):
    backend: Literal["iscsi"] = Field(description="a static iSCSI PersistentVolume")
    target_portal: str = Field(
        description="host:port of the iSCSI target, e.g. 172.17.73.37:3260, or 'embedded': tgt on 127.0.0.1 "
        "started for the run (local runtime)"
    )
    iqn: str = Field(description="the target's IQN, e.g. iqn.2020-02.com:wsg")
    lun: int = Field(default=0, ge=0, description="the LUN; an embedded target keeps 0 for its controller: use 1")
    fs_type: Literal["ext4", "xfs"] = Field(
        default="ext4", description="the whole-disk filesystem; a blank LUN is formatted with it, as the kubelet does"
    )
    mount_path: str | None = Field(
        default=None,
        description="local runtime: where this LUN is already mounted on this host (else the harness mounts it)",
    )
    embedded: EmbeddedLun | None = Field(default=None, description="with target_portal: embedded; the LUN it serves")
    client: DataPathClient = Field(
        default="auto",
        description="local runtime: how this host attaches it; auto: the kernel initiator (iscsiadm) where there "
        "is one, else the user-space initiator",
    )
    claim: VolumeClaim = Field(default_factory=lambda: VolumeClaim.model_validate({"storage_class": ""}))
    volume: PersistentVolume = Field(default_factory=PersistentVolume)

    @field_validator("target_portal")
    @classmethod
    def _portal(cls, v: str) -> str:
        if not re.fullmatch(r"[^\s:]+(:\d{1,5})?|\[[0-9a-fA-F:]+\](:\d{1,5})?", v):
            raise ValueError(f"{v!r} is not host or host:port")
        return v

    @model_validator(mode="after")
    def _embedded(self) -> IscsiStorage:
        if self.embedded is not None and self.target_portal != EMBEDDED:
            raise ValueError(f"'embedded' describes the LUN of target_portal: {EMBEDDED}, not of {self.target_portal}")
        if self.target_portal == EMBEDDED and self.lun == 0:
            raise ValueError("lun: the embedded target (tgt) keeps LUN 0 for its controller; use lun: 1")
        return self

    @property
    def embedded_lun(self) -> EmbeddedLun | None:
        """The LUN to serve from an embedded target, None for a real one."""
        if self.target_portal != EMBEDDED:
            return None
        return self.embedded if self.embedded is not None else EmbeddedLun()


class EmbeddedCeph(Strict):
    """The single-host Ceph cluster an ``embedded`` Ceph backend starts in the run's work area (1 mon, 1 mgr, 1 OSD on
    a file-backed BlueStore, and an MDS for CephFS), pool size 1."""

    osd_size_bytes: Bytes = Field(
        default=4 * 1024**3,
        alias="osd_size",
        ge=2 * 1024**3,
        description="the OSD's BlueStore file (sparse; never on tmpfs): the cluster's whole capacity",
    )


_CEPH_MONITOR = re.compile(r"(\[?(v1|v2):)?[^\s,:\[\]]+(:\d{1,5})?\]?|\[[0-9a-fA-F:]+\](:\d{1,5})?")


class CephClientSpec(Strict):
    """How the run reaches a Ceph cluster: its monitors and a client identity (what ceph-csi's Secret holds)."""

    monitors: str = Field(
        description="the monitors as ceph.conf's `mon host` takes them, e.g. 10.0.0.1:6789,10.0.0.2:6789, or "
        "'embedded': a single-host cluster started for the run in its work area (local runtime)"
    )
    user: str = Field(default="admin", pattern=r"^[A-Za-z0-9_.-]+$", description="the client's id (client.USER)")
    keyring: str | None = Field(default=None, description="path of a keyring file holding client.USER's key")
    secret_file: str | None = Field(default=None, description="path of a file holding client.USER's key alone")
    embedded: EmbeddedCeph | None = Field(default=None, description="with monitors: embedded; the cluster to start")

    @field_validator("monitors")
    @classmethod
    def _monitors(cls, v: str) -> str:
        if v == EMBEDDED:
            return v
        entries = [e for e in re.split(r"[,\s]+", v.strip()) if e]
        bad = [e for e in entries if not _CEPH_MONITOR.fullmatch(e)]
        if not entries or bad:
            raise ValueError(f"{bad[0] if bad else v!r} is not a monitor address (host, host:port or v2:host:port)")
        return v

    @model_validator(mode="after")
    def _key(self) -> CephClientSpec:
        if self.monitors == EMBEDDED:
            if self.keyring is not None or self.secret_file is not None:
                raise ValueError("keyring/secret_file: the embedded cluster makes its own keys; leave both unset")
        elif self.embedded is not None:
            raise ValueError(f"'embedded' describes the cluster of monitors: {EMBEDDED}, not of {self.monitors}")
        elif (self.keyring is None) == (self.secret_file is None):
            raise ValueError(f"give client.{self.user}'s key as exactly one of keyring (a keyring file) or secret_file")
        return self

    @property
    def embedded_cluster(self) -> EmbeddedCeph | None:
        """The cluster to start for the run, None for a cluster the user names."""
        if self.monitors != EMBEDDED:
            return None
        return self.embedded if self.embedded is not None else EmbeddedCeph()


class CephFsStorage(CephClientSpec):
    """A CephFS file system, mounted through ceph-fuse (the FUSE client; no kernel CephFS client is needed)."""

    backend: Literal["cephfs"] = Field(description="a CephFS file system mounted with ceph-fuse (no kernel client)")
    fs_name: str = Field(default="cephfs", pattern=r"^[A-Za-z0-9_.-]+$", description="the CephFS file system")


class RbdStorage(CephClientSpec):
    """An RBD image with a whole-disk filesystem, attached through qemu-storage-daemon's librbd driver, exported over
    FUSE and a loop device (no krbd or rbd-nbd is needed)."""

    backend: Literal["rbd"] = Field(
        description="an RBD image through librbd in qemu-storage-daemon, over FUSE and a loop device (no krbd)"
    )
    pool: str = Field(default="rbd", pattern=r"^[A-Za-z0-9_.-]+$", description="the RADOS pool holding the image")
    image: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="an existing image (never deleted; formatted only when blank); unset: an image of `size` is "
        "created for the run and removed at its end",
    )
    size_bytes: Bytes = Field(default=2 * 1024**3, alias="size", description="the image the run creates (thin)")
    fs_type: Literal["ext4", "xfs"] = Field(default="ext4", description="the whole-disk filesystem of a blank image")
    cache: Literal["none", "writeback"] = Field(
        default="none",
        description="librbd's cache in qemu-storage-daemon: none (cache.direct=on: librbd's cache off, each flush "
        "and O_DIRECT write reaches the OSDs, as with krbd) or writeback (librbd caches writes in the daemon's memory, "
        "which a power_loss takes too)",
    )


class DynamicStorage(Strict):
    """A StorageClass that already exists in the cluster, whose provisioner makes the PV (Ceph RBD, cloud disks,
    local-path): the run creates only the claim (Kubernetes runtime only)."""

    backend: Literal["dynamic"] = Field(description="a claim on a StorageClass whose provisioner makes the PV")
    storage_class: str = Field(
        min_length=1, description="the existing StorageClass to claim from (kubectl get storageclass)"
    )
    size_bytes: Bytes = Field(default=10 * 1024**3, alias="size", description="resources.requests.storage")
    access_modes: list[AccessMode] = Field(
        default_factory=lambda: list[AccessMode](["ReadWriteOnce"]), description="spec.accessModes of the claim"
    )
    volume_mode: Literal["Filesystem", "Block"] = Field(
        default="Filesystem", description="spec.volumeMode of the claim"
    )
    provisioner: str | None = Field(
        default=None,
        description="the provisioner the class must name, e.g. rbd.csi.ceph.com (the doctor checks it); unset: any",
    )


# The behaviour of each backend lives in its module under harness/storage/ (registered by the ``backend`` name).
StorageSpec = LocalStorage | EphemeralStorage | NfsStorage | IscsiStorage | CephFsStorage | RbdStorage | DynamicStorage
Storage = Annotated[StorageSpec, Field(discriminator="backend")]
