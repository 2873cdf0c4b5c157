"""The pod tracker: which pod Prometheus runs in, what was done to it, and what the recovery wait
(``PodTracker.wait_recovered``) takes for Prometheus back.

The faults' capabilities (``harness.runtime.kube_capabilities``) and the runtime's own primitives tell the tracker
what they are about to do (``pod_going``, ``container_going``, ``container_gone``, ``node_going``, ``node_back``,
``scaled_down``) and wait for the StatefulSet's new pod through it (``await_new_pod``). Each moves it to one of the
named ``PodState``s:

- ``NOT_STARTED``: no pod seen yet;
- ``STARTING``: the pod's container runs and has an address; Prometheus does not answer /-/ready yet;
- ``READY``: Prometheus answered /-/ready in the pod the tracker holds;
- ``POD_REPLACED``: the pod is about to be deleted (its log kept, its URL forgotten) or the StatefulSet has placed
  its new one: any running container of the new pod is Prometheus back;
- ``CONTAINER_RESTART_EXPECTED``: Prometheus' container is killed in its pod: back once the kubelet has restarted
  it (``restarts_expected``, the restartCount to reach);
- ``NODE_LOST``: the pod's node is lost: the API goes on showing the dead container as running until the node is
  back, so only another container (not ``stale_container``) is Prometheus back;
- ``SCALED_TO_ZERO``: the owner was scaled to 0 and the pod deleted (``scaled_down_from``) until it is scaled back.

What a state expects stays until the next pod replaces it (as before the split: a restart count reached stays
reached in the same pod). The tracker also keeps Prometheus' logs: a deleted pod takes its log with it, and a lost
node's kubelet serves none, so the log of a container about to go is saved to the run's logs directory first.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import InfraError, NotRecovered
from harness.kube.api import KubeApi
from harness.kube.pods import PodInfo
from harness.prom import PromClient
from harness.promlog import storage_errors, wal_replay_durations_s
from harness.runtime.base import (
    NotReady,
    Recovery,
    StageMark,
    await_healthy_then_ready,
    not_ready,
    not_recovered_on_timeout,
)
from harness.runtime.kubernetes.csi_stages import CsiStages
from harness.runtime.kubernetes.resources import DELETE_TIMEOUT_S, Created
from harness.runtime.manifests.common import Names
from harness.runtime.manifests.prometheus import CONTAINER
from harness.stages import StageId

HTTP_TIMEOUT_S = 2.0


class PodState(enum.Enum):
    """Where the pod Prometheus runs in stands, as the tracker last saw it or was told (the module's docstring)."""

    NOT_STARTED = "not started"
    STARTING = "starting"
    READY = "ready"
    POD_REPLACED = "pod replaced"
    CONTAINER_RESTART_EXPECTED = "container restart expected"
    NODE_LOST = "node lost"
    SCALED_TO_ZERO = "scaled to zero"


class PodTracker:
    """The pod of the run's Prometheus and what was done to it; ``reach`` turns a running pod into its URL."""

    def __init__(
        self, api: KubeApi, names: Names, logs_dir: Path, created: Created, reach: Callable[[PodInfo], str]
    ) -> None:
        self.api, self.names, self.logs_dir = api, names, logs_dir
        self.created = created  # the run's objects: its namespace (no log before it) and its own PV
        self.reach = reach
        self.state = PodState.NOT_STARTED
        self.pod: PodInfo | None = None
        self.url: str | None = None  # from STARTING on, until the pod or its container is about to go
        self.restarts_expected = 0  # CONTAINER_RESTART_EXPECTED: the container's restartCount to reach
        self.stale_container = ""  # NODE_LOST: the container that died with its node, whatever the API says
        self.scaled_down_from: PodInfo | None = None  # SCALED_TO_ZERO: the pod the scale to 0 removed
        self.ready_uid: str | None = None  # the pod that was last ready: tells a new pod from a restarted container
        self.nodes_seen: list[str] = []  # the nodes Prometheus was ready on, in order
        self.lost_nodes: list[str] = []  # nodes stopped through the runtime and not started again yet
        self.cordoned: list[str] = []  # nodes cordoned through the runtime and not uncordoned yet
        self.signalled_at = 0.0  # when the last signal fault's exec returned: the signalled process scrapes no more
        self.csi = CsiStages(api, names.namespace, names.claim)  # a new pod's NodeStage/NodePublish, by the kubelet

    def require_pod(self) -> PodInfo:
        if self.pod is None:
            raise InfraError("Prometheus is not running (the kubernetes runtime was not started)")
        return self.pod

    def require_url(self) -> str:
        if self.url is None:
            raise InfraError("Prometheus is not reachable yet (no ready pod)")
        return self.url

    def instance(self) -> str:
        pod = self.pod
        if pod is None:
            return "(none)"
        c = pod.container(CONTAINER)
        restarts = max(c.restart_count if c is not None else 0, self.restarts_expected)
        return f"pod {pod.name} (uid {pod.uid[:8]}) on {pod.node or '(unscheduled)'}, container restart {restarts}"

    def forget(self) -> None:
        """The runtime stopped: no pod, no URL."""
        self.pod, self.url = None, None

    # --- what was done to the pod --------------------------------------------------------------------------------

    def pod_going(self) -> PodInfo:
        """The current pod is about to be deleted: its log is kept (the pod takes it along) and its URL forgotten;
        the kubelets' CSI calls so far are the baseline of the new pod's (``csi_stages``)."""
        pod = self._going()
        self.csi.arm(pod, [*self.cordoned, *self.lost_nodes])
        return pod

    def _going(self) -> PodInfo:
        pod = self.require_pod()
        self.save_log()
        self.url = None
        self.state = PodState.POD_REPLACED
        return pod

    def container_going(self) -> PodInfo:
        """Prometheus' container is about to be killed in its pod: its log is kept, and the recovery wait expects the
        kubelet to restart it (the next restartCount)."""
        pod = self._going()
        container = pod.container(CONTAINER)
        self.restarts_expected = (container.restart_count if container is not None else 0) + 1
        self.state = PodState.CONTAINER_RESTART_EXPECTED
        return pod

    def container_gone(self) -> None:
        """The signal (or cut) was delivered: from now the signalled process scrapes no more."""
        self.signalled_at = time.time()

    def node_going(self, node: str) -> None:
        """``node`` is about to be lost: a lost node's kubelet serves no logs, and the API goes on showing the dead
        container as running until the node is back, so only another container (a new ID) is Prometheus back."""
        pod = self.pod
        if pod is not None and pod.node == node:
            self.csi.arm(pod, [*self.cordoned, *self.lost_nodes, node])
            self.save_log()
            c = pod.container(CONTAINER)
            self.stale_container = c.container_id if c is not None else ""
            self.url = None
            self.state = PodState.NODE_LOST
        self.lost_nodes.append(node)

    def node_back(self, node: str) -> None:
        if node in self.lost_nodes:
            self.lost_nodes.remove(node)

    def scaled_down(self, pod: PodInfo) -> None:
        """The owner was scaled to 0 and ``pod`` is gone: no pod until it is scaled back (``await_new_pod``)."""
        self.scaled_down_from, self.pod = pod, None
        self.state = PodState.SCALED_TO_ZERO

    def await_new_pod(self, old: PodInfo) -> PodInfo:
        """Wait until the StatefulSet has replaced ``old`` and the scheduler has decided (a node, or why not)."""
        self.pod = self.api.wait_pod(
            old.namespace,
            old.name,
            # Until the scheduler has decided (a node, or why not), so the record names where the pod went.
            lambda p: p.uid != old.uid and not p.deleting and bool(p.node or p.unschedulable),
            what=f"the StatefulSet to create a new pod {old.name} and the scheduler to place it",
            timeout_s=DELETE_TIMEOUT_S,
        )
        self.restarts_expected = 0
        self.scaled_down_from = None
        self.state = PodState.POD_REPLACED
        self.csi.placed(self.pod)
        return self.pod

    # --- recovery ----------------------------------------------------------------------------------------------

    def wait_recovered(self, timeout_s: float) -> Recovery:
        """Wait for Prometheus' container to run (as the state expects), then for /-/healthy and /-/ready."""
        deadline = time.monotonic() + timeout_s
        waited_since = time.time()

        def remaining() -> float:
            return max(0.1, deadline - time.monotonic())

        names = self.names
        try:
            with not_recovered_on_timeout():
                pod = self.api.wait_pod(
                    names.namespace,
                    names.pod,
                    self.running,
                    what=f"Prometheus in pod {names.namespace}/{names.pod} to run"
                    + (f" (container restart {self.restarts_expected})" if self.restarts_expected else ""),
                    timeout_s=remaining(),
                    describe=self.describe,
                )
        except BaseException:
            self.csi.drop()  # no recovery to time: stop reading the kubelet
            raise
        self.csi.settle(pod)
        self.pod = pod
        self.url = url = self.reach(pod)
        self.state = PodState.STARTING
        with PromClient(url, timeout_s=HTTP_TIMEOUT_S) as client, not_recovered_on_timeout():
            up_at, ready_at = await_healthy_then_ready(
                client,
                f"{self.instance()}, at {url}",
                remaining=remaining,
                interval_s=0.05,
                describe=lambda: self.describe(self.api.read_pod(names.namespace, names.pod)),
                not_ready_at=lambda up_at: self._not_ready(client, timeout_s, waited_since, up_at),
            )
        self.pod = self.api.read_pod(names.namespace, names.pod) or pod
        self.state = PodState.READY
        if self.pod.node and self.pod.node not in self.nodes_seen:
            self.nodes_seen.append(self.pod.node)
        csi, note = self.csi.collect()
        stages = self._stages(self.pod, self.ready_uid, csi)
        self.ready_uid = self.pod.uid
        replays = wal_replay_durations_s(self.current_log())
        return Recovery(up_at, ready_at, replays[-1] if replays else None, stages=stages, stages_note=note)

    def _not_ready(self, client: PromClient, timeout_s: float, waited_since: float, up_at: float) -> NotReady:
        """Prometheus answered /-/healthy but not /-/ready in time: whether it still runs (the same container, still
        healthy), how far its replay got by its log, and the pod's state and events (a startup probe failing)."""
        names, was = self.names, self.pod
        pod = self.api.read_pod(names.namespace, names.pod)
        before = was.container(CONTAINER) if was is not None else None
        now = pod.container(CONTAINER) if pod is not None else None
        same = (
            pod is not None
            and was is not None
            and pod.uid == was.uid
            and now is not None
            and now.running
            and before is not None
            and now.restart_count == before.restart_count
        )
        csi, note = self.csi.collect()
        stages = self._stages(pod, self.ready_uid, csi) if pod is not None else ()
        return not_ready(
            self.instance(),
            timeout_s,
            waited_since_unix_s=waited_since,
            recovery=Recovery(up_at, None, None, stages=stages, stages_note=note),
            still_healthy=same and client.healthy(),
            log_text=self.current_log(),
            more=f"the pod: {self.describe(pod)}",
        )

    def _stages(self, pod: PodInfo, previous_uid: str | None, csi: tuple[StageMark, ...]) -> tuple[StageMark, ...]:
        """The stages the API recorded on the way back, from its objects' own timestamps (whole seconds): for a
        new pod its creation, scheduling, volume attach, the CSI driver's staging and publishing (``csi``, from the
        kubelet's metrics) and the mount; for a container restarted in its pod the end of the old container; for
        both, the start of the new one."""
        marks: list[StageMark] = []

        def mark(stage: StageId, at: float | None, source: str) -> None:
            if at is not None:
                marks.append(StageMark(stage, at, f"API: {source}", resolution_s=1.0))

        c = pod.container(CONTAINER)
        if pod.uid == previous_uid:
            mark("container_ended", c.last_finished_unix_s if c else None, "lastState.terminated.finishedAt")
        else:
            mark("pod_created", pod.created_unix_s, "metadata.creationTimestamp of the new pod")
            mark("scheduled", pod.true_since.get("PodScheduled"), "condition PodScheduled")
            attached = self.api.event_times(pod.namespace, "Pod", pod.uid, "SuccessfulAttachVolume")
            mark("volume_attached", attached[-1] if attached else None, "event SuccessfulAttachVolume")
            marks.extend(csi)
            mark(
                "volumes_mounted",
                pod.true_since.get("PodReadyToStartContainers"),
                "condition PodReadyToStartContainers",
            )
        mark("container_started", c.started_unix_s if c else None, "state.running.startedAt")
        return tuple(marks)

    def running(self, pod: PodInfo) -> bool:
        """The Prometheus container runs (after the expected restart, not the stale container of a lost node);
        raises on outcomes that will not change."""
        if pod.deleting:
            return False
        self.csi.placed(pod)  # a lost node's new pod is first seen here
        c = pod.container(CONTAINER)
        running = c is not None and c.running and bool(pod.ip) and c.restart_count >= self.restarts_expected
        if c is not None and running and (not self.stale_container or c.container_id != self.stale_container):
            self.stale_container = ""
            return True
        unavailable = [*self.cordoned, *self.lost_nodes]
        if "volume node affinity conflict" in pod.unschedulable and unavailable:
            raise NotRecovered(
                f"the pod cannot move: {pod.unschedulable}. Its PersistentVolume is pinned by nodeAffinity (a local "
                f"PV) to {', '.join(unavailable)} (cordoned or lost): Prometheus on a local PV cannot run anywhere "
                "else, so there is no Prometheus until that node is back"
            )
        claim_problem = self._stale_claim(pod)
        if claim_problem:
            raise NotRecovered(claim_problem)
        return False

    def _stale_claim(self, pod: PodInfo) -> str:
        """The field notes' redeploy trap: our PV is Released with the old claim's claimRef, the new claim Pending."""
        if pod.node or not self.created.volumes:
            return ""
        pv = self.api.read_pv(self.created.volumes[0])
        claim = self.api.read_pvc(self.names.namespace, self.names.claim)
        if pv is None or claim is None or claim.phase != "Pending" or pv.phase != "Released" or pv.claim_ref is None:
            return ""
        if pv.claim_ref.uid and pv.claim_ref.uid == claim.uid:
            return ""
        events = self.api.events(self.names.namespace, "PersistentVolumeClaim", claim.name)
        said = f" The claim's events: {events[-1]}." if events else ""
        return (
            f"claim {claim.namespace}/{claim.name} stays Pending: pv/{pv.name} is Released and still carries "
            f"claimRef {pv.claim_ref} from the deleted claim (reclaimPolicy {pv.reclaim_policy}); a Released PV is "
            f"not available to a new claim until its spec.claimRef is cleared or the PV is recreated.{said} "
            f"Scheduler: {pod.unschedulable or '(no message)'}"
        )

    def describe(self, pod: PodInfo | None) -> str:
        if pod is None:
            return f"no pod {self.names.pod} in {self.names.namespace}"
        text = pod.brief()
        events = self.api.events(pod.namespace, "Pod", pod.name)
        if events:
            text += "; last events: " + " | ".join(events[-3:])
        errors = storage_errors(self.current_log())
        if errors:
            line, meaning = errors[0]
            text += f"; Prometheus: {meaning} ({line})"
        return text

    # --- logs ----------------------------------------------------------------------------------------------

    def current_log(self) -> str:
        if self.created.namespace is None:
            return ""
        try:
            text = self.api.pod_log(self.names.namespace, self.names.pod, CONTAINER)
            # A container waiting to restart (CrashLoopBackOff) has no log of its own: its last run says why.
            return text or self.api.pod_log(self.names.namespace, self.names.pod, CONTAINER, previous=True)
        except InfraError:
            return ""

    def save_log(self) -> None:
        """Keep the log of the container about to go (a deleted pod takes its logs with it)."""
        pod = self.pod
        if pod is None:
            return
        text = self.current_log()
        if not text:
            return
        c = pod.container(CONTAINER)
        restarts = c.restart_count if c is not None else 0
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        (self.logs_dir / f"prometheus-{pod.uid[:8]}-restart{restarts}.log").write_text(text)
