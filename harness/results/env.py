"""Environment metadata recorded with every result: what ran where, so two results can be compared honestly."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

from harness import __version__
from harness.results.model import Environment


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def collect(runtime: str) -> Environment:
    return Environment(
        hostname=socket.gethostname(),
        kernel=platform.release(),
        os=_os_name(),
        python=platform.python_version(),
        harness_version=__version__,
        runtime=runtime,
        cpu_count=os.cpu_count() or 1,
        memory_bytes=_memory_bytes(),
    )
