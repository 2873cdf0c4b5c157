"""Waiting on Kubernetes objects with list + watch loops that always end; the kube context the tests name; a runtime
of a fresh run to drive by hand; the field notes' NFS storage block."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.runtime.kubernetes import KubernetesRuntime
    from harness.scenario.model import Scenario


def wait_for(
    list_fn: Callable[..., Any],
    predicate: Callable[[Any], bool],
    *,
    timeout: float,
    what: str,
    **kwargs: Any,
) -> Any:
    """List, then watch, until an object satisfies `predicate`; return it or fail after `timeout` seconds."""
    from kubernetes import watch

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        listing = list_fn(**kwargs)
        for obj in listing.items:
            last = obj
            if predicate(obj):
                return obj
        w = watch.Watch()
        remaining = max(1, int(deadline - time.monotonic()))
        try:
            for event in w.stream(
                list_fn,
                resource_version=listing.metadata.resource_version,
                timeout_seconds=min(remaining, 30),
                **kwargs,
            ):
                obj = event["object"]
                last = obj
                if event["type"] in ("ADDED", "MODIFIED") and predicate(obj):
                    return obj
                if time.monotonic() > deadline:
                    break
        finally:
            w.stop()
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {_brief(last)}")


def _brief(obj: Any) -> str:
    if obj is None:
        return "nothing"
    status = getattr(obj, "status", None)
    return f"{obj.kind if hasattr(obj, 'kind') else type(obj).__name__} {obj.metadata.name}: {status}"


def context_of(kubeconfig: Path) -> str:
    """The context every harness command of the tests names with --context: $HARNESS_K8S_CONTEXT, else the
    kubeconfig's current-context (the local cluster's is prom-harness). Named, never left to the harness to pick."""
    from harness.kube import kube_contexts

    named = os.environ.get("HARNESS_K8S_CONTEXT")
    if named:
        return named
    _contexts, current, where = kube_contexts(str(kubeconfig))
    if current is None:
        pytest.fail(f"{where} has no current-context: set HARNESS_K8S_CONTEXT to the context the tests may use")
    return current


def reschedule_runtime(
    name: str, kubeconfig: Path, context: str, tmp_path: Path
) -> tuple[KubernetesRuntime, Scenario, str]:
    """The runtime of a fresh run (emptyDir, one reschedule at 5 s), not started, for a test to drive as the pipeline
    does: the runtime, its scenario and the run id."""
    import uuid

    from harness.runtime.kubernetes import KubernetesRuntime
    from harness.scenario.model import Scenario

    scenario = Scenario.model_validate(
        {
            "name": name,
            "duration": "20s",
            "storage": {"backend": "ephemeral"},
            "faults": [{"action": "reschedule", "at": "5s"}],
        }
    )
    run_id = uuid.uuid4().hex[:6]
    runtime = KubernetesRuntime(
        scenario, run_id, logs_dir=tmp_path / "logs", kubeconfig=str(kubeconfig), context=context
    )
    return runtime, scenario, run_id


def field_notes_nfs_storage(export: Path, port: int, mount_port: int | None, tag: str) -> str:
    """The scenario's ``storage:`` block (top level) of the field notes' NFS setup against a server on this host's
    127.0.0.1: a PV with labels (``harness-nfs-<tag>``), a claim with their selector and no class."""
    return f"""storage:
  backend: nfs
  server: 127.0.0.1
  export: {export}
  version: "3"
  port: {port}
  mount_port: {mount_port}
  claim: {{storage_class: "", size: 1Gi, selector: {{app: wsg-prometheus-{tag}}}}}
  volume: {{name: harness-nfs-{tag}, labels: {{app: wsg-prometheus-{tag}}}}}
"""
