"""An embedded single-host Ceph cluster: 1 monitor, 1 manager, 1 OSD on a file-backed BlueStore, optionally 1 MDS
with a CephFS volume, all on 127.0.0.1 and all in one directory of the run's work area.

Made the way Ceph's own ``vstart.sh`` makes one, without systemd, cephadm or ceph-volume (which needs
device-mapper): every daemon runs in the foreground (``-f``), started through ``harness.proc`` (so it dies with the
run, carries the run's id, and names the work area in its arguments for ``harness cleanup``) and is stopped by the
PID we hold. Pool size 1 (one OSD: no redundancy, said as such by the doctor), small memory targets. The OSD's
BlueStore file must be on a filesystem with O_DIRECT, which tmpfs lacks: refused up front.

Every wait is bounded and says what it waited for; a daemon that exits or never comes up is named, with the end of
its own log.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness import proc
from harness.datapath.ceph_cli import CephClient
from harness.datapath.mounts import filesystem_of
from harness.errors import CommandFailed, InfraError, StorageUnavailable, WaitTimeout
from harness.wait import wait_for

CLUSTER_CONF = """\
[global]
fsid = {fsid}
mon host = {monitors}
mon initial members = a
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
# One OSD: pools of size 1, placement across OSDs (not hosts), which Ceph refuses unless told.
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
# The monitor's store is a few MiB of the run's work area; Ceph's 30 % (for a long-lived monitor's own disk) made
# every run on a host with less free space report HEALTH_WARN MON_DISK_LOW. It still warns below 5 %.
mon data avail warn = 5
osd crush chooseleaf type = 0
# Few placement groups (one OSD holds them all), so the pools are active in a second or two.
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
# Everything in this directory: data, logs, runtime files. No admin sockets (their paths are limited to 107 bytes,
# which a work area's path can exceed; nothing here asks a daemon over its socket).
run dir = {d}/run
admin socket =
pid file =
log file = {d}/log/$name.log
log to stderr = false
keyring = {d}/client.admin.keyring
mon data = {d}/mon.$id
mgr data = {d}/mgr.$id
osd data = {d}/osd.$id
mds data = {d}/mds.$id
client mount timeout = 10
rados mon op timeout = 20
rados osd op timeout = 20

[mgr]
# Each daemon its own keyring: with only the global one the mgr and the OSD fail to fetch their config.
keyring = {d}/mgr.$id/keyring

[osd]
keyring = {d}/osd.$id/keyring
osd objectstore = bluestore
# A file-backed BlueStore (as vstart.sh makes one): no block device, no ceph-volume.
bluestore block create = true
bluestore block size = {osd_size}
# The smallest target Ceph accepts (896 MiB): the OSD's caches stay small.
osd memory target = 939524096
# A fresh, empty store: no fsck of what mkfs just wrote.
bluestore fsck on mkfs = false

