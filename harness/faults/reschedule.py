"""``reschedule``: the pod must move to another node. Its node is cordoned (the uncordon recorded first, so it runs
even after Ctrl-C) and the pod deleted; the pipeline uncordons once Prometheus has recovered elsewhere or failed to.
A node that was cordoned already is left so. On a local PV the pod cannot move: the scheduler's ``volume node
affinity conflict`` is the finding."""

from __future__ import annotations

from harness.faults.base import Acted, Injector
from harness.runtime.base import Runtime
from harness.scenario.model import RescheduleFault
from harness.undo import UndoLog


class Reschedule(Injector[RescheduleFault]):
    action = "reschedule"

    def act(self, spec: RescheduleFault, runtime: Runtime, undo: UndoLog) -> Acted:
        node = runtime.pod_node()
        if runtime.node_cordoned(node):
            cordon = f"node {node} was cordoned already (left so)"
        else:
            undo.record(f"uncordon node {node}", lambda: runtime.uncordon(node))
            runtime.cordon(node)
            cordon = f"node {node} cordoned"
        injected_at, deleted = runtime.delete_pod()
        return Acted(injected_at, f"{cordon}; {deleted}")


FAULT = Reschedule()
