"""``KubeApi``: the calls the kubernetes runtime (and ``harness cleanup``) makes: create, read, list, patch and
delete objects through the one table of kinds (``harness.kube.kinds``), bounded list+watch waits that name what they
waited for, pod logs, exec, events, cordon/uncordon. API and transport errors are re-raised as ``InfraError`` naming
the kubeconfig and the call, with the payload shortened.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, TypeVar

from harness.errors import InfraError, WaitTimeout
from harness.fmt import shorten
from harness.kube.contexts import API_TIMEOUT_S, new_client
from harness.kube.decode import decode_node, decode_pv, decode_pvc, decode_storage_class
from harness.kube.inventory import Manifest, NodeInfo, PvcInfo, PvInfo, StorageClassInfo
from harness.kube.kinds import KINDS, Kind, UnsupportedKind, Verb
from harness.kube.pods import PodInfo, decode_pod, event_lines, event_times
from harness.wait import wait_for

T = TypeVar("T")

FOLLOW_READ_TIMEOUT_S = 3600.0  # a followed log may be quiet for long (a container between its outputs)

WATCH_CHUNK_S = 30  # one watch request at most this long; the loop re-lists and re-watches until the deadline


@dataclass(frozen=True)
class ObjectInfo:
    """Any object as ``harness cleanup`` sees it: its name and marks, and the few fields it acts on."""

    kind: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    unschedulable: bool = False  # a Node
    reclaim_policy: str = ""  # a PersistentVolume
    deleting: bool = False


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str


class KubeApi:
    """The calls the kubernetes runtime makes, each wrapped so API and transport errors become ``InfraError``."""

    def __init__(self, kubeconfig: str | None = None, *, context: str | None = None) -> None:
        import kubernetes
        from kubernetes.config.config_exception import ConfigException

        self.where = f"kubeconfig {kubeconfig or '(default: $KUBECONFIG or ~/.kube/config)'}"
        try:
            self._client = new_client(kubeconfig, context)
            # `stream` (exec) swaps the request function of the client it is given: it gets a client of its own.
            self._stream_client = new_client(kubeconfig, context)
        except (ConfigException, OSError) as e:
            raise InfraError(f"cannot use {self.where}: {e}") from e
        self.core: Any = kubernetes.client.CoreV1Api(self._client)
        self.apps: Any = kubernetes.client.AppsV1Api(self._client)
        self.storage: Any = kubernetes.client.StorageV1Api(self._client)
        self.custom: Any = kubernetes.client.CustomObjectsApi(self._client)
        self.extensions: Any = kubernetes.client.ApiextensionsV1Api(self._client)
        self.batch: Any = kubernetes.client.BatchV1Api(self._client)

    def close(self) -> None:
        self._client.close()
        self._stream_client.close()

    def raw(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        timeout_s: float = API_TIMEOUT_S,
    ) -> Any:
        """A request to an API server path the typed client does not serve (a pod's port, a node's kubelet, through
        the API server's proxy), with this client's own connection pool (its TLS) and token; the urllib3 response,
        read whole. Raises what urllib3 raises (``HTTPError``, ``OSError``): the caller says what it was reading."""
        client: Any = self._client
        sent = dict(headers or {})
        auth = client.configuration.api_key.get("authorization") or client.configuration.api_key.get("BearerToken")
        if auth:
            sent["Authorization"] = auth
        return client.rest_client.pool_manager.request(
            method,
            f"{client.configuration.host}{path}",
            body=body,
            headers=sent,
            timeout=timeout_s,
            retries=False,
            preload_content=True,
        )

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError
        from websocket import WebSocketException  # exec's transport

        try:
            yield
        except WebSocketException as e:
            raise InfraError(f"could not {what} via {self.where}: {shorten(str(e))}") from e
        except ApiException as e:
            raise InfraError(
                f"Kubernetes API error while trying to {what} via {self.where}: {e.status} {e.reason}: "
                f"{_api_message(e.body)}"
            ) from e
        except (HTTPError, OSError) as e:
            raise InfraError(f"cannot reach the Kubernetes API to {what} via {self.where}: {shorten(str(e))}") from e

    # --- create / read / patch / delete: KINDS says which -----------------------------------------------------------

    def _method(self, kind: str, verb: Verb) -> tuple[Kind, Callable[..., Any]]:
        """``kind``'s row of ``KINDS`` and the client method doing ``verb`` to it."""
        spec = KINDS.get(kind)
        if spec is None:
            raise UnsupportedKind(f"KubeApi handles no kind {kind!r} (it handles {', '.join(KINDS)})")
        if verb not in spec.verbs:
            can = ", ".join(sorted(spec.verbs))
            raise UnsupportedKind(f"KubeApi cannot {verb} a {kind} (what it does to a {kind}: {can})")
        return spec, getattr(getattr(self, spec.api), spec.method(verb))

    def create(self, manifest: Manifest, *, dry_run: bool = False) -> None:
        """Create the object; ``dry_run``: only ask the API server (``dryRun=All``: admission and validation run,
        nothing is stored), as ``kubectl create --dry-run=server`` does; its rejection is the same InfraError."""
        kind, meta = manifest["kind"], manifest["metadata"]
        spec, create = self._method(kind, "create")
        kw: dict[str, Any] = {"_request_timeout": API_TIMEOUT_S, **({"dry_run": "All"} if dry_run else {})}
        with self._call(f"{'dry-run ' if dry_run else ''}create {kind} {meta['name']}"):
            create(*spec.args("create", manifest, meta.get("namespace", "")), **kw)

    def list_objects(self, kind: str, label_selector: str = "") -> list[ObjectInfo]:
        """The cluster-scoped objects of ``kind`` (Namespace, PersistentVolume, StorageClass, Node) matching
        ``label_selector``."""
        _, list_fn = self._method(kind, "list")
        with self._call(f"list {kind} objects" + (f" labelled {label_selector}" if label_selector else "")):
            items = list_fn(label_selector=label_selector, _request_timeout=API_TIMEOUT_S).items
        return [
            ObjectInfo(
                kind=kind,
                name=o.metadata.name,
                labels=dict(o.metadata.labels or {}),
                annotations=dict(o.metadata.annotations or {}),
                unschedulable=bool(kind == "Node" and o.spec.unschedulable),
                reclaim_policy=(o.spec.persistent_volume_reclaim_policy or "") if kind == "PersistentVolume" else "",
                deleting=o.metadata.deletion_timestamp is not None,
            )
            for o in items
        ]

    def _patch(self, kind: str, name: str, namespace: str, body: Manifest, *, what: str) -> None:
        spec, patch = self._method(kind, "patch")
        with self._call(what):
            patch(*spec.args("patch", name, namespace), body, _request_timeout=API_TIMEOUT_S)

    def set_reclaim_policy(self, pv: str, policy: str) -> None:
        body: Manifest = {"spec": {"persistentVolumeReclaimPolicy": policy}}
        self._patch(
            "PersistentVolume", pv, "", body, what=f"set the reclaimPolicy of PersistentVolume {pv} to {policy}"
        )

    def exists(self, kind: str, name: str, namespace: str = "") -> bool:
        return self._read(kind, name, namespace) is not None

    def labels_of(self, kind: str, name: str, namespace: str = "") -> dict[str, str] | None:
        """The object's labels, or None when it does not exist."""
        obj = self._read(kind, name, namespace)
        return None if obj is None else dict(obj.metadata.labels or {})

    def _read(self, kind: str, name: str, namespace: str) -> Any:
        """The client's object (a custom resource as ``_labelled``), or None when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        spec, read = self._method(kind, "read")
        with self._call(f"read {kind} {name}"):
            try:
                obj = read(*spec.args("read", name, namespace), _request_timeout=API_TIMEOUT_S)
            except ApiException as e:
                if e.status == 404:
                    return None
                raise
        return _labelled(obj) if spec.custom is not None else obj

    def _read_as(self, decode: Callable[[Any], T], kind: str, name: str, namespace: str) -> T | None:
        """The object as ``decode`` reads the client's, or None when it does not exist."""
        obj = self._read(kind, name, namespace)
        return None if obj is None else decode(obj)

    def delete(self, kind: str, name: str, namespace: str = "", *, wait_s: float | None = None) -> None:
        """Delete (foreground: dependents first); absent is fine. With ``wait_s``, wait until it is gone."""
        from kubernetes.client.exceptions import ApiException

        spec, delete = self._method(kind, "delete")
        kw: dict[str, Any] = {"_request_timeout": API_TIMEOUT_S, "propagation_policy": "Foreground"}
        with self._call(f"delete {kind} {name}"):
            try:
                delete(*spec.args("delete", name, namespace), **kw)
            except ApiException as e:
                if e.status != 404:
                    raise
        if wait_s is not None:
            self.wait_gone(kind, name, namespace, timeout_s=wait_s)

    def wait_gone(self, kind: str, name: str, namespace: str = "", *, timeout_s: float) -> None:
        where = f"{namespace}/" if namespace else ""
        wait_for(
            lambda: not self.exists(kind, name, namespace),
            what=f"{kind} {where}{name} to be deleted",
            timeout_s=timeout_s,
            interval_s=0.5,
        )

    def wait_service_account(self, namespace: str, *, timeout_s: float) -> None:
        """A new namespace gets its ``default`` ServiceAccount a moment later; pods are refused until then."""
        self._watch(
            self.core.list_namespaced_service_account,
            {"namespace": namespace, "field_selector": "metadata.name=default"},
            lambda sa: True,
            what=f"ServiceAccount {namespace}/default",
            timeout_s=timeout_s,
        )

    # --- pods -------------------------------------------------------------------------------------------------------

    def read_pod(self, namespace: str, name: str) -> PodInfo | None:
        return self._read_as(decode_pod, "Pod", name, namespace)

    def wait_pod(
        self,
        namespace: str,
        name: str,
        predicate: Callable[[PodInfo], bool],
        *,
        what: str,
        timeout_s: float,
        describe: Callable[[PodInfo | None], str] | None = None,
    ) -> PodInfo:
        """List + watch pod ``name`` until ``predicate`` holds; ``predicate`` may raise to give up early."""
        raw = self._watch(
            self.core.list_namespaced_pod,
            {"namespace": namespace, "field_selector": f"metadata.name={name}"},
            lambda o: predicate(decode_pod(o)),
            what=what,
            timeout_s=timeout_s,
            describe=lambda o: (
                describe(None if o is None else decode_pod(o))
                if describe
                else ("nothing" if o is None else decode_pod(o).brief())
            ),
        )
        return decode_pod(raw)

    def pods(self, namespace: str, label_selector: str) -> list[PodInfo]:
        with self._call(f"list the pods {label_selector} in {namespace}"):
            listed = self.core.list_namespaced_pod(
                namespace, label_selector=label_selector, _request_timeout=API_TIMEOUT_S
            )
        return [decode_pod(o) for o in listed.items]

    def service_ip(self, namespace: str, name: str) -> str:
        obj = self._read("Service", name, namespace)
        if obj is None or not obj.spec.cluster_ip or obj.spec.cluster_ip == "None":
            raise InfraError(f"Service {namespace}/{name} has no cluster IP")
        return str(obj.spec.cluster_ip)

    def follow_log(self, namespace: str, pod: str, container: str) -> Iterator[str]:
        """The container's log line by line as it is written, until the container ends (``kubectl logs -f``).
        The container must have started. The stream lasts as long as the container; a read gives up after
        ``FOLLOW_READ_TIMEOUT_S`` without a byte (the client takes no unbounded read timeout)."""
        from urllib3.exceptions import HTTPError

        with self._call(f"follow the log of {namespace}/{pod} container {container}"):
            response = self.core.read_namespaced_pod_log(
                pod, namespace, container=container, follow=True, _preload_content=False,
                _request_timeout=(API_TIMEOUT_S, FOLLOW_READ_TIMEOUT_S),
            )  # fmt: skip
        try:
            pending = b""
            for chunk in response.stream(64 * 1024, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if pending:
                yield pending.decode(errors="replace")
        except (OSError, ValueError, HTTPError) as e:
            raise InfraError(f"the log of {namespace}/{pod} broke off: {shorten(str(e))}") from e
        finally:
            response.release_conn()

    def pod_log(self, namespace: str, pod: str, container: str, *, previous: bool = False) -> str:
        from kubernetes.client.exceptions import ApiException

        with self._call(f"read the log of {namespace}/{pod} container {container}"):
            try:
                text: str = self.core.read_namespaced_pod_log(
                    pod, namespace, container=container, previous=previous, _request_timeout=API_TIMEOUT_S
                )
            except ApiException as e:
                if e.status in (400, 404):  # no such (previous) container yet
                    return ""
                raise
        return text

    def exec(self, namespace: str, pod: str, container: str, argv: list[str]) -> str:
        """Run ``argv`` in a running container and return its output (stdout and stderr)."""
        done = self.exec_run(namespace, pod, container, argv, timeout_s=API_TIMEOUT_S)
        return done.stdout + done.stderr

    def exec_run(self, namespace: str, pod: str, container: str, argv: list[str], *, timeout_s: float) -> ExecResult:
        """Run ``argv`` in a running container until it exits, at most ``timeout_s`` (WaitTimeout then: the
        command may still run in the container); its exit status, stdout and stderr kept apart."""
        import kubernetes
        from kubernetes import stream as kstream

        api = kubernetes.client.CoreV1Api(self._stream_client)
        stream: Any = kstream.stream
        what = f"exec {shorten(' '.join(argv))} in {namespace}/{pod} container {container}"
        with self._call(what):
            ws: Any = stream(
                api.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                container=container,
                command=argv,
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
                _request_timeout=API_TIMEOUT_S,
            )
            try:
                deadline = time.monotonic() + timeout_s
                out: list[str] = []
                err: list[str] = []

                def drain() -> None:
                    out.append(ws.read_stdout(timeout=0) if ws.peek_stdout() else "")
                    err.append(ws.read_stderr(timeout=0) if ws.peek_stderr() else "")

                # Read as it comes: an output of many MB must not pile up in the websocket's buffers.
                while ws.is_open() and time.monotonic() < deadline:
                    ws.update(timeout=min(1.0, max(0.01, deadline - time.monotonic())))
                    drain()
                if ws.is_open():
                    raise WaitTimeout(what, timeout_s, "still running")
                drain()
                code = ws.returncode
            finally:
                ws.close()
        return ExecResult(returncode=int(code) if code is not None else -1, stdout="".join(out), stderr="".join(err))

    def _events(self, namespace: str, selector: str, what: str) -> list[Any]:
        """The namespace's events matching the field ``selector`` (involvedObject.* and reason)."""
        with self._call(f"list the events of {what}"):
            items: list[Any] = self.core.list_namespaced_event(
                namespace, field_selector=selector, _request_timeout=API_TIMEOUT_S
            ).items
        return items

    def event_times(self, namespace: str, kind: str, uid: str, reason: str) -> list[float]:
        """When the events with ``reason`` about the object with ``uid`` happened (Unix seconds), oldest first."""
        selector = f"involvedObject.kind={kind},involvedObject.uid={uid},reason={reason}"
        return event_times(self._events(namespace, selector, f"{kind} {namespace}/uid {uid} ({reason})"))

    def events(self, namespace: str, kind: str, name: str) -> list[str]:
        """The object's events, oldest first, as ``Reason: message``."""
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        return event_lines(self._events(namespace, selector, f"{kind} {namespace}/{name}"))

    # --- volumes and nodes ------------------------------------------------------------------------------------------

    def server_version(self) -> str:
        import kubernetes

        with self._call("read the API server's version"):
            info: Any = kubernetes.client.VersionApi(self._client).get_code(_request_timeout=API_TIMEOUT_S)
        return str(info.git_version)

    def read_storage_class(self, name: str) -> StorageClassInfo | None:
        return self._read_as(decode_storage_class, "StorageClass", name, "")

    def read_pv(self, name: str) -> PvInfo | None:
        return self._read_as(decode_pv, "PersistentVolume", name, "")

    def read_pvc(self, namespace: str, name: str) -> PvcInfo | None:
        return self._read_as(decode_pvc, "PersistentVolumeClaim", name, namespace)

    def claims(self, namespace: str) -> list[PvcInfo]:
        """Every PersistentVolumeClaim in ``namespace`` (none when it does not exist)."""
        with self._call(f"list the PersistentVolumeClaims in namespace {namespace}"):
            items = self.core.list_namespaced_persistent_volume_claim(namespace, _request_timeout=API_TIMEOUT_S).items
        return [decode_pvc(o) for o in items]

    def nodes(self) -> list[NodeInfo]:
        with self._call("list nodes"):
            return [decode_node(o) for o in self.core.list_node(_request_timeout=API_TIMEOUT_S).items]

    def node_addresses(self) -> dict[str, list[str]]:
        """Each node's InternalIP addresses (``status.addresses``), by node name."""
        with self._call("list nodes"):
            items = self.core.list_node(_request_timeout=API_TIMEOUT_S).items
        return {
            o.metadata.name: [a.address for a in (o.status.addresses or []) if a.type == "InternalIP"] for o in items
        }

    def wait_node(self, name: str, *, ready: bool, timeout_s: float) -> NodeInfo:
        """Until node ``name``'s Ready condition is True (``ready``) or not; the node as it was then."""
        raw = self._watch(
            self.core.list_node,
            {"field_selector": f"metadata.name={name}"},
            lambda o: decode_node(o).ready == ready,
            what=f"node {name} to be {'Ready' if ready else 'NotReady (the node controller noticing it is gone)'}",
            timeout_s=timeout_s,
            describe=lambda o: "no such node" if o is None else f"Ready={decode_node(o).ready}",
        )
        return decode_node(raw)

    def force_delete_pod(self, namespace: str, name: str) -> None:
        """Delete with grace period 0: the API forgets the pod at once, whatever its kubelet (if any) still runs."""
        from kubernetes.client.exceptions import ApiException

        with self._call(f"force-delete pod {namespace}/{name}"):
            try:
                self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0, _request_timeout=API_TIMEOUT_S)
            except ApiException as e:
                if e.status != 404:
                    raise

    def scale_statefulset(self, namespace: str, name: str, replicas: int) -> None:
        with self._call(f"scale StatefulSet {namespace}/{name} to {replicas}"):
            self.apps.patch_namespaced_stateful_set_scale(
                name, namespace, {"spec": {"replicas": replicas}}, _request_timeout=API_TIMEOUT_S
            )

    def patch_prometheus(self, namespace: str, name: str, spec: Manifest) -> None:
        """Merge ``spec`` into a ``monitoring.coreos.com/v1`` Prometheus resource's spec (e.g. its replicas)."""
        self._patch("Prometheus", name, namespace, {"spec": spec}, what=f"patch Prometheus {namespace}/{name}")

    def set_unschedulable(
        self, node: str, unschedulable: bool, annotations: Mapping[str, str | None] | None = None
    ) -> None:
        """Cordon (True) or uncordon (False) a node, as ``kubectl cordon``/``uncordon`` do, setting (or, for None
        values, removing) ``annotations`` in the same patch."""
        verb = "cordon" if unschedulable else "uncordon"
        body: Manifest = {"spec": {"unschedulable": unschedulable}}
        if annotations:
            body["metadata"] = {"annotations": dict(annotations)}
        self._patch("Node", node, "", body, what=f"{verb} node {node}")

    def annotate(self, kind: str, name: str, annotations: Mapping[str, str | None]) -> None:
        """Set (or, for None values, remove) annotations of a cluster-scoped object (a Node)."""
        body: Manifest = {"metadata": {"annotations": dict(annotations)}}
        self._patch(kind, name, "", body, what=f"annotate {kind} {name}")

    # --- watching ---------------------------------------------------------------------------------------------------

    def _watch(
        self,
        list_fn: Callable[..., Any],
        kwargs: dict[str, Any],
        predicate: Callable[[Any], bool],
        *,
        what: str,
        timeout_s: float,
        describe: Callable[[Any], str] | None = None,
    ) -> Any:
        """List, then watch from that list's resourceVersion, until an object satisfies ``predicate``."""
        from kubernetes import watch

        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            with self._call(f"watch while waiting for {what}"):
                listing = list_fn(_request_timeout=API_TIMEOUT_S, **kwargs)
                for obj in listing.items:
                    last = obj
                    if predicate(obj):
                        return obj
                w: Any = watch.Watch()  # type: ignore[no-untyped-call]
                remaining = max(1, int(deadline - time.monotonic()))
                try:
                    for event in w.stream(
                        list_fn,
                        resource_version=listing.metadata.resource_version,
                        timeout_seconds=min(remaining, WATCH_CHUNK_S),
                        **kwargs,
                    ):
                        obj = event["object"]
                        if event["type"] in ("ADDED", "MODIFIED"):
                            last = obj
                            if predicate(obj):
                                return obj
                        if time.monotonic() > deadline:
                            break
                finally:
                    w.stop()
        state = describe(last) if describe else ("nothing" if last is None else str(last.metadata.name))
        raise WaitTimeout(what, timeout_s, state)


def _labelled(obj: Manifest) -> SimpleNamespace:
    """A custom object (a dict) read like the typed client's objects: ``.metadata.labels``."""
    return SimpleNamespace(metadata=SimpleNamespace(labels=obj.get("metadata", {}).get("labels")))


def _api_message(body: Any) -> str:
    """The Status message of an API error body (JSON), else the body shortened."""
    try:
        message = json.loads(body).get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return shorten(str(message if message else body))
