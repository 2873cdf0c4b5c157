"""Fixtures for tests against a real Kubernetes cluster.

`kubeconfig` (session): $KUBECONFIG when set; else the local cluster of testbed, started here when it is
built (and stopped again at the end if this session started it); else the tests skip, naming `nox -s cluster`.
The local build is never run from pytest unless HARNESS_BUILD_CLUSTER=1.
`kube_context` (session): the context every harness command names with --context (`helpers.context_of`).
`namespace` (per test): a throwaway namespace, deleted afterwards.
`local_path` (session): a real dynamic provisioner (tests/k8s/local_path.py) and its StorageClasses.
`writer_image` (session): the ref of the image that runs the harness' TSDB writer (testbed/writer_image.py), in
every local node's store; with an outside $KUBECONFIG, $HARNESS_K8S_WRITER_IMAGE (pulled by the cluster), else skip.
`cluster_turn` (per test, automatic): the suite runs cluster tests in three workers at once; a test marked
`cluster_exclusive` (a node lost or cordoned, a watch on every namespace) holds the cluster alone, every other test
shares it. A readers-writer lock of two flock(2) files: the turnstile makes a waiting exclusive test block new
sharers, so it is not starved by a worker that takes its next shared turn the moment it gives one up.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed import build, config, nfs_helper, run
from testbed import writer_image as writer_image_build
from tests.k8s.helpers import context_of, wait_for
from tests.k8s.local_path import VERSION as LOCAL_PATH_VERSION
from tests.k8s.local_path import LocalPathProvisioner
from tests.k8s.local_path import binary as local_path_binary

TURN_TIMEOUT_S = 900  # the longest exclusive test (node loss and back) takes about 2 minutes


def _flock(path: Path, mode: int, what: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + TURN_TIMEOUT_S
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise TimeoutError(f"waited {TURN_TIMEOUT_S} s for {what} ({path})") from None
            time.sleep(0.2)


@pytest.fixture(autouse=True)
def cluster_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    exclusive = request.node.get_closest_marker("cluster_exclusive") is not None
    where = Path(tempfile.gettempdir())
    turnstile = _flock(where / "harness-cluster-tests.turnstile", fcntl.LOCK_EX, "the turnstile of the cluster")
    try:
        mode, what = (fcntl.LOCK_EX, "the cluster alone") if exclusive else (fcntl.LOCK_SH, "a share of the cluster")
        turn = _flock(where / "harness-cluster-tests.lock", mode, what)
    finally:
        os.close(turnstile)
    try:
        yield
    finally:
        os.close(turn)


@pytest.fixture(scope="session")
def local_cluster() -> bool:
    """True when the tests run against this machine's testbed (not an outside $KUBECONFIG)."""
    return not os.environ.get("KUBECONFIG")


@pytest.fixture(scope="session")
def kubeconfig(local_cluster: bool) -> Iterator[Path]:
    if not local_cluster:
        yield Path(os.environ["KUBECONFIG"])
        return
    if os.geteuid() != 0:
        pytest.skip("the local Kubernetes cluster needs root; or set KUBECONFIG")
    if not build.is_built():
        if os.environ.get("HARNESS_BUILD_CLUSTER") != "1":
            pytest.skip(
                f"no local Kubernetes cluster: the build cache {config.cache_dir()} is absent; "
                "run `nox -s cluster` (or set HARNESS_BUILD_CLUSTER=1, or KUBECONFIG)"
            )
        build.build()
    try:
        kubeconfig = run.acquire()
    except run.ClusterError as exc:
        pytest.skip(f"the local Kubernetes cluster could not start: {exc}")
    if nfs_helper.can_run_client(sys.executable):
        # A cluster started elsewhere (`nox -s cluster`) may not know an interpreter that runs the NFS client.
        nfs_helper.set_client_python(sys.executable)
    try:
        yield kubeconfig
    finally:
        run.release(keep=os.environ.get("HARNESS_KEEP_CLUSTER") == "1")


@pytest.fixture(scope="session")
def kube_context(kubeconfig: Path) -> str:
    return context_of(kubeconfig)


