"""`start`, `stop`, `status`: the daemons of the local cluster, each started with subprocess.Popen and stopped by PID.

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
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.cluster import build, config, pki
from tests.cluster.config import STATE_ROOT, Node

CGROUP_MOUNTS = Path("/sys/fs/cgroup")
_children: dict[int, subprocess.Popen[bytes]] = {}


class ClusterError(RuntimeError):
    """The local cluster could not be brought up (the message says which step, and where its log is)."""


def _log(msg: str) -> None:
    print(f"[cluster] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------- processes


def _pid_file(name: str) -> Path:
    return STATE_ROOT / "pids" / f"{name}.pid"


def _log_file(name: str) -> Path:
    return STATE_ROOT / "logs" / f"{name}.log"


def _spawn(name: str, argv: list[str]) -> int:
    """Start one daemon in its own session (it outlives this process), its output to logs/<name>.log."""
    exe = shutil.which(argv[0]) or argv[0]
    if not Path(exe).exists():
        raise ClusterError(f"{name}: {argv[0]} not found")
    argv = [exe, *argv[1:]]
    _log_file(name).parent.mkdir(parents=True, exist_ok=True)
    _pid_file(name).parent.mkdir(parents=True, exist_ok=True)
    with _log_file(name).open("ab") as log:
        log.write(f"# {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    _children[proc.pid] = proc
    _pid_file(name).write_text(f"{proc.pid}\n{exe}\n")
    return proc.pid


def _read_pid(name: str) -> tuple[int, str] | None:
    try:
        pid_text, exe = _pid_file(name).read_text().splitlines()[:2]
        return int(pid_text), exe
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int, exe: str | None = None) -> bool:
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        if exe is not None:
            # Guards against a reused PID. The kernel can hand back an empty cmdline for a moment while a process
            # maps memory (seen with a Go daemon starting under load): empty proves nothing either way.
            cmd0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            return cmd0 in ("", exe)
    except (OSError, IndexError):
        return False
    return True


def _alive(name: str) -> bool:
    entry = _read_pid(name)
    return entry is not None and _pid_alive(*entry)


def _kill_pid(pid: int, timeout: float, exe: str | None = None) -> None:
    if not _pid_alive(pid, exe):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.2)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _pid_alive(pid):
            time.sleep(0.1)
    proc = _children.pop(pid, None)
    if proc is not None:
        proc.wait()


def _terminate(name: str, timeout: float = 20) -> None:
    entry = _read_pid(name)
    if entry is not None:
        _kill_pid(entry[0], timeout, entry[1])
    _pid_file(name).unlink(missing_ok=True)


def _tail(name: str, lines: int = 25) -> str:
    try:
        return "\n".join(_log_file(name).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait(what: str, check: Callable[[], bool], timeout: float, daemon: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon is not None and not _alive(daemon):
            raise ClusterError(f"{daemon} exited while waiting for {what}; {_log_file(daemon)}:\n{_tail(daemon)}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.5)
    log = f"; {_log_file(daemon)}:\n{_tail(daemon)}" if daemon else ""
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{log}")


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ClusterError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


# ---------------------------------------------------------------------------------------------- API access


def _ssl_context() -> ssl.SSLContext:
    pki_dir = STATE_ROOT / "pki"
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


def _ready_nodes() -> set[str]:
    ready = set()
    for item in api_get("/api/v1/nodes")["items"]:
        for cond in item.get("status", {}).get("conditions", []):
            if cond["type"] == "Ready" and cond["status"] == "True":
                ready.add(item["metadata"]["name"])
    return ready


# ---------------------------------------------------------------------------------------------- control plane


def _make_pki(node_list: list[Node]) -> None:
    d = STATE_ROOT / "pki"
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


def _start_etcd() -> None:
    client = f"http://127.0.0.1:{config.ETCD_CLIENT_PORT}"
    peer = f"http://127.0.0.1:{config.ETCD_PEER_PORT}"
    _spawn(
        "etcd",
        ["etcd", "--name", "harness", "--data-dir", str(STATE_ROOT / "etcd"),
         "--listen-client-urls", client, "--advertise-client-urls", client,
         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"harness={peer}", "--initial-cluster-state", "new",
         "--listen-metrics-urls", f"http://127.0.0.1:{config.ETCD_CLIENT_PORT + 1}"],
    )  # fmt: skip

    def healthy() -> bool:
        with urllib.request.urlopen(f"{client}/health", timeout=2) as resp:  # noqa: S310 (loopback)
            return bool(json.loads(resp.read()).get("health") == "true")

    _wait("etcd /health", healthy, 30, "etcd")


def _start_apiserver(node_list: list[Node]) -> None:
    d = STATE_ROOT / "pki"
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
    _wait("kube-apiserver /readyz", lambda: api_get("/readyz") == "ok", 120, "kube-apiserver")


def _start_controllers() -> None:
    d = STATE_ROOT / "pki"
    _spawn(
        "kube-controller-manager",
        [str(config.bin_dir() / "kube-controller-manager"),
         f"--kubeconfig={d / 'controller-manager.kubeconfig'}",
         "--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false",
         "--use-service-account-credentials=false",
         f"--service-account-private-key-file={d / 'sa.key'}", f"--root-ca-file={d / 'ca.crt'}",
         f"--cluster-signing-cert-file={d / 'ca.crt'}", f"--cluster-signing-key-file={d / 'ca.key'}",
         f"--service-cluster-ip-range={config.SERVICE_CIDR}", "--allocate-node-cidrs=false",
         "--profiling=false", "--v=1"],
    )  # fmt: skip
    _spawn(
        "kube-scheduler",
        [str(config.bin_dir() / "kube-scheduler"),
         f"--kubeconfig={d / 'scheduler.kubeconfig'}",
         "--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false", "--profiling=false", "--v=1"],
    )  # fmt: skip


def _start_proxy(node_list: list[Node]) -> None:
    """One kube-proxy (iptables mode) serves every node: they all share this machine's network namespace.

    ClusterIP Services then work from the host and from pods. NodePorts open only on the nodes' bridge
    addresses, never on loopback (so no route_localnet), and the conntrack sysctls are left alone.
    """
    d = STATE_ROOT / "pki"
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
            return resp.status == 200

    _wait("kube-proxy /healthz", healthy, 60, "kube-proxy")


def _stop_proxy() -> None:
    if _read_pid("kube-proxy") is None:
        return
    _terminate("kube-proxy", 10)
    # Removes the KUBE-* chains and rules it added to this machine's iptables.
    subprocess.run(
        [str(config.bin_dir() / "kube-proxy"), "--cleanup"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=60,
    )  # fmt: skip
    _remove_kube_chains()


def _remove_kube_chains() -> None:
    """`--cleanup` leaves a few chains behind (KUBE-FIREWALL with its INPUT/OUTPUT jumps, KUBE-MARK-MASQ, the
    canaries). Nothing else on this machine runs Kubernetes, so every KUBE-* chain is ours: drop them all."""
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


# ---------------------------------------------------------------------------------------------- nodes


def _cgroup_hierarchies(include_v2: bool = False) -> list[Path]:
    """The mounted cgroup v1 hierarchies (cpu, memory, ..., name=systemd), and with `include_v2` the hybrid
    layout's cgroup2 mount too (runc mirrors each container there, so cleanup must look there as well)."""
    found = []
    kinds = ("cgroup", "cgroup2") if include_v2 else ("cgroup",)
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _dev, mnt, fstype, *_ = line.split()
        if fstype in kinds and mnt.startswith(str(CGROUP_MOUNTS)):
            found.append(Path(mnt))
    return found


