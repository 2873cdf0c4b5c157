"""The nodes: per node a containerd and a kubelet with their own directories, sockets, cgroup root (in every cgroup
hierarchy) and image store; importing the cluster's images into that store; and a node's teardown: containers killed
through ctr, whatever is left in its cgroups, the containerd shims serving its socket, every mount under its
directories, its cgroups and its bridge.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from harness.proc import Completed
from testbed import build, config, iscsi_helper, network, nfs_helper, procs
from testbed.config import Node

# Imported as `_run` and `_spawn`: tests/test_external_programs.py reads the program names of such calls.
from testbed.procs import run as _run
from testbed.procs import spawn as _spawn

CGROUP_MOUNTS = Path("/sys/fs/cgroup")
# `ctr version` answers in milliseconds once containerd serves its socket; more than this means it hangs.
CTR_PROBE_TIMEOUT_S = 15.0
# The Prometheus image is the largest (tens of MB, unpacked into overlay snapshots): seconds normally, minutes when
# the two cores are busy with builds.
IMAGE_IMPORT_TIMEOUT_S = 600.0


# ---------------------------------------------------------------------------------------------- cgroups


def cgroup_hierarchies(include_v2: bool = False) -> list[Path]:
    """The mounted cgroup v1 hierarchies (cpu, memory, ..., name=systemd), and with `include_v2` the hybrid
    layout's cgroup2 mount too (runc mirrors each container there, so cleanup must look there as well)."""
    found = []
    kinds = ("cgroup", "cgroup2") if include_v2 else ("cgroup",)
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _dev, mnt, fstype, *_ = line.split()
        if fstype in kinds and mnt.startswith(str(CGROUP_MOUNTS)):
            found.append(Path(mnt))
    return found


def make_cgroup_root(node: Node) -> None:
    for hierarchy in cgroup_hierarchies():
        path = hierarchy / node.cgroup_root.lstrip("/")
        path.mkdir(exist_ok=True)
        if (hierarchy / "cpuset.cpus").exists():
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not (path / f).read_text().strip():
                    (path / f).write_text((hierarchy / f).read_text())


def remove_cgroup_root(node: Node) -> None:
    for hierarchy in cgroup_hierarchies(include_v2=True):
        top = hierarchy / node.cgroup_root.lstrip("/")
        if not top.exists():
            continue
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for d in [*dirs, top]:
            for _ in range(20):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


def cgroup_pids(node: Node) -> set[int]:
    pids: set[int] = set()
    for hierarchy in cgroup_hierarchies(include_v2=True):
        top = hierarchy / node.cgroup_root.lstrip("/")
        if top.exists():
            for procs_file in top.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs_file.read_text().split())
    return pids


# ---------------------------------------------------------------------------------------------- containerd and kubelet


def _write_containerd_config(node: Node) -> Path:
    cni_conf = node.dir / "cni"
    cni_conf.mkdir(parents=True, exist_ok=True)
    (cni_conf / "10-harness.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "0.4.0",
                "name": f"harness-{node.name}",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": node.bridge,
                        "isGateway": True,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": node.pod_cidr, "gateway": node.ip}]],
                            "routes": [{"dst": config.POD_SUPERNET}, {"dst": config.SERVICE_CIDR}],
                            "dataDir": str(node.dir / "ipam"),
                        },
                    }
                ],
            },
            indent=2,
        )
    )
    path = node.dir / "containerd.toml"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    path.write_text(
        f"""version = 2
root = "{node.containerd_root}"
state = "{node.containerd_state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{node.containerd_socket}"

[ttrpc]
  address = "{node.containerd_socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{node.containerd_root}/opt"

[{cri}]
  sandbox_image = "{config.PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "{node.stream_port}"
  netns_mounts_under_state_dir = true
  # Root here lacks CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj to the -998 the kubelet asks for the pause
  # container: clamp container OOM scores to no lower than containerd's own.
  restrict_oom_score_adj = true
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{cni_conf}"
  max_conf_num = 1
"""
    )
    return path


def _ctr(node: Node, *args: str, check: bool = True, timeout_s: float = procs.COMMAND_TIMEOUT_S) -> Completed:
    socket = str(node.containerd_socket)
    return _run("ctr", "--address", socket, "--namespace", "k8s.io", *args, check=check, timeout_s=timeout_s)


