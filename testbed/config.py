"""Versions, paths and addresses of the local cluster. Everything here can be read without side effects."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Kubernetes 1.32: the newest minor whose kubelet still runs on cgroup v1 without opting in
# (1.31 put cgroup v1 in maintenance mode; 1.35 makes the kubelet refuse it by default) and that
# speaks the CRI v1 API that Debian 12's containerd 1.6 serves. Its go.mod asks for Go >= 1.23.
K8S_VERSION = "v1.32.13"

CACHE_ROOT = Path(os.environ.get("HARNESS_K8S_CACHE", "/var/cache/prom-harness"))
STATE_ROOT = Path(os.environ.get("HARNESS_K8S_STATE", "/var/lib/prom-harness/k8s"))

COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl")

PAUSE_IMAGE = "localhost/harness/pause:3.10"
PROMETHEUS_IMAGE = "localhost/harness/prometheus:latest"
FIO_IMAGE = "localhost/harness/fio:latest"
# busybox (static) for faults that need a program in the pod, e.g. `kill` for the runtime's sigkill/sigterm.
TOOLS_IMAGE = "localhost/harness/tools:latest"

ETCD_CLIENT_PORT = 23790
ETCD_PEER_PORT = 23800
APISERVER_PORT = 16443
SERVICE_CIDR = "10.96.0.0/24"
# Pods live on a bridge per node, in network namespaces this tool's CNI makes; their routes cover only
# POD_SUPERNET, so nothing in a pod can reach past this machine.
POD_SUPERNET = "10.244.0.0/16"

NODE_COUNT = int(os.environ.get("HARNESS_K8S_NODES", "2"))


def cache_dir(version: str = K8S_VERSION) -> Path:
    return CACHE_ROOT / f"k8s-{version}"


def bin_dir(version: str = K8S_VERSION) -> Path:
    return cache_dir(version) / "bin"


def image_dir(version: str = K8S_VERSION) -> Path:
    return cache_dir(version) / "images"


@dataclass(frozen=True)
class Node:
    """One kubelet + one containerd, with their own directories, sockets, bridge and cgroup root."""

    index: int

    @property
    def name(self) -> str:
        return f"node-{self.index}"

    @property
    def ip(self) -> str:
        """The node's InternalIP: the gateway address of its pod bridge (the kubelet listens here)."""
        return f"10.244.{self.index}.1"

    @property
    def pod_cidr(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def bridge(self) -> str:
        return f"hk8s-br{self.index}"

    @property
    def cgroup_root(self) -> str:
        return f"/harness-k8s-{self.name}"

    @property
    def dir(self) -> Path:
        return STATE_ROOT / "nodes" / self.name

    @property
    def containerd_root(self) -> Path:
        # Kept across runs (images stay imported); everything else of the node is per run.
        return STATE_ROOT / "containerd-root" / self.name

    @property
    def containerd_state(self) -> Path:
        return self.dir / "containerd-state"

    @property
    def containerd_socket(self) -> Path:
        return self.dir / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.dir / "kubelet"

    @property
    def volumes_dir(self) -> Path:
        """Where tests make the directories that back local PersistentVolumes on this node."""
        return STATE_ROOT / "volumes" / self.name

    @property
    def stream_port(self) -> int:
        return 10010 + self.index


def nodes(count: int | None = None) -> list[Node]:
    return [Node(i) for i in range(1, (count or NODE_COUNT) + 1)]


def kubeconfig_path() -> Path:
    return STATE_ROOT / "admin.kubeconfig"
