"""The cluster's host networking: one bridge per node (its gateway address is the node's InternalIP), the routes that
keep cluster addresses on this machine, and the removal of every KUBE-* iptables chain kube-proxy leaves behind.
Every change goes through `ip` and `iptables` under procs' command timeout.
"""

from __future__ import annotations

import shutil

from testbed import config
from testbed.config import Node

# Imported as `_run`: tests/test_external_programs.py reads the program names of `_run("ip", ...)` calls.
from testbed.procs import run as _run


def make_bridge(node: Node) -> None:
    if _run("ip", "link", "show", node.bridge, check=False).returncode != 0:
        _run("ip", "link", "add", "name", node.bridge, "type", "bridge")
    _run("ip", "addr", "replace", f"{node.ip}/24", "dev", node.bridge)
    _run("ip", "link", "set", node.bridge, "up")


def delete_bridge(node: Node) -> None:
    _run("ip", "link", "delete", node.bridge, check=False)


def make_routes(node_list: list[Node]) -> None:
    """Keep cluster addresses on this machine: Service IPs route to node-1's bridge (kube-proxy DNATs them to a
    pod; an unknown one dies on the bridge), and the rest of the pod supernet is unreachable, so neither the
    host nor a pod ever sends a 10.x packet out of the machine's real interface."""
    _run("ip", "route", "replace", config.SERVICE_CIDR, "dev", node_list[0].bridge)
    _run("ip", "route", "replace", "unreachable", config.POD_SUPERNET)


def remove_routes() -> None:
    _run("ip", "route", "delete", "unreachable", config.POD_SUPERNET, check=False)
    _run("ip", "route", "delete", config.SERVICE_CIDR, check=False)


def remove_kube_chains() -> None:
    """`kube-proxy --cleanup` leaves a few chains behind (KUBE-FIREWALL with its INPUT/OUTPUT jumps, KUBE-MARK-MASQ,
    the canaries). Nothing else on this machine runs Kubernetes, so every KUBE-* chain is ours: drop them all."""
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("filter", "nat", "mangle"):
            rules = _run(tool, "-t", table, "-S", check=False).stdout.splitlines()
            chains = [r.split()[1] for r in rules if r.startswith("-N KUBE-")]
            for rule in rules:
                parts = rule.split()
                builtin_jump = parts[:1] == ["-A"] and not parts[1].startswith("KUBE-") and "-j" in parts
                if builtin_jump and parts[parts.index("-j") + 1].startswith("KUBE-"):
                    _run(tool, "-t", table, "-D", *parts[1:], check=False)
            for chain in chains:
                _run(tool, "-t", table, "-F", chain, check=False)
            for chain in chains:
                _run(tool, "-t", table, "-X", chain, check=False)
