"""`start`, `stop`, `status`, and `acquire`/`release` for test sessions that share the cluster: the order in which
the control plane (control_plane), the nodes (node) and the host network (network) come up and go down, under one
lock across processes. How each daemon is started and stopped by PID is procs'.

Layout under config.STATE_ROOT (per run, wiped by `start`, except containerd-root/ which keeps imported images):
  pki/ certificates and kubeconfigs, etcd/ data, logs/<daemon>.log, pids/<daemon>.pid,
  nodes/node-N/ containerd state, socket and config, kubelet root, CNI config, IPAM state, pod logs,
  volumes/node-N/ the directories that back local PersistentVolumes, cluster.json what `start` brought up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from testbed import build, config, control_plane, iscsi_helper, network, node, procs
from testbed.config import Node
from testbed.control_plane import api_get
from testbed.procs import ClusterError

# Names the importers (tests/k8s/conftest.py, __main__.py) and tests use from here.
__all__ = ["ClusterError", "acquire", "api_get", "is_running", "release", "start", "status", "stop"]

_CONTROL_PLANE = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"]


def _daemon_names(node_list: list[Node]) -> list[str]:
    return _CONTROL_PLANE + [f"{kind}-{n.name}" for n in node_list for kind in ("containerd", "kubelet")]


def _recorded_nodes() -> list[Node]:
    info = config.STATE_ROOT / "cluster.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        return [Node(i) for i in json.loads(info.read_text())["node_indexes"]]
    nodes_dir = config.STATE_ROOT / "nodes"
    if nodes_dir.exists():
        indexes = sorted(int(p.name.split("-")[1]) for p in nodes_dir.iterdir() if p.name.startswith("node-"))
        return [Node(i) for i in indexes]
    return []


# ---------------------------------------------------------------------------------------------- commands


def is_running() -> bool:
    info = config.STATE_ROOT / "cluster.json"
    if not info.exists():
        return False
    node_list = _recorded_nodes()
    if not all(procs.alive(name) for name in _daemon_names(node_list)):
        return False
    try:
        return control_plane.ready_nodes() >= {n.name for n in node_list}
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return False


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One start/stop decision at a time across processes (several pytest sessions may share the cluster)."""
    config.STATE_ROOT.mkdir(parents=True, exist_ok=True)
    with (config.STATE_ROOT / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _preflight() -> None:
    if os.geteuid() != 0:
        raise ClusterError("the local cluster needs root (mounts, cgroups, bridges)")
    if not build.is_built():
        raise ClusterError(f"not built: {config.cache_dir()} is incomplete; run `nox -s cluster` first")
    missing = [t for t in ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "etcd", "ip", "openssl")
               if shutil.which(t) is None]  # fmt: skip
    if missing or not Path("/usr/lib/cni/bridge").exists():
        raise ClusterError(f"missing tools: {missing or '/usr/lib/cni/bridge'} (scripts/debian-packages.txt)")


def start(node_count: int | None = None, timeout: float = 240) -> Path:
    """Bring the cluster up (or leave a running one alone); return the admin kubeconfig path."""
    _preflight()
    with _locked():
        if not is_running():
            _start(node_count, timeout)
        else:
            procs.log(f"already running; KUBECONFIG={config.kubeconfig_path()}")
        # Started by hand: the tests' `release` must leave it running, whoever started it first.
        (config.STATE_ROOT / "started-for-tests").unlink(missing_ok=True)
    return config.kubeconfig_path()


def _start(node_count: int | None, timeout: float) -> None:
    _stop()
    node_list = config.nodes(node_count)
    started = time.monotonic()
    if node.mounts_under(config.STATE_ROOT):
        mounted = node.mounts_under(config.STATE_ROOT)
        raise ClusterError(f"refusing to wipe {config.STATE_ROOT}: still mounted: {mounted}")
    for sub in ("pki", "etcd", "logs", "pids", "nodes", "volumes"):
        shutil.rmtree(config.STATE_ROOT / sub, ignore_errors=True)
    (config.STATE_ROOT / "started-for-tests").unlink(missing_ok=True)
    try:
        control_plane.make_pki(node_list)
        procs.log("etcd")
        control_plane.start_etcd()
        for n in node_list:
            network.make_bridge(n)  # the apiserver advertises node-1's address
        network.make_routes(node_list)
        procs.log("kube-apiserver")
        control_plane.start_apiserver(node_list)
        procs.log("kube-controller-manager, kube-scheduler")
        control_plane.start_controllers()
        for n in node_list:
            procs.log(f"{n.name}: containerd + kubelet")
            node.start_node(n)
        want = {n.name for n in node_list}
        procs.wait_for(
            f"nodes {sorted(want)} Ready",
            control_plane.until_it_answers(lambda: control_plane.ready_nodes() >= want),
            timeout,
            f"kubelet-{node_list[-1].name}",
        )
        procs.log("kube-proxy")
        control_plane.start_proxy(node_list)
    except BaseException:
        procs.log(f"start failed; logs in {config.STATE_ROOT / 'logs'}; stopping what started")
        try:
            _stop()
        except Exception as cleanup_error:  # noqa: BLE001 (the start failure re-raised below is the one to report)
            procs.log(f"stopping after the failed start failed too: {cleanup_error}")
        raise
    (config.STATE_ROOT / "cluster.json").write_text(
        json.dumps(
            {
                "version": config.K8S_VERSION,
                "node_indexes": [n.index for n in node_list],
                "kubeconfig": str(config.kubeconfig_path()),
                "start_seconds": round(time.monotonic() - started, 1),
            },
            indent=2,
        )
        + "\n"
    )
    procs.log(
        f"up in {time.monotonic() - started:.0f}s: {len(node_list)} node(s); KUBECONFIG={config.kubeconfig_path()}"
    )


