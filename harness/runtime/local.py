"""The local runtime: Prometheus as managed processes on this host, imitating a StatefulSet pod's life.

Each "container" is one ``prometheus`` process with a generated config on a free 127.0.0.1 port. A container restart
keeps the pod's volume; a new pod (``delete_pod``, ``reinstall``) asks the storage for the volume of a new
generation, which for an emptyDir is a fresh directory, and goes to the first node that is not cordoned (its own
when it may). As root, Prometheus runs as the scenario's security context (uid/gid and the fsGroup applied to the
volume the way the kubelet does, where the backend says the kubelet does), so permission traps show up here as they
would in the cluster.

When a scenario has a fault that needs it (``fault_layer=True``: ``power_loss``, ``io_errors``, ``io_latency``),
every data directory runs under the fault layer (``harness.runtime.fault_layer``), mounted over it while a pod uses
it: ``power_cut`` kills Prometheus, drops what it wrote but did not fsync, and restarts the container in the same
pod, as a node does after a power failure; ``io_fault`` makes chosen operations there fail or slow down until
``io_heal``, while Prometheus keeps running.

``fill_data_volume`` (the ``disk_full`` fault) fills the filesystem under the data directory with
``.harness-fill-<run_id>`` in the volume's root, beside ``prometheus-db/`` (so Prometheus never takes it for a block),
as root so the root reserve goes too (``harness.fill``). Only a filesystem of the volume's own is filled: one on a
block device that holds neither / nor the run's work area (a loop-mounted ``image:``, a disk mounted at
``storage.path``, an iSCSI LUN), checked when the storage is provisioned.

A storage server the run started (``storage_server``, from the pipeline) can be stopped and started again
(``server_restart``): Prometheus keeps running on the storage while its client finds the server gone, and
``await_data_path`` says when a write through the data path got through again and what the client logged meanwhile.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import fill, fmt, proc
from harness.errors import InfraError, NotRecovered, StorageUnavailable, WaitTimeout
from harness.loads import fio
from harness.mounts import filesystem_of, first_untraversable
from harness.prom import PromClient
from harness.prom_process import PrometheusCommand
from harness.promlog import storage_errors, wal_replay_durations_s
from harness.results.model import FioJobResult
from harness.runtime.base import (
    IoFault,
    PowerCut,
    Recovery,
    Runtime,
    StageMark,
    StorageDescription,
    VolumeFill,
    not_ready,
    not_recovered_on_timeout,
)
from harness.runtime.fault_layer import WAL_DIR, FaultLayer, cut_detail, io_summary, utc_time
from harness.scenario.model import FioJob, PrometheusSpec, StorageSpec
from harness.storage import backend_for
from harness.storage.base import EmbeddedServer, ExportAccess, ProvisionedStorage
from harness.wait import wait_for

log = logging.getLogger(__name__)

NODES = ("node-a", "node-b")
HTTP_TIMEOUT_S = 2.0
STOP_TIMEOUT_S = 60.0


@dataclass
class Container:
    generation: int  # pod generation (a new pod = a new generation)
    restarts: int  # container restarts inside this pod
    node: str
    port: int
    data_dir: Path
    daemon: proc.Daemon
    started_unix_s: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return f"pod #{self.generation} on {self.node}, container restart {self.restarts}, port {self.port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LocalRuntime(Runtime):
    name = "local"
    # power-loss, io-faults: its data directories can run under the fault layer (when a scenario needs it).
    # fill-volume: it can fill the data directory's filesystem (a filesystem of the volume's own, checked).
    # export-access: it mounts network storage itself, so it knows where Prometheus' data is in the export.
    capabilities = frozenset({"signal", "power-loss", "io-faults", "fill-volume", "export-access"})

    def __init__(
        self,
        spec: PrometheusSpec,
        storage: StorageSpec,
        *,
        run_id: str,
        workdir: Path,
        logs_dir: Path,
        as_security_context: bool | None = None,
        fault_layer: bool = False,
        fill_volume: bool = False,
        storage_server: EmbeddedServer[Any] | None = None,
    ) -> None:
        self.spec = spec
        self.storage_spec = storage
        self.backend = backend_for(storage)
        self.run_id = run_id
        self.workdir = workdir
        self.logs_dir = logs_dir
        self.extra_scrape_configs: list[dict[str, Any]] = []
        # Only root can switch uid; elsewhere Prometheus runs as whoever runs the harness (recorded in the result).
        self.as_security_context = os.geteuid() == 0 if as_security_context is None else as_security_context
        self.binary = proc.which(spec.binary)
        self.storage: ProvisionedStorage | None = None
        self.container: Container | None = None
        self.pending = ""  # why the current pod cannot be scheduled (the scheduler's words), when it cannot
        self.cordoned: set[str] = set()
        # A local PV with a node is pinned to it (its nodeAffinity), as the scheduler would keep it there.
        self.pinned = self.backend.pinned_node(storage)
        self.nodes = NODES if self.pinned is None or self.pinned in NODES else (self.pinned, NODES[1])
        self._generation = 0
        self._scaled_down_on: str | None = None  # the node of the pod a scale to 0 removed, until scaled back
        self._version: str | None = None
        self.fault_layer = fault_layer
        self.layers: dict[Path, FaultLayer] = {}  # by data directory, while a pod uses it
        self.fill_volume = fill_volume
        self._fill: Path | None = None  # the fill file, from just before it is created until it is deleted
        self.storage_server = storage_server
        # Around a server restart: where the client's log stood when the server stopped, and its return (when, what).
        self._client_log_at_stop = 0
        self._server_back: tuple[float, str] | None = None
        # True from the moment the server is asked to stop until it serves again: ``stop`` then starts it again
        # first, wherever Ctrl-C cut the restart short, since Prometheus' and the client's shutdown and the unmount
        # all wait on the server (a hung NFS client blocks every call through its mount).
        self._server_halted = False

    # --- storage -----------------------------------------------------------------------------------------------

    def provision_storage(self) -> StorageDescription:
        self.storage = self.backend.provision(self.storage_spec, self.workdir, self.run_id)
        if self.fill_volume:
            self._check_fillable(self.storage.root)
        described = self.storage.describe()
        access = described.get("access")
        if self.fault_layer:
            layer = "Prometheus' data directory under the fault layer (harness.fault_fuse, FUSE); fio not"
            access = f"{access}; {layer}" if access else layer
        return StorageDescription(described["path"], described["filesystem"], described["device"], access)

    def teardown_storage(self) -> None:
        self.free_data_volume()
        if self.storage is not None:
            self.storage.teardown()

    def fio_target(self) -> str:
        return str(self._require_storage().fio_dir())

    def run_fio(self, job: FioJob, out_dir: Path) -> FioJobResult:
        return fio.run_fio_job(job, self._require_storage().fio_dir(), out_dir)

    def fio_version(self) -> str | None:
        return fio.fio_version()

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self, extra_scrape_configs: list[dict[str, Any]]) -> None:
        self.extra_scrape_configs = list(extra_scrape_configs)
        self._new_pod(self.pinned or self.nodes[0])
        self.wait_recovered(self.spec.ready_timeout_s)

    def stop(self) -> None:
        problems = []
        if self._server_halted:
            try:
                self.start_storage_server()
            except InfraError as e:
                problems.append(f"could not start the storage server again before stopping: {e}")
        if self.container is not None:
            self.container.daemon.stop(STOP_TIMEOUT_S)
        try:
            self.free_data_volume()  # also with --keep-data: the data stays, our fill does not
        except (InfraError, OSError) as e:
            problems.append(f"could not delete the fill file {self._fill}: {e}")
        for data_dir in list(self.layers):
            try:
                self._unmount_layer(data_dir)
            except InfraError as e:
                problems.append(str(e))
        if problems:
            raise InfraError("; ".join(problems))

    def base_url(self) -> str | None:
        return self.container.base_url if self.container is not None else None

    def instance(self) -> str:
        if self.container is None:
            return f"pod Pending ({self.pending})" if self.pending else "(none)"
        return self.container.name

    def version(self) -> str:
        if self._version is None:
            out = proc.run([self.binary, "--version"], timeout_s=30).stdout
            # "prometheus, version 2.42.0+ds (branch: ...)"; a plain `go install` build prints an empty version.
            m = re.search(r"version (\S+)", out.splitlines()[0] if out else "")
            self._version = m.group(1) if m and not m.group(1).startswith("(") else "unknown (no version stamp)"
        return self._version

    def log_text(self) -> str:
        return "" if self.container is None else self.container.daemon.log_text()

    # --- primitives for faults -----------------------------------------------------------------------------------

    def signal_prometheus(self, sig: signal.Signals) -> tuple[float, str]:
        current = self._require()
        injected = time.time()
        current.daemon.signal(sig)
        current.daemon.wait(STOP_TIMEOUT_S)
        self.container = self._start_container(
            current.generation, current.restarts + 1, current.node, current.port, current.data_dir
        )
        return (
            injected,
            f"{sig.name} to pid {current.daemon.pid}; the container restarted in the same pod (same volume)",
        )

    def power_cut(self) -> PowerCut:
        current = self._require()
        layer = self._layer(current)
        injected = time.time()
        # Prometheus first, so that nothing writes after the cut: the two are one instant as far as the disk knows.
        current.daemon.signal(signal.SIGKILL)
        current.daemon.wait(STOP_TIMEOUT_S)
        cut = layer.cut()
        self.container = self._start_container(
            current.generation, current.restarts + 1, current.node, current.port, current.data_dir
        )
        detail = cut_detail(
            cut,
            where=str(current.data_dir),
            killed=f"SIGKILL to pid {current.daemon.pid}",
            injected=injected,
            layer_since=f"the layer was mounted at {utc_time(layer.mounted_at_unix_s)}",
            after="the container restarted in the same pod on what was durable",
        )
        log.info("%s (reverted %s, removed %s)", detail, cut.reverted, cut.removed)
        return PowerCut(injected, detail, cut.last_fsync_under(WAL_DIR))

    def io_fault(self, fault: IoFault) -> tuple[float, str]:
        current = self._require()
        started = self._layer(current).io_set(fault)
        return started, f"{fault.describe()} in {current.data_dir}, while Prometheus ({current.name}) runs"

    def io_heal(self) -> str:
        said = []
        for layer in self.layers.values():
            fault = layer.io_fault
            if fault is not None:
                said.append(io_summary(layer.io_clear(), failing=fault.errno_name is not None))
        return "; ".join(said) or "no I/O fault was set"

    def fill_data_volume(self) -> VolumeFill:
        current = self._require()
        root = self._require_storage().root
        if self._fill is not None:
            raise InfraError(f"the volume is already filled ({self._fill}): one disk_full at a time")
        # Known before it exists, so free_data_volume (the undo, recorded first) removes even a half-made fill.
        self._fill = root / fill.fill_name(self.run_id)
        filled = fill.fill(self._fill)
        at = time.time()
        fs = filesystem_of(root)
        # As root the fill takes the root reserve too; otherwise Prometheus runs as this same user (only root can
        # switch uid), for whom the reserve was never there.
        who = "even as root" if os.geteuid() == 0 else f"as uid {os.geteuid()}, whom Prometheus runs as"
        detail = fill.describe(
            allocated=filled.allocated_bytes,
            where=f"{fs.mount_point} ({fs.fstype} on {fs.source})",
            name=f"{self._fill.name} beside {current.data_dir.name}/",
            took_s=filled.took_s,
            method=filled.method,
            before=filled.before,
            after=filled.after,
            who=who,
        )
        log.info("%s", detail)
        return VolumeFill(at, detail)

    def free_data_volume(self) -> None:
        if self._fill is None:
            return
        path = self._fill
        fill.free(path)
        self._fill = None
        log.info("deleted the fill file %s: %s free for root", path, fmt.iec_bytes(fill.Space.of(path.parent).for_root))

    def stop_storage_server(self) -> tuple[float, str]:
        server = self._require_server()
        self._client_log_at_stop = len(self._require_storage().client_log())
        self._server_back = None
        # From the moment it is asked to stop the server is going away (connections closed, requests refused).
        stopped = time.time()
        self._server_halted = True
        return stopped, server.halt()

    def start_storage_server(self) -> tuple[float, str]:
        server = self._require_server()
        asked = time.time()
        what = server.resume()
        self._server_halted = False
        back = time.time()
        self._server_back = (back, f"{what} ({back - asked:.1f} s to start)")
        return self._server_back

    def await_data_path(self, timeout_s: float) -> str:
        """After a server restart: wait (bounded) until a small write and fsync through the storage's data path
        complete, and say when that was and what the storage's client logged since the server stopped."""
        storage = self._require_storage()
        if self._server_back is None:
            raise InfraError("the storage server was not started again")
        back, what = self._server_back
        # The write may hang as long as the client does: it runs on a thread of its own, which is left behind (a
        # daemon thread, blocked in the kernel) if the wait gives up; the teardown's unmount ends it.
        outcome: list[str] = []
        probe = threading.Thread(target=_write_and_fsync, args=(storage, outcome), daemon=True, name="data-path")
        probe.start()
        try:
            wait_for(
                lambda: bool(outcome) or None,
                what="a write and fsync through the data path after the storage server came back",
                timeout_s=timeout_s,
                interval_s=0.05,
            )
            served = (
                f"a write and fsync through the data path {outcome[0]} {time.time() - back:.1f} s after it was back"
            )
        except WaitTimeout:
            served = f"a write and fsync through the data path had not returned {timeout_s:g} s after it was back"
        logged = [line.strip() for line in storage.client_log()[self._client_log_at_stop :].splitlines()]
        said = _quote_lines([line for line in logged if line])
        client = f"the storage client logged {said}" if said else "the storage client logged nothing meanwhile"
        return f"{what}; {served}; {client}"

    def data_export(self) -> ExportAccess:
        current = self._require()
        access = self.backend.export_access(self.storage_spec, self._require_storage(), current.data_dir)
        if access is None:
            raise InfraError(
                f"{current.data_dir} is not in an export this run mounted itself ({self.storage_spec.backend} storage)"
            )
        return access

    def delete_pod(self) -> tuple[float, str]:
        return self._replace_pod("pod deleted")

    def reinstall(self) -> tuple[float, str]:
        return self._replace_pod("release uninstalled and installed again")

    def scale(self, replicas: int) -> tuple[float, str]:
        injected = time.time()
        if replicas == 0:
            if self.container is None:
                return injected, "already scaled to 0"
            current = self.container
            self._scaled_down_on = current.node
            self._remove_pod(current)
            return injected, f"scaled to 0: pod on {current.node} stopped (SIGTERM) and deleted"
        if self._scaled_down_on is None:
            return injected, "already at 1 replica"
        node = self._schedule(prefer=self._scaled_down_on)
        self._scaled_down_on = None
        if node is None:
            return injected, f"scaled back to 1; the new pod is Pending: {self.pending}"
        self._new_pod(node)
        return injected, f"scaled back to 1: the new pod runs on {node} and got {self._kept()}"

    def _replace_pod(self, what: str) -> tuple[float, str]:
        """A new pod for the old one: a new volume generation, on the node the scheduler would pick, or Pending."""
        current = self._require()
        injected = time.time()
        self._remove_pod(current)
        node = self._schedule(prefer=current.node)
        if node is None:
            return injected, f"{what} on {current.node}; the new pod is Pending: {self.pending}"
        self._new_pod(node)
        where = f"on the same node {node}" if node == current.node else f"on {node} (moved from {current.node})"
        return injected, f"{what}; the new pod runs {where} and got {self._kept()}"

    def pod_node(self) -> str:
        return self._require().node

    def node_cordoned(self, node: str) -> bool:
        return node in self.cordoned

    def cordon(self, node: str) -> None:
        self.cordoned.add(node)

    def uncordon(self, node: str) -> None:
        self.cordoned.discard(node)

    def _remove_pod(self, current: Container) -> None:
        current.daemon.stop(STOP_TIMEOUT_S)
        if not self.backend.survives_new_pod:
            # The emptyDir goes with the pod; a volume that stays keeps its layer, and with it the fsyncs it saw.
            self._unmount_layer(current.data_dir)
        self._require_storage().release(current.generation)
        self.container = None

    def _schedule(self, prefer: str) -> str | None:
        """The scheduler, reduced to cordons and a local PV's node: the pod's own node when it may, else the first
        schedulable one; None (the pod stays Pending, ``self.pending`` says why in the scheduler's words)."""
        allowed = (self.pinned,) if self.pinned is not None else (prefer, *self.nodes)
        for node in allowed:
            if node not in self.cordoned:
                self.pending = ""
                return node
        if self.pinned is not None:
            self.pending = (
                f"0/{len(self.nodes)} nodes are available: 1 node(s) had volume node affinity conflict, 1 node(s) "
                f"were unschedulable. Its local PV pins it to node {self.pinned} (storage.node), which is cordoned: "
                "Prometheus on a local PV is down until that node is back"
            )
        else:
            self.pending = f"0/{len(self.nodes)} nodes are available: {len(self.nodes)} node(s) were unschedulable"
        return None

    def _kept(self) -> str:
        return "the same volume" if self.backend.survives_new_pod else "a new, empty emptyDir"

    def wait_recovered(self, timeout_s: float) -> Recovery:
        if self.container is None and self.pending:
            # Nothing will place the pod while its node stays cordoned: no need to wait out the timeout.
            raise NotRecovered(f"the pod cannot be scheduled: {self.pending}")
        container = self._require()
        deadline = time.monotonic() + timeout_s
        waited_since = time.time()

        def remaining() -> float:
            return max(0.1, deadline - time.monotonic())

        def alive_or_fail() -> None:
            if not container.daemon.alive():
                raise NotRecovered(self._exit_message(container))

        def healthy() -> bool:
            alive_or_fail()
            return client.healthy()

        def ready() -> bool:
            alive_or_fail()
            return client.ready()

        with PromClient(container.base_url, timeout_s=HTTP_TIMEOUT_S) as client, not_recovered_on_timeout():
            wait_for(
                healthy,
                what=f"Prometheus ({container.name}) to answer /-/healthy",
                timeout_s=remaining(),
                interval_s=0.02,
                describe=self.log_excerpt,
            )
            up_at = time.time()
            started = StageMark("container_started", container.started_unix_s, "the harness started the process")
            try:
                wait_for(
                    ready,
                    what=f"Prometheus ({container.name}) to answer /-/ready (WAL replay)",
                    timeout_s=remaining(),
                    interval_s=0.02,
                )
            except WaitTimeout as e:
                raise not_ready(
                    container.name,
                    timeout_s,
                    waited_since_unix_s=waited_since,
                    recovery=Recovery(up_at, None, None, stages=(started,)),
                    still_healthy=container.daemon.alive() and client.healthy(),
                    log_text=container.daemon.log_text(),
                ) from e
            ready_at = time.time()
        replays = wal_replay_durations_s(container.daemon.log_text())
        return Recovery(up_at, ready_at, replays[-1] if replays else None, stages=(started,))

    # --- internals ---------------------------------------------------------------------------------------------

    def _require(self) -> Container:
        if self.container is None:
            raise InfraError("Prometheus is not running (the local runtime was not started)")
        return self.container

    def _layer(self, current: Container) -> FaultLayer:
        layer = self.layers.get(current.data_dir)
        if layer is None:
            raise InfraError(f"no fault layer under {current.data_dir}: the runtime was not asked for one")
        return layer

    def _require_server(self) -> EmbeddedServer[Any]:
        if self.storage_server is None:
            raise InfraError("this run started no storage server (the scenario's storage is not embedded)")
        return self.storage_server

    def _require_storage(self) -> ProvisionedStorage:
        if self.storage is None:
            raise InfraError("the local runtime's storage was not provisioned")
        return self.storage

    def _new_pod(self, node: str) -> None:
        self._generation += 1
        data_dir = self._require_storage().data_dir_for(self._generation)
        self._apply_fs_group(data_dir)
        self._check_reachable(data_dir)
        if self.fault_layer and data_dir not in self.layers:
            layer = FaultLayer(data_dir, logs_dir=self.logs_dir, state_dir=self.workdir)
            layer.mount()
            self.layers[data_dir] = layer
        self.container = self._start_container(self._generation, 0, node, proc.free_port(), data_dir)

    def _unmount_layer(self, data_dir: Path) -> None:
        layer = self.layers.pop(data_dir, None)
        if layer is not None:
            layer.unmount()

    def _apply_fs_group(self, data_dir: Path) -> None:
        """What the kubelet does for volumes that support fsGroup: group-own the tree, setgid dirs, g+rw."""
        sc = self.spec.security_context
        if not self.as_security_context:
            return
        if not self.backend.kubelet_applies_fs_group or sc.fs_group is None:
            # E.g. in-tree NFS volumes: the kubelet leaves ownership as the export has it.
            return
        for path in [data_dir, *data_dir.rglob("*")]:
            os.chown(path, -1, sc.fs_group)
            # Group rw like the kubelet's fsGroup change; setgid on directories so new files inherit the group.
            extra = 0o2070 if path.is_dir() else 0o060
            path.chmod((path.stat().st_mode & 0o7777) | extra)

    def _check_fillable(self, root: Path) -> None:
        """A disk_full fills the volume under test, never the host's filesystems: refuse a volume that is not a
        filesystem of its own on a block device (a plain directory on /, the work area, an emptyDir, an NFS
        export, whose filesystem is the server's)."""
        fs = filesystem_of(root)
        shared = [
            what
            for what, other in (("the host's root filesystem /", Path("/")), ("the run's work area", self.workdir))
            if other.stat().st_dev == root.stat().st_dev
        ]
        if shared or not fs.source.startswith("/dev/"):
            why = (
                f"it is {' and '.join(shared)}" if shared else f"it is {fs.fstype} from {fs.source}, not a block device"
            )
            raise StorageUnavailable(
                f"disk_full fills the filesystem under Prometheus' data directory, {fs.mount_point} ({fs.fstype} on "
                f"{fs.source}), and the harness fills only a filesystem of the volume's own: {why}. Give the "
                "storage a loop-mounted image (storage.image: {filesystem: ext4, size: 256Mi}, root) or a "
                "storage.path on a disk of its own"
            )

    def _check_reachable(self, data_dir: Path) -> None:
        """Fail early and clearly when the Prometheus user cannot even reach its config or data directory.

        A private parent directory (mode 0700, e.g. a test's temp dir) would otherwise surface as Prometheus'
        "permission denied" and look like a storage problem.
        """
        if not self.as_security_context:
            return
        sc = self.spec.security_context
        gids = {sc.run_as_group, *([sc.fs_group] if sc.fs_group is not None else [])}
        for target in (self.workdir, data_dir.parent):
            blocked = first_untraversable(target, sc.run_as_user, gids)
            if blocked is not None:
                mode = blocked.stat().st_mode & 0o7777
                raise InfraError(
                    f"Prometheus runs as uid {sc.run_as_user} (the scenario's security_context) but cannot enter "
                    f"{blocked} (mode {mode:04o}, owner uid {blocked.stat().st_uid}), on the way to {target}. "
                    "Use a --workdir (or storage.path) under a directory every user can traverse, such as /tmp"
                )

    def _config_path(self, port: int) -> Path:
        scrape_configs: list[dict[str, Any]] = [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
            *self.extra_scrape_configs,
        ]
        config = {
            "global": {
                "scrape_interval": f"{self.spec.scrape_interval_s:g}s",
                "evaluation_interval": f"{self.spec.scrape_interval_s:g}s",
            },
            "scrape_configs": scrape_configs,
        }
        path = self.workdir / f"prometheus-{port}.yml"
        # JSON is valid YAML, and needs no quoting rules.
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o644)
        return path

    def _start_container(self, generation: int, restarts: int, node: str, port: int, data_dir: Path) -> Container:
        command = PrometheusCommand(
            self._config_path(port),
            port,
            tsdb_path=data_dir,
            retention_s=self.spec.retention_s,
            extra_args=tuple(self.spec.extra_args),
            binary=self.binary,
        )
        sc = self.spec.security_context
        user = group = None
        extra_groups = None
        if self.as_security_context:
            user, group = sc.run_as_user, sc.run_as_group
            extra_groups = [sc.fs_group] if sc.fs_group is not None else []
        log_path = self.logs_dir / f"prometheus-pod{generation}-restart{restarts}.log"
        daemon = command.start(log_path=log_path, cwd=self.workdir, user=user, group=group, extra_groups=extra_groups)
        container = Container(generation, restarts, node, port, data_dir, daemon)
        log.info("started Prometheus: %s (pid %d)", container.name, daemon.pid)
        return container

    def _exit_message(self, container: Container) -> str:
        text = container.daemon.log_text()
        msg = f"Prometheus ({container.name}) exited with code {container.daemon.popen.returncode}"
        errors = storage_errors(text)
        if errors:
            line, meaning = errors[0]
            msg += f": {meaning}\n  {line}"
        else:
            msg += "\n" + "\n".join(text.splitlines()[-10:])
        return msg


PROBE_FILE = ".harness-data-path-probe"


def _write_and_fsync(storage: ProvisionedStorage, outcome: list[str]) -> None:
    """One small write and fsync in the run's fio directory (next to Prometheus' data, never in it), then removed;
    ``outcome`` gets "got through" or the error it met: either way the data path answered."""
    try:
        path = storage.fio_dir() / PROBE_FILE
        with path.open("wb") as f:
            f.write(b"probe")
            f.flush()
            os.fsync(f.fileno())
        path.unlink()
        outcome.append("got through")
    except OSError as e:
        outcome.append(f"failed ({e.strerror or e})")


def _quote_lines(lines: list[str], most: int = 3) -> str:
    """Up to ``most`` log lines, quoted, and how many more there were."""
    quoted = "; ".join(f"'{line[:240]}'" for line in lines[:most])
    more = f" (and {len(lines) - most} more lines)" if len(lines) > most else ""
    return f"{len(lines)} line(s): {quoted}{more}" if lines else ""
