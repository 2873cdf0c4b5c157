"""An embedded storage server (NFS-Ganesha, tgt: started by the run on an address of the harness host,
``storage.embedded.listen``, 127.0.0.1 unless set) used on a cluster: which nodes reach it. A node whose kubelet
shares the harness host's network (its InternalIP is an address of this host: a single-machine cluster such as the
local test bed) reaches any address of this host; a node elsewhere reaches a ``listen`` address that is not a
loopback one when its InternalIP is on a network of this host's that carries that address (the test bed's bridge, a
shared LAN). Checked before anything is created; a node that does not is named, with its address and the server's,
and the run stops with exit 2. A node that reaches the address only through a router is refused too: this host
cannot tell whether the route exists.
"""

from __future__ import annotations

import ipaddress
import json

from harness import proc
from harness.errors import InfraError, UsageError
from harness.kube.api import KubeApi
from harness.storage.network import is_this_host

__all__ = ["check_nodes_reach", "is_this_host", "listen_networks", "out_of_reach", "unreachable"]


def listen_networks(listen: str) -> list[ipaddress.IPv4Network]:
    """The networks of this host's interfaces that carry ``listen`` (none for a loopback address)."""
    if ipaddress.ip_address(listen).is_loopback:
        return []
    try:
        out = proc.run(["ip", "-j", "-4", "addr", "show"], timeout_s=10.0).stdout
        links = json.loads(out)
    except (InfraError, ValueError):
        return []
    return [
        ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}").network
        for link in links
        for a in link.get("addr_info", [])
        if a.get("local") == listen
    ]


def out_of_reach(
    addresses: dict[str, list[str]], networks: list[ipaddress.IPv4Network] | None = None
) -> list[tuple[str, str]]:
    """The nodes (name, InternalIP or "no InternalIP") that reach neither this host's own network nor one of
    ``networks`` (``listen_networks``)."""

    def on(ip: str, network: ipaddress.IPv4Network) -> bool:
        try:
            return ipaddress.ip_address(ip) in network
        except ValueError:
            return False

    far = []
    for node, ips in sorted(addresses.items()):
        if not any(is_this_host(ip) or any(on(ip, n) for n in networks or []) for ip in ips):
            far.append((node, ", ".join(ips) or "no InternalIP"))
    return far


def unreachable(
    server: str,
    source: str,
    far: list[tuple[str, str]],
    listen: str = "127.0.0.1",
    networks: list[ipaddress.IPv4Network] | None = None,
) -> str | None:
    """Why the nodes ``far`` (``out_of_reach``) cannot use ``server`` (its description) for the volume ``source``."""
    if not far:
        return None
    nodes = "; ".join(f"node {name} ({ip})" for name, ip in far)
    reach = "only a node on this host's own network reaches"
    if networks:
        reach = f"only a node on this host's own network or on {', '.join(map(str, networks))} reaches"
    return (
        f"the {server} listens on {listen} of the harness host ({source}), which {reach}, and {nodes} is not on "
        "it: its kubelet could not mount the volume. Set storage.embedded.listen to an address of this host the "
        "nodes route to, or name a server the nodes reach instead of `embedded` (nothing was created in the "
        "cluster)"
    )


def check_nodes_reach(api: KubeApi, server: str, source: str, listen: str = "127.0.0.1") -> None:
    """UsageError (``unreachable``) when a node of the cluster cannot reach the embedded server on ``listen``."""
    networks = listen_networks(listen)
    refusal = unreachable(server, source, out_of_reach(api.node_addresses(), networks), listen, networks)
    if refusal is not None:
        raise UsageError(refusal)
