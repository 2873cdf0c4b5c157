"""The local runtime: Prometheus as managed processes on this host, imitating a StatefulSet pod's life.

Each "container" is one ``prometheus`` process with a generated config on a free 127.0.0.1 port. A container restart
keeps the pod's volume; a new pod (``delete_pod``, ``reinstall``) asks the storage for the volume of a new
generation, which for an emptyDir is a fresh directory, and goes to the first node that is not cordoned (its own
when it may). As root, Prometheus runs as the scenario's security context (uid/gid and the fsGroup applied to the
volume the way the kubelet does, where the backend says the kubelet does), so permission traps show up here as they
would in the cluster.

What the run's faults need beyond that (``needs``) is made when the runtime is: the fault layer under every data
directory, the volume filler, the storage server's control, the export's reach, each in
``harness.runtime.local_capabilities``, which owns its state; the runtime only tells them when a pod comes or goes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import proc
from harness.capabilities import Capability
from harness.capabilities.ceph import CephClientControl, CephMdsControl, CephOsdControl
from harness.capabilities.export import ExportReach
from harness.capabilities.fault_layer import FaultLayerControl
from harness.capabilities.signals import SignalControl
from harness.capabilities.storage_server import ServerControl
from harness.capabilities.volatile_below import VolatileBelow
from harness.capabilities.volume_fill import VolumeFiller
from harness.datapath.mounts import first_untraversable
from harness.errors import InfraError, NotRecovered
from harness.loads import fio
from harness.prom import PromClient
from harness.prom_process import PrometheusCommand
from harness.promlog import storage_errors, wal_replay_durations_s
from harness.results.model import FioJobResult
from harness.runtime.base import (
    Recovery,
    Runtime,
    StageMark,
    StorageDescription,
    await_healthy_then_ready,
    not_ready,
    not_recovered_on_timeout,
)
from harness.runtime.local_capabilities import (
    LocalCephClient,
    LocalCephMds,
    LocalCephOsd,
    LocalExport,
    LocalFaultLayer,
    LocalServerControl,
    LocalSignals,
    LocalVolatileBelow,
    LocalVolumeFill,
)
from harness.scenario.model import FioJob, PrometheusSpec, StorageSpec
from harness.storage import backend_for
from harness.storage.base import EmbeddedServer, ProvisionedStorage
from harness.storage.ceph import EmbeddedCephServer

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
    # It mounts network storage itself, so it knows where Prometheus' data is in an export; the storage server it
    # can restart is the one the run started (the refusal says so otherwise). It has no nodes and no kubelet.
    offers = frozenset(
        {
            SignalControl,
            FaultLayerControl,
            VolatileBelow,
            VolumeFiller,
            ServerControl,
            ExportReach,
            CephClientControl,
            CephOsdControl,
            CephMdsControl,
        }
    )
    stop_timeout_s = STOP_TIMEOUT_S

    def __init__(
        self,
        spec: PrometheusSpec,
        storage: StorageSpec,
        *,
        run_id: str,
        workdir: Path,
        logs_dir: Path,
        as_security_context: bool | None = None,
        needs: frozenset[type[Capability]] = frozenset(),
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
        self.layer = LocalFaultLayer(self) if FaultLayerControl in needs else None
        self.filler = LocalVolumeFill(self) if VolumeFiller in needs else None
        self.server = (
            LocalServerControl(self, storage_server) if ServerControl in needs and storage_server is not None else None
        )
        made: dict[type[Capability], Capability | None] = {
            SignalControl: LocalSignals(self),  # a process to signal: nothing to prepare
            FaultLayerControl: self.layer,
            VolatileBelow: LocalVolatileBelow(self) if VolatileBelow in needs else None,
            VolumeFiller: self.filler,
            ServerControl: self.server,
            ExportReach: LocalExport(self) if ExportReach in needs else None,
            CephClientControl: LocalCephClient(self) if CephClientControl in needs else None,
            CephOsdControl: (
                LocalCephOsd(storage_server)
                if CephOsdControl in needs and isinstance(storage_server, EmbeddedCephServer)
                else None
            ),
            CephMdsControl: (
                LocalCephMds(storage_server)
                if CephMdsControl in needs and isinstance(storage_server, EmbeddedCephServer)
                else None
            ),
        }
        self.handed_out = {kind: c for kind, c in made.items() if c is not None}

    # --- storage -----------------------------------------------------------------------------------------------

    def provision_storage(self) -> StorageDescription:
        self.storage = self.backend.provision(self.storage_spec, self.workdir, self.run_id)
        if self.filler is not None:
            self.filler.check_fillable(self.storage.root)
        described = self.storage.describe()
        access = described.get("access")
        if self.layer is not None:
            layer = "Prometheus' data directory under the fault layer (harness.datapath.fault_fuse, FUSE); fio not"
            access = f"{access}; {layer}" if access else layer
        return StorageDescription(described["path"], described["filesystem"], described["device"], access)

    def teardown_storage(self) -> None:
        if self.filler is not None:
            self.filler.free()
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
        if self.server is not None and self.server.halted:
            try:
                self.server.start()
            except InfraError as e:
                problems.append(f"could not start the storage server again before stopping: {e}")
        if self.container is not None:
            self.container.daemon.stop(STOP_TIMEOUT_S)
        if self.filler is not None:
            try:
                self.filler.free()  # also with --keep-data: the data stays, our fill does not
            except InfraError as e:
                problems.append(str(e))
        if self.layer is not None:
            problems += self.layer.detach_all()
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
        if not self.backend.survives_new_pod and self.layer is not None:
            # The emptyDir goes with the pod; a volume that stays keeps its layer, and with it the fsyncs it saw.
            self.layer.detach(current.data_dir)
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

        started = StageMark("container_started", container.started_unix_s, "the harness started the process")
        with PromClient(container.base_url, timeout_s=HTTP_TIMEOUT_S) as client, not_recovered_on_timeout():
            up_at, ready_at = await_healthy_then_ready(
                client,
                container.name,
                remaining=remaining,
                interval_s=0.02,
                check=alive_or_fail,
                describe=self.log_excerpt,
                not_ready_at=lambda up_at: not_ready(
                    container.name,
                    timeout_s,
                    waited_since_unix_s=waited_since,
                    recovery=Recovery(up_at, None, None, stages=(started,)),
                    still_healthy=container.daemon.alive() and client.healthy(),
                    log_text=container.daemon.log_text(),
                ),
            )
        replays = wal_replay_durations_s(container.daemon.log_text())
        return Recovery(up_at, ready_at, replays[-1] if replays else None, stages=(started,))

    # --- internals ---------------------------------------------------------------------------------------------

    def current(self) -> Container:
        """The running container; InfraError when there is none (the runtime was not started)."""
        return self._require()

    def provisioned(self) -> ProvisionedStorage:
        """The run's storage; InfraError before it is provisioned."""
        return self._require_storage()

    def restart_container(self, current: Container) -> None:
        """``current`` (just signalled or killed) is gone; the kubelet's part: the container restarts in the same pod,
        on the same volume."""
        current.daemon.wait(STOP_TIMEOUT_S)
        self.container = self._start_container(
            current.generation, current.restarts + 1, current.node, current.port, current.data_dir
        )

    def _require(self) -> Container:
        if self.container is None:
            raise InfraError("Prometheus is not running (the local runtime was not started)")
        return self.container

    def _require_storage(self) -> ProvisionedStorage:
        if self.storage is None:
            raise InfraError("the local runtime's storage was not provisioned")
        return self.storage

    def _new_pod(self, node: str) -> None:
        self._generation += 1
        data_dir = self._require_storage().data_dir_for(self._generation)
        self._apply_fs_group(data_dir)
        self._check_reachable(data_dir)
        if self.layer is not None:
            self.layer.attach(data_dir)
        self.container = self._start_container(self._generation, 0, node, proc.free_port(), data_dir)

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
            try:
                blocked = first_untraversable(target, sc.run_as_user, gids)
            except OSError as e:
                # A data path's user-space client died under the run (its FUSE mount answers ENOTCONN): the new
                # pod cannot use its volume, a finding about the storage as the kubelet's failed mount would be.
                raise NotRecovered(f"the new pod cannot use its volume: {e.filename}: {e.strerror}") from e
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