def stop() -> None:
    """Stop every daemon by PID, kill the containers, unmount, remove cgroups and bridges. Idempotent."""
    with _locked():
        _stop()


def _stop() -> None:
    control_plane.stop_proxy()
    node_list = _recorded_nodes()
    for n in node_list:
        node.stop_node(n)
    iscsi_helper.release_dev_disk()
    network.remove_routes()
    for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
        procs.terminate(name, 20)
    (config.STATE_ROOT / "cluster.json").unlink(missing_ok=True)
    (config.STATE_ROOT / "started-for-tests").unlink(missing_ok=True)
    procs.reap_exited()


# ---------------------------------------------------------------------------------------------- shared use by tests


def _users_dir() -> Path:
    return config.STATE_ROOT / "users"


def acquire() -> Path:
    """For a test session: start the cluster unless it runs, and register this process as one of its users.

    A cluster started here is marked `started-for-tests`, and the last test session to `release` it stops it;
    a cluster started by `nox -s cluster` or `python -m testbed start` is left running.
    """
    _preflight()
    with _locked():
        if not is_running():
            _start(None, 240)
            (config.STATE_ROOT / "started-for-tests").write_text(f"{os.getpid()}\n")
        _users_dir().mkdir(parents=True, exist_ok=True)
        (_users_dir() / str(os.getpid())).write_text(f"{Path(f'/proc/{os.getpid()}/cmdline').read_bytes()!r}\n")
    return config.kubeconfig_path()


def release(keep: bool = False) -> None:
    """Unregister this process; stop the cluster if it was started for tests and no other user is alive."""
    with _locked():
        (_users_dir() / str(os.getpid())).unlink(missing_ok=True)
        alive = []
        if _users_dir().exists():
            for entry in _users_dir().iterdir():
                if entry.name.isdigit() and procs.pid_alive(int(entry.name)):
                    alive.append(entry.name)
                else:
                    entry.unlink(missing_ok=True)
        if not alive and not keep and (config.STATE_ROOT / "started-for-tests").exists():
            _stop()


def lose_node(name: str) -> None:
    """`python -m testbed node lose NAME`: the node's kubelet, containers and containerd die (SIGKILL)."""
    with _locked():
        node.lose_node(_node_named(name))


def restore_node(name: str, timeout: float = 120) -> None:
    """`python -m testbed node restore NAME`: start them again and wait until the node is Ready."""
    with _locked():
        n = _node_named(name)
        node.restore_node(n)
        procs.wait_for(
            f"node {name} Ready again",
            control_plane.until_it_answers(lambda: name in control_plane.ready_nodes()),
            timeout,
            f"kubelet-{name}",
        )


def stop_kubelet(name: str) -> None:
    """`python -m testbed node kubelet-stop NAME`: the node's kubelet stops; its containers keep running."""
    with _locked():
        node.stop_kubelet(_node_named(name))


def start_kubelet(name: str, timeout: float = 120) -> None:
    """`python -m testbed node kubelet-start NAME`: the kubelet starts again; returns once the node is Ready."""
    with _locked():
        n = _node_named(name)
        if not procs.alive(f"kubelet-{name}"):
            node.start_kubelet(n)
        procs.wait_for(
            f"node {name} Ready again",
            control_plane.until_it_answers(lambda: name in control_plane.ready_nodes()),
            timeout,
            f"kubelet-{name}",
        )


def _node_named(name: str) -> Node:
    for n in _recorded_nodes():
        if n.name == name:
            return n
    raise ClusterError(f"no node {name!r} in the running cluster (have {[n.name for n in _recorded_nodes()]})")


def status() -> dict[str, Any]:
    node_list = _recorded_nodes()
    daemons = {}
    for name in _daemon_names(node_list):
        entry = procs.read_pid(name)
        daemons[name] = {"pid": entry[0] if entry else None, "alive": procs.alive(name)}
    try:
        ready = sorted(control_plane.ready_nodes())
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        ready = []
    return {
        "version": config.K8S_VERSION,
        "built": build.is_built(),
        "cache": str(config.cache_dir()),
        "state": str(config.STATE_ROOT),
        "running": is_running(),
        "daemons": daemons,
        "ready_nodes": ready,
        "kubeconfig": str(config.kubeconfig_path()),
    }
