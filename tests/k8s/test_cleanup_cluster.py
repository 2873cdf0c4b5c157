"""Safety on the real cluster: a kube context is used only when named or allowed, and `harness cleanup` removes what
a SIGKILLed `harness run --runtime kubernetes` left (its namespace, PV and StorageClass, its mark on a node) and only
that, never the PV's data, never while the run is alive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.config import load_user_config
from harness.faults import injectors
from harness.ownership import owner_label
from harness.settings import Settings
from harness.undo import UndoLog
from tests.k8s.helpers import reschedule_runtime
from tests.leftovers import ROOT, cleanup, wait_for_load_phase

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.cluster_exclusive]  # cordons, marks node-2

MANAGED = "app.kubernetes.io/managed-by=prom-storage-harness"


def harness(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        check=False,
        timeout=300,
    )


def test_an_unlisted_context_is_refused_and_nothing_is_created(
    kubeconfig: Path, kube_context: str, api_client: Any, tmp_path: Path
) -> None:
    from kubernetes import client

    owner = f"refused-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "config.yaml"
    config.write_text(f"owner: {owner}\nkubernetes: {{allowed_contexts: [not-{kube_context}]}}\n")
    env = {"KUBECONFIG": str(kubeconfig), "HARNESS_CONFIG": str(config)}
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: k8s-refused\nduration: 5s\nstorage: {backend: ephemeral}\n")
    reports = tmp_path / "reports"

    proc = harness("run", str(scenario), "--runtime", "kubernetes", "--reports", str(reports), env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"--context {kube_context}" in proc.stderr, proc.stderr
    assert f"allowed_contexts: [{kube_context}]" in proc.stderr and "Traceback" not in proc.stderr
    assert not reports.exists()
    core = client.CoreV1Api(api_client)
    assert core.list_namespace(label_selector=f"{MANAGED},harness/owner={owner_label(owner)}").items == []

    doctor = harness("doctor", str(scenario), "--runtime", "kubernetes", env=env)
    assert doctor.returncode == 2 and f"--context {kube_context}" in doctor.stderr, doctor.stderr
    unknown = harness("run", str(scenario), "--runtime", "kubernetes", "--context", "no-such-context", env=env)
    assert unknown.returncode == 2 and f"its contexts: {kube_context}" in unknown.stderr, unknown.stderr
    # cleanup without a context looks at this host only and says why it did not look at the cluster.
    local_only = cleanup("--all-mine", "--workdir", str(tmp_path), env=env)
    assert local_only.returncode == 0 and "no cluster was looked at" in local_only.stdout, local_only.stdout

    config.write_text(f"owner: {owner}\nkubernetes: {{allowed_contexts: [{kube_context}]}}\n")
    allowed = harness("doctor", str(scenario), "--runtime", "kubernetes", "--json", env=env)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr  # the current-context, allowed by the config


def test_cleanup_after_sigkill_removes_the_runs_objects_and_only_those(
    kubeconfig: Path, kube_context: str, api_client: Any, tmp_path: Path, node_dir: Callable[[str, str], str]
) -> None:
    from kubernetes import client

    core, storage = client.CoreV1Api(api_client), client.StorageV1Api(api_client)
    tag = uuid.uuid4().hex[:8]
    path = node_dir("node-1", f"cleanup-{tag}")
    pv, sc = f"harness-pv-{tag}", f"local-{tag}"
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"""
name: k8s-killed
duration: 5m
storage:
  backend: local
  path: {path}
  node: node-1
  claim: {{storage_class: {sc}, size: 1Gi}}
  volume: {{name: {pv}, reclaim_policy: Delete}}
