"""An embedded server (on 127.0.0.1 of the harness host) on a cluster: every node's kubelet must share this host's
network, else the run stops before anything is created, naming the node and the address."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from harness.kube.api import KubeApi
from harness.results.store import load_result
from harness.runtime.kubernetes.embedded import is_this_host, out_of_reach, unreachable
from tests.k8s.helpers import assert_nothing_left, harness_run, write_scenario


def test_a_node_elsewhere_is_named_with_its_address() -> None:
    assert is_this_host("127.0.0.1") and not is_this_host("192.0.2.1")  # TEST-NET-1: never this host's
    far = out_of_reach({"node-1": ["127.0.0.1"], "node-9": ["192.0.2.1"], "node-x": []})
    assert far == [("node-9", "192.0.2.1"), ("node-x", "no InternalIP")]
    said = unreachable("embedded NFS server (NFS-Ganesha on 127.0.0.1)", "nfs 127.0.0.1:/export", far)
    assert said is not None
    assert "node node-9 (192.0.2.1); node node-x (no InternalIP) is not on it" in said
    assert "listens on 127.0.0.1 of the harness host (nfs 127.0.0.1:/export)" in said
    assert unreachable("x", "y", out_of_reach({"node-1": ["192.0.2.1", "127.0.0.1"]})) is None


@pytest.mark.cluster
def test_the_local_clusters_nodes_are_on_this_host(kubeconfig: Path, kube_context: str, local_cluster: bool) -> None:
    if not local_cluster:
        pytest.skip("another cluster's nodes may well be elsewhere")
    api = KubeApi(str(kubeconfig), context=kube_context)
    try:
        addresses = api.node_addresses()
    finally:
        api.close()
    assert addresses and all(ips for ips in addresses.values()), addresses
    assert out_of_reach(addresses) == []


@pytest.mark.cluster_exclusive  # a node object that never becomes Ready: other tests' doctors would see it
def test_a_run_whose_embedded_server_a_node_cannot_reach_stops_before_anything_is_created(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_cluster: bool
) -> None:
    """A node elsewhere (here a Node object at 192.0.2.1, TEST-NET-1, with no kubelet behind it): the run starts its
    embedded tgt, finds the node cannot reach it, stops with exit 2 naming the node and both addresses, and has
    created nothing in the cluster; its server is stopped again."""
    from kubernetes import client

    if not local_cluster:
        pytest.skip("adds a Node object: only on the local cluster")
    core = client.CoreV1Api(api_client)
    far = f"harness-far-{uuid.uuid4().hex[:6]}"
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=far, labels={"harness.prom/test": "1"})))
    try:
        core.patch_node_status(far, {"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"}]}})
        scenario_file = write_scenario(
            tmp_path,
            "version: 1\nname: k8s-far\nduration: 5s\n"
            "storage: {backend: iscsi, target_portal: embedded, embedded: {layout: blank, size: 64Mi}, "
            "iqn: 'iqn.2020-02.com:wsg', lun: 1, claim: {storage_class: '', size: 64Mi}}\n",
        )
        work = tmp_path / "work"
        work.mkdir()
        proc = harness_run(scenario_file, tmp_path / "r", kubeconfig, "--workdir", str(work))
        out = proc.stdout + proc.stderr
        assert proc.returncode == 2, out
        assert f"node {far} (192.0.2.1) is not on it" in out and "listens on 127.0.0.1 of the harness host" in out
        assert "Traceback" not in out
        [result_file] = (tmp_path / "r").glob("*/*/result.json")
        assert_nothing_left(api_client, load_result(result_file.parent).run_id)
        assert list(work.iterdir()) == []  # the run's server stopped, its LUN file and work area removed
    finally:
        core.delete_node(far)
