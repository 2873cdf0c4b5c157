"""Lose a node and bring it back, and force-delete a pod left on a lost node: only a runtime with real nodes can.

How a node dies and comes back is the scenario's to say (commands such as a cloud CLI's; ``{node}`` is replaced by
the node's name): the runtime runs them and watches the API for what Kubernetes makes of it."""

from __future__ import annotations

from abc import abstractmethod

from harness.capabilities import Capability


class NodeLifecycle(Capability):
    does = "stop and start nodes"
    lacking = "it has no nodes to lose (Prometheus runs on this host); use --runtime kubernetes"

    @abstractmethod
    def stop_node(self, node: str, argv: list[str]) -> float:
        """Make ``node`` die by running ``argv``; when it was done."""

    @abstractmethod
    def start_node(self, node: str, argv: list[str], timeout_s: float) -> float:
        """Bring ``node`` back by running ``argv`` and wait until it is Ready; when it was."""

    @abstractmethod
    def wait_node(self, node: str, *, ready: bool, timeout_s: float) -> float:
        """Wait until Kubernetes has marked ``node`` Ready (or not); when it did, by the API's own clock."""

    @abstractmethod
    def force_delete_pod(self) -> tuple[float, str]:
        """Force-delete Prometheus' pod (grace period 0); returns once its replacement has been placed, or why not."""
