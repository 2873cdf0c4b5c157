"""The scenario model: what a scenario file may say, validated once at load time.

Every model forbids unknown keys. Quantities are written with units in the file ("90s", "2Gi") and carry the unit in
the attribute name once parsed (``duration_s``, ``size_bytes``). The runtime (local processes or Kubernetes) is not
part of the scenario: one file runs on both, the runtime is chosen per run.
"""

from __future__ import annotations

import errno
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from harness.scenario.units import Bytes, Seconds
from harness.stages import StageId


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- storage -------------------------------------------------------------------------------------------------

AccessMode = Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]


class VolumeClaim(Strict):
    """The PersistentVolumeClaim Prometheus will use (Kubernetes runtime; the doctor simulates its binding)."""

    storage_class: str | None = Field(
        default=None,
        description='StorageClass name. "" binds only to PVs without a class; unset uses the cluster default.',
    )
    size_bytes: Bytes = Field(default=10 * 1024**3, alias="size", description="resources.requests.storage")
    access_modes: list[AccessMode] = Field(default_factory=lambda: list[AccessMode](["ReadWriteOnce"]))
    volume_mode: Literal["Filesystem", "Block"] = "Filesystem"
    selector: dict[str, str] | None = Field(
        default=None,
        description="selector.matchLabels. Without a class, an NFS/iSCSI PV is only matched through this.",
    )


class PersistentVolume(Strict):
    """The PersistentVolume the harness creates for static backends (local, nfs, iscsi) on Kubernetes."""

    create: bool = Field(default=True, description="false: use a PV that already exists (never deleted by us)")
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    reclaim_policy: Literal["Retain", "Delete", "Recycle"] = "Retain"
    capacity_bytes: Bytes | None = Field(default=None, alias="capacity", description="default: the claim size")


class LoopImage(Strict):
    """A filesystem image the harness creates, loop-mounts and removes (local runtime, needs root)."""

    filesystem: Literal["ext4", "xfs"] = "ext4"
    size_bytes: Bytes = Field(default=2 * 1024**3, alias="size")
    direct_io: bool = Field(
        default=False, description="losetup --direct-io=on: bypass the host page cache under the loop device"
    )


class LocalStorage(Strict):
    backend: Literal["local"]
    path: str | None = Field(
        default=None, description="host directory for the TSDB; default: a fresh directory in the run directory"
    )
    image: LoopImage | None = Field(default=None, description="create and loop-mount a filesystem image there")
    node: str | None = Field(default=None, description="Kubernetes node that holds the disk (PV nodeAffinity)")
    claim: VolumeClaim = Field(default_factory=lambda: VolumeClaim.model_validate({"storage_class": "local-storage"}))
    volume: PersistentVolume = Field(default_factory=PersistentVolume)


class EphemeralStorage(Strict):
    """The chart's default: an emptyDir. Every new pod (reschedule) starts with an empty TSDB."""

    backend: Literal["ephemeral"]
    size_limit_bytes: Bytes | None = Field(default=None, alias="size_limit")


DataPathClient = Literal["auto", "kernel", "user-space"]

# The word that asks for a server the run starts itself on 127.0.0.1 (local runtime) instead of an address.
EMBEDDED = "embedded"


class EmbeddedExport(Strict):
    """The directory an embedded NFS-Ganesha exports: in the run's work area, owned as the scenario says."""

    owner: str = Field(
        default="1000:2000",
        pattern=r"^\d+:\d+$",
        description="uid:gid of the exported directory (the field notes' trap: 1000:1000 vs Prometheus' uid)",
    )
    mode: str = Field(default="0755", pattern=r"^0?[0-7]{3,4}$", description="its permission bits, octal")
    squash: Literal["no_root_squash", "root_squash"] = "no_root_squash"
    grace_s: Seconds = Field(
        default=0.0,
        alias="grace",
        le=180.0,
        description=(
            "the NFSv4 grace period of every (re)start, as a real server has one (Ganesha's default is 90s): new "
            "NFSv4 state (opens, locks) is refused while clients reclaim theirs; 0s: graceless, it serves at once"
        ),
    )

    @property
    def uid_gid(self) -> tuple[int, int]:
        uid, gid = self.owner.split(":")
        return int(uid), int(gid)

    @property
    def mode_bits(self) -> int:
        return int(self.mode, 8)


