"""Embedded storage servers: NFS-Ganesha (NFSv4) and tgt (iSCSI), each on a free port of one address of this host
(``listen``: 127.0.0.1 unless the scenario's ``storage.embedded.listen`` names another, such as an address a
cluster's nodes route to).

A scenario that asks for an embedded server (``server: embedded``, ``target_portal: embedded``) runs against one of
these, started for the run in its work area and stopped at its end (and on Ctrl-C); the tests use the same ones. Both
are started through ``harness.proc`` and stopped by the PID we hold (tgtd first has its targets deleted: it ignores
SIGTERM while targets exist). The servers listen on that one address only; the one exception is the rpcbind NFSv3 needs
(see ``start_ganesha``), which Debian builds to listen on port 111 of every interface.

Started with a ``record`` (a path), the server does not die with the harness: it serves a cluster's nodes, which must
not be left with a dead server by a SIGKILLed run, and it keeps that record of itself (``harness.datapath.kept_server``)
up to date through every halt and resume until ``stop`` removes it, so ``harness cleanup`` can find and stop it.
"""

from __future__ import annotations

import itertools
import socket
from dataclasses import dataclass, field
from pathlib import Path

from harness import proc
from harness.datapath import kept_server
from harness.errors import InfraError
from harness.wait import wait_for

GANESHA_CONF = """\
NFS_CORE_PARAM {{
    Bind_Addr = {listen};
    NFS_Port = {port};
    MNT_Port = {mnt_port};
    Protocols = {protocols};
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
}}
NFSV4 {{
    Graceless = {graceless};
    Grace_Period = {grace};
    Lease_Lifetime = {lease};
    RecoveryRoot = "{recovery}";
    Allow_Numeric_Owners = true;
    Only_Numeric_Owners = true;
}}
NFS_KRB5 {{
    Active_krb5 = false;
}}
EXPORT {{
    Export_Id = 1;
    Path = {path};
    Pseudo = {pseudo};
    Access_Type = RW;
    Squash = {squash};
    Protocols = {protocols};
    Transports = TCP;
    SecType = sys;
    # Tests change owners and modes behind the server's back; never serve cached attributes.
    Attr_Expiration_Time = 0;
    FSAL {{
        Name = VFS;
    }}
}}
"""


LOOPBACK = "127.0.0.1"


def _port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class NfsServer:
    """A running ganesha.nfsd exporting ``export_dir`` as ``pseudo`` on ``listen``:``port``.

    With NFSv3, ``mount_port`` is its MOUNT service; ``rpcbind`` is the one started for it (None: one was running).
    ``halt`` and ``resume`` restart it as an administrator would (``server_restart``): the same configuration file,
    so the same ports and export, and the rpcbind it registers with stays up meanwhile.
    """

    port: int
    export_dir: Path
    pseudo: str
    daemon: proc.Daemon
    workdir: Path
    mount_port: int | None = None
    rpcbind: proc.Daemon | None = None
    listen: str = LOOPBACK
    record: Path | None = None  # set: it outlives the harness, and keeps its record there

    def __post_init__(self) -> None:
        self._record("running")

    def _record(self, state: kept_server.State) -> None:
        if self.record is not None:
            ports = tuple(dict.fromkeys(p for p in (self.port, self.mount_port) if p is not None))
            kept_server.keep(self.record, self.daemon, self.listen, ports, state=state)

    def stop(self) -> None:
        self.daemon.stop(timeout_s=15.0)
        if self.record is not None:
            self.record.unlink(missing_ok=True)
        if self.rpcbind is not None:
            self.rpcbind.stop(timeout_s=10.0)
            self.rpcbind = None

    def halt(self) -> None:
        """Stop ganesha.nfsd alone (SIGTERM, its clean shutdown); ``resume`` starts it again as it was."""
        self.daemon.stop(timeout_s=15.0)
        self._record("halted")

    def grace_log(self) -> list[str]:
        """What the running ganesha.nfsd logged about its grace period (its own lines, from its start): whether it
        started in grace, and when and why it lifted it."""
        try:
            text = (self.workdir / "ganesha.log").read_text(errors="replace")
        except OSError:
            return []
        mine = f"ganesha.nfsd-{self.daemon.pid}["
        return [
            line.split(" :STATE :EVENT :", 1)[-1].strip()
            for line in text.splitlines()
            if mine in line and ("GRACE" in line or "check grace" in line)
        ]

    def resume(self) -> None:
        """Start ganesha.nfsd again on the same configuration; returns once it accepts TCP connections again.

        A halt that Ctrl-C cut short may have left the old process shutting down, holding the ports: it is waited
        for (stopped) first."""
        self.daemon.stop(timeout_s=15.0)
        self._record("halted")
        self.daemon = _start_ganesha_daemon(self.workdir, self.port, self.listen, kept=self.record is not None)
        self._record("running")


