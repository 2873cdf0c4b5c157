"""An embedded server (on 127.0.0.1 of the harness host) on a cluster: every node's kubelet must share this host's
network, else the run stops before anything is created, naming the node and the address."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.kube.api import KubeApi
from harness.runtime.kubernetes.embedded import is_this_host, out_of_reach, unreachable


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