class NfsStorage(Strict):
    backend: Literal["nfs"]
    server: str = Field(
        description="the NFS server's host, or 'embedded': NFS-Ganesha on 127.0.0.1 started for the run (local runtime)"
    )
    export: str = Field(
        default="",
        validate_default=True,
        description="path on the server, e.g. /vol/k8s-prometheus/prometheus_db (an embedded server makes its own)",
    )
    port: int = Field(default=2049, ge=1, le=65535)
    mount_port: int | None = Field(
        default=None, ge=1, le=65535, description="NFSv3 MOUNT port; default: asked from the server's rpcbind"
    )
    version: Literal["3", "4", "4.1", "4.2"] = "4"
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


class IscsiStorage(Strict):
    backend: Literal["iscsi"]
    target_portal: str = Field(
        description="host:port of the iSCSI target, e.g. 172.17.73.37:3260, or 'embedded': tgt on 127.0.0.1 "
        "started for the run (local runtime)"
    )
    iqn: str
    lun: int = Field(default=0, ge=0)
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


class DynamicStorage(Strict):
    """A StorageClass that already exists in the cluster, whose provisioner makes the PV (Ceph RBD, cloud disks,
    local-path): the run creates only the claim (Kubernetes runtime only)."""

    backend: Literal["dynamic"]
    storage_class: str = Field(
        min_length=1, description="the existing StorageClass to claim from (kubectl get storageclass)"
    )
    size_bytes: Bytes = Field(default=10 * 1024**3, alias="size", description="resources.requests.storage")
    access_modes: list[AccessMode] = Field(default_factory=lambda: list[AccessMode](["ReadWriteOnce"]))
    volume_mode: Literal["Filesystem", "Block"] = "Filesystem"
    provisioner: str | None = Field(
        default=None,
        description="the provisioner the class must name, e.g. rbd.csi.ceph.com (the doctor checks it); unset: any",
    )


# The behaviour of each backend lives in its module under harness/storage/ (registered by the ``backend`` name).
StorageSpec = LocalStorage | EphemeralStorage | NfsStorage | IscsiStorage | DynamicStorage
Storage = Annotated[StorageSpec, Field(discriminator="backend")]


# --- prometheus ----------------------------------------------------------------------------------------------


class SecurityContext(Strict):
    """Defaults are kube-prometheus-stack's: the uid/gid Prometheus writes its TSDB as."""

    run_as_user: int = Field(default=1000, ge=0)
    run_as_group: int = Field(default=2000, ge=0)
    fs_group: int | None = Field(default=2000, ge=0)
    run_as_non_root: bool = True


class Probe(Strict):
    period_s: Seconds = Field(alias="period")
    failure_threshold: int = Field(ge=1)

    @property
    def budget_s(self) -> float:
        return self.period_s * self.failure_threshold


class Probes(Strict):
    """The operator's defaults: startup 60 x 15 s, liveness 6 x 5 s. Restart loops start when replay outlasts them."""

    startup: Probe | None = Field(
        default_factory=lambda: Probe.model_validate({"period": "15s", "failure_threshold": 60})
    )
    liveness: Probe = Field(default_factory=lambda: Probe.model_validate({"period": "5s", "failure_threshold": 6}))


class Resources(Strict):
    memory_bytes: Bytes | None = Field(default=None, alias="memory")
    cpu_millis: int | None = Field(default=None, alias="cpu_millicores", ge=1)