def _start_ganesha_daemon(workdir: Path, port: int, listen: str, *, kept: bool) -> proc.Daemon:
    """ganesha.nfsd on ``workdir``'s ganesha.conf, waited for (bounded) until it listens on ``port``; stopped again
    if it does not. Its log is appended to, so a restart keeps what the first start said. ``kept``: it does not die
    with the harness."""
    files = [
        "-L",
        str(workdir / "ganesha.log"),
        "-f",
        str(workdir / "ganesha.conf"),
        "-p",
        str(workdir / "ganesha.pid"),
    ]
    daemon = proc.start_daemon(
        "ganesha.nfsd",
        ["ganesha.nfsd", "-F", *files],
        log_path=workdir / "ganesha.stdout",
        die_with_parent=not kept,
        of_the_run=True,
    )
    try:
        wait_for(
            lambda: daemon.alive() and _port_open(port, listen),
            what=f"NFS-Ganesha to listen on {listen}:{port}",
            timeout_s=15.0,
            describe=lambda: "exited" if not daemon.alive() else (workdir / "ganesha.log").read_text()[-500:],
        )
    except BaseException:
        daemon.stop(timeout_s=15.0)
        raise
    return daemon


def start_rpcbind(workdir: Path) -> proc.Daemon | None:
    """The rpcbind NFSv3 needs, started unless one answers on port 111 already (then None: it is not ours to stop);
    returns once it listens. Debian's build listens on every interface, on port 111 only, so one serves every
    Ganesha on this host: the test suite starts one for all its tests, which then start none of their own."""
    if _port_open(111):
        return None
    rpcbind = proc.start_daemon("rpcbind", ["rpcbind", "-f", "-w"], log_path=workdir / "rpcbind.log")
    try:
        wait_for(lambda: _port_open(111), what="rpcbind to listen on port 111", timeout_s=10.0)
    except BaseException:
        rpcbind.stop(timeout_s=10.0)
        raise
    return rpcbind