def _make_cgroup_root(node: Node) -> None:
    for hierarchy in _cgroup_hierarchies():
        path = hierarchy / node.cgroup_root.lstrip("/")
        path.mkdir(exist_ok=True)
        if (hierarchy / "cpuset.cpus").exists():
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not (path / f).read_text().strip():
                    (path / f).write_text((hierarchy / f).read_text())


def _remove_cgroup_root(node: Node) -> None:
    for hierarchy in _cgroup_hierarchies(include_v2=True):
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


def _cgroup_pids(node: Node) -> set[int]:
    pids: set[int] = set()
    for hierarchy in _cgroup_hierarchies(include_v2=True):
        top = hierarchy / node.cgroup_root.lstrip("/")
        if top.exists():
            for procs in top.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
    return pids


def _make_bridge(node: Node) -> None:
    if _run("ip", "link", "show", node.bridge, check=False).returncode != 0:
        _run("ip", "link", "add", "name", node.bridge, "type", "bridge")
    _run("ip", "addr", "replace", f"{node.ip}/24", "dev", node.bridge)
    _run("ip", "link", "set", node.bridge, "up")


def _make_routes(node_list: list[Node]) -> None:
    """Keep cluster addresses on this machine: Service IPs route to node-1's bridge (kube-proxy DNATs them to a
    pod; an unknown one dies on the bridge), and the rest of the pod supernet is unreachable, so neither the
    host nor a pod ever sends a 10.x packet out of the machine's real interface."""
    _run("ip", "route", "replace", config.SERVICE_CIDR, "dev", node_list[0].bridge)
    _run("ip", "route", "replace", "unreachable", config.POD_SUPERNET)


