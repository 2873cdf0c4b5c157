"""Waiting on Kubernetes objects with list + watch loops that always end; the kube context the tests name; a runtime
of a fresh run to drive by hand; the field notes' NFS storage block; `harness run` on the cluster, and the check that
a run left nothing behind (its namespace, PVs, classes, cordons)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.results.model import RunResult, Severity, Status
from harness.results.store import load_result

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
    from harness.kube.contexts import kube_contexts

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


# --- harness runs on the cluster, and what they must leave -----------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 300


def harness_run(
    scenario_file: Path, reports: Path, kubeconfig: Path, *args: str, **env_vars: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), **env_vars}
    argv = ["run", str(scenario_file), "--runtime", "kubernetes", "--context", context_of(kubeconfig)]
    argv += ["--reports", str(reports), "--no-report", *args]
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=RUN_TIMEOUT_S,
    )


def run_volumes(provisioner: Any, run_id: str) -> list[str]:
    """The PVs a provisioner (anything with ``volumes()``: the local-path provisioner, ceph-csi) made for the run's
    claim, in the run's namespace."""
    return [
        pv.metadata.name
        for pv in provisioner.volumes()
        if pv.spec.claim_ref is not None and pv.spec.claim_ref.namespace == f"harness-{run_id}"
    ]


def write_scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def assert_nothing_left(api_client: Any, run_id: str, pv_names: tuple[str, ...] = (), classes: tuple[str, ...] = ()):
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    namespaces = [ns.metadata.name for ns in core.list_namespace().items]
    assert f"harness-{run_id}" not in namespaces
    pvs = [pv.metadata.name for pv in core.list_persistent_volume().items]
    assert not set(pv_names) & set(pvs), pvs
    labelled = core.list_persistent_volume(label_selector=f"harness/run-id={run_id}").items
    assert labelled == []
    sc_names = [sc.metadata.name for sc in client.StorageV1Api(api_client).list_storage_class().items]
    assert not set(classes) & set(sc_names), sc_names
    # A run's cordon carries its mark in the same patch (and its uncordon removes it): a node still marked is one
    # this run left cordoned. Not "no node is cordoned": other runs on a shared cluster cordon nodes of their own.
    marked = [n.metadata.name for n in core.list_node().items if _cordoned_by(n) == run_id]
    assert marked == []


def assert_cleaned_objects_then_server(out: str, run_id: str, pv_name: str, server: str, work: Path) -> None:
    """`harness cleanup` of a killed kubernetes run with a kept embedded server said it removed the run's namespace
    and PV, then the server (after them), then the work directory, in that order."""
    order = [
        f"removed namespace harness-{run_id}",
        f"removed PersistentVolume {pv_name}",
        f"removed the run's embedded server {server} (after the run's cluster objects;",
        f"removed work directory {work}",
    ]
    at = [out.find(line) for line in order]
    assert -1 not in at and at == sorted(at), out


def _cordoned_by(node: Any) -> str | None:
    return (node.metadata.annotations or {}).get("harness/cordoned-by")


def run_into_the_released_pv_trap(scenario_file: Path, tmp_path: Path, kubeconfig: Path, pv: str) -> RunResult:
    """Runs a redeploy scenario on a Retain PV and checks it FAILED the field notes' way: the PV is Released with
    the deleted claim's claimRef, so the new claim stays Pending (statefulset and operator mode alike)."""
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    [fault] = result.faults
    error = fault.error or ""
    assert fault.status is Status.FAILED and result.verdict is Status.FAILED
    assert f"pv/{pv} is Released and still carries claimRef" in error, error
    assert "stays Pending" in error
    return result


def run_into_the_delete_class_redeploy(
    scenario_file: Path, tmp_path: Path, kubeconfig: Path, driver_log: Callable[[], str]
) -> RunResult:
    """Runs a redeploy scenario on a dynamic class with reclaimPolicy Delete and checks it FAILED that way: the doctor
    warned before the run, the fault says the class deletes the volume with its claim, and the new volume started
    empty (every acknowledged sample lost). ``driver_log``: the provisioner's log, for a failing test's message."""
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 1, proc.stdout + proc.stderr + driver_log()[-3000:]
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.FAILED and result.complete
    # The doctor warned before the run (its findings are recorded with the run).
    [warning] = [f for f in result.doctor if f.check == "dynamic.reclaim_delete"]
    assert warning.severity is Severity.WARNING and "deletes the TSDB" in warning.title
    [fault] = result.faults
    assert fault.action == "redeploy" and fault.error is None
    assert "has reclaimPolicy Delete" in fault.detail and "the history is lost" in fault.detail, fault.detail
    after = result.durability[0]
    assert after.acknowledged > 0 and after.lost == after.acknowledged  # the new volume started empty
    return result
