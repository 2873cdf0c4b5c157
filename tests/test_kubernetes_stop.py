"""The kubernetes runtime's ``stop`` against an API server that went away: the error still propagates, and the API
client is closed all the same (issue 20). No cluster: a real ``KubeApi`` on a kubeconfig naming a port nothing
listens on, so every call fails the way it does when the API server is gone in the middle of a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InfraError
from harness.runtime.kubernetes import KubernetesRuntime
from harness.scenario.model import Scenario

# Port 9 (discard) on loopback: nothing listens there, so every request is refused at once.
KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: gone, context: {cluster: c, user: u}}]
current-context: gone
"""


def test_a_failed_stop_still_closes_the_api_client(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    scenario = Scenario.model_validate({"name": "stop-fails", "duration": "10s", "storage": {"backend": "ephemeral"}})
    runtime = KubernetesRuntime(scenario, "r1", logs_dir=tmp_path / "logs", kubeconfig=str(kubeconfig), context="gone")
    # The run's first step: the namespace is recorded as created before the create is sent, so stop must delete it.
    with pytest.raises(InfraError, match="cannot reach the Kubernetes API"):
        runtime.ensure_namespace()
    pools = runtime.api._client.rest_client.pool_manager.pools  # urllib3's per-host connection pools
    assert len(pools) == 1, "the refused request left no connection pool: nothing here would show the close"

    with pytest.raises(InfraError, match="could not remove everything this run created") as e:
        runtime.stop()
    assert "namespace" in str(e.value).lower(), e.value
    # KubeApi.close clears the pools (ApiClient.close -> RESTClientObject.close -> PoolManager.clear).
    assert len(pools) == 0, "stop raised and left the API client open"
