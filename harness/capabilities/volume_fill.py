"""Fill the filesystem holding Prometheus' data directory to ENOSPC, with a file of the harness's beside (never
inside) the TSDB directory, and free it again. Only a filesystem of the volume's own is filled (the runtime checks
it when the storage is provisioned): never the host's root, the run's work area, or a node's emptyDir."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

from harness.capabilities import Capability


@dataclass(frozen=True)
class VolumeFill:
    """What filling Prometheus' volume did."""

    at_unix_s: float  # when the filesystem was full
    detail: str


class VolumeFiller(Capability):
    does = "fill the filesystem under Prometheus' data directory"

    @abstractmethod
    def fill(self) -> VolumeFill:
        """Fill the filesystem until not one block is left; Prometheus keeps running on it."""

    @abstractmethod
    def free(self) -> None:
        """Delete what ``fill`` filled, as much of it as exists (the undo step, recorded before the fill: also after
        a fill that broke half way); nothing when nothing is filled."""