[mds]
keyring = {d}/mds.$id/keyring
mds cache memory limit = 134217728
"""

MON_TIMEOUT_S = 30.0
MGR_TIMEOUT_S = 30.0
OSD_TIMEOUT_S = 60.0
MDS_TIMEOUT_S = 30.0
# An MDS started again replays its journal and then waits for its clients to reconnect, up to
# mds_reconnect_timeout (45 s by default) for one that does not.
MDS_BACK_TIMEOUT_S = 90.0
PGS_TIMEOUT_S = 60.0
MKFS_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 5.0  # per daemon: to exit after SIGTERM (then SIGKILL), or after SIGKILL
# The order daemons start in; they stop in the reverse order (an MDS without monitors ignores SIGTERM a long time).
ORDER = ("mon.a", "mgr.x", "osd.0", "mds.a")


@dataclass
class CephCluster:
    """A running embedded cluster; ``admin`` is client.admin on it."""

    directory: Path
    port: int
    fsid: str
    admin: CephClient
    daemons: dict[str, proc.Daemon] = field(default_factory=dict)
    fs_name: str | None = None
    pools: list[str] = field(default_factory=list)

    @property
    def monitors(self) -> str:
        return f"v2:127.0.0.1:{self.port}"

    @property
    def admin_keyring(self) -> Path:
        return self.directory / "client.admin.keyring"

    def log_of(self, name: str) -> Path:
        return self.directory / "log" / f"{name}.log"

    def stop(self) -> None:
        """Kill every daemon this cluster started (and only those, by the PIDs we hold), newest first; idempotent.
        SIGKILL: the cluster's data goes with the work area, and an MDS or OSD shutting down cleanly waits seconds
        for monitors and peers."""
        for name in sorted(self.daemons, key=ORDER.index, reverse=True):
            daemon = self.daemons[name]
            daemon.signal(signal.SIGKILL)
            daemon.wait(timeout_s=STOP_TIMEOUT_S)
        self.daemons.clear()

    def stop_daemon(self, name: str, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Stop one daemon (SIGTERM, then SIGKILL); its pid."""
        daemon = self.daemons[name]
        daemon.stop(timeout_s=timeout_s)
        return daemon.pid

    def start_daemon(self, name: str) -> proc.Daemon:
        """(Re)start one daemon of this cluster on its existing data."""
        kind, _, ident = name.partition(".")
        argv = [f"ceph-{kind}", "-c", str(self.directory / "ceph.conf"), "-i", ident, "-f"]
        # The mgr runs Debian's Python modules: a virtualenv's PYTHONPATH would shadow them.
        env = {"PYTHONPATH": ""} if kind == "mgr" else None
        out = self.directory / "log" / f"{name}.out"
        self.daemons[name] = daemon = proc.start_daemon(f"ceph-{kind}", argv, log_path=out, env=env)
        return daemon

    def osd_back(self, timeout_s: float = OSD_TIMEOUT_S) -> str:
        """After ``start_daemon("osd.0")``: wait (bounded) until the OSD is up and every placement group active
        again; what that took, in a sentence."""
        started = time.monotonic()

        def up() -> bool:
            return int(self.admin.ceph_json("osd", "stat").get("num_up_osds", 0)) >= 1

        self.wait_until("osd.0", up, "osd.0 up again", timeout_s)
        up_s = time.monotonic() - started
        self.wait_until("osd.0", lambda: _pgs_active(self), "every placement group active again", PGS_TIMEOUT_S)
        return (
            f"up {up_s:.1f} s after it started, every placement group active after {time.monotonic() - started:.1f} s"
        )

    def mds_state(self) -> str:
        """The state ``fs status`` gives the file system's mds.a ("active", "replay", "reconnect", ...; "" when it
        lists none)."""
        status = self.admin.ceph_json("fs", "status", self.fs_name or "")
        return ", ".join(str(m.get("state", "")) for m in status.get("mdsmap", []) if m.get("name") == "a")

    def mds_back(self, timeout_s: float = MDS_BACK_TIMEOUT_S) -> str:
        """After ``start_daemon("mds.a")``: wait (bounded) until it is active for the file system again (its journal
        replayed, the clients reconnected); what that took and the states it went through, in a sentence."""
        started = time.monotonic()
        seen: list[str] = []

        def active() -> bool:
            state = self.mds_state()
            if state and (not seen or seen[-1] != state):
                seen.append(state)
            return state == "active"

        self.wait_until("mds.a", active, f"mds.a active again for the file system {self.fs_name}", timeout_s)
        return f"active {time.monotonic() - started:.1f} s after it started (through {' -> '.join(seen)})"

    def wait_until(self, name: str, probe: Callable[[], bool], what: str, timeout_s: float) -> None:
        """Wait for ``probe`` while ``name`` runs; if it exits or the time runs out, say which and quote its log."""
        daemon = self.daemons[name]

        def up() -> bool:
            if not daemon.alive():
                raise InfraError(self.failed(name, f"exited (code {daemon.popen.returncode}) before {what}"))
            try:
                return probe()
            except StorageUnavailable:  # the monitor not answering yet: asked again
                return False

        try:
            wait_for(up, what=what, timeout_s=timeout_s, interval_s=0.25)
        except WaitTimeout as e:
            raise InfraError(self.failed(name, f"did not come up: {e}")) from e

    def failed(self, name: str, how: str) -> str:
        tail = _tail(self.log_of(name)) or _tail(self.directory / "log" / f"{name}.out") or "(its log is empty)"
        return f"the embedded Ceph's {name} {how}. Its log ({self.log_of(name)}) ends:\n{tail}"


