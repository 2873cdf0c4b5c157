"""The fault layer's control protocol: what the harness and the layer (``harness.datapath.fault_fuse``) say to each
other,
and nothing else. Standard library only: the layer imports it in its own process (a sidecar on a cluster), the
runtimes (``harness.runtime.fault_layer``, ``harness.runtime.kubernetes``) in theirs.

A command is one write to a control file that is not listed anywhere, ``DIR/.harness-control`` (``CONTROL_NAME``);
only the layer's own uid may write to it, and the layer writes its answer, as JSON, to its ``--report`` file before
the write returns (the layer serves one request at a time, so no operation of anyone else interleaves with a
command). A command the layer does not know, or settings it does not accept, fail the write with EINVAL.

* ``cut`` drops what is not durable (``harness.datapath.fault_durability``); the answer (``CutReport``) says what was
  dropped
  and when every path was last fsynced.
* ``cut-kill`` (the kubernetes runtime, where the layer runs in a sidecar of Prometheus' pod and the kubelet, not the
  harness, restarts a killed container) SIGKILLs the one process named ``prometheus`` the layer sees (the pod shares
  one process namespace), then cuts, in the same request: no operation of anyone runs in between. Until that
  process is gone, every operation that would change data or names fails with EIO, so nothing the dying process
  still had queued lands after the cut; the next Prometheus can only start once it is gone. The answer is a cut's,
  with ``killed_pid``.
* ``io-set {JSON}`` (``io_set_command``) sets the I/O fault (replacing any): ``methods`` (names from ``IO_METHODS``;
  empty: all of them), ``percent`` (0-100: the share of matching operations hit, drawn per operation), ``errno`` (a
  number: they fail with it, nothing reaches the directory underneath; null: they do not fail), ``delay_s`` (added
  before each hit operation) and ``path`` (null, or a path relative to ``DIR``: only operations on it or under it
  match; a rename matches by either name). Hit operations are counted by method. The control file and the
  attributes of ``DIR`` itself are never hit: the kernel needs those to reach the control file, so an ``io-clear``
  always does. The answer holds when it took hold (``set_at_unix_s``).
* ``io-clear`` lifts it; the answer holds the counts (per method: matched, failed, delayed, ``IoCounts``) of the
  fault it lifted.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONTROL_NAME = ".harness-control"
CUT = "cut"
CUT_KILL = "cut-kill"
IO_SET = "io-set"
IO_CLEAR = "io-clear"
KILLED_NAME = "prometheus"  # the process cut-kill kills (its /proc/<pid>/comm)
# The operations an I/O fault can hit, by the names a scenario uses (Chaos Mesh IOChaos' where they overlap). fsync
# is fsync(2) and fdatasync(2) on a file, fsyncdir on a directory; flush is close(2); setattr is chmod, chown and
# utimens (truncate is its own). release is not among them: the kernel ignores what it returns.
IO_METHODS = frozenset(
    {"open", "create", "read", "write", "truncate", "fsync", "fsyncdir", "flush", "getattr", "setattr", "readdir",
     "mkdir", "rmdir", "unlink", "rename", "statfs"}
)  # fmt: skip


def send(directory: Path, command: bytes) -> None:
    """Write one command to the control file of the layer mounted over ``directory``; it returns when the layer has
    written its answer. OSError when the layer refuses it (EINVAL: a command or settings it does not know)."""
    fd = os.open(directory / CONTROL_NAME, os.O_WRONLY)
    try:
        os.write(fd, command)
    finally:
        os.close(fd)


def split_command(data: bytes) -> tuple[bytes, bytes]:
    """A control write's command and its argument (empty when it has none)."""
    command, _, argument = data.strip().partition(b" ")
    return command, argument


