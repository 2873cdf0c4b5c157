"""What every benchmark section shares: the machine's description, medians and spread, CPU time of a process, the
metrics Prometheus exposes about itself, and a Prometheus process that is always stopped (bounded waits)."""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness import proc
from harness.prom_process import PrometheusCommand

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# Prometheus 3.x as scripts/build-prometheus3 builds it (Go module v0.3xx.y is 3.xx.y).
PROMETHEUS3 = Path(os.environ.get("HARNESS_CACHE", "/var/cache/prom-harness")) / "prometheus-v0.316.0" / "prometheus"


class BenchError(RuntimeError):
    """The benchmark itself could not run a step (a missing binary, a process that never came up)."""


def require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise BenchError(f"{binary} not found on PATH: install the Debian package {package!r}")
    return path


# --- numbers ---------------------------------------------------------------------------------------------------


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    """Median, min and max (and n) of repeated measurements; None when there are none."""
    values = [v for v in values if not math.isnan(v)]  # NaN: nothing to divide by in that run
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt_spread(s: dict[str, float | int | None], digits: int = 2, scale: float = 1.0) -> str:
    if not s["n"]:
        return "n/a"
    med, lo, hi = (float(s[k]) / scale for k in ("median", "min", "max"))
    if s["n"] == 1:
        return f"{med:,.{digits}f} (1 run)"
    return f"{med:,.{digits}f} ({lo:,.{digits}f}-{hi:,.{digits}f}, n={s['n']})"


# --- machine ---------------------------------------------------------------------------------------------------


def machine(path: Path) -> dict[str, object]:
    """CPU model, cores, memory, kernel, and the filesystem and device ``path`` lives on."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    findmnt = subprocess.run(
        ["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "--target", str(path)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    load = os.getloadavg()
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "storage_path": str(path),
        "filesystem": findmnt.stdout.strip() or "unknown",
        "loadavg_at_start": [round(x, 2) for x in load],
        "prometheus": _first_line(["prometheus", "--version"]),
        "fio": _first_line(["fio", "--version"]),
    }


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError as e:
        return f"unavailable: {e}"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"


# --- processes -------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads) from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def metrics_text(base_url: str, timeout_s: float = 10.0) -> str:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=timeout_s) as resp:  # noqa: S310 - our own 127.0.0.1
        return str(resp.read().decode())


def metric_sum(text: str, name: str) -> float:
    """The sum over all label sets of ``name`` in an exposition text (0 when absent)."""
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})?\s+(\S+)", re.MULTILINE)
    for m in pattern.finditer(text):
        total += float(m.group(1))
    return total


def stop_process(p: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, wait at most ``timeout_s``, then SIGKILL (and wait for it)."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


@dataclass
class Prom:
    """A running Prometheus: its process, base URL, data directory and log file."""

    process: subprocess.Popen[bytes]
    url: str
    data: Path
    log: Path

    def cpu_s(self) -> float:
        """Prometheus' own account: process_cpu_seconds_total."""
        return metric_sum(metrics_text(self.url), "process_cpu_seconds_total")

    def appended(self) -> float:
        """Samples appended to the head since it started (what it acknowledged, in both write paths)."""
        return metric_sum(metrics_text(self.url), "prometheus_tsdb_head_samples_appended_total")


def prometheus_binaries() -> dict[str, str]:
    """The Prometheus servers a benchmark can measure, by version: Debian's, and the 3.x that
    scripts/build-prometheus3 builds into the cache (what current charts deploy) when it is there."""
    found = {_version(require("prometheus", "prometheus")): require("prometheus", "prometheus")}
    if PROMETHEUS3.is_file():
        found[_version(str(PROMETHEUS3))] = str(PROMETHEUS3)
    return found


def _version(binary: str) -> str:
    first = _first_line([binary, "--version"])  # "prometheus, version 2.42.0+ds (branch: ...)"
    return first.split("version ", 1)[-1].split(" ", 1)[0].split("+", 1)[0]


def _command(
    config: Path, data: Path, port: int, *, agent: bool = False, binary: str | None = None
) -> PrometheusCommand:
    binary = binary or require("prometheus", "prometheus")
    if agent:
        agent_args = ("--enable-feature=agent", f"--storage.agent.path={data}")
        return PrometheusCommand(config, port, remote_write_receiver=False, extra_args=agent_args, binary=binary)
    return PrometheusCommand(config, port, tsdb_path=data, binary=binary)


def prometheus_command(*, agent: bool = False) -> str:
    """The command line a benchmark starts Prometheus with, the run's paths and port as placeholders."""
    argv = _command(Path("<dir>/prometheus.yml"), Path("<dir>/data"), 0, agent=agent).argv()
    return " ".join(argv).replace("127.0.0.1:0", "127.0.0.1:<port>")


@contextmanager
def prometheus(
    workdir: Path,
    name: str,
    config_text: str = "global: {}\n",
    *,
    agent: bool = False,
    data: Path | None = None,
    binary: str | None = None,
) -> Iterator[Prom]:
    """Start a Prometheus (or an agent) under ``workdir``/``name``, wait until it is ready, stop it on exit."""
    base = workdir / name
    base.mkdir(parents=True, exist_ok=True)
    config = base / "prometheus.yml"
    config.write_text(config_text)
    data = data or base / "data"
    port = proc.free_port()
    log = base / "prometheus.log"
    command = _command(config, data, port, agent=agent, binary=binary)
    p = command.start(log_path=log).popen
    url = command.url
    try:
        wait_ready(p, url, log)
        yield Prom(p, url, data, log)
    finally:
        stop_process(p)


def wait_ready(p: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise BenchError(f"prometheus exited with {p.returncode} before it was ready; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise BenchError(f"prometheus at {url} not ready within {timeout_s:g} s; see {log}")
