"""The capabilities the Kubernetes runtime hands out (``harness.capabilities``), each owning its state:

- ``KubeSignals``: ``kill`` from the tools sidecar, which sees Prometheus through the pod's shared process
  namespace; the kubelet restarts the container in the same pod;
- ``KubeFaultLayer``: the fault layer (``harness.datapath.fault_fuse``) as a privileged native sidecar of Prometheus'
  pod,
  commanded by exec;
- ``KubeVolatileBelow``: nothing below a pod's volume is the harness's to cut (the node's storage stack);
- ``KubeNodes``: the scenario's commands lose a node and bring it back; the API says when Kubernetes noticed;
- ``KubeKubelet``: the scenario's commands stop and start the kubelet of Prometheus' node; the node's container
  runtime, and Prometheus' container with it, keeps running;
- ``KubeVolumeFill``: a pod of the run's on Prometheus' node fills the volume (``harness.runtime.kube_fill``);
- ``KubeExport``: the export the run's NFS PV names, which this host's own NFS client reaches;
- ``KubeCephClient``: the scenario's command restarts ceph-csi's node plugin on Prometheus' node (its ceph-fuse
  mounts die with it); Prometheus' answers to the load say what it met;
- ``KubeServerControl``: stops and starts the storage server the run started (embedded NFS-Ganesha or tgt) under
  the pod; the nodes' client (the kubelet's mount) is theirs, so the data path's return is Prometheus answering
  a remote write again, and what the client said is what the pod's node appended to its kernel log meanwhile
  (``kern.log`` as its kubelet serves it, ``harness.kube.node_logs``).

They act on the pod the runtime tracks and tell its tracker (``harness.runtime.kubernetes.pods``) what they did to
it (``container_going``, ``pod_going``, ``node_going``), so its recovery wait knows what to expect.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from typing import TYPE_CHECKING, Any

from harness import proc
from harness.capabilities.ceph import CephClientControl
from harness.capabilities.export import ExportReach
from harness.capabilities.fault_layer import FaultLayerControl, IoFault, PowerCut
from harness.capabilities.kubelet import KubeletControl
from harness.capabilities.nodes import NodeLifecycle
from harness.capabilities.signals import SignalControl
from harness.capabilities.storage_server import ServerControl
from harness.capabilities.volatile_below import VolatileBelow
from harness.capabilities.volume_fill import VolumeFill, VolumeFiller
from harness.datapath.fault_protocol import CUT_KILL, IO_CLEAR, cut_report, io_counts
from harness.errors import InfraError, PrometheusError, WaitTimeout
from harness.fmt import shorten
from harness.kube.node_logs import log_since, log_size
from harness.kube.pods import PodInfo
from harness.prom import PromClient, ServerWrites
from harness.runtime.fault_layer import WAL_DIR, cut_detail, io_set_command, io_summary
from harness.runtime.kube_fill import PodFill
from harness.runtime.manifests.prometheus import CONTAINER, DATA_DIR, LAYER_CONTAINER, LAYER_REPORT, TOOLS_CONTAINER
from harness.storage.base import EmbeddedServer, ExportAccess
from harness.wait import wait_for

if TYPE_CHECKING:
    from harness.runtime.kubernetes import KubernetesRuntime

log = logging.getLogger(__name__)

LAYER_COMMAND_TIMEOUT_S = 60.0  # python's start in the sidecar, then a command the layer answers at once
NODE_COMMAND_TIMEOUT_S = 300.0  # a cloud CLI stopping or starting an instance
# How long a ceph_client_crash watches for Prometheus' first refused write (the load writes every interval, 1 s
# by default): the recovery wait starts only after it, so a mount that survived delays its stages by this much.
CLIENT_WATCH_S = 5.0
# Where a node's kernel storage clients (NFS, open-iscsi) log on most distributions (rsyslog's kernel facility).
NODE_CLIENT_LOG = "kern.log"


class KubeSignals(SignalControl):
    def __init__(self, runtime: KubernetesRuntime) -> None:
        self.runtime = runtime

    def send(self, sig: signal.Signals) -> tuple[float, str]:
        rt = self.runtime
        pod = rt.tracker.container_going()
        name = sig.name.removeprefix("SIG")
        # pidof and kill run in the sidecar, which sees Prometheus through the pod's shared process namespace.
        script = f"pid=$(/bin/busybox pidof prometheus) && /bin/busybox kill -{name} $pid && echo $pid"
        injected = time.time()
        out = rt.api.exec(pod.namespace, pod.name, TOOLS_CONTAINER, ["/bin/busybox", "sh", "-c", script]).strip()
        rt.tracker.container_gone()
        if not out.isdigit():
            raise InfraError(
                f"could not send {sig.name} to Prometheus in {pod.namespace}/{pod.name}: {out or '(no output)'}"
            )
        return (
            injected,
            f"{sig.name} to Prometheus (pid {out} in the pod); the kubelet restarts the container in the same pod",
        )


class KubeVolatileBelow(VolatileBelow):
    """Below a pod's volume is the node's storage stack (its kernel, the CSI driver's client), never the harness's
    to cut: the power cut takes the page cache the fault layer holds, nothing below."""

    def held(self) -> str:
        return "the node's storage stack under the pod's volume is not the harness's to cut"

    def volatile(self) -> bool:
        return False

    def lose(self) -> str:
        raise InfraError("the harness cuts nothing below a pod's volume")


class KubeFaultLayer(FaultLayerControl):
    def __init__(self, runtime: KubernetesRuntime) -> None:
        self.runtime = runtime
        self._io_fault: IoFault | None = None  # set in the layer's sidecar, until healed

    def power_cut(self, below: VolatileBelow) -> PowerCut:
        """The layer kills Prometheus and cuts in one request (``cut-kill``): the kubelet, not the harness, restarts
        the container, and the layer refuses every change until the killed process is gone."""
        pod = self.runtime.tracker.container_going()
        injected = time.time()
        answer = self._command(pod, CUT_KILL)
        self.runtime.tracker.container_gone()
        cut = cut_report(answer)
        detail = cut_detail(
            cut,
            where=f"{DATA_DIR} (the fault layer's sidecar in pod {pod.name})",
            killed=f"SIGKILL to Prometheus (pid {answer.get('killed_pid')} in the pod) in the same request",
            injected=injected,
            layer_since="the pod's layer came up",
            after=(
                f"below the filesystem it took nothing more ({below.held()}); the kubelet restarts the container in "
                "the same pod on what was durable"
            ),
        )
        log.info("%s (reverted %s, removed %s)", detail, cut.reverted, cut.removed)
        return PowerCut(injected, detail, cut.last_fsync_under(WAL_DIR))

    def io_fault(self, fault: IoFault) -> tuple[float, str]:
        pod = self.runtime.tracker.require_pod()
        answer = self._command(pod, io_set_command(fault))
        self._io_fault = fault
        return float(answer["set_at_unix_s"]), (
            f"{fault.describe()} in {DATA_DIR} (the fault layer's sidecar in pod {pod.name}), while Prometheus runs"
        )

    def io_heal(self) -> str:
        fault, self._io_fault = self._io_fault, None
        if fault is None:
            return "no I/O fault was set"
        pod = self.runtime.tracker.require_pod()
        return io_summary(io_counts(self._command(pod, IO_CLEAR)), failing=fault.errno_name is not None)

    def _command(self, pod: PodInfo, command: str) -> dict[str, Any]:
        argv = ["python3", "-m", "harness.datapath.fault_fuse", DATA_DIR, "--report", LAYER_REPORT, "--send", command]
        api = self.runtime.api
        done = api.exec_run(pod.namespace, pod.name, LAYER_CONTAINER, argv, timeout_s=LAYER_COMMAND_TIMEOUT_S)
        what = command.split(maxsplit=1)[0]
        if done.returncode != 0:
            raise InfraError(
                f"the fault layer in pod {pod.name} did not take {what!r} (exit {done.returncode}): "
                f"{shorten((done.stderr or done.stdout).strip())}"
            )
        try:
            answer: dict[str, Any] = json.loads(done.stdout)
        except ValueError as e:
            raise InfraError(
                f"the fault layer in pod {pod.name} answered {what!r} with {shorten(done.stdout)!r}"
            ) from e
        return answer


class KubeNodes(NodeLifecycle):
    def __init__(self, runtime: KubernetesRuntime) -> None:
        self.runtime = runtime

    def stop_node(self, node: str, argv: list[str]) -> float:
        self.runtime.tracker.node_going(node)
        at = time.time()
        run_node_command(argv, node, f"stop node {node}")
        return at

    def start_node(self, node: str, argv: list[str], timeout_s: float) -> float:
        run_node_command(argv, node, f"start node {node}")
        self.runtime.api.wait_node(node, ready=True, timeout_s=timeout_s)
        self.runtime.tracker.node_back(node)
        return time.time()

    def wait_node(self, node: str, *, ready: bool, timeout_s: float) -> float:
        seen = self.runtime.api.wait_node(node, ready=ready, timeout_s=timeout_s)
        return seen.ready_changed_unix_s if seen.ready_changed_unix_s is not None else time.time()

    def force_delete_pod(self) -> tuple[float, str]:
        rt = self.runtime
        pod = rt.tracker.pod_going()
        deleted = time.time()
        rt.api.force_delete_pod(pod.namespace, pod.name)
        new = rt.tracker.await_new_pod(pod)
        kept = rt.kept_volume()
        where = new.node or f"no node yet ({new.unschedulable})"
        return deleted, f"pod {pod.name} force-deleted (grace period 0); the new pod: {where}, with {kept}"


class KubeKubelet(KubeletControl):
    def __init__(self, runtime: KubernetesRuntime) -> None:
        self.runtime = runtime

    def stop_kubelet(self, node: str, argv: list[str]) -> float:
        at = time.time()
        run_node_command(argv, node, f"stop the kubelet of node {node}", "kubelet_control")
        return at

    def start_kubelet(self, node: str, argv: list[str], timeout_s: float) -> float:
        run_node_command(argv, node, f"start the kubelet of node {node}", "kubelet_control")
        seen = self.runtime.api.wait_node(node, ready=True, timeout_s=timeout_s)
        return seen.ready_changed_unix_s if seen.ready_changed_unix_s is not None else time.time()

    def container_id(self) -> str:
        rt = self.runtime
        pod = rt.api.read_pod(rt.names.namespace, rt.names.pod)
        c = pod.container(CONTAINER) if pod is not None else None
        return c.container_id if c is not None else ""


class KubeVolumeFill(VolumeFiller):
    def __init__(self, runtime: KubernetesRuntime, pods: PodFill) -> None:
        self.runtime = runtime
        self.pods = pods

    def fill(self) -> VolumeFill:
        return self.pods.fill(self.runtime.tracker.require_pod().node)

    def free(self) -> None:
        self.pods.free()


class KubeExport(ExportReach):
    def __init__(self, runtime: KubernetesRuntime) -> None:
        self.runtime = runtime

    def data_export(self) -> ExportAccess:
        """The export the run's NFS PV names, with the data directory in it: this host's own NFS client writes there
        as another application's pod would (the harness host must reach the NFS server, as the nodes do)."""
        rt = self.runtime
        access = rt.backend.volume_export_access(rt.scenario.storage, rt.deployment.data_subdir)
        if access is None:
            raise InfraError(f"{rt.scenario.storage.backend} storage is no network export another client can mount")
        return access


def server_writes(runtime: KubernetesRuntime) -> ServerWrites | None:
    """Prometheus' own count of the remote writes it answered, by code (None: it does not answer now)."""
    url = runtime.base_url()
    if url is None:
        return None
    try:
        with PromClient(url, timeout_s=5.0) as prom:
            return prom.server_writes()
    except PrometheusError:
        return None


def run_node_command(argv: list[str], node: str, what: str, key: str = "node_control") -> None:
    """The scenario's command for a node (its ``key``), ``{node}`` replaced by the node's name; its failure is the
    harness's (ERROR)."""
    try:
        proc.run([a.replace("{node}", node) for a in argv], timeout_s=NODE_COMMAND_TIMEOUT_S)
    except InfraError as e:
        raise InfraError(f"could not {what} with the scenario's {key} command: {e}") from e


class KubeServerControl(ServerControl):
    """The embedded server's stop and start are this host's (as on the local runtime); its client is the node's."""

    def __init__(self, runtime: KubernetesRuntime, server: EmbeddedServer[Any]) -> None:
        self.runtime = runtime
        self.server = server
        self._back: tuple[float, str] | None = None
        self._accepted_at_back = 0
        self._node_log: tuple[str, int | None] | None = None  # the pod's node and its kernel log's length at the stop

    def _accepted(self) -> int | None:
        """Remote writes Prometheus answered with a 2xx so far (None: it does not answer, or its process changed)."""
        writes = server_writes(self.runtime)
        return writes.accepted_requests if writes is not None else None

    def stop(self) -> tuple[float, str]:
        self._back = None
        pod = self.runtime.tracker.pod
        self._node_log = (pod.node, self._log_size(pod.node)) if pod is not None and pod.node else None
        stopped = time.time()
        return stopped, self.server.halt()

    def _log_size(self, node: str) -> int | None:
        try:
            return log_size(self.runtime.api, node, NODE_CLIENT_LOG)
        except InfraError as e:
            log.warning("%s", e)
            return None

    def start(self) -> tuple[float, str]:
        asked = time.time()
        what = self.server.resume()
        back = time.time()
        self._back = (back, f"{what} ({back - asked:.1f} s to start)")
        # Writes may be answered during the outage too (a page cache between the WAL and the server): the data
        # path's return is counted from here.
        self._accepted_at_back = self._accepted() or 0
        return self._back

    def await_data_path(self, timeout_s: float) -> str:
        """After a restart: wait (bounded) until Prometheus answers one more remote write than it had when the server
        was back (each answered write was committed to its WAL on the volume first); when that was, in words."""
        if self._back is None:
            raise InfraError("the storage server was not started again")
        back, what = self._back
        seen = self._accepted_at_back
        try:
            wait_for(
                lambda: True if (self._accepted() or 0) > seen else None,
                what="Prometheus to answer a remote write after the storage server came back",
                timeout_s=timeout_s,
                interval_s=0.2,
            )
            served = f"Prometheus answered a remote write again {time.time() - back:.1f} s after it was back"
        except WaitTimeout:
            served = f"Prometheus had answered no further remote write {timeout_s:g} s after it was back"
        return f"{what}; {served}; {self._client_said()}"

    def _client_said(self) -> str:
        """What the storage client (the kubelet's mount on the pod's node) logged since the stop: the lines the node
        appended to its kernel log, as its kubelet serves it."""
        if self._node_log is None:
            return "the storage client's node was not known at the stop (no pod)"
        node, offset = self._node_log
        where = f"node {node}'s {NODE_CLIENT_LOG}"
        if offset is None:
            return f"what the storage client logged is not known: {where} is not served by its kubelet (/logs/)"
        try:
            text = log_since(self.runtime.api, node, NODE_CLIENT_LOG, offset)
        except InfraError as e:
            return f"what the storage client logged is not known: {e}"
        if text is None:
            return f"what the storage client logged is not known: {where} is no longer served"
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            return f"the storage client logged nothing meanwhile ({where})"
        quoted = "; ".join(f"'{line[:240]}'" for line in lines[:3])
        more = f" (and {len(lines) - 3} more lines)" if len(lines) > 3 else ""
        return f"the storage client logged {len(lines)} line(s) in {where}: {quoted}{more}"


class KubeCephClient(CephClientControl):
    """On a cluster the Ceph client under Prometheus is ceph-csi's: its node plugin on Prometheus' node runs
    ceph-fuse (``mounter: fuse``), so restarting the plugin (the scenario's command) kills the pod's client and its
    mount answers "Transport endpoint is not connected". Nothing remounts it while the pod runs: ceph-csi restores a
    dead fuse mount only when a volume is staged or published again (a new pod). What the harness sees of it is what
    Prometheus answers the load's remote writes (its own ``/metrics``), never the node's mounts."""

    def __init__(self, runtime: KubernetesRuntime) -> None:
        self.runtime = runtime

    def kill_client(self, node_plugin_restart: list[str] | None) -> tuple[float, str]:
        if node_plugin_restart is None:  # refused before the run (CephClientControl.storage_refusal)
            raise InfraError("ceph_client_crash on a cluster needs node_plugin_restart")
        node = self.runtime.tracker.require_pod().node
        before = server_writes(self.runtime)
        began = time.time()
        run_node_command(
            node_plugin_restart, node, f"restart ceph-csi's node plugin on node {node}", "node_plugin_restart"
        )
        # The fault is injected when the command returns: the client is dead by then (a plugin's pod deleted, its
        # processes gone), while a write Prometheus acknowledged during the command may still have reached the
        # volume, and must not count as its recovery (measured: one did, 0.15 s after the command began).
        at = time.time()
        return at, (
            f"ran node_plugin_restart for node {node} (it took {at - began:.1f} s; the fault counts from its end); "
            f"{self._refusals(before, at)}; nothing remounts the volume while the pod runs (ceph-csi restores a dead"
            " fuse mount only at a new stage or publish)"
        )

    def _refusals(self, before: ServerWrites | None, at: float) -> str:
        """Whether Prometheus refused a remote write within ``CLIENT_WATCH_S`` of the restart, and when."""
        if before is None:
            return "Prometheus' own count of the writes it answered was not readable before the restart"
        failed_before = before.refused_requests

        def refused() -> ServerWrites | None:
            now = server_writes(self.runtime)
            same = now is not None and now.process_start_unix_s == before.process_start_unix_s
            return now if same and now is not None and now.refused_requests > failed_before else None

        try:
            seen = wait_for(
                refused,
                what="Prometheus to refuse a remote write on the volume whose client the restart killed",
                timeout_s=CLIENT_WATCH_S,
                interval_s=0.2,
            )
        except WaitTimeout:
            return (
                f"Prometheus refused no remote write in the {CLIENT_WATCH_S:g} s after (a kernel mounter's mount, or a"
                " load that does not write, outlives the plugin)"
            )
        codes = ", ".join(f"{n}x HTTP {c}" for c, n in seen.write_requests.items() if not c.startswith("2"))
        return f"Prometheus refused its first remote write within {time.time() - at:.1f} s ({codes})"
