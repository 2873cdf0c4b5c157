"""``sigkill``: Prometheus' container is killed; the kubelet restarts it in the same pod (volumes, even an emptyDir,
stay). Nothing Prometheus acknowledged may be lost: its WAL write()s every commit before answering."""

from __future__ import annotations

import signal

from harness.faults.base import Injector
from harness.runtime.base import Runtime
from harness.scenario.model import SigkillFault
from harness.undo import UndoLog


class Sigkill(Injector[SigkillFault]):
    action = "sigkill"
    requires = frozenset({"signal"})

    def act(self, spec: SigkillFault, runtime: Runtime, undo: UndoLog) -> tuple[float, str]:
        return runtime.signal_prometheus(signal.SIGKILL)


FAULT = Sigkill()
