"""A real dynamic provisioner for the local cluster: rancher's local-path-provisioner, built from its Go module by
scripts/build-local-path-provisioner into the cache, run here as a host process with the cluster's kubeconfig.

It provisions a ``hostPath`` PV per claim in a directory of the node the pod was scheduled to (the directories
tests/k8s already uses for local PVs, one base per node and session), through a helper pod on that node that makes
or removes the directory. The helper pod runs the cluster's local tools image (a static busybox, nothing can be
pulled): the provisioner runs its scripts as ``/bin/sh /script/setup``, so an init container copies busybox to an
emptyDir that the helper container mounts as ``/bin/sh`` (busybox run as ``sh`` is its shell).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed import config

VERSION = "v0.0.30"
READY_TIMEOUT_S = 60.0  # it logs "Provisioner started" within a second or two of starting
STOP_TIMEOUT_S = 10.0
PV_GONE_TIMEOUT_S = 120.0  # the teardown helper pod: scheduling, an image already on the node, rm -rf
CONFIG_MAP = "local-path-config"
SETUP = '#!/bin/sh\nset -eu\n/bin/busybox mkdir -m 0777 -p "$VOL_DIR"\n'
TEARDOWN = '#!/bin/sh\nset -eu\n/bin/busybox rm -rf "$VOL_DIR"\n'


def binary() -> Path:
    cache = Path(os.environ.get("HARNESS_CACHE", "/var/cache/prom-harness"))
    return cache / f"local-path-provisioner-{VERSION}" / "local-path-provisioner"


def helper_pod(image: str) -> dict[str, Any]:
    shell = {"name": "shell", "emptyDir": {}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod"},
        "spec": {
            "initContainers": [
                {
                    "name": "shell",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/busybox", "cp", "/bin/busybox", "/shell/sh"],
                    "volumeMounts": [{"name": "shell", "mountPath": "/shell"}],
                }
            ],
            "containers": [
                {
                    "name": "helper-pod",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "volumeMounts": [{"name": "shell", "mountPath": "/bin/sh", "subPath": "sh"}],
                }
            ],
            "volumes": [shell],
        },
    }


@dataclass
class LocalPathProvisioner:
    """One provisioner process, its namespace and ConfigMap, its node directories and its two StorageClasses."""

    kubeconfig: Path
    api_client: Any
    workdir: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    process: subprocess.Popen[bytes] | None = None
    bases: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"harness.prom/local-path-{self.tag}"

    @property
    def namespace(self) -> str:
        return f"lpp-{self.tag}"

    @property
    def delete_class(self) -> str:
        return f"lpp-delete-{self.tag}"

    @property
    def retain_class(self) -> str:
        return f"lpp-retain-{self.tag}"

    @property
    def log(self) -> Path:
        return self.workdir / "local-path-provisioner.log"

    def start(self) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)
        nodes = [n.metadata.name for n in core.list_node().items]
        node_map = []
        for node in nodes:
            base = config.STATE_ROOT / "volumes" / node / f"lpp-{self.tag}"
            base.mkdir(parents=True)
            self.bases.append(base)
            node_map.append({"node": node, "paths": [str(base)]})
        config_file = self.workdir / "config.json"
        config_file.write_text(json.dumps({"nodePathMap": node_map, "cmdTimeoutSeconds": 60}))
        pod_file = self.workdir / "helperPod.yaml"
        pod_file.write_text(json.dumps(helper_pod(config.TOOLS_IMAGE)))
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace, labels={"harness.prom/test": "1"}))
        )
        _wait(
            lambda: any(
                sa.metadata.name == "default" for sa in core.list_namespaced_service_account(self.namespace).items
            ),
            "the default ServiceAccount of the provisioner's namespace",
            30.0,
        )
        core.create_namespaced_config_map(
            self.namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=CONFIG_MAP), data={"setup": SETUP, "teardown": TEARDOWN}
            ),
        )
        argv = [
            str(binary()), "--debug", "start",
            "--kubeconfig", str(self.kubeconfig),
            "--namespace", self.namespace,
            "--config", str(config_file),
            "--configmap-name", CONFIG_MAP,
            "--helper-pod-file", str(pod_file),
            "--provisioner-name", self.name,
            "--service-account-name", "default",
            "--helper-image", config.TOOLS_IMAGE,
        ]  # fmt: skip
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait(self._started, f"local-path-provisioner to log 'Provisioner started' ({self.log})", READY_TIMEOUT_S)
        storage = client.StorageV1Api(self.api_client)
        for name, policy in ((self.delete_class, "Delete"), (self.retain_class, "Retain")):
            storage.create_storage_class(
                client.V1StorageClass(
                    metadata=client.V1ObjectMeta(name=name, labels={"harness.prom/test": "1"}),
                    provisioner=self.name,
                    volume_binding_mode="WaitForFirstConsumer",
                    reclaim_policy=policy,
                )
            )

    def _started(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"local-path-provisioner exited ({self.process.returncode}): {self.log_text()[-2000:]}")
        return "Provisioner started" in self.log_text()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def volumes(self) -> list[Any]:
        """The PVs this provisioner made (its name in the provisioned-by annotation)."""
        from kubernetes import client

        return [
            pv
            for pv in client.CoreV1Api(self.api_client).list_persistent_volume().items
            if (pv.metadata.annotations or {}).get("pv.kubernetes.io/provisioned-by") == self.name
        ]

    def stop(self) -> None:
        """Delete the classes, let the provisioner delete what it made with Delete, delete the Retain PVs the tests
        left (made by this session's provisioner for this session's class: the tests' own), stop the process, and
        remove the namespace and the node directories."""
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)
        storage = client.StorageV1Api(self.api_client)
        for name in (self.delete_class, self.retain_class):
            try:
                storage.delete_storage_class(name)
            except client.ApiException as e:
                if e.status != 404:
                    raise
        for pv in self.volumes():
            if pv.spec.persistent_volume_reclaim_policy != "Delete" or pv.status.phase != "Bound":
                core.delete_persistent_volume(pv.metadata.name)
        _wait(lambda: not self.volumes(), "the provisioner's PVs to be gone", PV_GONE_TIMEOUT_S)
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)
        try:
            core.delete_namespace(self.namespace, propagation_policy="Background")
        except client.ApiException as e:
            if e.status != 404:
                raise
        for base in self.bases:
            shutil.rmtree(base, ignore_errors=True)


def _wait(condition: Any, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.5)