class PrometheusSpec(Strict):
    binary: str = Field(default="prometheus", description="local runtime: program name on PATH or a path")
    image: str = Field(default="localhost/harness/prometheus:latest", description="Kubernetes runtime image")
    deploy: Literal["statefulset", "operator"] = Field(
        default="statefulset",
        description=(
            "Kubernetes runtime: 'statefulset' deploys the harness' own StatefulSet in the operator's shape; "
            "'operator' creates a monitoring.coreos.com/v1 Prometheus resource for a running prometheus-operator"
        ),
    )
    version: str = Field(
        default="v2.42.0",
        pattern=r"^v?[0-9]+\.[0-9]+\.[0-9]+",
        description=(
            "operator mode: the Prometheus version of `image` (the Prometheus resource's spec.version; the operator "
            "picks its flags by it); the default is the default image's"
        ),
    )
    scrape_interval_s: Seconds = Field(default=5.0, alias="scrape_interval")
    retention_s: Seconds = Field(default=86400.0, alias="retention")
    ready_timeout_s: Seconds = Field(
        default=120.0, alias="ready_timeout", description="how long to wait for /-/ready after each (re)start"
    )
    extra_args: list[str] = Field(default_factory=list)
    security_context: SecurityContext = Field(default_factory=SecurityContext)
    resources: Resources = Field(default_factory=Resources)
    probes: Probes = Field(default_factory=Probes)
    privileged_helper: bool = Field(
        default=False,
        description=(
            "Kubernetes runtime: allow a privileged sidecar in Prometheus' pod, the fault layer (FUSE) that "
            "power_loss, io_errors and io_latency need under the volume; without it those faults are refused there"
        ),
    )


# --- loads ---------------------------------------------------------------------------------------------------


class Churn(Strict):
    every_s: Seconds = Field(alias="every")
    fraction: float = Field(gt=0.0, le=1.0, description="share of series replaced by new ones at each churn")


