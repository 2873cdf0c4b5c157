"""An embedded server that a run keeps past its own death: its record in the work area, and how ``harness cleanup``
finds its clients and stops it.

On the kubernetes runtime an embedded NFS-Ganesha or tgtd serves a PV that a node has mounted. Had it died with a
SIGKILLed harness (PR_SET_PDEATHSIG, as every other daemon of a run does), the node's client would be left with a
dead server: its I/O hangs or fails after a replacement timeout, and the kubelet's unmount or logout when cleanup
deletes the pod races a server that is gone. So such a server is started without the death signal and records
itself here (``SERVER_DIR/RECORD_NAME`` in the run's work directory): program, pid and that pid's start time, the
address and ports it serves, tgtd's control port, and whether the run's ``server_restart`` had it stopped. The run's
own teardown stops it (after its cluster objects, as always) and removes the record; after a SIGKILL ``harness
cleanup`` stops it from the record once the run's cluster objects are gone and no client is connected any more.

Nothing is signalled unless the pid still has the start time the record names: a pid the kernel gave to another
process since is never killed, nor is tgtadm sent to a control port that is no longer the recorded tgtd's.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from harness import proc
from harness.errors import InfraError
from harness.ownership import process_alive, process_start, process_state
from harness.wait import terminate, wait_for

SERVER_DIR = "server"  # the embedded server's directory in the run's work directory
RECORD_NAME = "kept-server.json"
TERM_WAIT_S = 15.0  # Ganesha's clean shutdown takes a few seconds; then SIGKILL
KILL_WAIT_S = 5.0

State = Literal["running", "halted"]


def record_path(run_workdir: Path) -> Path:
    return run_workdir / SERVER_DIR / RECORD_NAME


@dataclass(frozen=True)
class ServerRecord:
    program: str  # "ganesha.nfsd", "tgtd"
    pid: int
    start: int | None  # the pid's start time (clock ticks since boot): with the pid, one process
    listen: str
    ports: tuple[int, ...]  # what its clients connect to (Ganesha's NFS and MOUNT ports, tgtd's portal)
    control_port: int | None = None  # tgtd's -C: its targets are deleted over it before SIGTERM
    state: State = "running"  # "halted": the run's server_restart had stopped it (and not started it again)

    @property
    def where(self) -> str:
        return f"{self.listen}:{'/'.join(str(p) for p in self.ports)}"

    def describe(self) -> str:
        return f"{self.program} (pid {self.pid}, {self.where})"

    def alive(self) -> bool:
        # A zombie has exited: its parent (the dead harness's heir) has not reaped it yet.
        return self.state == "running" and process_alive(self.pid, self.start) and process_state(self.pid) != "Z"


def write(path: Path, record: ServerRecord) -> None:
    """Atomically: a reader never sees half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.replace(path)


def keep(
    path: Path,
    daemon: proc.Daemon,
    listen: str,
    ports: tuple[int, ...],
    *,
    state: State,
    control_port: int | None = None,
) -> None:
    """Write the record of ``daemon`` (its pid and that pid's start time now) in ``state`` at ``path``."""
    write(path, ServerRecord(daemon.name, daemon.pid, process_start(daemon.pid), listen, ports, control_port, state))


def read(path: Path) -> ServerRecord | None:
    """The record at ``path``; None when there is none. A record that cannot be read is an InfraError: cleanup must
    say so rather than remove the directory of a server that may be running."""
    try:
        data = json.loads(path.read_text())
        return ServerRecord(
            program=str(data["program"]),
            pid=int(data["pid"]),
            start=None if data["start"] is None else int(data["start"]),
            listen=str(data["listen"]),
            ports=tuple(int(p) for p in data["ports"]),
            control_port=None if data.get("control_port") is None else int(data["control_port"]),
            state="halted" if data.get("state") == "halted" else "running",
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InfraError(
            f"the run's server record {path} cannot be read ({e}): its server, if any, is left alone"
        ) from e


# --- its clients -------------------------------------------------------------------------------------------------


def clients(record: ServerRecord) -> list[str]:
    """The peers (``host:port``) with an established TCP connection to the server's address and ports, read from the
    server's own network namespace (``/proc/PID/net/tcp``, ``tcp6``): a node whose kubelet still has its volume
    mounted, or its iSCSI session logged in, holds one. Empty when the server is gone."""
    peers: list[str] = []
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{record.pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "01":  # 01: ESTABLISHED
                continue
            local, remote = _address(fields[1]), _address(fields[2])
            if local is not None and remote is not None and local[1] in record.ports and _same(local[0], record):
                peers.append(f"{remote[0]}:{remote[1]}")
    return sorted(peers)


def _same(address: str, record: ServerRecord) -> bool:
    wildcard = record.listen in {"0.0.0.0", "::"}  # noqa: S104 - listening on every address: any local one is it
    return wildcard or address in {record.listen, f"::ffff:{record.listen}"}


def _address(text: str) -> tuple[str, int] | None:
    """``0100007F:0CBC`` (the kernel's hex, host byte order per 32-bit word) as ("127.0.0.1", 3260)."""
    try:
        host, port = text.split(":")
        raw = bytes.fromhex(host)
        # Each 32-bit word is in the host's byte order (little-endian here).
        swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
        if len(swapped) == 4:
            return socket.inet_ntop(socket.AF_INET, swapped), int(port, 16)
        mapped = socket.inet_ntop(socket.AF_INET6, swapped)
        return mapped.removeprefix("::ffff:") if mapped.startswith("::ffff:") else mapped, int(port, 16)
    except ValueError:
        return None


def await_no_clients(record: ServerRecord, timeout_s: float) -> float:
    """Wait (bounded) until no client is connected to the server; the seconds waited. WaitTimeout names who still
    is."""
    started = time.monotonic()
    wait_for(
        lambda: not clients(record),
        what=f"the nodes' clients of {record.describe()} to unmount and log out (their connections to close)",
        timeout_s=timeout_s,
        interval_s=0.5,
        describe=lambda: f"still connected: {', '.join(clients(record)) or 'none'}",
    )
    return time.monotonic() - started


# --- stopping it -------------------------------------------------------------------------------------------------


def stop(record: ServerRecord) -> str:
    """Stop the recorded server, only if its pid is still the process the record names; how it went, in words."""
    if record.state == "halted":
        # Not started again: see docs/operations/safety.md (a node's client fails its I/O after its replacement
        # timeout, as it would had the server died; starting a server is not cleanup's to do).
        return "it was down: the run's server_restart had stopped it; not started again"
    if not record.alive():
        if process_start(record.pid) is not None and not process_alive(record.pid, record.start):
            return f"had exited; pid {record.pid} is another process now, left alone"
        return "had exited"
    if record.control_port is not None:
        # tgtd ignores SIGTERM while it has targets: delete them (and their connections), then its system. The pid
        # was checked above, so this control port is still that tgtd's.
        for args in (
            ["--lld", "iscsi", "--mode", "target", "--op", "delete", "--force", "--tid", "1"],
            ["--mode", "system", "--op", "delete"],
        ):
            proc.run(["tgtadm", "-C", str(record.control_port), *args], timeout_s=15.0, check=False)
        return f"its target deleted over control port {record.control_port}, then {_terminate(record)}"
    return _terminate(record)


def _terminate(record: ServerRecord) -> str:
    how = terminate(
        record.pid, lambda: not record.alive(), record.describe(), term_wait_s=TERM_WAIT_S, kill_wait_s=KILL_WAIT_S
    )
    return "it exited" if how == "exited" else how