@pytest.fixture
def on_the_cluster(kubeconfig: Path, kube_context: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """The environment and the options of a night on the cluster (``harness nightly --runtime kubernetes``)."""
    # The files' own commands (kubelet-restart.yaml's `python -m testbed ...`) run with this environment's python.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PATH": path}
    return env, ("--runtime", "kubernetes", "--context", kube_context)


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path, kube_context: str) -> Iterator[Any]:
    from kubernetes import config as kconfig

    client = kconfig.new_client_from_config(config_file=str(kubeconfig), context=kube_context)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def namespace(api_client: Any) -> Iterator[str]:
    """A fresh namespace whose default ServiceAccount exists (pods can be created at once); deleted after."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"harness.prom/test": "1"}))
    )
    try:
        wait_for(
            core.list_namespaced_service_account,
            lambda sa: sa.metadata.name == "default",
            timeout=60,
            namespace=name,
            what=f"ServiceAccount default in {name}",
        )
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def node_dir(local_cluster: bool) -> Callable[[str, str], str]:
    """`node_dir(node, name)`: make a directory on `node` for a local PersistentVolume; return its path."""
    if not local_cluster:
        pytest.skip("local PersistentVolumes need a directory on the node: only with the local cluster")

    def make(node: str, name: str) -> str:
        path = config.STATE_ROOT / "volumes" / node / name
        path.mkdir(parents=True, exist_ok=False)
        return str(path)

    return make


@dataclass(frozen=True)
class LocalPv:
    """A directory on a node for a local PersistentVolume, and the PV and StorageClass names a run creates for it."""

    node: str
    path: str
    pv: str
    storage_class: str

    def storage_yaml(self) -> str:
        """The scenario's ``storage:`` block (top level) for this volume."""
        return (
            f"storage:\n  backend: local\n  path: {self.path}\n  node: {self.node}\n"
            f"  claim: {{storage_class: {self.storage_class}, size: 1Gi}}\n  volume: {{name: {self.pv}}}\n"
        )


@pytest.fixture
def local_pv(node_dir: Callable[[str, str], str]) -> Callable[[str], LocalPv]:
    """`local_pv(node)`: a fresh directory on `node` and unique PV / StorageClass names for it."""

    def make(node: str) -> LocalPv:
        tag = uuid.uuid4().hex[:8]
        return LocalPv(node, node_dir(node, f"pv-{tag}"), f"harness-pv-{tag}", f"local-{tag}")

    return make


@pytest.fixture(scope="session")
def local_path(
    local_cluster: bool, kubeconfig: Path, api_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPathProvisioner]:
    """rancher's local-path-provisioner running against the local cluster, with a WaitForFirstConsumer class of
    reclaimPolicy Delete and one of Retain; stopped, its classes and volumes removed, at the end of the session."""
    if not local_cluster:
        pytest.skip("the local-path provisioner writes to the nodes' directories: only with the local cluster")
    if not local_path_binary().is_file():
        pytest.skip(
            f"local-path-provisioner {LOCAL_PATH_VERSION} is not built ({local_path_binary()} is absent): run "
            "scripts/build-local-path-provisioner (needs Go and the module proxy; .ci/run does)"
        )
    provisioner = LocalPathProvisioner(kubeconfig, api_client, tmp_path_factory.mktemp("local-path"))
    try:
        provisioner.start()
        yield provisioner
    finally:
        provisioner.stop()


@pytest.fixture(scope="session")
def writer_image(local_cluster: bool, kubeconfig: Path) -> str:
    """The writer image's ref: built from this checkout and imported into each local node (``imagePullPolicy:
    Never`` finds it); for an outside cluster it must come from a registry that cluster can pull from."""
    if not local_cluster:
        ref = os.environ.get("HARNESS_K8S_WRITER_IMAGE")
        if not ref:
            pytest.skip(
                "the writer image is built and imported only into the local cluster's nodes; with an outside "
                "KUBECONFIG set HARNESS_K8S_WRITER_IMAGE to a ref that cluster can pull "
                "(`python -m testbed.writer_image` builds the archive)"
            )
        return ref
    # Both cluster workers want it: one builds and imports, the other then finds it in place.
    lock = _flock(Path(tempfile.gettempdir()) / "harness-writer-image.lock", fcntl.LOCK_EX, "the writer image")
    try:
        return writer_image_build.ensure()
    finally:
        os.close(lock)