class TsdbLoad(Strict):
    """A synthetic write load whose every acknowledged sample is recorded, so the history check can be exact."""

    mode: Literal["remote_write", "scrape"] = "remote_write"
    series: int = Field(default=1000, ge=1, le=5_000_000)
    interval_s: Seconds = Field(default=1.0, alias="interval", description="time between two samples of a series")
    metrics: int = Field(default=10, ge=1, description="series are spread over this many metric names")
    label_cardinality: int = Field(
        default=100, ge=1, description="distinct values of the 'instance'-like label the series vary over"
    )
    churn: Churn | None = None
    batch_series: int = Field(default=5000, ge=1, description="remote write: series per request")
    shards: int = Field(
        default=1,
        ge=1,
        le=64,
        description="remote write: split the load over this many writers, each sending its share of the batches "
        "(processes on the local runtime, pods of an indexed Job on kubernetes); their acknowledgements are merged "
        "into one ledger. More than 1 where one writer falls behind (the run warns of skipped ticks)",
    )
    latency_s: Seconds | None = Field(
        default=None,
        alias="latency",
        description="remote write, local runtime: every request waits this long on its way to Prometheus, as "
        "across a WAN or a cluster's API server proxy (a hop of the harness' own delays it); one writer then "
        "sends at most one request per latency, which is what shards are for",
    )

    @model_validator(mode="after")
    def _latency(self) -> TsdbLoad:
        if self.latency_s is not None and self.mode != "remote_write":
            raise ValueError("latency: only remote_write requests pass the hop (in scrape mode Prometheus pulls)")
        if self.latency_s is not None and self.latency_s > 10:
            raise ValueError("latency: at most 10s (a writer's request times out before)")
        return self

    @model_validator(mode="after")
    def _interval(self) -> TsdbLoad:
        if self.interval_s < 0.1:
            raise ValueError("interval must be at least 100ms")
        return self

    @model_validator(mode="after")
    def _shards(self) -> TsdbLoad:
        if self.shards > 1 and self.mode != "remote_write":
            raise ValueError("shards: only remote_write is split (in scrape mode Prometheus pulls)")
        batches = -(-self.series // min(self.batch_series, self.series))
        if self.shards > batches:
            raise ValueError(
                f"shards: {self.shards} writers for {batches} batch(es) of {self.batch_series} series: each shard "
                f"needs at least one batch; lower batch_series or shards"
            )
        return self


FioProfileName = Literal["randwrite-4k", "randread-4k", "seqwrite-1m", "wal-append"]


class FioJob(Strict):
    profile: FioProfileName
    name: str | None = Field(default=None, description="default: the profile name")
    runtime_s: Seconds = Field(default=10.0, alias="runtime")
    size_bytes: Bytes | None = Field(
        default=None, alias="size", description="file size; default: sized to the free space, at most 1Gi"
    )
    direct: bool | None = Field(default=None, description="O_DIRECT; default per profile")
    ioengine: str | None = Field(default=None, description="default: libaio where direct, psync otherwise")
    iodepth: int | None = Field(default=None, ge=1)
    numjobs: int = Field(default=1, ge=1, le=64)
    # --- compare: repetitions and throttling (harness/report/compare/) ---
    repeat: int = Field(
        default=1,
        ge=1,
        le=100,
        description="run the job this many times, one after the other: each repetition is one independent value "
        "of its metrics for `harness compare` (5 or more per side let a change be significant)",
    )
    rate_bytes_per_s: Bytes | None = Field(
        default=None,
        alias="rate",
        description="cap the job's bandwidth (fio --rate, bytes/s, e.g. 20Mi): a slow disk on purpose, or a fair "
        "share on a shared volume",
    )
    rate_iops: int | None = Field(default=None, ge=1, description="cap the job's IOPS (fio --rate_iops)")


class Loads(Strict):
    tsdb: TsdbLoad | None = Field(default_factory=TsdbLoad)
    fio: list[FioJob] = Field(default_factory=list)


# --- faults, checks, report ----------------------------------------------------------------------------------


class FaultTiming(Strict):
    """When a fault happens: ``at`` a time after the load starts, or ``every`` interval (``count`` times)."""

    at_s: Seconds | None = Field(default=None, alias="at")
    every_s: Seconds | None = Field(default=None, alias="every")
    count: int | None = Field(default=None, ge=1, description="with every: how many times (default: until the end)")

    @model_validator(mode="after")
    def _when(self) -> FaultTiming:
        if (self.at_s is None) == (self.every_s is None):
            raise ValueError("give exactly one of 'at' (a time) or 'every' (an interval)")
        if self.count is not None and self.every_s is None:
            raise ValueError("'count' only goes with 'every'")
        if self.every_s is not None and self.every_s <= 0:
            raise ValueError("'every' must be a positive duration")
        return self


class FaultWindow(FaultTiming):
    """A fault that lasts: its condition (a full disk, failing I/O, a stopped storage server) holds ``for`` a time
    and is then lifted; Prometheus keeps running through it, and the load keeps writing and records what failed."""

    for_s: Seconds = Field(default=10.0, alias="for", description="how long the condition holds")

    @model_validator(mode="after")
    def _positive_window(self) -> FaultWindow:
        if self.for_s <= 0:
            raise ValueError("'for' must be a positive duration")
        return self


# One model per fault, told apart by ``action``; the behaviour of each lives in its module under harness/faults/.
# A fault's own parameters (a duration for faults that last, a node for node faults) go on its model.


class SigkillFault(FaultTiming):
    """The container is killed (SIGKILL); the kubelet restarts it in the same pod: volumes, even an emptyDir, stay."""

    action: Literal["sigkill"]


class SigtermFault(FaultTiming):
    """Prometheus is asked to stop (SIGTERM), shuts down cleanly, and the kubelet restarts it in the same pod."""

    action: Literal["sigterm"]


class RestartFault(FaultTiming):
    """The pod is deleted and recreated on the same node: an emptyDir is new and empty."""

    action: Literal["restart"]


class RescheduleFault(FaultTiming):
    """The pod is recreated on another node (its node is cordoned until the new pod runs elsewhere)."""

    action: Literal["reschedule"]


class RedeployFault(FaultTiming):
    """The release is uninstalled and installed again: a new pod and, on Kubernetes, a new claim."""

    action: Literal["redeploy"]


class ScaleZeroFault(FaultTiming):
    """The StatefulSet is scaled to 0 (Prometheus stops cleanly, its pod is deleted) and back to 1 after ``down``:
    the new pod gets the same claim (an emptyDir baseline gets a new, empty one)."""

    action: Literal["scale_zero"]
    down_s: Seconds = Field(default=10.0, alias="down", description="how long no Prometheus runs")


class NodeControl(Strict):
    """How to make a node die and come back, as commands (argv lists; ``{node}`` is replaced by the node's name),
    e.g. a cloud CLI that stops and starts the instance, or ``ssh NODE systemctl stop kubelet containerd``."""

    stop: list[str] = Field(min_length=1, description="the node dies (all its processes, like a power cut)")
    start: list[str] = Field(min_length=1, description="the node comes back")


class NodeLossFault(FaultTiming):
    """The node running Prometheus dies. Kubernetes does not replace a StatefulSet pod on a lost node (at most one
    pod per identity) until the pod is force-deleted or the node is back; ``then`` says what happens after ``wait``:
    ``restore`` (the node comes back), ``force_delete`` (once Kubernetes has marked the node NotReady, the pod is
    force-deleted, as an operator would: a local PV then cannot follow it) or ``nothing`` (Prometheus stays gone
    until the run's ready timeout). The node always comes back at the end of the fault, also on Ctrl-C."""

    action: Literal["node_loss"]
    then: Literal["restore", "force_delete", "nothing"] = "restore"
    wait_s: Seconds = Field(default=30.0, alias="wait", description="how long after the loss the harness acts")
    node_control: NodeControl | None = Field(
        default=None, description="default: the commands in $HARNESS_NODE_STOP and $HARNESS_NODE_START (shell words)"
    )


class KubeletCommands(Strict):
    """How to stop and start the kubelet of a node, as commands (argv lists; ``{node}`` is replaced by the node's
    name), e.g. ``ssh {node} systemctl stop kubelet``; the local test cluster's are ``python -m testbed node
    kubelet-stop {node}`` and ``kubelet-start {node}``. The node's container runtime must keep running."""

    stop: list[str] = Field(min_length=1, description="the kubelet stops (the node's containers keep running)")
    start: list[str] = Field(min_length=1, description="the kubelet starts again")


class KubeletRestartFault(FaultWindow):
    """The kubelet of Prometheus' node stops for ``for`` and starts again, while the node's container runtime keeps
    Prometheus' container running: an upgrade or a crash of the kubelet. Prometheus keeps serving and the load keeps
    writing; past the node monitor's grace period the node is NotReady meanwhile, and Kubernetes must not replace
    the pod (it waits far longer before evicting it). Expect the same container afterwards and every acknowledged
    sample kept. On a cluster only: the local runtime has no kubelet."""

    action: Literal["kubelet_restart"]
    kubelet_control: KubeletCommands = Field(description="the commands that stop and start a node's kubelet")


class PowerLossFault(FaultTiming):
    """The power fails under Prometheus' data directory: everything written there but not yet fsynced (or
    fdatasynced) is lost, files created and never made durable disappear, and Prometheus dies at the same instant
    (SIGKILL); it restarts on what was durable. Prometheus' WAL fsyncs only when a segment is completed or closed,
    so acknowledged samples may go: set ``checks.history_survival.max_samples_lost`` to what you accept. A FUSE layer
    over the data directory, mounted when a scenario has this fault (on a cluster in a privileged sidecar of
    Prometheus' pod, where ``prometheus.privileged_helper`` allows it)."""

    action: Literal["power_loss"]


# The operations an I/O fault can hit (Chaos Mesh IOChaos' names where they overlap; harness.fault_protocol.IO_METHODS):
# fsync is fsync(2) and fdatasync(2), fsyncdir an fsync of a directory, flush close(2), setattr chmod/chown/utimens.
IoMethod = Literal[
    "open", "create", "read", "write", "truncate", "fsync", "fsyncdir", "flush", "getattr", "setattr", "readdir",
    "mkdir", "rmdir", "unlink", "rename", "statfs",
]  # fmt: skip


class IoFaultWindow(FaultWindow):
    """What an I/O fault hits (Chaos Mesh IOChaos' model), for ``for``: the ``methods`` (default: every operation),
    ``percent`` of them, on ``path`` under the data directory (default: anywhere in it). On the fault layer over the
    data directory, mounted when a scenario has such a fault (on a cluster in a privileged sidecar of Prometheus'
    pod, where ``prometheus.privileged_helper`` allows it); it serves one operation at a time, so Prometheus is
    slower on it than on the disk underneath."""

    methods: list[IoMethod] = Field(default_factory=list, description="the operations hit; empty: all of them")
    percent: float = Field(default=100, ge=0, le=100, description="the share of those hit, drawn per operation")
    path: str | None = Field(
        default=None,
        description="only operations on this path under the data directory or beneath it (e.g. wal); default: all",
    )

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("/") or ".." in value.split("/") or not value.strip("/.")):
            raise ValueError("a path under the data directory, relative to it (e.g. wal or chunks_head)")
        return None if value is None else value.rstrip("/")


