"""``kubelet_restart``: the kubelet of Prometheus' node stops for ``for`` and starts again, while the node's
container runtime, and Prometheus' container with it, keeps running (a kubelet upgrade or crash).

Nothing should happen to Prometheus: its process never stops, so it keeps taking writes and serving queries, and
once the kubelet is back it must find the container it left (the same container ID) rather than start another.
Past the node monitor's grace period the node is NotReady meanwhile; Kubernetes evicts a pod from a NotReady node
only after its toleration (300 s by default), so the fault's ``for`` should stay well below that. Starting the
kubelet again is recorded in the undo log before it is stopped, so Ctrl-C during the window brings it back too.
"""

from __future__ import annotations

import shlex

from harness.capabilities.kubelet import KubeletControl
from harness.faults.base import WindowInjector
from harness.runtime.base import Runtime
from harness.scenario.model import KubeletRestartFault
from harness.undo import UndoLog, UndoStep

NODE_READY_TIMEOUT_S = 300.0  # the start command returned; the kubelet registers and reports Ready again


class KubeletRestart(WindowInjector[KubeletRestartFault]):
    action = "kubelet_restart"
    needs = frozenset({KubeletControl})
    below_prometheus = False  # the node's agent, not the storage under Prometheus

    def begin(self, spec: KubeletRestartFault, runtime: Runtime, undo: UndoLog) -> tuple[float, str, UndoStep]:
        kubelet = runtime.capability(KubeletControl)
        node = runtime.pod_node()
        commands = spec.kubelet_control
        before = kubelet.container_id()  # Prometheus' container when the kubelet stopped

        def start_again() -> str:
            kubelet.start_kubelet(node, commands.start, NODE_READY_TIMEOUT_S)
            after = kubelet.container_id()
            was, now = before[-12:] or "(none)", after[-12:] or "(none)"
            kept = (
                f"Prometheus' container kept running (container {now})"
                if before and after == before
                else f"Prometheus' container changed: {was} before, {now} after"
            )
            return f"the node is Ready again; {kept}"

        step = undo.record(f"start the kubelet of node {node} again", start_again)
        stopped = kubelet.stop_kubelet(node, commands.stop)
        said = shlex.join(a.replace("{node}", node) for a in commands.stop)
        return stopped, f"the kubelet of node {node} stopped ({said}), for {spec.for_s:g} s", step


FAULT = KubeletRestart()
