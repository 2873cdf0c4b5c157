"""``restart``: the pod is deleted and the StatefulSet recreates it (on the same node when it may): an emptyDir is
new and empty, a persistent volume is mounted again."""

from __future__ import annotations

from harness.faults.base import Acted, Injector
from harness.runtime.base import Runtime
from harness.scenario.model import RestartFault
from harness.undo import UndoLog


class Restart(Injector[RestartFault]):
    action = "restart"

    def act(self, spec: RestartFault, runtime: Runtime, undo: UndoLog) -> Acted:
        return Acted(*runtime.delete_pod())


FAULT = Restart()
