"""ceph-csi's CephFS driver in the local cluster, started on demand: an embedded Ceph, the controller (cephcsi's
controller server and the external-provisioner), a node plugin per node (cephcsi's node server, registered with the
node's kubelet by node-driver-registrar), the CSIDriver object, the Secret, subvolume group ``csi`` and the
StorageClass ``cephfs`` (``mounter: fuse``: this kernel has no CephFS client, and ceph-csi's RBD node side needs krbd
or rbd-nbd, which it lacks too).

The binaries come from ``scripts/build-ceph-csi`` (cache keyed by version). Everything runs as host processes, as the
rest of the test bed does:

- The Ceph is ``harness.datapath.ceph_cluster`` (the embedded single-host cluster of ``backend: cephfs``) in the
  cluster's state directory, its monitor on 127.0.0.1: the nodes share this host's network.
- cephcsi v3.12 reads its cluster map from the fixed path ``/etc/ceph-csi-config/config.json`` (no flag) and writes
  ``/etc/ceph/ceph.conf`` and ``/etc/ceph/keyring`` when they are missing, key files under ``/tmp/csi/keys`` and its
  CSI-Addons socket at ``/tmp/csi-addons.sock``. So each cephcsi runs in a mount namespace of its own
  (``unshare --mount --propagation unchanged``, the kubelets' way) where a directory of ours is bound on
  ``/etc/ceph-csi-config`` and on ``/etc/ceph`` and a tmpfs is on ``/tmp``: nothing of the host's changes, and the
  plugins never share a socket. The host's ``/`` is a private mount, so these binds stay in that namespace; the
  node's directory is a shared mount (``iscsi_helper.prepare``), so the ceph-fuse mounts and bind mounts the node
  plugin makes under the kubelet's root reach the host (containerd) and the kubelet's own namespace.
- A node plugin's launcher puts itself in the node's cgroup (every hierarchy) before it execs cephcsi: the plugin
  and the ceph-fuse daemons it forks are processes of that node, so ``node lose`` kills them (their mounts die with
  them, "Transport endpoint is not connected", as on a real node) and ``stop`` takes them with the node.

``/etc/ceph-csi-config`` does not exist on a host without ceph-csi: it is made as a mount point (and removed by
``stop``, empty, when this module made it). Test-bed machinery only: a real cluster runs the upstream manifests.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed import config, procs
from testbed.node import cgroup_hierarchies, mounts_under

VERSION = "v3.12.2"
DRIVER = "cephfs.csi.ceph.com"
CLASS = "cephfs"
NAMESPACE = "ceph-csi"
SECRET = "csi-cephfs-secret"  # noqa: S105 - the Secret object's name; its key is made by start
CLUSTER_ID = "harness-testbed"
FS_NAME = "cephfs"
SUBVOLUME_GROUP = "csi"
CSI_USER = "csi-cephfs"
# The caps ceph-csi's docs give its CephFS provisioner and node plugin users (one user for both here).
CSI_CAPS = ("mon", "allow r", "mgr", "allow rw", "mds", "allow rw", "osd", "allow rw tag cephfs *=*")
OSD_SIZE_BYTES = 4 << 30  # a sparse file: what the tests write is a few MiB
READY_TIMEOUT_S = 60.0  # a plugin's socket appears within a second or two; the kubelet registers it at once
CONFIG_DIR = Path("/etc/ceph-csi-config")
CONFIG_MAP = "ceph-csi-config"  # upstream's name for the cluster map's ConfigMap
CEPH_FUSE_FSTYPE = "fuse.ceph-fuse"  # how /proc/self/mountinfo names ceph-fuse's mounts and every bind of them


def cache_dir(version: str = VERSION) -> Path:
    return config.CACHE_ROOT / f"ceph-csi-{version}"


def binary(name: str) -> Path:
    """``cephcsi``, ``csi-provisioner`` or ``csi-node-driver-registrar`` from the cache."""
    return cache_dir() / "bin" / name


def built() -> bool:
    return all(binary(n).exists() for n in ("cephcsi", "csi-provisioner", "csi-node-driver-registrar"))


def state_dir() -> Path:
    return config.STATE_ROOT / "ceph-csi"


def plugin_dir(node: config.Node) -> Path:
    return node.kubelet_root / "plugins" / DRIVER


def _launcher(directory: Path, cgroup_procs: list[Path], argv: list[str]) -> list[str]:
    """argv run in a mount namespace of its own with our ``/etc/ceph-csi-config``, ``/etc/ceph`` and a private
    ``/tmp`` (see the module's doc), first joining ``cgroup_procs`` (a node's cgroup) when given."""
    etc = directory / "etc-ceph"
    etc.mkdir(parents=True, exist_ok=True)
    steps = [f"echo $$ > {shlex.quote(str(p))}" for p in cgroup_procs]
    steps += [
        f"mount --bind {shlex.quote(str(state_dir() / 'config'))} {CONFIG_DIR}",
        f"mount --bind {shlex.quote(str(etc))} /etc/ceph",
        "mount -t tmpfs -o mode=1777 harness-ceph-csi-tmp /tmp",
        # Where cephcsi writes key files for ceph-fuse and librados (upstream's pods mount an emptyDir there).
        "mkdir -p -m 0700 /tmp/csi/keys",
        'exec "$@"',
    ]
    return ["unshare", "--mount", "--propagation", "unchanged", "sh", "-euc", "; ".join(steps), "sh", *argv]


@dataclass
class CephCsi:
    """What ``start`` started and made, for ``stop``."""

    api_client: Any
    kubeconfig: Path
    nodes: list[config.Node]
    cluster: Any = None  # harness.datapath.ceph_cluster.CephCluster
    daemons: list[str] = field(default_factory=list)
    made_config_dir: bool = False

    @property
    def ceph_dir(self) -> Path:
        return state_dir() / "ceph"

    def start(self) -> None:
        from harness.datapath.ceph_cluster import start_ceph

        if not built():
            raise procs.ClusterError(f"ceph-csi is not built in {cache_dir()}: run scripts/build-ceph-csi")
        shutil.rmtree(state_dir(), ignore_errors=True)
        (state_dir() / "config").mkdir(parents=True)
        try:
            self.cluster = start_ceph(self.ceph_dir, osd_size_bytes=OSD_SIZE_BYTES, fs_name=FS_NAME, pool=None)
            admin = self.cluster.admin
            admin.ceph("fs", "subvolumegroup", "create", FS_NAME, SUBVOLUME_GROUP, timeout_s=60)
            admin.ceph("auth", "get-or-create", f"client.{CSI_USER}", *CSI_CAPS)
            key = admin.ceph("auth", "get-key", f"client.{CSI_USER}").strip()
            cluster_map = [
                {
                    "clusterID": CLUSTER_ID,
                    "monitors": [self.cluster.monitors],
                    "cephFS": {"subvolumeGroup": SUBVOLUME_GROUP},
                }
            ]
            (state_dir() / "config" / "config.json").write_text(json.dumps(cluster_map))
            if not CONFIG_DIR.exists():
                CONFIG_DIR.mkdir()
                self.made_config_dir = True
            self._objects(key, json.dumps(cluster_map))
            self._controller()
            for node in self.nodes:
                self._node_plugin(node)
            for node in self.nodes:
                self._wait_registered(node)
        except BaseException:
            self.stop()
            raise

    def _cephcsi(self, name: str, directory: Path, cgroup_procs: list[Path], args: list[str]) -> None:
        _spawn_cephcsi(name, directory, cgroup_procs, args, self.kubeconfig)
        self.daemons.append(name)

    def _controller(self) -> None:
        directory = state_dir() / "controller"
        directory.mkdir(parents=True)
        socket = directory / "csi.sock"
        self._cephcsi(
            "ceph-csi-controller",
            directory,
            [],
            ["--controllerserver=true", "--nodeid=controller", f"--endpoint=unix://{socket}"],
        )
        procs.wait_for(f"cephcsi's controller socket {socket}", socket.exists, READY_TIMEOUT_S, "ceph-csi-controller")
        provisioner = [
            str(binary("csi-provisioner")), f"--csi-address={socket}", f"--kubeconfig={self.kubeconfig}",
            "--leader-election=false", "--timeout=60s", "--extra-create-metadata=true", "--v=4",
        ]  # fmt: skip
        procs.spawn("ceph-csi-provisioner", provisioner)
        self.daemons.append("ceph-csi-provisioner")

    def _node_plugin(self, node: config.Node) -> None:
        self.daemons.append(_start_node_plugin(node, self.kubeconfig))
        registry = node.kubelet_root / "plugins_registry"
        registry.mkdir(parents=True, exist_ok=True)
        socket = plugin_dir(node) / "csi.sock"
        registrar = [
            str(binary("csi-node-driver-registrar")), f"--csi-address={socket}",
            f"--kubelet-registration-path={socket}", f"--plugin-registration-path={registry}", "--v=4",
        ]  # fmt: skip
        procs.spawn(f"ceph-csi-registrar-{node.name}", registrar)
        self.daemons.append(f"ceph-csi-registrar-{node.name}")

    def _wait_registered(self, node: config.Node) -> None:
        procs.wait_for(
            f"{node.name}'s kubelet to register {DRIVER} (its CSINode)",
            lambda: self._registered(node.name),
            READY_TIMEOUT_S,
            f"ceph-csi-registrar-{node.name}",
        )

    def _registered(self, node_name: str) -> bool:
        from kubernetes import client

        try:
            # Raw JSON: this client's model refuses a CSINode whose drivers are null (none registered yet).
            response: Any = client.StorageV1Api(self.api_client).read_csi_node(node_name, _preload_content=False)
        except client.ApiException as e:
            if e.status == 404:
                return False
            raise
        drivers = json.loads(response.data).get("spec", {}).get("drivers") or []
        return any(d.get("name") == DRIVER for d in drivers)

    def _objects(self, key: str, cluster_map: str) -> None:
        from kubernetes import client

        core, storage = client.CoreV1Api(self.api_client), client.StorageV1Api(self.api_client)
        labels = {"harness.prom/testbed": "ceph-csi"}
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE, labels=labels)))
        # Upstream's deployment mounts this ConfigMap at /etc/ceph-csi-config; here the plugins read the same map
        # from a bound file (the module's doc), and the doctor reads the ConfigMap, as on a real cluster.
        core.create_namespaced_config_map(
            NAMESPACE,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=CONFIG_MAP, labels=labels), data={"config.json": cluster_map}
            ),
        )
        core.create_namespaced_secret(
            NAMESPACE,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=SECRET, labels=labels),
                # CephFS's provisioner reads adminID/adminKey, its node stage userID/userKey (upstream's
                # example Secret carries both): one user here for both.
                string_data={"userID": CSI_USER, "userKey": key, "adminID": CSI_USER, "adminKey": key},
            ),
        )
        storage.create_csi_driver(
            client.V1CSIDriver(
                metadata=client.V1ObjectMeta(name=DRIVER, labels=labels),
                spec=client.V1CSIDriverSpec(attach_required=False, pod_info_on_mount=False, fs_group_policy="File"),
            )
        )
        secret_params = {
            f"csi.storage.k8s.io/{kind}-secret-{what}": value
            for kind in ("provisioner", "controller-expand", "node-stage")
            for what, value in (("name", SECRET), ("namespace", NAMESPACE))
        }
        storage.create_storage_class(
            client.V1StorageClass(
                metadata=client.V1ObjectMeta(name=CLASS, labels=labels),
                provisioner=DRIVER,
                parameters={"clusterID": CLUSTER_ID, "fsName": FS_NAME, "mounter": "fuse", **secret_params},
                reclaim_policy="Delete",
                allow_volume_expansion=True,
                volume_binding_mode="Immediate",
            )
        )

    def volumes(self) -> list[Any]:
        from kubernetes import client

        return [
            pv
            for pv in client.CoreV1Api(self.api_client).list_persistent_volume().items
            if pv.spec is not None and pv.spec.csi is not None and pv.spec.csi.driver == DRIVER
        ]

    def log_text(self) -> str:
        """The end of each daemon's log, for a failing test's message."""
        return "\n".join(f"--- {name}\n{procs.tail(name, 15)}" for name in self.daemons)

    def stop(self) -> None:
        """Delete the class and the objects, the PVs the driver made (their claims gone: the tests' own), stop every
        daemon this started (the node plugins' ceph-fuse daemons with them), unmount what is left of their
        mounts, stop the Ceph and remove the state and the mount point this made. Idempotent. An API that does not
        answer (the cluster stopped under us) leaves the objects, said at the end, not the processes."""
        api_error: Exception | None = None
        try:
            self._delete_objects()
        except Exception as e:  # noqa: BLE001 - the API gone (a cluster stopped under us): the processes still go
            api_error = e
        for name in reversed(self.daemons):
            procs.terminate(name, 10)
        self.daemons.clear()
        for node in self.nodes:
            _kill_ceph_fuse_under(node.kubelet_root)
            (plugin_dir(node) / "csi.sock").unlink(missing_ok=True)
            (node.kubelet_root / "plugins_registry" / f"{DRIVER}-reg.sock").unlink(missing_ok=True)
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None
        if self.made_config_dir:
            CONFIG_DIR.rmdir()
            self.made_config_dir = False
        shutil.rmtree(state_dir(), ignore_errors=True)
        if api_error is not None:
            raise procs.ClusterError(f"ceph-csi's objects could not be deleted: {api_error}") from api_error

    def _delete_objects(self) -> None:
        from kubernetes import client

        from harness.wait import wait_for

        core, storage = client.CoreV1Api(self.api_client), client.StorageV1Api(self.api_client)
        ignore_404(storage.delete_storage_class, CLASS)
        if "ceph-csi-provisioner" in self.daemons and procs.alive("ceph-csi-provisioner"):
            # Released PVs of class Delete: the provisioner deletes their subvolumes while it still runs.
            wait_for(
                lambda: not [pv for pv in self.volumes() if pv.spec.persistent_volume_reclaim_policy == "Delete"],
                what="ceph-csi to delete the PVs it provisioned",
                timeout_s=60,
                interval_s=1,
            )
        for pv in self.volumes():
            ignore_404(core.delete_persistent_volume, pv.metadata.name)
        ignore_404(storage.delete_csi_driver, DRIVER)
        ignore_404(core.delete_namespace, NAMESPACE)


def _spawn_cephcsi(name: str, directory: Path, cgroup_procs: list[Path], args: list[str], kubeconfig: Path) -> None:
    argv = [
        str(binary("cephcsi")), "--type=cephfs", f"--drivername={DRIVER}", f"--instanceid={CLUSTER_ID}",
        f"--csi-addons-endpoint=unix://{directory / 'csi-addons.sock'}", "--v=4", *args,
    ]  # fmt: skip
    env = {"KUBERNETES_CONFIG_PATH": str(kubeconfig)}
    procs.spawn(name, _launcher(directory, cgroup_procs, argv), env=env, runs=str(binary("cephcsi")))


def _node_plugin_name(node: config.Node) -> str:
    return f"ceph-csi-nodeplugin-{node.name}"


def _start_node_plugin(node: config.Node, kubeconfig: Path) -> str:
    """cephcsi's node server for ``node``, in the node's cgroup, serving its socket under the node's kubelet root;
    returns its daemon name once the socket is there."""
    directory = state_dir() / node.name
    directory.mkdir(parents=True, exist_ok=True)
    plugins = node.kubelet_root / "plugins"
    plugin_dir(node).mkdir(parents=True, exist_ok=True)
    socket = plugin_dir(node) / "csi.sock"
    socket.unlink(missing_ok=True)
    cgroup_procs = [h / node.cgroup_root.lstrip("/") / "cgroup.procs" for h in cgroup_hierarchies()]
    name = _node_plugin_name(node)
    _spawn_cephcsi(
        name,
        directory,
        cgroup_procs,
        [
            "--nodeserver=true", f"--nodeid={node.name}", f"--endpoint=unix://{socket}",
            f"--pluginpath={plugins}", f"--stagingpath={plugins / 'kubernetes.io' / 'csi'}/",
        ],
        kubeconfig,
    )  # fmt: skip
    procs.wait_for(f"cephcsi's node socket {socket}", socket.exists, READY_TIMEOUT_S, name)
    return name


def restart_node_plugin(node_name: str) -> None:
    """What a restart of ceph-csi's node plugin pod does to a node (``kubectl delete pod`` of the DaemonSet's pod
    there, an upgrade, an OOM kill): the plugin goes (SIGTERM) with every ceph-fuse daemon it forked (processes of
    its container), their mounts stay behind dead ("Transport endpoint is not connected"), and the plugin starts
    again on the same socket (node-driver-registrar, a container of its own, keeps the kubelet's registration).
    For ``ceph_client_crash``'s ``node_plugin_restart`` on the local cluster, from any process: the plugin's pid
    file says what runs."""
    index = node_name.removeprefix("node-")
    if not index.isdigit():
        raise procs.ClusterError(f"{node_name} is no node of the local cluster (node-1, node-2, ...)")
    node = config.Node(int(index))
    name = _node_plugin_name(node)
    if not procs.alive(name):
        raise procs.ClusterError(
            f"ceph-csi's node plugin on {node_name} is not running (it runs on demand: tests/k8s/test_ceph_csi.py)"
        )
    procs.terminate(name, 10)
    _kill_ceph_fuse(node.kubelet_root)
    _start_node_plugin(node, config.kubeconfig_path())


def _kill_ceph_fuse(root: Path) -> None:
    """SIGKILL the ceph-fuse daemons the node plugin forked for mounts under ``root`` (they outlive the plugin
    process here; on a real node they are its container's and die with it)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"ceph-fuse") and any(a.startswith(str(root).encode()) for a in argv):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def _kill_ceph_fuse_under(root: Path) -> None:
    """The ceph-fuse daemons under ``root`` (``_kill_ceph_fuse``), then their mounts, lazily (a dead FUSE mount
    refuses a plain umount). Only ceph-fuse's mounts (the
    staged volumes and their binds into pods, all of type ``fuse.ceph-fuse``): the other cluster tests' pods run on
    the same kubelets meanwhile, and a lazy unmount of their volumes (propagated into the kubelet's namespace)
    between the kubelet's bind and containerd's left a container on the bare directory (permission denied)."""
    _kill_ceph_fuse(root)
    for target in sorted(mounts_under(root, CEPH_FUSE_FSTYPE), key=len, reverse=True):
        procs.run("umount", "-l", target, check=False)


def ignore_404(call: Any, *args: Any) -> None:
    """``call(*args)``, a deletion that may find the object gone already (404) or never made."""
    from kubernetes import client

    try:
        call(*args)
    except client.ApiException as e:
        if e.status != 404:
            raise
