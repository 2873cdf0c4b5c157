"""The control plane: per-run certificates and kubeconfigs, etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and the one kube-proxy serving every node; and the API reads (`api_get`, `ready_nodes`) that `start`
waits on and `status` reports. Everything listens on 127.0.0.1 only (kube-proxy's NodePorts on the nodes' bridges).
"""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import urllib.request
from collections.abc import Callable
from typing import Any

from testbed import config, network, pki, procs
from testbed.config import Node

# Imported as `_spawn`: tests/test_external_programs.py reads the program names of `_spawn(name, [...])` calls.
from testbed.procs import spawn as _spawn

# `kube-proxy --cleanup` walks every iptables table: seconds, unless the xtables lock is held by someone else.
PROXY_CLEANUP_TIMEOUT_S = 60.0


def until_it_answers(probe: Callable[[], bool]) -> Callable[[], bool]:
    """`probe` for procs.wait_for, with "does not answer yet" read as not ready: an OSError (connection refused or
    reset, a timeout, a TLS handshake cut short, an HTTP 5xx while the daemon starts) or a response cut off mid-way.
    Anything else (an answer that does not parse, a bug in the probe) still propagates out of the wait."""

    def check() -> bool:
        try:
            return probe()
        except (OSError, http.client.HTTPException):
            return False

    return check


# ---------------------------------------------------------------------------------------------- API access


def _ssl_context() -> ssl.SSLContext:
    pki_dir = config.STATE_ROOT / "pki"
    ctx = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    ctx.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
    return ctx


def api_get(path: str, timeout: float = 5) -> Any:
    url = f"https://127.0.0.1:{config.APISERVER_PORT}{path}"
    with urllib.request.urlopen(url, context=_ssl_context(), timeout=timeout) as resp:
        body = resp.read()
    try:
        return json.loads(body)
    except ValueError:
        return body.decode()


def ready_nodes() -> set[str]:
    ready = set()
    for item in api_get("/api/v1/nodes")["items"]:
        for cond in item.get("status", {}).get("conditions", []):
            if cond["type"] == "Ready" and cond["status"] == "True":
                ready.add(item["metadata"]["name"])
    return ready


# ---------------------------------------------------------------------------------------------- daemons


def make_pki(node_list: list[Node]) -> None:
    d = config.STATE_ROOT / "pki"
    pki.make_ca(d)
    pki.make_service_account_key(d)
    server = f"https://127.0.0.1:{config.APISERVER_PORT}"
    pki.make_cert(
        d,
        pki.Cert(
            "apiserver",
            "kube-apiserver",
            client=False,
            server=True,
            ips=("127.0.0.1", "10.96.0.1", *(n.ip for n in node_list)),
            dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local"),
        ),
    )  # fmt: skip
    pki.make_cert(d, pki.Cert("apiserver-kubelet-client", "kube-apiserver-kubelet-client", org="system:masters"))
    pki.make_cert(d, pki.Cert("admin", "kubernetes-admin", org="system:masters"))
    # With --use-service-account-credentials=false every controller acts as the manager itself.
    pki.make_cert(d, pki.Cert("controller-manager", "system:kube-controller-manager", org="system:masters"))
    pki.make_cert(d, pki.Cert("scheduler", "system:kube-scheduler"))
    pki.make_cert(d, pki.Cert("kube-proxy", "system:kube-proxy"))  # bound to system:node-proxier by RBAC
    pki.kubeconfig(d / "admin.kubeconfig", server, d, "admin", "admin")
    pki.kubeconfig(d / "controller-manager.kubeconfig", server, d, "controller-manager", "controller-manager")
    pki.kubeconfig(d / "scheduler.kubeconfig", server, d, "scheduler", "scheduler")
    pki.kubeconfig(d / "kube-proxy.kubeconfig", server, d, "kube-proxy", "kube-proxy")
    for node in node_list:
        pki.make_cert(d, pki.Cert(node.name, f"system:node:{node.name}", org="system:nodes"))
        pki.kubeconfig(d / f"{node.name}.kubeconfig", server, d, node.name, node.name)
    shutil.copyfile(d / "admin.kubeconfig", config.kubeconfig_path())


def start_etcd() -> None:
    client = f"http://127.0.0.1:{config.ETCD_CLIENT_PORT}"
    peer = f"http://127.0.0.1:{config.ETCD_PEER_PORT}"
    _spawn(
        "etcd",
        ["etcd", "--name", "harness", "--data-dir", str(config.STATE_ROOT / "etcd"),
         "--listen-client-urls", client, "--advertise-client-urls", client,
         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"harness={peer}", "--initial-cluster-state", "new",
         "--listen-metrics-urls", f"http://127.0.0.1:{config.ETCD_CLIENT_PORT + 1}"],
    )  # fmt: skip

    def healthy() -> bool:
        with urllib.request.urlopen(f"{client}/health", timeout=2) as resp:  # noqa: S310 (loopback)
            return bool(json.loads(resp.read()).get("health") == "true")

    procs.wait_for("etcd /health", until_it_answers(healthy), 30, "etcd")