# --- cut ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CutReport:
    """What one cut took away (the answer to ``cut`` and ``cut-kill``, those keys)."""

    cut_at_unix_s: float
    reverted: list[str]  # files put back to their last fsynced size and content
    removed: list[str]  # files created and never made durable
    dropped_bytes: int
    last_fsync_unix_s: dict[str, float]  # every path the layer saw fsynced, and when last

    def last_fsync_under(self, directory: str) -> float | None:
        times = [t for p, t in self.last_fsync_unix_s.items() if under(p, directory)]
        return max(times) if times else None

    def answer(self) -> dict[str, Any]:
        return {
            "cut_at_unix_s": self.cut_at_unix_s,
            "reverted": sorted(self.reverted),
            "removed": sorted(self.removed),
            "dropped_bytes": self.dropped_bytes,
            "last_fsync_unix_s": dict(sorted(self.last_fsync_unix_s.items())),
        }


def cut_report(raw: dict[str, Any]) -> CutReport:
    """What a ``cut`` (or ``cut-kill``) answer says was taken away."""
    return CutReport(
        cut_at_unix_s=float(raw["cut_at_unix_s"]),
        reverted=list(raw["reverted"]),
        removed=list(raw["removed"]),
        dropped_bytes=int(raw["dropped_bytes"]),
        last_fsync_unix_s={str(k): float(v) for k, v in raw["last_fsync_unix_s"].items()},
    )


# --- I/O faults -----------------------------------------------------------------------------------------------------


@dataclass
class IoCounts:
    """What an I/O fault did to one method while it held."""

    matched: int = 0  # operations of that method on the fault's path
    failed: int = 0
    delayed: int = 0


@dataclass
class LayerIoFault:
    """The I/O fault in force in the layer (an ``io-set``'s settings), and what it did so far."""

    methods: frozenset[str]  # empty: every method
    percent: float
    errno: int | None
    delay_s: float
    path: str | None  # relative to the root, without a trailing slash
    set_at: float = field(default_factory=time.time)
    counts: dict[str, IoCounts] = field(default_factory=dict)

    def matches(self, method: str, paths: Iterable[str]) -> bool:
        """Whether an operation of ``method`` on ``paths`` (relative to the root; a rename has two) is one it may
        hit: of a chosen method, on or under the chosen path."""
        if self.methods and method not in self.methods:
            return False
        top = self.path
        return top is None or any(under(p, top) for p in paths)

    def report(self) -> dict[str, Any]:
        return {"set_at_unix_s": self.set_at, "counts": {m: vars(c) for m, c in sorted(self.counts.items())}}


def io_set_command(
    *, methods: Sequence[str], percent: float, errno: int | None, delay_s: float, path: str | None
) -> str:
    """The ``io-set {JSON}`` command for these settings."""
    settings = {"methods": list(methods), "percent": percent, "errno": errno, "delay_s": delay_s, "path": path}
    return f"{IO_SET} " + json.dumps(settings)


def parse_io_set(argument: bytes) -> LayerIoFault:
    """An ``io-set`` command's settings; ValueError when they are not what the layer knows (the command's write then
    fails with EINVAL)."""
    try:
        raw = json.loads(argument)
        methods = frozenset(str(m) for m in raw.get("methods") or [])
        code = raw.get("errno")
        fault = LayerIoFault(
            methods=methods,
            percent=float(raw.get("percent", 100)),
            errno=None if code is None else int(code),
            delay_s=float(raw.get("delay_s", 0)),
            path=str(raw.get("path") or "").strip("/") or None,
        )
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(str(e)) from None
    if not methods <= IO_METHODS or not 0 <= fault.percent <= 100 or fault.delay_s < 0 or fault.errno == 0:
        raise ValueError("unknown method, or a value out of range")
    return fault


def io_counts(answer: dict[str, Any]) -> dict[str, IoCounts]:
    """What an ``io-clear`` answer says the lifted fault did, by method."""
    return {
        str(m): IoCounts(int(c["matched"]), int(c["failed"]), int(c["delayed"])) for m, c in answer["counts"].items()
    }


def under(rel: str, top: str) -> bool:
    """Whether ``rel`` is ``top`` or beneath it (both relative to the layer's root)."""
    return rel == top or rel.startswith(top + "/")
