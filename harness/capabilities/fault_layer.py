"""The fault layer under Prometheus' data directory (``harness.datapath.fault_fuse``, FUSE): cut the power there
(lose what
was not fsynced and kill Prometheus at the same instant), or make chosen I/O operations fail or slow down while
Prometheus keeps running. The local runtime mounts it over each data directory; the Kubernetes runtime runs it as a
privileged sidecar of Prometheus' pod, where the scenario allows one."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

from harness.capabilities import Capability
from harness.capabilities.volatile_below import VolatileBelow


@dataclass(frozen=True)
class PowerCut:
    """What a power cut did."""

    at_unix_s: float
    detail: str
    last_wal_fsync_unix_s: float | None  # None: nothing under the WAL directory was fsynced since the layer came up


@dataclass(frozen=True)
class IoFault:
    """An I/O fault under Prometheus' data directory, in Chaos Mesh IOChaos' model."""

    methods: tuple[str, ...]  # the operations it hits (harness.datapath.fault_protocol.IO_METHODS); empty: all of them
    percent: float  # the share of those, 0-100, drawn per operation
    errno_name: str | None = None  # io_errors: they fail with it (EIO, ...); None: they do not fail
    delay_s: float = 0.0  # io_latency: added to each one hit
    path: str | None = None  # only on this path under the data directory, or beneath it (wal); None: anywhere

    def describe(self) -> str:
        """E.g. "EIO on 100% of write, fsync under wal/"."""
        what = [*([f"a {self.delay_s * 1000:g} ms delay"] if self.delay_s > 0 else []), self.errno_name or ""]
        ops = ", ".join(self.methods) if self.methods else "every operation"
        where = f" under {self.path}/" if self.path else ""
        return f"{' then '.join(w for w in what if w)} on {self.percent:g}% of {ops}{where}"


class FaultLayerControl(Capability):
    does = "cut the power or fail I/O under Prometheus' data directory"

    @abstractmethod
    def power_cut(self, below: VolatileBelow) -> PowerCut:
        """Lose everything not yet fsynced under Prometheus' data directory and kill Prometheus at the same instant
        (SIGKILL), and what ``below`` holds volatile under the filesystem (while Prometheus is down); returns once
        it is restarting on what was durable. The detail says which layers the cut took."""

    @abstractmethod
    def io_fault(self, fault: IoFault) -> tuple[float, str]:
        """Make the operations ``fault`` names fail or slow down until ``io_heal``; when it took hold and what was
        done."""

    @abstractmethod
    def io_heal(self) -> str:
        """Lift the I/O fault (nothing when none is set); what it did while it held, in a sentence."""