def start_apiserver(node_list: list[Node]) -> None:
    d = config.STATE_ROOT / "pki"
    binary = str(config.bin_dir() / "kube-apiserver")
    _spawn(
        "kube-apiserver",
        [binary,
         f"--etcd-servers=http://127.0.0.1:{config.ETCD_CLIENT_PORT}",
         "--bind-address=127.0.0.1", f"--secure-port={config.APISERVER_PORT}",
         f"--advertise-address={node_list[0].ip}", "--endpoint-reconciler-type=none",
         f"--service-cluster-ip-range={config.SERVICE_CIDR}",
         f"--tls-cert-file={d / 'apiserver.crt'}", f"--tls-private-key-file={d / 'apiserver.key'}",
         f"--client-ca-file={d / 'ca.crt'}",
         f"--kubelet-client-certificate={d / 'apiserver-kubelet-client.crt'}",
         f"--kubelet-client-key={d / 'apiserver-kubelet-client.key'}",
         "--kubelet-preferred-address-types=InternalIP",
         f"--service-account-key-file={d / 'sa.pub'}", f"--service-account-signing-key-file={d / 'sa.key'}",
         "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
         "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
         "--allow-privileged=true", "--profiling=false", "--v=1"],
    )  # fmt: skip
    procs.wait_for(
        "kube-apiserver /readyz", until_it_answers(lambda: api_get("/readyz") == "ok"), 120, "kube-apiserver"
    )


def start_controllers() -> None:
    d = config.STATE_ROOT / "pki"
    _spawn(
        "kube-controller-manager",
        [str(config.bin_dir() / "kube-controller-manager"),
         f"--kubeconfig={d / 'controller-manager.kubeconfig'}",
         "--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false",
         "--use-service-account-credentials=false",
         f"--service-account-private-key-file={d / 'sa.key'}", f"--root-ca-file={d / 'ca.crt'}",
         f"--cluster-signing-cert-file={d / 'ca.crt'}", f"--cluster-signing-key-file={d / 'ca.key'}",
         f"--service-cluster-ip-range={config.SERVICE_CIDR}", "--allocate-node-cidrs=false",
         # A node silent for 16 s is NotReady (default 40 s): the kubelets' heartbeats are faster to match.
         "--node-monitor-grace-period=16s", "--node-monitor-period=2s",
         "--profiling=false", "--v=1"],
    )  # fmt: skip
    _spawn(
        "kube-scheduler",
        [str(config.bin_dir() / "kube-scheduler"),
         f"--kubeconfig={d / 'scheduler.kubeconfig'}",
         "--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false", "--profiling=false", "--v=1"],
    )  # fmt: skip


def start_proxy(node_list: list[Node]) -> None:
    """One kube-proxy (iptables mode) serves every node: they all share this machine's network namespace.

    ClusterIP Services then work from the host and from pods. NodePorts open only on the nodes' bridge
    addresses, never on loopback (so no route_localnet), and the conntrack sysctls are left alone.
    """
    d = config.STATE_ROOT / "pki"
    _spawn(
        "kube-proxy",
        [str(config.bin_dir() / "kube-proxy"),
         f"--kubeconfig={d / 'kube-proxy.kubeconfig'}", f"--hostname-override={node_list[0].name}",
         "--proxy-mode=iptables", f"--cluster-cidr={config.POD_SUPERNET}",
         f"--nodeport-addresses={','.join(n.ip + '/32' for n in node_list)}",
         "--bind-address=127.0.0.1", "--healthz-bind-address=127.0.0.1:10356",
         "--metrics-bind-address=127.0.0.1:10349",
         "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0s",
         "--conntrack-tcp-timeout-close-wait=0s", "--v=1"],
    )  # fmt: skip

    def healthy() -> bool:
        with urllib.request.urlopen("http://127.0.0.1:10356/healthz", timeout=2) as resp:
            return bool(resp.status == 200)

    procs.wait_for("kube-proxy /healthz", until_it_answers(healthy), 60, "kube-proxy")


def stop_proxy() -> None:
    if procs.read_pid("kube-proxy") is None:
        return
    procs.terminate("kube-proxy", 10)
    # Removes most of the KUBE-* chains and rules it added to this machine's iptables; network removes the rest.
    procs.run(str(config.bin_dir() / "kube-proxy"), "--cleanup", check=False, timeout_s=PROXY_CLEANUP_TIMEOUT_S)
    network.remove_kube_chains()
