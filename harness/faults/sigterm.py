"""``sigterm``: Prometheus is asked to stop, shuts down cleanly (closing the WAL), and the kubelet restarts the
container in the same pod."""

from __future__ import annotations

import signal

from harness.faults.base import Injector
from harness.runtime.base import Runtime
from harness.scenario.model import SigtermFault
from harness.undo import UndoLog


class Sigterm(Injector[SigtermFault]):
    action = "sigterm"
    requires = frozenset({"signal"})

    def act(self, spec: SigtermFault, runtime: Runtime, undo: UndoLog) -> tuple[float, str]:
        return runtime.signal_prometheus(signal.SIGTERM)


FAULT = Sigterm()