def _tail(path: Path, lines: int = 8) -> str:
    """What a daemon's log says last: its errors (level -1) and failed assertions where it has any, else its last
    lines. A crash appends a dump of its recent events (thousands of lines of context): what it said is before."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    said = text.split("--- begin dump of recent events ---", 1)[0].strip().splitlines()
    errors = [line for line in said if " -1 " in line or "ceph_assert" in line or "abort" in line.lower()]
    return "\n".join((errors or said)[-lines:])


def start_ceph(directory: Path, *, osd_size_bytes: int, fs_name: str | None, pool: str | None) -> CephCluster:
    """Make and start the cluster in ``directory``; with ``fs_name`` an MDS and that CephFS volume, with ``pool`` an
    RBD pool. Returns once the pools' placement groups are active; stops what it started if any step fails."""
    directory.mkdir(parents=True, exist_ok=True)
    fs = filesystem_of(directory)
    if fs.fstype == "tmpfs":
        raise StorageUnavailable(
            f"the embedded Ceph's OSD keeps its BlueStore file in {directory}, which is on tmpfs: tmpfs has no "
            "O_DIRECT, which BlueStore needs. Give the run a work area on a disk (--workdir)"
        )
    for sub in ("log", "run"):
        (directory / sub).mkdir(exist_ok=True)
    fsid = str(uuid.uuid4())
    port = proc.free_port()
    conf = directory / "ceph.conf"
    cluster = CephCluster(directory, port, fsid, CephClient(conf, "admin"))
    conf.write_text(
        CLUSTER_CONF.format(fsid=fsid, monitors=f"[{cluster.monitors}]", d=directory, osd_size=osd_size_bytes)
    )
    try:
        _make_mon(cluster)
        # The mgr and the MDS come up while the OSD is made (the slowest step); each is waited for where needed.
        _start_keyed(cluster, "mgr.x", ["mon", "allow profile mgr", "osd", "allow *", "mds", "allow *"])
        if fs_name is not None:
            mds_caps = ["mon", "allow profile mds", "osd", "allow rwx", "mds", "allow *", "mgr", "allow profile mds"]
            _start_keyed(cluster, "mds.a", mds_caps)
        _start_osd(cluster)
        if pool is not None:
            cluster.admin.ceph("osd", "pool", "create", pool, "8")
            cluster.admin.rbd("pool", "init", pool)
            cluster.pools.append(pool)
        if fs_name is not None:
            _create_fs(cluster, fs_name)
        cluster.wait_until("osd.0", lambda: _pgs_active(cluster), "every placement group active", PGS_TIMEOUT_S)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _mkfs(cluster: CephCluster, name: str, argv: list[str]) -> None:
    try:
        proc.run(argv, timeout_s=MKFS_TIMEOUT_S)
    except CommandFailed as e:
        how = f"exit code {e.return_code}" if e.return_code is not None else e.reason
        raise InfraError(cluster.failed(name, f"could not be made ({argv[0]} --mkfs: {how})")) from e