def import_images(node: Node) -> None:
    digests = build.ensure_images()
    refs = {
        "pause": config.PAUSE_IMAGE,
        "prometheus": config.PROMETHEUS_IMAGE,
        "fio": config.FIO_IMAGE,
        "tools": config.TOOLS_IMAGE,
    }
    listed = _ctr(node, "images", "ls").stdout.splitlines()[1:]
    have = {cols[0]: cols[2] for cols in (line.split() for line in listed) if len(cols) > 2}
    for name, ref in refs.items():
        if have.get(ref) == digests[name]:
            continue
        procs.log(f"{node.name}: importing {ref}")
        _ctr(node, "images", "import", str(config.image_dir() / f"{name}.tar"), timeout_s=IMAGE_IMPORT_TIMEOUT_S)


def import_archive(node: Node, ref: str, digest: str, archive: Path) -> None:
    """One image archive built outside the cluster's build (the operator's config reloader), unless the node's
    store has that very digest under ``ref``."""
    listed = _ctr(node, "images", "ls").stdout.splitlines()[1:]
    have = {cols[0]: cols[2] for cols in (line.split() for line in listed) if len(cols) > 2}
    if have.get(ref) != digest:
        procs.log(f"{node.name}: importing {ref}")
        _ctr(node, "images", "import", str(archive), timeout_s=IMAGE_IMPORT_TIMEOUT_S)


def image_refs(node: Node) -> list[str]:
    """The image refs in the node's store."""
    return _ctr(node, "images", "ls", "-q").stdout.split()


def remove_images(node: Node, refs: list[str]) -> None:
    """Remove refs from the node's store (containers still using their content keep it until they are gone)."""
    _ctr(node, "images", "rm", *refs, check=False)


def _write_kubelet_config(node: Node) -> Path:
    d = config.STATE_ROOT / "pki"
    path = node.dir / "kubelet.yaml"
    path.write_text(
        f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {node.ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: {node.ip}
healthzPort: 10248
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: {d / "ca.crt"}}}
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
cgroupRoot: {node.cgroup_root}
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
containerRuntimeEndpoint: unix://{node.containerd_socket}
failSwapOn: false
podLogsDir: {node.dir / "pod-logs"}
volumePluginDir: {node.dir / "volume-plugins"}
clusterDomain: cluster.local
makeIPTablesUtilChains: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
serializeImagePulls: false
maxPods: 50
# Heartbeats every 3 s (lease) and 4 s (status), so the controller's 16 s grace below tells a lost node in
# seconds rather than the default 40 s: node-loss tests need not wait that out.
nodeLeaseDurationSeconds: 12
nodeStatusUpdateFrequency: 4s
"""
    )
    return path


def start_node(node: Node) -> None:
    for sub in ("", "kubelet", "pod-logs", "volume-plugins", "ipam", "containerd-state"):
        (node.dir / sub).mkdir(parents=True, exist_ok=True)
    node.containerd_root.mkdir(parents=True, exist_ok=True)
    node.volumes_dir.mkdir(parents=True, exist_ok=True)
    make_cgroup_root(node)
    network.make_bridge(node)
    cfg = _write_containerd_config(node)
    _spawn(f"containerd-{node.name}", ["containerd", "--config", str(cfg)])
    procs.wait_for(
        f"containerd on {node.containerd_socket}",
        # Non-zero while the socket is not there yet; a ctr that hangs raises (its timeout) instead.
        lambda: _ctr(node, "version", check=False, timeout_s=CTR_PROBE_TIMEOUT_S).returncode == 0,
        60,
        f"containerd-{node.name}",
    )
    import_images(node)
    start_kubelet(node)


def start_kubelet(node: Node) -> None:
    """The node's kubelet, on its containerd (which must run): on a restart it finds its pods' containers running."""
    kubelet_cfg = _write_kubelet_config(node)
    helpers = nfs_helper.install()  # NFS PVs mount through the harness's user-space client (no kernel NFS client)
    iscsi_helper.install(helpers)  # iSCSI PVs log in through a user-space initiator (no kernel initiator here)
    iscsi_helper.prepare(node)
    kubelet = str(config.bin_dir() / "kubelet")
    _spawn(
        f"kubelet-{node.name}",
        iscsi_helper.kubelet_argv(node, [kubelet,
         f"--config={kubelet_cfg}", f"--kubeconfig={config.STATE_ROOT / 'pki' / (node.name + '.kubeconfig')}",
         f"--root-dir={node.kubelet_root}", f"--cert-dir={node.dir / 'kubelet-pki'}",
         f"--hostname-override={node.name}", f"--node-ip={node.ip}",
         f"--node-labels=harness.prom/local-cluster=true,harness.prom/node-index={node.index}",
         "--v=1"]),
        env={**nfs_helper.kubelet_env(), **iscsi_helper.kubelet_env(node)},
        runs=kubelet,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- mounts and teardown


def mounts_under(root: Path, fstype: str | None = None) -> list[str]:
    """Mount points at or below ``root`` as this host sees them; only those of filesystem type ``fstype`` if given."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4].encode().decode("unicode_escape")
        if fstype is not None and line.split(" - ", 1)[1].split()[0] != fstype:
            continue
        if mnt == str(root) or mnt.startswith(str(root) + "/"):
            found.append(mnt)
    return found


