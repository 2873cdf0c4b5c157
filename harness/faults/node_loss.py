"""``node_loss``: the node running Prometheus dies, as a machine does when it loses power or its kernel panics.

Kubernetes does not replace a StatefulSet pod on a lost node: it cannot tell a dead node from a partitioned one,
and two pods of one identity must never run at once, so the pod stays (Running, then Terminating once evicted)
until the node is back or someone force-deletes it. The scenario says which (``then``) after ``wait``:
- ``restore``: the node comes back; its kubelet starts Prometheus again in the same pod, on the same volume;
- ``force_delete``: once Kubernetes has marked the node NotReady (so the scheduler keeps new pods off it), the pod
  is force-deleted as an operator would; the StatefulSet creates a new one elsewhere, which a local PV cannot
  follow and an emptyDir follows empty;
- ``nothing``: Prometheus stays gone until the run's ready timeout says so.
Recovery counts from the loss. The node's return is recorded as the undo before it is stopped, so the node comes
back at the end of the fault whatever happens, Ctrl-C included.

How a node dies and comes back is the scenario's to say (``node_control``; when it gives none, the CLI fills it from
``$HARNESS_NODE_STOP`` and ``$HARNESS_NODE_START`` as it loads the scenario, ``harness.scenario.host_defaults``): the
local test cluster's is ``python -m testbed node lose|restore NODE``; elsewhere a
cloud CLI that stops and starts the instance, or ``ssh`` to the node.
"""

from __future__ import annotations

import shlex
import time

from harness.capabilities.nodes import NodeLifecycle
from harness.faults.base import Acted, Injector
from harness.runtime.base import Runtime, StageMark
from harness.scenario.model import NodeControl, NodeLossFault
from harness.undo import UndoLog

NODE_READY_TIMEOUT_S = 300.0  # the start command returned; the kubelet registers and reports Ready
# The node controller marks a silent node NotReady after its grace period (kube-controller-manager's
# --node-monitor-grace-period: 40 s by default, 50 s from 1.32), with room.
NOT_READY_TIMEOUT_S = 300.0
STOP_ENV, START_ENV = "HARNESS_NODE_STOP", "HARNESS_NODE_START"  # named in the refusal; read by harness.settings


def node_control(spec: NodeLossFault) -> NodeControl | None:
    """The scenario's commands (the settings' when it gave none: filled as it was loaded); None when neither said."""
    return spec.node_control


class NodeLoss(Injector[NodeLossFault]):
    action = "node_loss"
    needs = frozenset({NodeLifecycle})

    def refusal(self, spec: NodeLossFault) -> str | None:
        if node_control(spec) is not None:
            return None
        return (
            "node_loss needs a way to make a node die and come back: give it node_control: {stop: [...], start: [...]} "
            f"(commands; {{node}} is replaced by the node's name), or set {STOP_ENV} and {START_ENV}; for the local "
            "test cluster: python -m testbed node lose {node} / node restore {node}"
        )

    def act(self, spec: NodeLossFault, runtime: Runtime, undo: UndoLog) -> Acted:
        control = node_control(spec)
        if control is None:
            raise AssertionError(self.refusal(spec))  # refused before the run started
        node = runtime.pod_node()
        nodes = runtime.capability(NodeLifecycle)
        back: list[float] = []

        def bring_back() -> None:
            if not back:
                back.append(nodes.start_node(node, control.start, NODE_READY_TIMEOUT_S))

        undo.record(f"bring node {node} back", bring_back)
        lost_at = nodes.stop_node(node, control.stop)
        detail = f"node {node} lost ({shlex.join(control.stop)})"
        time.sleep(spec.wait_s)
        marks: list[StageMark] = []
        if spec.then == "restore":
            bring_back()
            marks.append(StageMark("node_restored", back[0], "harness: the start command returned, the node is Ready"))
            detail += f"; {spec.wait_s:g} s later brought back, Ready again"
        elif spec.then == "force_delete":
            noticed = nodes.wait_node(node, ready=False, timeout_s=NOT_READY_TIMEOUT_S)
            marks.append(StageMark("node_not_ready", noticed, "API: the node's Ready condition", resolution_s=1.0))
            deleted_at, deleted = nodes.force_delete_pod()
            marks.append(StageMark("pod_force_deleted", deleted_at, "harness: delete with grace period 0"))
            detail += f"; NotReady {noticed - lost_at:.0f} s later; {deleted}"
        else:
            detail += f"; nothing done after {spec.wait_s:g} s: the StatefulSet does not replace a pod on a lost node"
        return Acted(lost_at, detail, stages=tuple(marks))


FAULT = NodeLoss()
