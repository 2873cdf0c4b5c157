"""The kubernetes runtime's pod tracker (``harness.runtime.kubernetes.pods``) without a cluster: what each
notification does to its state and to what the recovery wait takes for Prometheus back; and the runtime takes the
images, the reach and the operator's wait from the ``Settings`` it is given, not from the environment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.errors import NotRecovered
from harness.kube.pods import ContainerInfo, PodInfo
from harness.runtime.deployments import OperatorDeployment
from harness.runtime.kubernetes import KubernetesRuntime
from harness.runtime.kubernetes.pods import PodState, PodTracker
from harness.runtime.kubernetes.resources import Created
from harness.runtime.manifests.common import Names
from harness.runtime.manifests.prometheus import CONTAINER
from harness.scenario.model import Scenario
from harness.settings import Settings

NAMES = Names("unit", "r1")


def pod(uid: str = "uid-1", node: str = "node-1", restarts: int = 0, container_id: str = "c1", **kw: Any) -> PodInfo:
    c = ContainerInfo(CONTAINER, restart_count=restarts, running=True, ready=True, container_id=container_id)
    fields: dict[str, Any] = {"ip": "10.0.0.1", "deleting": False, "phase": "Running", "ready": True, **kw}
    return PodInfo(NAMES.namespace, NAMES.pod, uid, node, containers=(c,), **fields)


class FakeApi:
    """The calls the tracker makes, answered from ``pods`` (what the StatefulSet shows next)."""

    def __init__(self, *pods: PodInfo) -> None:
        self.pods = list(pods)

    def pod_log(self, namespace: str, name: str, container: str, previous: bool = False) -> str:
        return "ts=1 level=info msg=up\n"

    def events(self, *args: Any) -> list[str]:
        return []

    def read_pvc(self, namespace: str, name: str) -> None:
        return None  # an emptyDir: no claim

    def wait_pod(self, namespace: str, name: str, until: Callable[[PodInfo], bool], **kw: Any) -> PodInfo:
        return next(p for p in self.pods if until(p))


def tracker(tmp_path: Path, *pods: PodInfo) -> PodTracker:
    api: Any = FakeApi(*pods)
    t = PodTracker(api, NAMES, tmp_path / "logs", Created(namespace=NAMES.namespace), lambda p: "")
    t.pod, t.url, t.state = pod(), "http://10.0.0.1:9090", PodState.READY
    return t


def test_a_killed_container_is_back_at_the_next_restart_count(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    t.container_going()
    assert (t.state, t.restarts_expected, t.url) == (PodState.CONTAINER_RESTART_EXPECTED, 1, None)
    assert list((tmp_path / "logs").glob("prometheus-uid-1-restart0.log")), "the killed container's log is kept"
    assert not t.running(pod(restarts=0))
    assert t.running(pod(restarts=1, container_id="c2"))
    assert t.instance().endswith("container restart 1")


def test_only_a_new_pod_looks_for_the_csi_stages_and_says_once_why_there_are_none(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    t.container_going()  # restarted in its pod: nothing is staged again, nothing to say
    assert t.csi.collect() == ((), "")
    t.pod = pod()
    t.node_going("node-1")  # the node comes back and restarts the same pod: nothing to say either
    t.csi.placed(pod())
    assert t.csi.collect() == ((), "")
    t.pod = pod()
    t.pod_going()
    t.csi.placed(pod(uid="uid-2", node="node-2"))
    assert t.csi.collect() == ((), "no claim (an emptyDir): no CSI volume to stage or publish")
    assert t.csi.collect() == ((), "")


def test_a_lost_node_s_container_is_stale_until_another_runs(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    t.node_going("node-2")  # not the pod's node: only noted as lost
    assert (t.state, t.lost_nodes, t.stale_container) == (PodState.READY, ["node-2"], "")
    t.node_going("node-1")
    assert (t.state, t.stale_container, t.url) == (PodState.NODE_LOST, "c1", None)
    assert not t.running(pod(container_id="c1")), "the API still shows the dead container running"
    assert t.running(pod(container_id="c2")) and t.stale_container == ""
    t.node_back("node-1")
    assert t.lost_nodes == ["node-2"]


def test_a_pod_pinned_to_a_cordoned_node_is_not_recovered(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    t.cordoned.append("node-1")
    pending = pod(uid="uid-2", node="", ip="", unschedulable="1 node(s) had volume node affinity conflict")
    with pytest.raises(NotRecovered, match="cannot move"):
        t.running(pending)


def test_scaled_to_zero_until_a_new_pod_is_placed(tmp_path: Path) -> None:
    new = pod(uid="uid-2", node="node-2")
    t = tracker(tmp_path, pod(), new)  # the old pod is still listed first: the wait takes only another uid
    t.container_going()
    gone = t.pod_going()
    t.scaled_down(gone)
    assert (t.state, t.pod, t.scaled_down_from) == (PodState.SCALED_TO_ZERO, None, gone)
    assert t.instance() == "(none)"
    assert t.await_new_pod(gone) == new
    assert (t.state, t.pod, t.scaled_down_from, t.restarts_expected) == (PodState.POD_REPLACED, new, None, 0)


def test_the_runtime_takes_its_settings_not_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HARNESS_K8S_TOOLS_IMAGE", "from-the-environment:1")
    monkeypatch.setenv("HARNESS_K8S_REACH", "pod-ip")
    scenario = Scenario.model_validate(
        {"name": "unit", "duration": "10s", "storage": {"backend": "ephemeral"}, "prometheus": {"deploy": "operator"}}
    )
    settings = Settings(
        k8s_reach="api-proxy", k8s_tools_image="busybox:1.36", k8s_fio_image="fio:1", k8s_operator_wait_s=5.0
    )
    api: Any = FakeApi()
    runtime = KubernetesRuntime(scenario, "r1", logs_dir=tmp_path, api=api, settings=settings)
    assert (runtime.exporter_image, runtime.reach.reach) == ("busybox:1.36", "api-proxy")
    assert isinstance(runtime.deployment, OperatorDeployment) and runtime.deployment.reconcile_timeout_s == 5.0
    defaults = KubernetesRuntime(scenario, "r1", logs_dir=tmp_path, api=api)
    assert (defaults.exporter_image, defaults.reach.reach) == (Settings().k8s_tools_image, "auto")
