"""The scenario's ``faults``: when a fault happens (``FaultTiming``), how long a lasting one holds
(``FaultWindow``), and one model per fault action with its own parameters, told apart by ``action``.

The behaviour of each fault lives in its module under ``harness/faults/``; this is only what a file may say.
"""

from __future__ import annotations

import errno
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from harness.scenario.strict import Strict
from harness.scenario.units import Seconds


class FaultTiming(Strict):
    """When a fault happens: ``at`` a time after the load starts, or ``every`` interval (``count`` times)."""

    at_s: Seconds | None = Field(
        default=None, alias="at", description="when, counted from the start of the load; before `duration`"
    )
    every_s: Seconds | None = Field(
        default=None,
        alias="every",
        description="instead of at: at every, twice every, ... up to 1 s before the end (or `count` times)",
    )
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

    action: Literal["sigkill"] = Field(description="the container is killed (SIGKILL) and restarted in the same pod")


class SigtermFault(FaultTiming):
    """Prometheus is asked to stop (SIGTERM), shuts down cleanly, and the kubelet restarts it in the same pod."""

    action: Literal["sigterm"] = Field(
        description="Prometheus stops cleanly (SIGTERM) and is restarted in the same pod"
    )


class RestartFault(FaultTiming):
    """The pod is deleted and recreated on the same node: an emptyDir is new and empty."""

    action: Literal["restart"] = Field(description="the pod is deleted and recreated on the same node")


class RescheduleFault(FaultTiming):
    """The pod is recreated on another node (its node is cordoned until the new pod runs elsewhere)."""

    action: Literal["reschedule"] = Field(description="the pod is recreated on another node")


class RedeployFault(FaultTiming):
    """The release is uninstalled and installed again: a new pod and, on Kubernetes, a new claim."""

    action: Literal["redeploy"] = Field(description="the release is uninstalled and installed again")


class ScaleZeroFault(FaultTiming):
    """The StatefulSet is scaled to 0 (Prometheus stops cleanly, its pod is deleted) and back to 1 after ``down``:
    the new pod gets the same claim (an emptyDir baseline gets a new, empty one)."""

    action: Literal["scale_zero"] = Field(description="the StatefulSet goes to 0 replicas, and back to 1 after `down`")
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

    action: Literal["node_loss"] = Field(description="Prometheus' node dies (Kubernetes runtime)")
    then: Literal["restore", "force_delete", "nothing"] = Field(
        default="restore",
        description="after `wait`: the node comes back, the pod is force-deleted once the node is NotReady, or "
        "nothing (Prometheus stays gone until the ready timeout)",
    )
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

    action: Literal["kubelet_restart"] = Field(
        description="the kubelet of Prometheus' node stops for `for` (Kubernetes runtime)"
    )
    kubelet_control: KubeletCommands = Field(description="the commands that stop and start a node's kubelet")


class PowerLossFault(FaultTiming):
    """The power fails under Prometheus' data directory: everything written there but not yet fsynced (or
    fdatasynced) is lost, files created and never made durable disappear, and Prometheus dies at the same instant
    (SIGKILL); it restarts on what was durable. Prometheus' WAL fsyncs only when a segment is completed or closed,
    so acknowledged samples may go: set ``checks.history_survival.max_samples_lost`` to what you accept. A FUSE layer
    over the data directory, mounted when a scenario has this fault (on a cluster in a privileged sidecar of
    Prometheus' pod, where ``prometheus.privileged_helper`` allows it). What the storage holds volatile below the
    filesystem goes too: with ``backend: rbd`` and ``cache: writeback``, librbd's cache (qemu-storage-daemon is
    killed, the image attached again and the filesystem mounted again, replaying its journal)."""

    action: Literal["power_loss"] = Field(
        description="what was not fsynced under the data directory is lost, and Prometheus dies"
    )


# The operations an I/O fault can hit (Chaos Mesh IOChaos' names where they overlap;
# harness.datapath.fault_protocol.IO_METHODS):
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

    action: Literal["io_errors"] = Field(description="the chosen operations under the data directory fail for `for`")
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

    action: Literal["io_latency"] = Field(
        description="the chosen operations under the data directory are slower for `for`"
    )
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

    action: Literal["disk_full"] = Field(description="the volume's filesystem is full for `for`")


