"""The CSI driver's own stages of a new pod's way back: ``volume_staged`` (its ``NodeStageVolume`` returned OK)
and ``volume_published`` (``NodePublishVolume``), read from the new pod's kubelet's ``csi_operations_seconds``
through the API (``harness.kube.kubelet_metrics``); the kubelet sends no event for either.

Before a fault replaces the pod (``arm``), the tracker takes every schedulable node's calls to the driver of the
claim's PV as the baseline (the new pod's node is not known yet); once the new pod is placed (``placed``), a thread
reads that node's kubelet at once and every ``POLL_S`` until both calls succeeded; when the container runs
(``settle``), one last reading. A call completed between two readings of the node: its mark is at the earlier one
(never before the pod was scheduled) with the span up to the later one as its resolution, as the API's truncated
seconds are marked at their start. Where nothing can be shown (no CSI volume, a kubelet that serves no metrics, a
call that did not happen in the window), there is no mark and the recovery's ``stages_note`` says why, once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from harness.errors import InfraError
from harness.kube.api import KubeApi
from harness.kube.kubelet_metrics import CSI_METRIC, OK, PUBLISH, STAGE, Calls, CsiCalls, csi_calls
from harness.kube.pods import PodInfo
from harness.runtime.base import StageMark
from harness.stages import StageId

POLL_S = 0.5
READ_TIMEOUT_S = 5.0  # one reading of a kubelet's metrics through the API
MAX_POLL_S = 900.0  # the thread's own bound, should nobody settle the watch (a wait that raised is dropped anyway)

_METHODS: dict[StageId, str] = {"volume_staged": STAGE, "volume_published": PUBLISH}


def _short(method: str) -> str:
    return method.rsplit("/", 1)[-1]


@dataclass
class CsiWatch:
    """One fault's watch of one driver: the kubelets' calls before it, then the new pod's node's."""

    driver: str  # "": no CSI volume (``CsiStages`` has the note why)
    old_uid: str  # the pod the fault replaces: its node is not the new pod's
    baseline: dict[str, CsiCalls | None]  # node -> its reading before the fault (None: it served no metrics)
    unread: dict[str, str]  # node -> why its reading before the fault failed (the API did not answer)
    node: str = ""  # the new pod's, once placed
    scheduled_at: float = 0.0  # the new pod's PodScheduled (whole seconds): no call of it completed before
    last: CsiCalls | None = None  # the node's latest reading
    failed: dict[str, dict[str, Calls]] = field(default_factory=dict)  # method -> status -> failed calls so far
    marks: dict[StageId, StageMark] = field(default_factory=dict)
    problem: str = ""  # why the node's calls could not be read

    def saw(self, before: CsiCalls, now: CsiCalls) -> None:
        """Two readings of the node's kubelet: the stages whose call succeeded in between (the first time), and the
        calls that failed."""
        grown = now.since(before)
        for stage, method in _METHODS.items():
            for (m, status), calls in grown.items():
                if m == method and status != OK:
                    was = self.failed.setdefault(method, {}).get(status, Calls(0, 0.0))
                    self.failed[method][status] = Calls(was.count + calls.count, was.seconds + calls.seconds)
            done = grown.get((method, OK))
            if done is None or stage in self.marks:
                continue
            took = f"took {done.seconds:.3f} s" if done.count == 1 else f"{done.count} calls took {done.seconds:.3f} s"
            failed = "".join(
                f"; before it {c.count} call(s) failed (grpc {status}, {c.seconds:.3f} s)"
                for status, c in sorted(self.failed.get(method, {}).items())
            )
            at = max(before.sent_at, self.scheduled_at)
            self.marks[stage] = StageMark(
                stage,
                at,
                f"kubelet metric {CSI_METRIC} via the API (node {self.node}): {_short(method)} {took} "
                f"(grpc {OK}){failed}",
                resolution_s=round(max(0.0, now.received_at - at), 3),
            )

    def why_missing(self) -> str:
        """Why a stage has no mark, once ("" when both have one, or the new pod was never placed)."""
        missing = [stage for stage in _METHODS if stage not in self.marks]
        if not missing or not self.node:
            return ""
        names = " and ".join(missing)
        if self.node in self.unread:
            return f"{names} not shown: before the fault, {self.unread[self.node]}"
        if self.node not in self.baseline:
            return f"{names} not shown: node {self.node} was not read before the fault (not Ready or unschedulable)"
        if self.baseline[self.node] is None:
            return (
                f"{names} not shown: node {self.node}'s kubelet served no metrics through the API (403 or 404: no "
                "nodes/proxy right?)"
            )
        if self.problem:
            return f"{names} not shown: {self.problem}"
        said = []
        for stage in missing:
            method = _METHODS[stage]
            failed = self.failed.get(method, {})
            if failed:
                tries = ", ".join(f"{c.count} x grpc {status}" for status, c in sorted(failed.items()))
                said.append(f"{_short(method)} failed ({tries}) and did not succeed")
            else:
                said.append(f"no {_short(method)} completed")
        return (
            f"kubelet metric {CSI_METRIC} of node {self.node} ({self.driver}): {'; '.join(said)} between the fault "
            "and the container's start (a volume still staged on the node is not staged again)"
        )


class CsiStages:
    """The tracker's watch of the CSI calls for the run's claim (``names``' namespace and claim)."""

    def __init__(self, api: KubeApi, namespace: str, claim: str, *, interval_s: float = POLL_S) -> None:
        self.api, self.namespace, self.claim, self.interval_s = api, namespace, claim, interval_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: CsiWatch | None = None
        self._note = ""  # why the fault armed has no driver to watch (no CSI volume)

    def arm(self, old: PodInfo, unavailable: list[str]) -> None:
        """A fault is about to replace the pod: the claim's driver, and every node's calls to it as the baseline
        (except the ``unavailable`` nodes, cordoned or lost, and nodes not Ready: the new pod goes to none of
        them)."""
        self.drop()
        driver, self._note = self._driver()
        baseline: dict[str, CsiCalls | None] = {}
        unread: dict[str, str] = {}
        for node in self.api.nodes() if driver else ():
            if node.ready and node.schedulable and node.name not in unavailable:
                try:
                    baseline[node.name] = csi_calls(self.api, node.name, driver, timeout_s=READ_TIMEOUT_S)
                except InfraError as e:
                    unread[node.name] = str(e)
        self._watch = CsiWatch(driver, old.uid, baseline, unread)

    def placed(self, pod: PodInfo) -> None:
        """The new pod is on ``pod.node``: poll its kubelet (from a thread, until both calls succeeded)."""
        if self._place(pod) and self._watch is not None and self._watch.driver:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"csi-calls-{pod.node}", daemon=True)
            self._thread.start()

    def settle(self, pod: PodInfo) -> None:
        """The new pod's container runs, so its volumes were staged and published: stop polling and read once more."""
        self._join()
        self._place(pod)
        watch = self._watch
        if watch is not None and watch.driver and watch.node and len(watch.marks) < len(_METHODS):
            self._poll(watch)

    def _place(self, pod: PodInfo) -> bool:
        """Note the new pod's node; False when there is nothing new (no watch, not placed, the old pod, known)."""
        watch = self._watch
        if watch is None or not pod.node or pod.uid == watch.old_uid or watch.node:
            return False
        with self._lock:
            watch.node, watch.scheduled_at = pod.node, pod.true_since.get("PodScheduled", 0.0)
            watch.last = watch.baseline.get(pod.node)
        return True

    def drop(self) -> None:
        """Stop polling (the wait gave up, or another fault comes)."""
        self._join()

    def collect(self) -> tuple[tuple[StageMark, ...], str]:
        """The fault's CSI stages and, where some could not be shown, why (once); then forget the fault."""
        self._join()
        watch, note = self._watch, self._note
        self._watch, self._note = None, ""
        if watch is None or not watch.node:
            return (), ""  # no new pod (a container restarted in its pod, the first start): nothing staged again
        if not watch.driver:
            return (), note
        marks = tuple(watch.marks[stage] for stage in _METHODS if stage in watch.marks)
        return marks, watch.why_missing()

    # --- the thread --------------------------------------------------------------------------------------------

    def _join(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(READ_TIMEOUT_S + 1)
            self._thread = None

    def _run(self) -> None:
        # At once, then every interval: a reading soon after the pod was placed likely precedes its NodeStageVolume,
        # which bounds the mark closer than the scheduled time's whole second.
        watch, waited = self._watch, 0.0
        while watch is not None and self._poll(watch) and waited < MAX_POLL_S:
            if self._stop.wait(self.interval_s):
                return
            waited += self.interval_s

    def _poll(self, watch: CsiWatch) -> bool:
        """One reading of the node's kubelet; False when there is nothing more to poll for."""
        try:
            now = csi_calls(self.api, watch.node, watch.driver, timeout_s=READ_TIMEOUT_S)
        except InfraError as e:
            with self._lock:
                watch.problem = str(e)
            return True  # the API may answer at the next poll
        with self._lock:
            if now is None:
                watch.problem = f"node {watch.node}'s kubelet served no metrics (403 or 404 through the API)"
                return False
            before, watch.last, watch.problem = watch.last, now, ""
            if before is None:  # no baseline: this reading is the first, calls before it are not seen
                return True
            watch.saw(before, now)
            return len(watch.marks) < len(_METHODS)

    # --- the claim ---------------------------------------------------------------------------------------------

    def _driver(self) -> tuple[str, str]:
        """The CSI driver of the claim's PV, or "" and why there is none."""
        claim = self.api.read_pvc(self.namespace, self.claim)
        if claim is None:
            return "", "no claim (an emptyDir): no CSI volume to stage or publish"
        pv = self.api.read_pv(claim.volume_name) if claim.volume_name else None
        if pv is None:
            return "", f"claim {self.claim} is bound to no PV: no CSI volume seen"
        driver = str((pv.volume_source.get("csi") or {}).get("driver") or "")
        if not driver:
            return "", f"pv/{pv.name} is not a CSI volume ({pv.source or 'no source'}): no CSI stages"
        return driver, ""
