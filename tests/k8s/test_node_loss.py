"""``node_loss`` on the local two-node cluster: the node running Prometheus dies (its kubelet, containers and
containerd get SIGKILL, through `python -m testbed node lose`).

1. a local PV and ``then: restore``: Prometheus is gone while its node is, back on the same node and volume after,
   with every acknowledged sample (exit 0); the stages show the node coming back before the container restarts;
2. the emptyDir baseline and ``then: force_delete``: once Kubernetes marks the node NotReady the pod is
   force-deleted, the new pod runs on the other node with an empty emptyDir: the history is lost (exit 1);
3. without a way to stop a node, or on the local runtime, node_loss is refused before anything is created (exit 2).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.results.model import Status
from harness.results.store import load_result
from tests.k8s.conftest import LocalPv
from tests.k8s.helpers import ROOT, assert_nothing_left, harness_run, write_scenario

NODE_CONTROL = (
    f"node_control: {{stop: [{sys.executable}, -m, testbed, node, lose, '{{node}}'], "
    f"start: [{sys.executable}, -m, testbed, node, restore, '{{node}}']}}"
)


@pytest.fixture
def local_cluster_only(local_cluster: bool) -> None:
    if not local_cluster:
        pytest.skip("node_loss here stops the local cluster's node processes; elsewhere give the scenario a way")


def _ready_nodes(api_client: Any) -> list[str]:
    from kubernetes import client

    nodes = client.CoreV1Api(api_client).list_node().items
    return sorted(
        n.metadata.name for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
    )


@pytest.mark.cluster
@pytest.mark.cluster_exclusive  # a node's kubelet and containers die
@pytest.mark.slow
def test_a_local_pv_survives_the_loss_of_its_node_once_the_node_is_back(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_pv: Callable[[str], LocalPv], local_cluster_only: None
) -> None:
    vol = local_pv("node-2")
    pv, sc = vol.pv, vol.storage_class
    scenario_file = write_scenario(
        tmp_path,
        f"""
name: k8s-node-loss
duration: 35s
{vol.storage_yaml()}prometheus: {{ready_timeout: 120s}}
loads: {{tsdb: {{series: 200, interval: 1s}}}}
faults:
  - action: node_loss
    at: 8s
    then: restore
    wait: 10s
    {NODE_CONTROL}
""",
    )
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.PASSED and result.complete
    [fault] = result.faults
    assert fault.action == "node_loss" and "node node-2 lost" in fault.detail
    # Gone while the node was: nothing comes back before the node does, 10 s after the loss.
    restored = fault.stage_s("node_restored")
    assert restored is not None and restored >= 10.0
    assert fault.recovery_s is not None and fault.recovery_s > restored
    stages = [s.stage for s in fault.stages]
    assert stages[:2] == ["injected", "node_restored"] and stages[-3:] == ["healthy", "ready", "first_sample"]
    assert "container_started" in stages and "pod_created" not in stages  # the same pod, restarted by its kubelet
    assert fault.instance_after is not None and "on node-2" in fault.instance_after
    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    assert _ready_nodes(api_client) == ["node-1", "node-2"]
    assert_nothing_left(api_client, result.run_id, (pv,), (sc,))


@pytest.mark.cluster
@pytest.mark.cluster_exclusive  # a node's kubelet and containers die
@pytest.mark.slow
def test_force_deleting_the_pod_of_a_lost_node_moves_an_emptydir_prometheus_without_its_history(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_cluster_only: None
) -> None:
    scenario_file = write_scenario(
        tmp_path,
        f"""
name: k8s-node-loss-ephemeral
duration: 45s
storage: {{backend: ephemeral}}
prometheus: {{ready_timeout: 120s}}
loads: {{tsdb: {{series: 200, interval: 1s}}}}
faults:
  - action: node_loss
    at: 8s
    then: force_delete
    wait: 2s
    {NODE_CONTROL}
""",
    )
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.FAILED and result.complete
    [fault] = result.faults
    assert fault.status is Status.PASSED  # Prometheus came back, on the other node...
    lost_node = fault.instance_before.split(" on ")[1].split(",")[0]
    assert fault.instance_after is not None and f"on {lost_node}," not in fault.instance_after
    stages = [s.stage for s in fault.stages]
    assert stages[:3] == ["injected", "node_not_ready", "pod_force_deleted"] and "pod_created" in stages
    after_fault = result.durability[0]
    assert after_fault.acknowledged > 0 and after_fault.lost == after_fault.acknowledged  # ...without its history
    assert _ready_nodes(api_client) == ["node-1", "node-2"]  # the lost node came back at the end of the fault
    assert_nothing_left(api_client, result.run_id)


@pytest.mark.parametrize(
    ("runtime", "node_control", "says"),
    [
        ("local", NODE_CONTROL, "needs a runtime that can stop and start nodes; the local runtime cannot"),
        ("kubernetes", "", "node_loss needs a way to make a node die and come back"),
    ],
)
def test_node_loss_is_refused_before_anything_is_created(
    tmp_path: Path, runtime: str, node_control: str, says: str
) -> None:
    scenario_file = write_scenario(
        tmp_path,
        f"name: refused\nduration: 20s\nstorage: {{backend: ephemeral}}\n"
        f"faults:\n  - action: node_loss\n    at: 5s\n    {node_control}\n",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_NODE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(scenario_file), "--runtime", runtime,
         "--reports", str(tmp_path / "reports")],
        capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "reports").exists()
