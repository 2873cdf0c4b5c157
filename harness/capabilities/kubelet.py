"""Stop the kubelet of Prometheus' node and start it again, while the node's container runtime (and Prometheus'
container with it) keeps running: only a runtime whose Prometheus has a kubelet can.

How a kubelet stops and starts is the scenario's to say (commands, e.g. ``ssh {node} systemctl stop kubelet``;
``{node}`` is replaced by the node's name); the runtime runs them and watches the API for the node's Ready
condition and for Prometheus' container (the same container ID is the same process)."""

from __future__ import annotations

from abc import abstractmethod

from harness.capabilities import Capability


class KubeletControl(Capability):
    does = "stop and start the kubelet of Prometheus' node"
    lacking = "its Prometheus is a process of this host, with no kubelet to stop; use --runtime kubernetes"

    @abstractmethod
    def stop_kubelet(self, node: str, argv: list[str]) -> float:
        """Stop ``node``'s kubelet by running ``argv``; when it was done."""

    @abstractmethod
    def start_kubelet(self, node: str, argv: list[str], timeout_s: float) -> float:
        """Start ``node``'s kubelet by running ``argv`` and wait until the node is Ready; when it was."""

    @abstractmethod
    def container_id(self) -> str:
        """The ID of Prometheus' container as the API shows it now ("" when it shows none)."""
