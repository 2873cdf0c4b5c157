"""The only caller of Ceph's command-line tools (``ceph``, ``rbd``): one client identity on one cluster, every call
bounded, every failure said in Ceph's own words with what to check.

Ceph's tools wait five minutes for an unreachable monitor by default (``client_mount_timeout`` 300 s); every call
here passes ``--connect-timeout`` and the client configuration this module writes bounds the monitor operations too,
so an unreachable cluster or a wrong key is an error within seconds, not a hang.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import proc
from harness.errors import CommandFailed, StorageUnavailable

# How long a client waits for the monitors (connect + authenticate) and for one monitor/OSD operation.
CONNECT_TIMEOUT_S = 10
OP_TIMEOUT_S = 20
# A whole command: connecting, then its operations (the tools' own timeouts end it first).
CALL_TIMEOUT_S = CONNECT_TIMEOUT_S + OP_TIMEOUT_S + 5

CLIENT_CONF = """\
[global]
mon host = {monitors}
{key_line}
# Bounded waits: Ceph's defaults wait 300 s for an unreachable monitor.
client mount timeout = {connect}
rados mon op timeout = {op}
rados osd op timeout = {op}
# No admin sockets and no log files of the clients in the host's /var/run and /var/log.
admin socket =
log file = {log_dir}/$name.$pid.log
"""


_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+[+-]\d{4} [0-9a-f]+ +-?\d+ ", re.M)


class CephError(StorageUnavailable):
    """A Ceph command failed; the message names what to check."""


def write_client_conf(path: Path, monitors: str, *, keyring: Path | None, keyfile: Path | None) -> Path:
    """A ceph.conf for a client of the cluster at ``monitors``, with its key from ``keyring`` (a keyring file) or
    ``keyfile`` (a file holding the base64 key alone)."""
    key_line = f"keyring = {keyring}" if keyring is not None else f"keyfile = {keyfile}"
    log_dir = path.parent / "ceph-client-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        CLIENT_CONF.format(
            monitors=monitors, key_line=key_line, connect=CONNECT_TIMEOUT_S, op=OP_TIMEOUT_S, log_dir=log_dir
        )
    )
    return path


@dataclass(frozen=True)
class CephClient:
    """``client.<user>`` on the cluster ``conf`` describes (its monitors and the user's key)."""

    conf: Path
    user: str = "admin"

    @property
    def name(self) -> str:
        return f"client.{self.user}"

    def base(self, tool: str) -> list[str]:
        return [tool, "-c", str(self.conf), "--id", self.user]

    def ceph(self, *args: str, timeout_s: float = CALL_TIMEOUT_S, input_text: str | None = None) -> str:
        """``ceph ARGS``' output; CephError with its words and what to check when it fails."""
        argv = [*self.base("ceph"), "--connect-timeout", str(CONNECT_TIMEOUT_S), *args]
        return self._run(argv, f"ceph {' '.join(args)}", timeout_s=timeout_s, input_text=input_text)

    def ceph_json(self, *args: str, timeout_s: float = CALL_TIMEOUT_S) -> Any:
        return json.loads(self.ceph(*args, "--format", "json", timeout_s=timeout_s) or "null")

    def rbd(self, *args: str, timeout_s: float = CALL_TIMEOUT_S) -> str:
        return self._run([*self.base("rbd"), *args], f"rbd {' '.join(args)}", timeout_s=timeout_s)

    def rbd_json(self, *args: str, timeout_s: float = CALL_TIMEOUT_S) -> Any:
        return json.loads(self.rbd(*args, "--format", "json", timeout_s=timeout_s) or "null")

    def _run(self, argv: list[str], what: str, *, timeout_s: float, input_text: str | None = None) -> str:
        try:
            return proc.run(argv, timeout_s=timeout_s, input_text=input_text).stdout
        except CommandFailed as e:
            raise CephError(explain(what, self, e)) from e


def explain(what: str, client: CephClient, error: CommandFailed) -> str:
    """Ceph's own words for a failed command, and which setting they point at."""
    # Ceph's log lines start with a timestamp, a thread id and a level: the words after them are what it said.
    said = " ".join(_LOG_PREFIX.sub("", error.stderr_tail or str(error)).split())
    lowered = said.lower()
    if "timed out" in lowered or ("error connecting to the cluster" in lowered and "permission" not in lowered):
        check = (
            f"the monitors (none answered within {CONNECT_TIMEOUT_S} s: storage.monitors reachable from this host? a "
            "monitor's address and port, not an OSD's)"
        )
    elif "permission denied" in lowered or "auth" in lowered or "(13)" in said or "(1)" in said:
        check = (
            f"the user and its key (storage.user {client.user!r}, storage.keyring or storage.secret_file: the key "
            f"of {client.name} as `ceph auth get {client.name}` shows it, with caps for this command)"
        )
    elif "no such file" in lowered or "(2)" in said or "does not exist" in lowered or "not found" in lowered:
        check = "the name of the pool, image or file system (it does not exist on this cluster)"
    else:
        check = "the cluster's state (`ceph -s`)"
    return f"Ceph: `{what}` failed as {client.name}: {said}. Check {check}"