loads: {{tsdb: {{series: 50, interval: 1s}}}}
"""
    )
    reports, work = tmp_path / "reports", tmp_path / "work"
    work.mkdir()
    env = {"KUBECONFIG": str(kubeconfig)}
    argv = ["run", str(scenario), "--runtime", "kubernetes", "--context", kube_context, "--reports", str(reports)]
    argv += ["--no-report", "--workdir", str(work)]
    named = ("--context", kube_context, "--workdir", str(work))
    run = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *argv],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        result_file = wait_for_load_phase(reports, run)
        assert result_file is not None, run.communicate(timeout=60)
        run_id = json.loads(result_file.read_text())["run_id"]
        assert json.loads(result_file.read_text())["environment"]["extra"]["kube context"] == kube_context
        alive = cleanup("--run", run_id, *named, env=env)
        assert alive.returncode == 2 and "it is running on this host" in alive.stdout, alive.stdout + alive.stderr
        assert core.read_namespace(f"harness-{run_id}").status.phase == "Active"
    finally:
        run.kill()  # SIGKILL: nothing of the run's own cleanup runs
        run.communicate(timeout=60)

    # Marked like a run's, but another run's: they must stay (the node's mark alone: never cordon a shared node here).
    other = f"d{tag[:5]}"
    labels = {"app.kubernetes.io/managed-by": "prom-storage-harness", "harness/run-id": other}
    labels["harness/owner"] = owner_label(load_user_config(Settings.from_environ(os.environ)).effective_owner())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=f"harness-{other}", labels=labels)))
    core.create_persistent_volume(
        client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=f"harness-decoy-{tag}", labels=labels),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": "1Gi"},
                access_modes=["ReadWriteOnce"],
                storage_class_name=f"harness-decoy-{tag}",  # no other claim can bind it
                host_path=client.V1HostPathVolumeSource(path="/nonexistent"),
            ),
        )
    )
    core.patch_node("node-2", {"metadata": {"annotations": {"harness/cordoned-by": other}}})
    try:
        done = cleanup("--run", run_id, *named, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert f"PersistentVolume {pv}: reclaimPolicy Delete -> Retain" in out, out
        for removed in (f"namespace harness-{run_id}", f"PersistentVolume {pv}", f"StorageClass {sc}"):
            assert f"removed {removed}" in out, out
        assert f"removed work directory {work}" in out, out

        namespaces = {ns.metadata.name: ns for ns in core.list_namespace().items}
        assert f"harness-{run_id}" not in namespaces
        assert core.list_persistent_volume(label_selector=f"harness/run-id={run_id}").items == []
        assert sc not in {c.metadata.name for c in storage.list_storage_class().items}
        assert list(work.iterdir()) == []
        assert (Path(path) / "wal").is_dir()  # the PV's data stays
        # The other run's objects are untouched.
        assert namespaces[f"harness-{other}"].metadata.deletion_timestamp is None
        assert core.read_persistent_volume(f"harness-decoy-{tag}").metadata.deletion_timestamp is None
        assert core.read_node("node-2").metadata.annotations["harness/cordoned-by"] == other
    finally:
        core.patch_node("node-2", {"metadata": {"annotations": {"harness/cordoned-by": None}}})
        core.delete_namespace(f"harness-{other}")
        core.delete_persistent_volume(f"harness-decoy-{tag}")


def test_cleanup_uncordons_the_node_a_killed_run_cordoned(
    kubeconfig: Path, kube_context: str, api_client: Any, tmp_path: Path
) -> None:
    """A run killed during a reschedule leaves its pod's node cordoned, with its mark: cleanup uncordons it.
    (The runtime is driven here as the pipeline drives it, then abandoned without its undo or stop, as a SIGKILL
    abandons it.)"""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    runtime, scenario, run_id = reschedule_runtime("k8s-killed-cordon", kubeconfig, kube_context, tmp_path)
    node = ""
    try:
        runtime.start([])
        assert runtime.pod is not None
        node = runtime.pod.node
        injectors()["reschedule"].inject(scenario.faults[0], runtime, UndoLog())
        assert core.read_node(node).spec.unschedulable is True
        runtime.api.close()  # killed: no undo, no stop

        env = {"KUBECONFIG": str(kubeconfig)}
        done = cleanup("--run", run_id, "--context", kube_context, "--workdir", str(tmp_path), env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"removed cordon of node {node} (uncordoned)" in done.stdout, done.stdout
        assert f"removed namespace harness-{run_id}" in done.stdout, done.stdout
        after = core.read_node(node)
        assert not after.spec.unschedulable and "harness/cordoned-by" not in (after.metadata.annotations or {})
        node = ""
    finally:
        if node:  # the test failed before cleanup did its part: undo the cordon ourselves
            marks = {"harness/cordoned-by": None, "harness/cordoned-owner": None}
            core.patch_node(node, {"spec": {"unschedulable": False}, "metadata": {"annotations": marks}})
        if core.list_namespace(field_selector=f"metadata.name=harness-{run_id}").items:
            core.delete_namespace(f"harness-{run_id}")
