"""Signal Prometheus in its container, which then restarts in the same pod (volumes, even an emptyDir, stay).

Every runtime can; on Kubernetes it takes a sidecar with a shell in Prometheus' pod (shared process namespace),
added only for a run whose faults signal."""

from __future__ import annotations

import signal
from abc import abstractmethod

from harness.capabilities import Capability


class SignalControl(Capability):
    does = "signal Prometheus in its container"

    @abstractmethod
    def send(self, sig: signal.Signals) -> tuple[float, str]:
        """Send ``sig`` to Prometheus; the container restarts in the same pod. When it was sent (Unix seconds) and
        what was done, in a sentence."""