class IoErrorsFault(IoFaultWindow):
    """For ``for``, the chosen operations under Prometheus' data directory fail with ``errno`` (default EIO, what a
    failing disk returns) and do nothing; Prometheus keeps running, the load records what it rejected, and the
    record quotes what Prometheus logged. Then they work again: Prometheus must take writes, and every sample it
    acknowledged must still be there."""

    action: Literal["io_errors"]
    errno: str = Field(default="EIO", description="the error they fail with, by name: EIO, ENOSPC, EROFS, ...")

    @field_validator("errno")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in errno.errorcode.values():
            raise ValueError(f"{value!r} is not an errno name this system knows (EIO, ENOSPC, EROFS, EDQUOT, ...)")
        return value


class IoLatencyFault(IoFaultWindow):
    """For ``for``, the chosen operations under Prometheus' data directory each take ``delay`` longer (a slow or
    overloaded disk); they still succeed. The record says how many were delayed and what Prometheus and the load
    saw; every acknowledged sample must survive."""

    action: Literal["io_latency"]
    delay_s: Seconds = Field(alias="delay", description="added to each operation hit, e.g. 100ms")

    @field_validator("delay_s")
    @classmethod
    def _positive_delay(cls, value: float) -> float:
        if not 0 < value <= 10:
            raise ValueError("a delay above 0 and at most 10s (one operation at a time: more stalls everything)")
        return value


