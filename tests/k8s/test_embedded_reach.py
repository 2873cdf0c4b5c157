"""An embedded server (on 127.0.0.1 of the harness host, or the address ``storage.embedded.listen`` names) on a
cluster: every node's kubelet must share this host's network, or the network of that address, else the run stops
before anything is created, naming the node and the address; a ``listen`` that is no IPv4 address, or none of this
host's, is refused before anything starts (exit 2, its key path)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness.datapath.servers import start_tgt
from harness.kube.api import KubeApi
from harness.results.store import load_result
from harness.runtime.kubernetes.embedded import is_this_host, listen_networks, out_of_reach, unreachable
from tests.k8s.helpers import assert_nothing_left, harness_run, write_scenario
from tests.leftovers import left_behind, run

FAR = "198.51.100.7"  # TEST-NET-2: on no network of this host's (this machine's own uplink may be in TEST-NET-1)


def a_non_loopback_address() -> str:
    """An IPv4 address of this host's other than a loopback one (its uplink's, a bridge's)."""
    links = json.loads(subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, check=True).stdout)
    found = [a["local"] for link in links for a in link.get("addr_info", [])]
    others = [a for a in found if not ipaddress.ip_address(a).is_loopback]
    if not others:
        pytest.skip("this host has no IPv4 address but loopback ones")
    return others[0]


def test_a_node_elsewhere_is_named_with_its_address() -> None:
    assert is_this_host("127.0.0.1") and not is_this_host("192.0.2.1")  # TEST-NET-1: never this host's
    far = out_of_reach({"node-1": ["127.0.0.1"], "node-9": ["192.0.2.1"], "node-x": []})
    assert far == [("node-9", "192.0.2.1"), ("node-x", "no InternalIP")]
    said = unreachable("embedded NFS server (NFS-Ganesha on 127.0.0.1)", "nfs 127.0.0.1:/export", far)
    assert said is not None
    assert "node node-9 (192.0.2.1); node node-x (no InternalIP) is not on it" in said
    assert "listens on 127.0.0.1 of the harness host (nfs 127.0.0.1:/export)" in said
    assert unreachable("x", "y", out_of_reach({"node-1": ["192.0.2.1", "127.0.0.1"]})) is None
    assert "Set storage.embedded.listen to an address of this host the nodes route to" in said


def test_a_listen_address_is_reached_from_its_own_network_and_served_there(tmp_path: Path) -> None:
    """``listen`` on a non-loopback address of this host: a node on that address's network reaches it, one
    elsewhere is named with the network it is not on; tgt really listens there, and its portal says so."""
    listen = a_non_loopback_address()
    [network] = listen_networks(listen)
    neighbour = str(next(ip for ip in network.hosts() if not is_this_host(str(ip))))
    assert out_of_reach({"node-1": [neighbour], "node-9": [FAR]}, [network]) == [("node-9", FAR)]
    assert out_of_reach({"node-1": [neighbour]}, []) == [("node-1", neighbour)]  # 127.0.0.1: this host only
    said = unreachable("tgt", "iscsi x", [("node-9", FAR)], listen, [network])
    assert said is not None and f"listens on {listen} of the harness host" in said, said
    assert f"on this host's own network or on {network} reaches, and node node-9 ({FAR}) is not on it" in said
    assert listen_networks("127.0.0.1") == []

    target = start_tgt(tmp_path / "tgt", listen=listen)
    try:
        assert target.portal.startswith(f"{listen}:"), target.portal
        listening = subprocess.run(["ss", "-Htln"], capture_output=True, text=True, check=True).stdout
        assert f"{listen}:{target.port} " in listening, listening
    finally:
        target.stop()


@pytest.mark.parametrize(
    ("listen", "said"),
    [
        ("10.0.0", "'10.0.0' is no IPv4 address"),
        ("localhost", "'localhost' is no IPv4 address"),
        (FAR, f"storage.embedded.listen: {FAR} is no address of this host"),
    ],
)
@pytest.mark.parametrize("backend", ["nfs", "iscsi"])
def test_a_bad_listen_address_stops_the_run_before_anything_starts(
    tmp_path: Path, backend: str, listen: str, said: str
) -> None:
    """No IPv4 address (the model's refusal, with the file, line and key path), or none of this host's (the
    server's start, before it runs): exit 2, no traceback, nothing left in the work area."""
    where = (
        "server: embedded\n  export: /x"
        if backend == "nfs"
        else "target_portal: embedded\n  iqn: iqn.2020-02.com:wsg\n  lun: 1"
    )
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"version: 1\nname: listen\nduration: 5s\nstorage:\n  backend: {backend}\n  {where}\n"
        f"  embedded:\n    listen: '{listen}'\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    done = run(scenario, tmp_path / "r", work).expect(2)
    assert said in done.output and "Traceback" not in done.output, done.output
    if "IPv4" in said:
        assert "storage.embedded.listen" in done.output and f"{scenario}:" in done.output, done.output
    assert left_behind(work) == [] and list(work.iterdir()) == []


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
