"""A real ``prometheus`` for the load, API and history tests: started on a free 127.0.0.1 port with a given TSDB
directory and the remote-write receiver, waited for on ``/-/ready``, stopped (or SIGKILLed) by PID.

Real runs manage Prometheus through ``harness.runtime``; this is deliberately the smallest thing the tests need.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import proc
from harness.prom import PromClient
from harness.prom_process import PrometheusCommand
from harness.wait import wait_for

READY_TIMEOUT_S = 30.0


@dataclass
class RunningPrometheus:
    daemon: proc.Daemon
    url: str
    data_dir: Path
    client: PromClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = PromClient(self.url, timeout_s=10.0)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: nothing is flushed."""
        self.daemon.signal(signal.SIGKILL)
        self.daemon.wait(10.0)

    def stop(self) -> None:
        self.client.close()
        self.daemon.stop(timeout_s=10.0)


class PrometheusLauncher:
    """Starts Prometheus instances for one test and stops every one of them at teardown."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.started: list[RunningPrometheus] = []

    def start(
        self, data_dir: Path, *, scrape_configs: list[str] | None = None, port: int | None = None
    ) -> RunningPrometheus:
        """A ready Prometheus on ``data_dir``; ``scrape_configs`` are YAML list items (e.g. a scrape_config_snippet)."""
        n = len(self.started)
        config = self.work_dir / f"prometheus-{n}.yml"
        items = "".join(scrape_configs or [])
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1m\n"
            + ("scrape_configs:\n" + items if items else "scrape_configs: []\n")
        )
        command = PrometheusCommand(
            config, port or proc.free_port(), tsdb_path=data_dir, extra_args=("--log.level=info",)
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        daemon = command.start(name=f"prometheus-{n}", log_path=self.work_dir / f"prometheus-{n}.log")
        instance = RunningPrometheus(daemon, command.url, data_dir)
        self.started.append(instance)
        wait_for(
            lambda: instance.client.ready() or (None if daemon.alive() else _exited(daemon)),
            what=f"prometheus on {instance.url} to be ready",
            timeout_s=READY_TIMEOUT_S,
            describe=lambda: daemon.log_text()[-2000:],
        )
        return instance

    def stop_all(self) -> None:
        for instance in self.started:
            instance.stop()


def _exited(daemon: proc.Daemon) -> bool:
    raise RuntimeError(f"prometheus exited with {daemon.popen.returncode}:\n{daemon.log_text()[-2000:]}")


def prometheus_launcher(tmp_path: Path) -> Iterator[PrometheusLauncher]:
    """Generator for a test module's fixture: ``yield from prometheus_launcher(tmp_path)``."""
    if shutil.which("prometheus") is None:
        pytest.skip("the prometheus binary is not installed (Debian package 'prometheus')")
    launcher = PrometheusLauncher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()