def _make_mon(cluster: CephCluster) -> None:
    d = cluster.directory
    mon_keyring, admin_keyring = d / "mon.keyring", cluster.admin_keyring
    authtool = ["ceph-authtool", "--create-keyring"]
    proc.run([*authtool, str(mon_keyring), "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"], timeout_s=30)
    caps = [f"--cap={kind}=allow *" for kind in ("mon", "osd", "mds", "mgr")]
    caps = [arg for cap in caps for arg in ("--cap", *cap.removeprefix("--cap=").split("=", 1))]
    proc.run([*authtool, str(admin_keyring), "--gen-key", "-n", "client.admin", *caps], timeout_s=30)
    proc.run(["ceph-authtool", str(mon_keyring), "--import-keyring", str(admin_keyring)], timeout_s=30)
    monmap = d / "monmap"
    proc.run(
        ["monmaptool", "--create", "--fsid", cluster.fsid, "--addv", "a", f"[{cluster.monitors}]", str(monmap)],
        timeout_s=30,
    )
    conf = str(d / "ceph.conf")
    _mkfs(
        cluster,
        "mon.a",
        ["ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", str(monmap), "--keyring", str(mon_keyring)],
    )
    cluster.start_daemon("mon.a")
    cluster.wait_until("mon.a", lambda: bool(cluster.admin.ceph_json("mon", "stat")), "mon.a in quorum", MON_TIMEOUT_S)


def _start_keyed(cluster: CephCluster, name: str, caps: list[str]) -> None:
    """A daemon with a key of its own (``caps``), started on it."""
    keyring = cluster.directory / name / "keyring"
    keyring.parent.mkdir()
    cluster.admin.ceph("auth", "get-or-create", name, *caps, "-o", str(keyring))
    cluster.start_daemon(name)


def _start_osd(cluster: CephCluster) -> None:
    osd_uuid = str(uuid.uuid4())
    secret = proc.run(["ceph-authtool", "--gen-print-key"], timeout_s=30).stdout.strip()
    osd_id = cluster.admin.ceph("osd", "new", osd_uuid, "-i", "-", input_text=f'{{"cephx_secret": "{secret}"}}')
    if osd_id.strip() != "0":
        raise InfraError(f"the embedded Ceph's monitor gave the new OSD id {osd_id.strip()!r}, not 0")
    data = cluster.directory / "osd.0"
    data.mkdir()
    keyring = data / "keyring"
    proc.run(["ceph-authtool", "--create-keyring", str(keyring), "--name", "osd.0", "--add-key", secret], timeout_s=30)
    conf = str(cluster.directory / "ceph.conf")
    _mkfs(cluster, "osd.0", ["ceph-osd", "-c", conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid])
    cluster.start_daemon("osd.0")

    def up() -> bool:
        return int(cluster.admin.ceph_json("osd", "stat").get("num_up_osds", 0)) >= 1

    cluster.wait_until("osd.0", up, "osd.0 up", OSD_TIMEOUT_S)


def _create_fs(cluster: CephCluster, fs_name: str) -> None:
    """``ceph fs volume create`` (a manager command: the mgr is waited for first), then the MDS taking it."""

    def available() -> bool:
        return bool(cluster.admin.ceph_json("mgr", "stat").get("available"))

    cluster.wait_until("mgr.x", available, "mgr.x available", MGR_TIMEOUT_S)
    cluster.admin.ceph("fs", "volume", "create", fs_name, timeout_s=60)
    cluster.fs_name = fs_name

    def active() -> bool:
        status = cluster.admin.ceph_json("fs", "status", fs_name)
        return any(m.get("state") == "active" for m in status.get("mdsmap", []))

    cluster.wait_until("mds.a", active, f"mds.a active for the file system {fs_name}", MDS_TIMEOUT_S)


def _pgs_active(cluster: CephCluster) -> bool:
    stat = cluster.admin.ceph_json("pg", "stat")
    summary = stat.get("pg_summary", stat)
    states = summary.get("num_pg_by_state", [])
    total = int(summary.get("num_pgs", 0))
    active = sum(int(s.get("num", 0)) for s in states if "active" in str(s.get("name", "")).split("+"))
    return total > 0 and active == total