def _remove_routes() -> None:
    _run("ip", "route", "delete", "unreachable", config.POD_SUPERNET, check=False)
    _run("ip", "route", "delete", config.SERVICE_CIDR, check=False)


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


def _ctr(node: Node, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run("ctr", "--address", str(node.containerd_socket), "--namespace", "k8s.io", *args, check=check)


def _import_images(node: Node) -> None:
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
        _log(f"{node.name}: importing {ref}")
        _ctr(node, "images", "import", str(config.image_dir() / f"{name}.tar"))


def _write_kubelet_config(node: Node) -> Path:
    d = STATE_ROOT / "pki"
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
"""
    )
    return path


def _start_node(node: Node) -> None:
    for sub in ("", "kubelet", "pod-logs", "volume-plugins", "ipam", "containerd-state"):
        (node.dir / sub).mkdir(parents=True, exist_ok=True)
    node.containerd_root.mkdir(parents=True, exist_ok=True)
    node.volumes_dir.mkdir(parents=True, exist_ok=True)
    _make_cgroup_root(node)
    _make_bridge(node)
    cfg = _write_containerd_config(node)
    _spawn(f"containerd-{node.name}", ["containerd", "--config", str(cfg)])
    _wait(
        f"containerd on {node.containerd_socket}",
        lambda: _ctr(node, "version", check=False).returncode == 0,
        60,
        f"containerd-{node.name}",
    )
    _import_images(node)
    kubelet_cfg = _write_kubelet_config(node)
    _spawn(
        f"kubelet-{node.name}",
        [str(config.bin_dir() / "kubelet"),
         f"--config={kubelet_cfg}", f"--kubeconfig={STATE_ROOT / 'pki' / (node.name + '.kubeconfig')}",
         f"--root-dir={node.kubelet_root}", f"--cert-dir={node.dir / 'kubelet-pki'}",
         f"--hostname-override={node.name}", f"--node-ip={node.ip}",
         f"--node-labels=harness.prom/local-cluster=true,harness.prom/node-index={node.index}",
         "--v=1"],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- cleanup


def _mounts_under(root: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4].encode().decode("unicode_escape")
        if mnt == str(root) or mnt.startswith(str(root) + "/"):
            found.append(mnt)
    return found


def _unmount_all(root: Path) -> None:
    for _ in range(5):
        mounts = _mounts_under(root)
        if not mounts:
            return
        for mnt in sorted(set(mounts), key=lambda m: m.count("/"), reverse=True):
            if _run("umount", mnt, check=False).returncode != 0:
                _run("umount", "-l", mnt, check=False)
    left = _mounts_under(root)
    if left:
        raise ClusterError(f"could not unmount: {left}")


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


def _stop_node(node: Node) -> None:
    _terminate(f"kubelet-{node.name}", 20)
    if _alive(f"containerd-{node.name}"):
        tasks = _ctr(node, "tasks", "ls", "-q", check=False).stdout.split()
        for task in tasks:
            _ctr(node, "tasks", "kill", "--all", "--signal", "SIGKILL", task, check=False)
        for task in tasks:
            _ctr(node, "tasks", "delete", "--force", task, check=False)
        containers = _ctr(node, "containers", "ls", "-q", check=False).stdout.split()
        if containers:
            _ctr(node, "containers", "delete", *containers, check=False)
    for pid in _cgroup_pids(node):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _terminate(f"containerd-{node.name}", 20)
    for pid in _shim_pids(node):
        _kill_pid(pid, 5)
    _unmount_all(node.dir)
    _unmount_all(node.containerd_root)
    _remove_cgroup_root(node)
    _run("ip", "link", "delete", node.bridge, check=False)


def _recorded_nodes() -> list[Node]:
    info = STATE_ROOT / "cluster.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        return [Node(i) for i in json.loads(info.read_text())["node_indexes"]]
    nodes_dir = STATE_ROOT / "nodes"
    if nodes_dir.exists():
        indexes = sorted(int(p.name.split("-")[1]) for p in nodes_dir.iterdir() if p.name.startswith("node-"))
        return [Node(i) for i in indexes]
    return []


# ---------------------------------------------------------------------------------------------- commands


def is_running() -> bool:
    info = STATE_ROOT / "cluster.json"
    if not info.exists():
        return False
    node_list = _recorded_nodes()
    names = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"]
    names += [f"{kind}-{n.name}" for n in node_list for kind in ("containerd", "kubelet")]
    if not all(_alive(n) for n in names):
        return False
    try:
        return _ready_nodes() >= {n.name for n in node_list}
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return False


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One start/stop decision at a time across processes (several pytest sessions may share the cluster)."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    with (STATE_ROOT / ".lock").open("w") as lock:
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
            _log(f"already running; KUBECONFIG={config.kubeconfig_path()}")
        # Started by hand: the tests' `release` must leave it running, whoever started it first.
        (STATE_ROOT / "started-for-tests").unlink(missing_ok=True)
    return config.kubeconfig_path()


def _start(node_count: int | None, timeout: float) -> None:
    _stop()
    node_list = config.nodes(node_count)
    started = time.monotonic()
    if _mounts_under(STATE_ROOT):
        raise ClusterError(f"refusing to wipe {STATE_ROOT}: still mounted: {_mounts_under(STATE_ROOT)}")
    for sub in ("pki", "etcd", "logs", "pids", "nodes", "volumes"):
        shutil.rmtree(STATE_ROOT / sub, ignore_errors=True)
    (STATE_ROOT / "started-for-tests").unlink(missing_ok=True)
    try:
        _make_pki(node_list)
        _log("etcd")
        _start_etcd()
        for node in node_list:
            _make_bridge(node)  # the apiserver advertises node-1's address
        _make_routes(node_list)
        _log("kube-apiserver")
        _start_apiserver(node_list)
        _log("kube-controller-manager, kube-scheduler")
        _start_controllers()
        for node in node_list:
            _log(f"{node.name}: containerd + kubelet")
            _start_node(node)
        want = {n.name for n in node_list}
        _wait(
            f"nodes {sorted(want)} Ready",
            lambda: _ready_nodes() >= want,
            timeout,
            f"kubelet-{node_list[-1].name}",
        )
        _log("kube-proxy")
        _start_proxy(node_list)
    except BaseException:
        _log(f"start failed; logs in {STATE_ROOT / 'logs'}; stopping what started")
        with contextlib.suppress(Exception):
            _stop()
        raise
    (STATE_ROOT / "cluster.json").write_text(
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
    _log(f"up in {time.monotonic() - started:.0f}s: {len(node_list)} node(s); KUBECONFIG={config.kubeconfig_path()}")


def stop() -> None:
    """Stop every daemon by PID, kill the containers, unmount, remove cgroups and bridges. Idempotent."""
    with _locked():
        _stop()


def _stop() -> None:
    _stop_proxy()
    node_list = _recorded_nodes()
    for node in node_list:
        _stop_node(node)
    _remove_routes()
    for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
        _terminate(name, 20)
    (STATE_ROOT / "cluster.json").unlink(missing_ok=True)
    (STATE_ROOT / "started-for-tests").unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- shared use by tests


def _users_dir() -> Path:
    return STATE_ROOT / "users"


def acquire() -> Path:
    """For a test session: start the cluster unless it runs, and register this process as one of its users.

    A cluster started here is marked `started-for-tests`, and the last test session to `release` it stops it;
    a cluster started by `nox -s cluster` or `python -m tests.cluster start` is left running.
    """
    _preflight()
    with _locked():
        if not is_running():
            _start(None, 240)
            (STATE_ROOT / "started-for-tests").write_text(f"{os.getpid()}\n")
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
                if entry.name.isdigit() and _pid_alive(int(entry.name)):
                    alive.append(entry.name)
                else:
                    entry.unlink(missing_ok=True)
        if not alive and not keep and (STATE_ROOT / "started-for-tests").exists():
            _stop()


def status() -> dict[str, Any]:
    node_list = _recorded_nodes()
    names = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"]
    names += [f"{kind}-{n.name}" for n in node_list for kind in ("containerd", "kubelet")]
    daemons = {}
    for name in names:
        entry = _read_pid(name)
        daemons[name] = {"pid": entry[0] if entry else None, "alive": _alive(name)}
    try:
        ready = sorted(_ready_nodes())
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        ready = []
    return {
        "version": config.K8S_VERSION,
        "built": build.is_built(),
        "cache": str(config.cache_dir()),
        "state": str(STATE_ROOT),
        "running": is_running(),
        "daemons": daemons,
        "ready_nodes": ready,
        "kubeconfig": str(config.kubeconfig_path()),
    }