def unmount_all(root: Path) -> None:
    for _ in range(5):
        mounts = mounts_under(root)
        if not mounts:
            return
        for mnt in sorted(set(mounts), key=lambda m: m.count("/"), reverse=True):
            if _run("umount", mnt, check=False).returncode != 0:
                _run("umount", "-l", mnt, check=False)
    left = mounts_under(root)
    if left:
        raise procs.ClusterError(f"could not unmount: {left}")


def _shim_pids(node: Node) -> list[int]:
    """containerd-shim processes that serve this node's containerd (matched on its own socket path)."""
    needle = str(node.containerd_socket).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and any(needle in a for a in argv):
                found.append(int(proc.name))
    return found


def stop_node(node: Node) -> None:
    procs.terminate(f"kubelet-{node.name}", 20)
    if procs.alive(f"containerd-{node.name}"):
        tasks = _ctr(node, "tasks", "ls", "-q", check=False).stdout.split()
        for task in tasks:
            _ctr(node, "tasks", "kill", "--all", "--signal", "SIGKILL", task, check=False)
        for task in tasks:
            _ctr(node, "tasks", "delete", "--force", task, check=False)
        containers = _ctr(node, "containers", "ls", "-q", check=False).stdout.split()
        if containers:
            _ctr(node, "containers", "delete", *containers, check=False)
    for pid in cgroup_pids(node):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    procs.terminate(f"containerd-{node.name}", 20)
    for pid in _shim_pids(node):
        procs.kill_pid(pid, 5)
    unmount_all(node.kubelet_root)  # the volumes first: a LUN's filesystem before its loop device goes
    iscsi_helper.cleanup(node)
    unmount_all(node.dir)
    unmount_all(node.volumes_dir)  # the shared bind iscsi_helper.prepare made, and anything left mounted in it
    unmount_all(node.containerd_root)
    remove_cgroup_root(node)
    network.delete_bridge(node)


# ---------------------------------------------------------------------------------------------- node loss


def lose_node(node: Node) -> None:
    """The node dies at once, like a power cut of its machine: its kubelet, every process of its pods, containerd
    and the shims get SIGKILL, in that order (the kubelet first, so it reports nothing more). Its mounts and
    directories stay, as a powered-off machine's disks do; the page cache is this machine's and survives, so this
    is a node loss, not a power loss of the storage. `restore_node` brings it back."""
    for name in (f"kubelet-{node.name}",):
        entry = procs.read_pid(name)
        if entry is not None and procs.pid_alive(*entry):
            with contextlib.suppress(ProcessLookupError):
                os.kill(entry[0], signal.SIGKILL)
    for pid in cgroup_pids(node):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    entry = procs.read_pid(f"containerd-{node.name}")
    if entry is not None and procs.pid_alive(*entry):
        with contextlib.suppress(ProcessLookupError):
            os.kill(entry[0], signal.SIGKILL)
    for pid in _shim_pids(node):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    procs.wait_for(
        f"{node.name}'s kubelet, containerd and containers to be gone",
        lambda: (
            not procs.alive(f"kubelet-{node.name}")
            and not procs.alive(f"containerd-{node.name}")
            and not _shim_pids(node)
        ),
        30,
    )


def stop_kubelet(node: Node) -> None:
    """Only the kubelet stops (SIGTERM, as ``systemctl stop kubelet`` does): containerd and the pods' containers go on
    running, unsupervised and unreported; the node controller marks the node NotReady after its grace period."""
    procs.terminate(f"kubelet-{node.name}")


def restore_node(node: Node) -> None:
    """Power the node back on: containerd and the kubelet start again on the state they left; the kubelet then
    restarts the pods that are still bound to the node. Returns once they run; the caller waits for Ready."""
    if procs.alive(f"kubelet-{node.name}") and procs.alive(f"containerd-{node.name}"):
        return
    start_node(node)
