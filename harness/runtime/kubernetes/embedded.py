"""An embedded storage server (NFS-Ganesha, tgt: started by the run on 127.0.0.1 of the harness host) used on a
cluster: only nodes whose kubelet shares the harness host's network reach it, i.e. nodes whose InternalIP is an
address of this host (a single-machine cluster such as the local test bed). Checked before anything is created;
a node that does not is named, with its address and the server's, and the run stops with exit 2.
"""

from __future__ import annotations

import ipaddress
import socket

from harness.errors import UsageError
from harness.kube.api import KubeApi


def is_this_host(address: str) -> bool:
    """Whether ``address`` is one of this host's own (binding a socket to it succeeds)."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    except ValueError:
        return False
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True


def out_of_reach(addresses: dict[str, list[str]]) -> list[tuple[str, str]]:
    """The nodes (name, InternalIP or "no InternalIP") whose kubelet is not on this host's network."""
    far = []
    for node, ips in sorted(addresses.items()):
        if not any(is_this_host(ip) for ip in ips):
            far.append((node, ", ".join(ips) or "no InternalIP"))
    return far


def unreachable(server: str, source: str, far: list[tuple[str, str]]) -> str | None:
    """Why the nodes ``far`` (``out_of_reach``) cannot use ``server`` (its description) for the volume ``source``."""
    if not far:
        return None
    nodes = "; ".join(f"node {name} ({ip})" for name, ip in far)
    return (
        f"the {server} listens on 127.0.0.1 of the harness host ({source}), which only a node on this host's own "
        f"network reaches, and {nodes} is not on it: its kubelet could not mount the volume. Name a server the "
        "nodes reach instead of `embedded` (nothing was created in the cluster)"
    )


def check_nodes_reach(api: KubeApi, server: str, source: str) -> None:
    """UsageError (``unreachable``) when a node of the cluster cannot reach the embedded server."""
    refusal = unreachable(server, source, out_of_reach(api.node_addresses()))
    if refusal is not None:
        raise UsageError(refusal)