class DiskFullFault(FaultWindow):
    """The filesystem under Prometheus' data directory is filled to ENOSPC for ``for``, then freed: one file of the
    harness's (``.harness-fill-<run>``) beside the TSDB directory, allocated as root, so not one block is left to
    Prometheus, whatever its uid. Prometheus keeps running: the load keeps writing, and writes it cannot put in its
    WAL must be rejected (HTTP 5xx, recorded with their error, e.g. "no space left on device"), never acknowledged.
    Expect Prometheus to take writes again once the space is back, and every acknowledged sample to survive
    (``max_samples_lost: 0``). Only a filesystem of the volume's own is filled (locally a loop-mounted ``image:`` or
    a disk at ``storage.path``; on a cluster a PV that is a whole filesystem on a block device, filled from a pod of
    the run's on Prometheus' node): the harness never fills a host's or a node's filesystem."""

    action: Literal["disk_full"]


class ServerRestartFault(FaultWindow):
    """The storage server stops for ``for`` and comes back as it was: the embedded NFS-Ganesha (same ports and
    export and grace period, ``embedded.grace``) or tgt (same portal, IQN and LUNs on the same files). Prometheus keeps
    running on the storage while its client finds the server gone; the fault says what the client logged and when a
    write through the data path got through again. Only a server this run started (``server: embedded``,
    ``target_portal: embedded``): the harness never stops a server it did not start."""

    action: Literal["server_restart"]


class SecondWriterFault(FaultWindow):
    """Another application writes into the NFS export that holds Prometheus' data, for ``for``: the field notes'
    Grafana (uid 472), whose PV named the same server path as Prometheus'. A process of its own, running as
    ``uid``/``gid`` with an NFS client of its own (as Grafana's pod on another node would), creates ``creates`` in
    Prometheus' data directory and keeps writing its files; with ``chown_data`` it first does what Grafana's chart
    does at every start (init-chown-data: ``chown -R uid:gid`` of its volume, as root, which needs no_root_squash).
    Afterwards what it created is removed and the owners it changed are put back; nothing else is touched. Needs NFS
    storage: one the run mounts itself (local runtime) or the NFS PV the run creates (kubernetes runtime; the harness
    host must reach the NFS server)."""

    action: Literal["second_writer"]
    uid: int = Field(default=472, ge=0, description="the other application's uid (Grafana's: 472)")
    gid: int = Field(default=472, ge=0)
    creates: list[str] = Field(
        default_factory=lambda: ["grafana.db", "plugins/", "png/"],
        min_length=1,
        description="names it creates in Prometheus' data directory (a trailing / makes a directory); its files "
        "are written to through the window",
    )
    mode: str | None = Field(
        default=None, pattern=r"^0?[0-7]{3,4}$", description="chmod what it creates to this (octal), e.g. 0777"
    )
    chown_data: bool = Field(
        default=False,
        description="first chown -R uid:gid Prometheus' data directory as root, like Grafana's init-chown-data",
    )
    interval_s: Seconds = Field(default=1.0, alias="interval", gt=0, description="how often it writes its files")

    @field_validator("creates")
    @classmethod
    def _relative_names(cls, v: list[str]) -> list[str]:
        for name in v:
            # One name each, in the data directory itself: what it created is then exactly what is removed.
            if name.rstrip("/") in ("", ".", "..") or "/" in name.rstrip("/"):
                raise ValueError(f"{name!r}: give one name in Prometheus' data directory (dir/ for a directory)")
        if len({n.rstrip("/") for n in v}) != len(v):
            raise ValueError("each entry once")
        return v

    @property
    def mode_bits(self) -> int | None:
        return None if self.mode is None else int(self.mode, 8)


