"""The writer image (testbed/writer_image.py) runs the harness' TSDB writer modules in a pod on every node, and
holds only what importing them loads: a module the writer does not import is missing there."""

from __future__ import annotations

from typing import Any

import pytest

from tests.k8s.helpers import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# The image is imported before the pods exist: what is left is the sandbox and an interpreter start (seconds).
POD_TIMEOUT_S = 120

IMPORTS = (
    "import sys, harness.loads.tsdb_writer, numpy, cramjam; "
    "print('writer-image-ok', sys.version.split()[0], numpy.__version__, harness.loads.tsdb_writer.__file__)"
)


def _run_pod(api_client: Any, namespace: str, name: str, *, node: str, image: str, code: str) -> tuple[str, str]:
    """Run `python3 -c code` in a pod of `image` on `node`; its phase (Succeeded/Failed) and log."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PodSpec(
                node_name=node,
                restart_policy="Never",
                automount_service_account_token=False,
                containers=[
                    client.V1Container(
                        name="writer",
                        image=image,
                        # Local images are in the nodes' stores and nowhere else; an outside ref is pulled.
                        image_pull_policy="Never" if image.startswith("localhost/") else "IfNotPresent",
                        command=["python3", "-c", code],  # through PATH, as the shard Job names it
                    )
                ],
            ),
        ),
    )
    pod = wait_for(
        core.list_namespaced_pod,
        lambda p: p.status is not None and p.status.phase in ("Succeeded", "Failed"),
        timeout=POD_TIMEOUT_S,
        what=f"pod {name} on {node} to finish",
        namespace=namespace,
        field_selector=f"metadata.name={name}",
    )
    return pod.status.phase, core.read_namespaced_pod_log(name, namespace)


def test_writer_image_imports_the_writer_on_every_node(api_client: Any, namespace: str, writer_image: str) -> None:
    from kubernetes import client

    nodes = sorted(n.metadata.name for n in client.CoreV1Api(api_client).list_node().items)
    for node in nodes:
        phase, log = _run_pod(api_client, namespace, f"imports-{node}", node=node, image=writer_image, code=IMPORTS)
        assert phase == "Succeeded", f"{writer_image} on {node}: {log}"
        assert "writer-image-ok" in log, log
        # The harness copied from the source tree, under PYTHONPATH, not an editable install's path on this machine.
        assert "/opt/harness/python/harness/loads/tsdb_writer.py" in log, log


def test_writer_image_lacks_what_the_writer_does_not_import(api_client: Any, namespace: str, writer_image: str) -> None:
    """pandas is installed here (prometheus_api_client's dependency) but the writer never imports it: the image's
    module discovery left it out, so the import fails in the pod (were every site-package copied, it would not)."""
    from kubernetes import client

    node = sorted(n.metadata.name for n in client.CoreV1Api(api_client).list_node().items)[0]
    phase, log = _run_pod(api_client, namespace, "no-pandas", node=node, image=writer_image, code="import pandas")
    assert phase == "Failed", f"import pandas succeeded in {writer_image}: {log}"
    assert "No module named 'pandas'" in log, log