class ServerRestartFault(FaultWindow):
    """The storage server stops for ``for`` and comes back as it was: the embedded NFS-Ganesha (same ports and
    export and grace period, ``embedded.grace``) or tgt (same portal, IQN and LUNs on the same files). Prometheus keeps
    running on the storage while its client finds the server gone; the fault says what the client logged and when a
    write through the data path got through again. Only a server this run started (``server: embedded``,
    ``target_portal: embedded``): the harness never stops a server it did not start."""

    action: Literal["server_restart"] = Field(description="the storage server the run started stops for `for`")


class CephClientCrashFault(FaultTiming):
    """The Ceph client under Prometheus dies (SIGKILL): ``ceph-fuse`` for CephFS, whose mount then answers every
    call with "Transport endpoint is not connected" (what ceph-csi users meet when its node plugin restarts with
    ``mounter: fuse``), or ``qemu-storage-daemon`` for RBD (librbd; the loop device under the filesystem then fails
    every I/O). Prometheus keeps running on the dead volume and nothing mounts it again (on a cluster only a new pod
    would), so the run is expected to end FAILED: see docs/faults/ceph.md. Local runtime: backend cephfs or rbd, the
    harness kills its own client. Kubernetes runtime: backend dynamic on a ceph-csi CephFS class (``provisioner``
    ``cephfs.csi.ceph.com`` or Rook's ``<namespace>.cephfs.csi.ceph.com``), and ``node_plugin_restart`` restarts the
    driver's node plugin on Prometheus' node, which takes its ceph-fuse mounts with it when the class says
    ``mounter: fuse``."""

    action: Literal["ceph_client_crash"] = Field(
        description="the Ceph client process under Prometheus (ceph-fuse, qemu-storage-daemon) is killed"
    )
    node_plugin_restart: list[str] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Kubernetes runtime only (and required there): the command that restarts ceph-csi's CephFS node plugin"
            " on a node, {node} replaced by Prometheus' node, e.g. [kubectl, -n, ceph-csi, delete, pod, -l,"
            " app=csi-cephfsplugin, --field-selector, 'spec.nodeName={node}']; the local test cluster's:"
            " [python, -m, testbed, ceph-csi, restart-node-plugin, '{node}']"
        ),
    )


class CephOsdDownFault(FaultWindow):
    """The cluster's OSD stops for ``for`` (SIGTERM) and starts again on the same data. With pool size 1 (the
    embedded cluster) no other copy exists: I/O to the placement groups it holds blocks until it is back, and
    Prometheus' writes wait with it. Only an OSD of a cluster the run started (``monitors: embedded``)."""

    action: Literal["ceph_osd_down"] = Field(description="the Ceph cluster's OSD stops for `for` (embedded cluster)")


class CephMdsRestartFault(FaultWindow):
    """The CephFS metadata server stops for ``for`` (SIGTERM) and starts again on its journal. With one MDS (the
    embedded cluster's) no standby takes over: the client's metadata operations (open, create, rename, the
    metadata an fsync flushes) wait until the MDS has replayed its journal, the client has reconnected and it is
    active again, while I/O to files the client already holds caps on may go on. Only the MDS of a cluster the run
    started (``monitors: embedded``), backend cephfs."""

    action: Literal["ceph_mds_restart"] = Field(
        description="the CephFS metadata server stops for `for` and starts again (embedded cluster, backend cephfs)"
    )


class SecondWriterFault(FaultWindow):
    """Another application writes into the NFS export that holds Prometheus' data, for ``for``: the field notes'
    Grafana (uid 472), whose PV named the same server path as Prometheus'. A process of its own, running as
    ``uid``/``gid`` with an NFS client of its own (as Grafana's pod on another node would), creates ``creates`` in
    Prometheus' data directory and keeps writing its files; with ``chown_data`` it first does what Grafana's chart
    does at every start (init-chown-data: ``chown -R uid:gid`` of its volume, as root, which needs no_root_squash).
    Afterwards what it created is removed and the owners it changed are put back; nothing else is touched. Needs NFS
    storage: one the run mounts itself (local runtime) or the NFS PV the run creates (kubernetes runtime; the harness
    host must reach the NFS server)."""

    action: Literal["second_writer"] = Field(description="another uid writes into Prometheus' NFS export for `for`")
    uid: int = Field(default=472, ge=0, description="the other application's uid (Grafana's: 472)")
    gid: int = Field(default=472, ge=0, description="its gid (Grafana's: 472)")
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
    | CephClientCrashFault
    | CephOsdDownFault
    | CephMdsRestartFault
)
Fault = Annotated[FaultSpec, Field(discriminator="action")]