def start_ganesha(
    workdir: Path,
    export_dir: Path,
    *,
    pseudo: str = "/export",
    squash: str = "No_Root_Squash",
    v3: bool = False,
    grace_s: float = 0.0,
    listen: str = LOOPBACK,
    record: Path | None = None,
) -> NfsServer:
    """Start NFS-Ganesha serving ``export_dir``; returns once it accepts TCP connections.

    ``grace_s`` > 0 gives every (re)start an NFSv4 grace period that long (its clients' records in ``workdir``);
    0 makes it graceless. ``record``: Ganesha outlives the harness and keeps its record there (the rpcbind started
    for it does not: clients here are given both ports and never ask it).

    ``v3`` serves NFSv3 (and MOUNT) next to v4. Ganesha must register v3 with rpcbind when it starts, so an rpcbind
    is started for it when none answers on port 111 (rpcbind cannot be bound to loopback alone in Debian's build:
    it listens on every interface, on port 111 only). Clients here are given both ports and never ask rpcbind.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = proc.free_port()
    mount_port = proc.free_port() if v3 else port
    rpcbind = start_rpcbind(workdir) if v3 else None
    conf = workdir / "ganesha.conf"
    conf.write_text(
        GANESHA_CONF.format(
            listen=listen,
            port=port,
            mnt_port=mount_port,
            protocols="3, 4" if v3 else "4",
            path=export_dir,
            pseudo=pseudo,
            squash=squash,
            graceless="true" if grace_s <= 0 else "false",
            grace=max(0, round(grace_s)),
            # Ganesha wants a lease no longer than the grace period (clients reclaim within one lease).
            lease=min(60, max(1, round(grace_s))) if grace_s > 0 else 60,
            recovery=workdir / "recovery",
        )
    )
    try:
        daemon = _start_ganesha_daemon(workdir, port, listen, kept=record is not None)
    except BaseException:  # e.g. ganesha.nfsd not installed: the rpcbind started for it goes too
        if rpcbind is not None:
            rpcbind.stop(timeout_s=10.0)
        raise
    return NfsServer(
        port=port,
        export_dir=export_dir,
        pseudo=pseudo,
        daemon=daemon,
        workdir=workdir,
        mount_port=mount_port if v3 else None,
        rpcbind=rpcbind,
        listen=listen,
        record=record,
    )


_control_ports = itertools.count(0)


@dataclass
class IscsiTarget:
    """A running tgtd on ``listen``:``port`` with one target ``iqn`` (tid 1); LUNs are added with ``add_lun``.

    ``halt`` and ``resume`` restart it (``server_restart``): tgtd keeps no configuration of its own, so ``resume``
    gives the new tgtd the same portal, control port, IQN and LUNs on the same backing files.
    """

    port: int
    control_port: int
    iqn: str
    daemon: proc.Daemon
    workdir: Path
    luns: dict[int, Path] = field(default_factory=dict)
    listen: str = LOOPBACK
    record: Path | None = None  # set: it outlives the harness, and keeps its record there

    def __post_init__(self) -> None:
        self._record("running")

    def _record(self, state: kept_server.State) -> None:
        if self.record is not None:
            kept_server.keep(
                self.record, self.daemon, self.listen, (self.port,), state=state, control_port=self.control_port
            )

    @property
    def portal(self) -> str:
        return f"{self.listen}:{self.port}"

    def tgtadm(self, *args: str) -> proc.Completed:
        return proc.run(["tgtadm", "-C", str(self.control_port), *args], timeout_s=15.0)

    def add_lun(self, lun: int, backing_file: Path) -> None:
        self.tgtadm(
            "--lld",
            "iscsi",
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--tid",
            "1",
            "--lun",
            str(lun),
            "-b",
            str(backing_file),
        )
        self.luns[lun] = backing_file

    def remove_lun(self, lun: int) -> None:
        self.tgtadm("--lld", "iscsi", "--op", "delete", "--mode", "logicalunit", "--tid", "1", "--lun", str(lun))
        self.luns.pop(lun, None)

    def stop(self) -> None:
        if self.daemon.alive():
            # tgtd ignores SIGTERM while targets exist: delete them (and its connections) first, then the system.
            self._tgtadm_quietly("--lld", "iscsi", "--mode", "target", "--op", "delete", "--force", "--tid", "1")
            self._tgtadm_quietly("--mode", "system", "--op", "delete")
        self.daemon.stop(timeout_s=10.0)
        if self.record is not None:
            self.record.unlink(missing_ok=True)

    def halt(self) -> None:
        """Stop tgtd (its targets first, as ``stop``); ``luns`` stays, for ``resume``."""
        self.stop()
        self._record("halted")

    def resume(self) -> None:
        """Start tgtd again with the same portal, control port, IQN and LUNs; returns once it listens. An old tgtd
        that a halt cut short by Ctrl-C left running is stopped first (it holds the portal and control port)."""
        self.stop()
        self._record("halted")
        self.daemon = _start_tgtd(self.workdir, self.port, self.control_port, self.listen, kept=self.record is not None)
        self._record("running")
        try:
            # The LUNs before the target is opened to initiators: an initiator reconnecting in between would find
            # no LUN (LOGICAL_UNIT_NOT_SUPPORTED) and fail its requests, where it should have found the disk back.
            self._serve(luns=sorted(self.luns.items()))
        except BaseException:
            self.stop()
            raise

    def _serve(self, luns: list[tuple[int, Path]] | None = None) -> None:
        """The target with ``luns``, then open to every initiator, once tgtd answers tgtadm; returns once the portal
        listens."""
        control = self.control_port
        wait_for(
            lambda: (
                self.daemon.alive()
                and proc.run(
                    ["tgtadm", "-C", str(control), "--op", "show", "--mode", "target"], timeout_s=5.0, check=False
                ).returncode
                == 0
            ),
            what=f"tgtd (control port {control}) to answer tgtadm",
            timeout_s=15.0,
            describe=self.daemon.log_text,
        )
        self.tgtadm("--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", "1", "-T", self.iqn)
        for lun, backing_file in luns or []:
            self.add_lun(lun, backing_file)
        self.tgtadm("--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
        wait_for(lambda: _port_open(self.port, self.listen), what=f"tgtd to listen on {self.portal}", timeout_s=10.0)

    def _tgtadm_quietly(self, *args: str) -> None:
        proc.run(["tgtadm", "-C", str(self.control_port), *args], timeout_s=15.0, check=False)


def _free_control_port() -> int:
    """tgtd's -C picks its management socket /var/run/tgtd/socket.N; find an N nobody uses."""
    base = 100 + proc.free_port() % 5000
    for n in (base + next(_control_ports) for _ in range(100)):
        if not Path(f"/var/run/tgtd/socket.{n}").exists():
            return n
    raise InfraError("no free tgtd control port in /var/run/tgtd (100 tried)")


def _start_tgtd(workdir: Path, port: int, control: int, listen: str, *, kept: bool) -> proc.Daemon:
    return proc.start_daemon(
        "tgtd",
        ["tgtd", "-f", "--iscsi", f"portal={listen}:{port}", "-C", str(control)],
        log_path=workdir / "tgtd.log",
        die_with_parent=not kept,
        of_the_run=True,
    )


def start_tgt(
    workdir: Path, iqn: str = "iqn.2020-02.com:wsg", *, listen: str = LOOPBACK, record: Path | None = None
) -> IscsiTarget:
    """Start tgtd with one target that accepts every initiator; returns once tgtadm can talk to it. ``record``: it
    outlives the harness and keeps its record there."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = proc.free_port()
    control = _free_control_port()
    daemon = _start_tgtd(workdir, port, control, listen, kept=record is not None)
    target = IscsiTarget(
        port=port, control_port=control, iqn=iqn, daemon=daemon, workdir=workdir, listen=listen, record=record
    )
    try:
        target._serve()
    except BaseException:
        target.stop()
        raise
    return target