FaultSpec = (
    SigkillFault
    | SigtermFault
    | RestartFault
    | RescheduleFault
    | RedeployFault
    | ScaleZeroFault
    | NodeLossFault
    | KubeletRestartFault
    | PowerLossFault
    | IoErrorsFault
    | IoLatencyFault
    | DiskFullFault
    | ServerRestartFault
    | SecondWriterFault
)
Fault = Annotated[FaultSpec, Field(discriminator="action")]


class HistorySurvival(Strict):
    enabled: bool = True
    max_samples_lost: int = Field(default=0, ge=0, description="acknowledged samples that may be missing")
    after_each_fault: bool = Field(default=True, description="also check right after each recovery")


def _total_bounds_the_first_sample(value: object) -> object:
    """``max_recovery: 30s`` is the limit of the whole recovery: injection to the first new sample stored."""
    return value if isinstance(value, dict) or value is None else {"first_sample": value}


_DURATION_SCHEMA: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "number"}]}
# Stage -> the most seconds it may take after the injection; a plain duration bounds first_sample.
RecoveryLimits = Annotated[
    dict[StageId, Seconds],
    BeforeValidator(_total_bounds_the_first_sample),
    WithJsonSchema(
        {
            "anyOf": [
                *_DURATION_SCHEMA["anyOf"],
                {
                    "type": "object",
                    "propertyNames": {"enum": list(get_args(StageId))},
                    "additionalProperties": _DURATION_SCHEMA,
                },
            ]
        }
    ),
]


class Checks(Strict):
    history_survival: HistorySurvival = Field(default_factory=HistorySurvival)
    recovery_limits_s: RecoveryLimits = Field(
        default_factory=dict,
        alias="max_recovery",
        description=(
            "fault injected -> first new sample stored; or a mapping from recovery stages to their limits, each "
            "counted from the injection, e.g. {scheduled: 5s, ready: 30s, first_sample: 40s}"
        ),
    )
    min_fio_write_iops: float | None = Field(default=None, ge=0)


class Scenario(Strict):
    version: Literal[1] = 1
    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    description: str = ""
    duration_s: Seconds = Field(
        alias="duration",
        description="length of the load and fault phase (a fio-only scenario, no TSDB load and no fault, has none)",
    )
    storage: Storage
    prometheus: PrometheusSpec = Field(default_factory=PrometheusSpec)
    loads: Loads = Field(default_factory=Loads)
    faults: list[Fault] = Field(default_factory=list)
    checks: Checks = Field(default_factory=Checks)

    @model_validator(mode="after")
    def _timeline(self) -> Scenario:
        if self.duration_s <= 0:
            raise ValueError("duration must be positive")
        for i, fault in enumerate(self.faults):
            if fault.at_s is not None and fault.at_s >= self.duration_s:
                raise ValueError(
                    f"faults[{i}] at {fault.at_s:g}s is not before the end of the run (duration {self.duration_s:g}s)"
                )
        return self

    @property
    def runs_prometheus(self) -> bool:
        """False for a fio-only scenario (``loads.tsdb: null`` and no fault): fio measures the storage and the run
        ends there, with no Prometheus started and no idle wait for ``duration``."""
        return self.loads.tsdb is not None or bool(self.faults)


def json_schema() -> dict[str, object]:
    """JSON Schema of a scenario file (by alias: the keys people write), for editor completion."""
    schema = Scenario.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Prometheus storage harness scenario"
    return schema
