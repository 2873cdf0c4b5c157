"""A ``prometheus`` process: the one command line the local runtime, the tests and the benchmarks start Prometheus
with (config file, TSDB path, retention, listen address, remote-write receiver, extra arguments), started as a daemon
through ``harness.proc`` (its output appended to a log file, stopped by its PID)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import proc


@dataclass(frozen=True)
class PrometheusCommand:
    """How to start one Prometheus on ``host:port``; ``tsdb_path`` None names no TSDB (an agent names its own
    storage in ``extra_args``), ``retention_s`` None keeps Prometheus' default retention."""

    config: Path
    port: int
    tsdb_path: Path | None = None
    retention_s: float | None = None
    remote_write_receiver: bool = True
    extra_args: tuple[str, ...] = ()
    binary: str = "prometheus"
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def argv(self) -> list[str]:
        argv = [self.binary, f"--config.file={self.config}"]
        if self.tsdb_path is not None:
            argv.append(f"--storage.tsdb.path={self.tsdb_path}")
        if self.retention_s is not None:
            argv.append(f"--storage.tsdb.retention.time={int(self.retention_s)}s")
        argv.append(f"--web.listen-address={self.host}:{self.port}")
        if self.remote_write_receiver:
            argv.append("--web.enable-remote-write-receiver")
        return [*argv, *self.extra_args]

    def start(
        self,
        *,
        log_path: Path,
        name: str = "prometheus",
        cwd: Path | None = None,
        user: int | None = None,
        group: int | None = None,
        extra_groups: Sequence[int] | None = None,
    ) -> proc.Daemon:
        """Start it (not waited for: readiness is the caller's to judge), as ``user``/``group`` when given."""
        return proc.start_daemon(
            name, self.argv(), log_path=log_path, cwd=cwd, user=user, group=group, extra_groups=extra_groups
        )
