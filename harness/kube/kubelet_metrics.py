"""A node's kubelet metrics as the API serves them (``GET /api/v1/nodes/NODE/proxy/metrics``, the ``nodes/proxy``
right ``harness.kube.node_logs`` uses too): the CSI calls the kubelet made to one driver, counted and summed by
method and gRPC status, from its histogram ``csi_operations_seconds``. The kubelet sends no event when a volume's
``NodeStageVolume`` or ``NodePublishVolume`` succeeds; this histogram is where the API shows them: a ``_count`` that
grew between two readings says a call completed in between, its ``_sum`` how long it took.

A kubelet that serves no metrics (no ``nodes/proxy`` right, 403; a proxy that answers 404) gives ``None``: the
caller says so. A histogram vector with no observation is not printed at all, so a driver the kubelet never called
reads as no calls (an empty ``CsiCalls``), not as a refusal.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import InfraError
from harness.exposition import parse_exposition
from harness.fmt import shorten
from harness.kube.contexts import API_TIMEOUT_S

if TYPE_CHECKING:
    from harness.kube.api import KubeApi

CSI_METRIC = "csi_operations_seconds"
STAGE = "/csi.v1.Node/NodeStageVolume"
PUBLISH = "/csi.v1.Node/NodePublishVolume"
OK = "OK"  # grpc_status_code of a call that succeeded (codes.Code's String(): OK, Internal, DeadlineExceeded, ...)

Key = tuple[str, str]  # (method_name, grpc_status_code)


@dataclass(frozen=True)
class Calls:
    """Completed calls of one method with one gRPC status: how many, and their seconds in all."""

    count: int
    seconds: float


@dataclass(frozen=True)
class CsiCalls:
    """One kubelet's calls to one CSI driver since the kubelet started, by (method, gRPC status); and when they were
    read: the snapshot was taken between ``sent_at`` and ``received_at`` (Unix seconds)."""

    calls: Mapping[Key, Calls] = field(default_factory=dict)
    sent_at: float = 0.0
    received_at: float = 0.0

    def since(self, before: CsiCalls) -> dict[Key, Calls]:
        """The calls completed after ``before`` (an earlier reading of the same kubelet), by (method, status). A count
        that went down is a restarted kubelet: everything it counted since is new."""
        restarted = any(self.calls.get(key, Calls(0, 0.0)).count < c.count for key, c in before.calls.items())
        grown = {}
        for key, now in self.calls.items():
            was = Calls(0, 0.0) if restarted else before.calls.get(key, Calls(0, 0.0))
            if now.count > was.count:
                grown[key] = Calls(now.count - was.count, max(0.0, now.seconds - was.seconds))
        return grown


def parse_csi_calls(text: str, driver: str) -> dict[Key, Calls]:
    """``csi_operations_seconds``' count and sum per (method, gRPC status) of ``driver`` in a kubelet's metrics text
    (its ``migrated`` label, in-tree plugins migrated to CSI, is summed over)."""
    counts: dict[Key, int] = {}
    sums: dict[Key, float] = {}
    for name, labels, value in parse_exposition(text, {f"{CSI_METRIC}_count", f"{CSI_METRIC}_sum"}):
        if labels.get("driver_name") != driver:
            continue
        key = (labels.get("method_name", ""), labels.get("grpc_status_code", ""))
        if name.endswith("_count"):
            counts[key] = counts.get(key, 0) + int(value)
        else:
            sums[key] = sums.get(key, 0.0) + value
    return {key: Calls(n, sums.get(key, 0.0)) for key, n in counts.items()}


def metrics_text(api: KubeApi, node: str, *, timeout_s: float = API_TIMEOUT_S) -> str | None:
    """The node's kubelet metrics (text exposition); None when the kubelet or the API refuses them (403, 404)."""
    from urllib3.exceptions import HTTPError

    try:
        response: Any = api.raw(
            "GET", f"/api/v1/nodes/{node}/proxy/metrics", headers={"Accept": "text/plain"}, timeout_s=timeout_s
        )
    except (HTTPError, OSError) as e:
        raise InfraError(
            f"could not read the metrics of node {node}'s kubelet via {api.where}: {shorten(str(e))}"
        ) from e
    if response.status in (403, 404):
        return None
    if response.status >= 300:
        said = shorten(response.data.decode(errors="replace"))
        raise InfraError(
            f"could not read the metrics of node {node}'s kubelet via {api.where}: {response.status} {said}"
        )
    return str(response.data.decode(errors="replace"))


def csi_calls(api: KubeApi, node: str, driver: str, *, timeout_s: float = API_TIMEOUT_S) -> CsiCalls | None:
    """The calls node ``node``'s kubelet made to ``driver`` so far; None when it serves no metrics (the caller says
    so). InfraError when the API cannot be reached or the text cannot be read."""
    sent = time.time()
    text = metrics_text(api, node, timeout_s=timeout_s)
    received = time.time()
    if text is None:
        return None
    try:
        calls = parse_csi_calls(text, driver)
    except ValueError as e:
        raise InfraError(f"the metrics of node {node}'s kubelet could not be read: {e}") from e
    return CsiCalls(calls, sent, received)
