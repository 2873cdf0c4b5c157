"""The local runtime: Prometheus as managed processes on this host, imitating a StatefulSet pod's life.

Each "container" is one ``prometheus`` process with a generated config on a free 127.0.0.1 port. A container restart
keeps the pod's volume; a new pod (restart, reschedule, redeploy) asks the storage for the volume of a new generation,
which for an emptyDir is a fresh directory. As root, Prometheus runs as the scenario's security context (uid/gid and
the fsGroup applied to the volume the way the kubelet does, except on NFS where the kubelet does not apply it), so
permission traps show up here as they would in the cluster.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import proc
from harness.errors import InfraError
from harness.mounts import first_untraversable
from harness.prom import PromClient
from harness.promlog import storage_errors, wal_replay_durations_s
from harness.runtime.base import Injection, Recovery, Runtime
from harness.scenario.model import FaultAction, PrometheusSpec
from harness.storage.base import ProvisionedStorage
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

    @property
    def name(self) -> str:
        return f"pod #{self.generation} on {self.node}, container restart {self.restarts}, port {self.port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LocalRuntime(Runtime):
    name = "local"

    def __init__(
        self,
        spec: PrometheusSpec,
        storage: ProvisionedStorage,
        *,
        workdir: Path,
        logs_dir: Path,
        extra_scrape_configs: list[dict[str, Any]] | None = None,
        as_security_context: bool | None = None,
    ) -> None:
        self.spec = spec
        self.storage = storage
        self.workdir = workdir
        self.logs_dir = logs_dir
        self.extra_scrape_configs = extra_scrape_configs or []
        # Only root can switch uid; elsewhere Prometheus runs as whoever runs the harness (recorded in the result).
        self.as_security_context = os.geteuid() == 0 if as_security_context is None else as_security_context
        self.binary = proc.which(spec.binary)
        self.container: Container | None = None
        self._generation = 0
        self._version: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._new_pod(NODES[0])
        self.wait_recovered(self.spec.ready_timeout_s)

    def stop(self) -> None:
        if self.container is not None:
            self.container.daemon.stop(STOP_TIMEOUT_S)

    def base_url(self) -> str | None:
        return self.container.base_url if self.container is not None else None

    def instance(self) -> str:
        return self.container.name if self.container is not None else "(none)"

    def version(self) -> str:
        if self._version is None:
            out = proc.run([self.binary, "--version"], timeout_s=30).stdout
            # "prometheus, version 2.42.0+ds (branch: ...)"; a plain `go install` build prints an empty version.
            m = re.search(r"version (\S+)", out.splitlines()[0] if out else "")
            self._version = m.group(1) if m and not m.group(1).startswith("(") else "unknown (no version stamp)"
        return self._version

    def log_excerpt(self) -> str:
        if self.container is None:
            return ""
        return "\n".join(self.container.daemon.log_text().splitlines()[-20:])

    # --- faults ------------------------------------------------------------------------------------------------

    def inject(self, action: FaultAction) -> Injection:
        current = self._require()
        before = current.name
        injected = time.time()
        if action in ("sigkill", "sigterm"):
            sig = signal.SIGKILL if action == "sigkill" else signal.SIGTERM
            current.daemon.signal(sig)
            current.daemon.wait(STOP_TIMEOUT_S)
            self.container = self._start_container(
                current.generation, current.restarts + 1, current.node, current.port, current.data_dir
            )
            detail = f"{sig.name} to pid {current.daemon.pid}; the container restarted in the same pod (same volume)"
        elif action in ("restart", "reschedule", "redeploy"):
            current.daemon.stop(STOP_TIMEOUT_S)
            self.storage.release(current.generation)
            node = current.node
            if action == "reschedule":
                node = NODES[(NODES.index(current.node) + 1) % len(NODES)]
            self._new_pod(node)
            kept = "the same volume" if self.storage.persistent else "a new, empty emptyDir"
            what = {
                "restart": "pod deleted and recreated on the same node",
                "reschedule": f"pod moved from {current.node} to {node}",
                "redeploy": "release uninstalled and installed again",
            }[action]
            detail = f"{what}; the new pod got {kept}"
        else:  # pragma: no cover - the scenario model only allows the actions above
            raise AssertionError(action)
        return Injection(action, injected, before, self._require().name, detail)

    def wait_recovered(self, timeout_s: float) -> Recovery:
        container = self._require()
        deadline = time.monotonic() + timeout_s

        def remaining() -> float:
            return max(0.1, deadline - time.monotonic())

        def alive_or_fail() -> None:
            if not container.daemon.alive():
                raise InfraError(self._exit_message(container))

        def healthy() -> bool:
            alive_or_fail()
            return client.healthy()

        def ready() -> bool:
            alive_or_fail()
            return client.ready()

        with PromClient(container.base_url, timeout_s=HTTP_TIMEOUT_S) as client:
            wait_for(
                healthy,
                what=f"Prometheus ({container.name}) to answer /-/healthy",
                timeout_s=remaining(),
                interval_s=0.02,
                describe=self.log_excerpt,
            )
            up_at = time.time()
            wait_for(
                ready,
                what=f"Prometheus ({container.name}) to answer /-/ready (WAL replay)",
                timeout_s=remaining(),
                interval_s=0.02,
                describe=self.log_excerpt,
            )
            ready_at = time.time()
        replays = wal_replay_durations_s(container.daemon.log_text())
        return Recovery(up_at, ready_at, replays[-1] if replays else None)

    # --- internals ---------------------------------------------------------------------------------------------

    def _require(self) -> Container:
        if self.container is None:
            raise InfraError("Prometheus is not running (the local runtime was not started)")
        return self.container

    def _new_pod(self, node: str) -> None:
        self._generation += 1
        data_dir = self.storage.data_dir_for(self._generation)
        self._apply_fs_group(data_dir)
        self._check_reachable(data_dir)
        self.container = self._start_container(self._generation, 0, node, proc.free_port(), data_dir)

    def _apply_fs_group(self, data_dir: Path) -> None:
        """What the kubelet does for volumes that support fsGroup: group-own the tree, setgid dirs, g+rw."""
        sc = self.spec.security_context
        if not self.as_security_context:
            return
        if self.storage.backend == "nfs" or sc.fs_group is None:
            # The kubelet does not apply fsGroup to in-tree NFS volumes: ownership is whatever the export has.
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
        argv = [
            self.binary,
            f"--config.file={self._config_path(port)}",
            f"--storage.tsdb.path={data_dir}",
            f"--storage.tsdb.retention.time={int(self.spec.retention_s)}s",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-remote-write-receiver",
            *self.spec.extra_args,
        ]
        sc = self.spec.security_context
        user = group = None
        extra_groups = None
        if self.as_security_context:
            user, group = sc.run_as_user, sc.run_as_group
            extra_groups = [sc.fs_group] if sc.fs_group is not None else []
        log_path = self.logs_dir / f"prometheus-pod{generation}-restart{restarts}.log"
        daemon = proc.start_daemon(
            "prometheus", argv, log_path=log_path, cwd=self.workdir, user=user, group=group, extra_groups=extra_groups
        )
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
