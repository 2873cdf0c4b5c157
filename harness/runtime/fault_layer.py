"""The local runtime's side of the fault layer (``harness.datapath.fault_fuse``, a FUSE filesystem run as its own
process):
mount it over Prometheus' data directory, cut the power, set and lift I/O faults (through the layer's control
protocol, ``harness.datapath.fault_protocol``), unmount it. Every wait is bounded.

The layer is mounted only when a scenario has a fault that needs it (``power_loss``, ``io_errors``,
``io_latency``): Prometheus writes through a Python FUSE filesystem then, which is slower than the disk underneath.
fio does not measure through it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness import proc
from harness.capabilities.fault_layer import IoFault
from harness.datapath import fault_protocol
from harness.datapath.fault_protocol import CUT, IO_CLEAR, CutReport, IoCounts, cut_report, io_counts
from harness.datapath.mounts import mount_table
from harness.errors import InfraError, StorageUnavailable
from harness.wait import wait_for

log = logging.getLogger(__name__)

MODULE = "harness.datapath.fault_fuse"
FSTYPE = "fuse.harness-faults"
MOUNT_TIMEOUT_S = 30.0  # a local FUSE mount comes up in well under a second; a minute would hide a hang
# A cut restores the overwritten pages of a few files (Prometheus' WAL only appends); any command may wait behind
# one operation the I/O fault delays, which the scenario bounds to well under this.
COMMAND_TIMEOUT_S = 60.0
UNMOUNT_TIMEOUT_S = 60.0
WAL_DIR = "wal"  # Prometheus' write-ahead log, relative to the data directory


def mounted(directory: Path) -> bool:
    real = Path(os.path.realpath(directory))
    return any(e.mount_point == real and e.fstype == FSTYPE for e in mount_table())


def io_summary(counts: dict[str, IoCounts], *, failing: bool) -> str:
    """E.g. "the layer failed 812 of 812 matching operations (write 800 of 800, fsync 12 of 12)"."""
    hit = "failed" if failing else "delayed"
    matched = sum(c.matched for c in counts.values())
    if matched == 0:
        return "the layer saw no matching operation while it held"
    done = sum(getattr(c, hit) for c in counts.values())
    per = ", ".join(f"{m} {getattr(c, hit):,} of {c.matched:,}" for m, c in counts.items())
    return f"the layer {hit} {done:,} of {matched:,} matching operations ({per})"


def cut_detail(cut: CutReport, *, where: str, killed: str, injected: float, layer_since: str, after: str) -> str:
    """A power cut in one sentence, the same on every runtime: what was killed and dropped, and the last fsync
    under the WAL before it (``layer_since``: since when the layer has watched, for when it saw none)."""
    last = cut.last_fsync_under(WAL_DIR)
    since = (
        f"the last fsync under {WAL_DIR}/ was {injected - last:.2f} s before the cut ({utc_time(last)})"
        if last is not None
        else f"nothing under {WAL_DIR}/ was fsynced since {layer_since}"
    )
    return (
        f"power cut under {where}: {killed}; {cut.dropped_bytes:,} unsynced bytes dropped, {len(cut.reverted)} "
        f"file(s) put back to their last fsync, {len(cut.removed)} never synced new file(s) gone; {since}; {after}"
    )


def utc_time(unix_s: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(unix_s)) + f".{int(unix_s * 1000) % 1000:03d} UTC"


def io_set_command(fault: IoFault) -> str:
    """The layer's command that sets ``fault`` (``io-set {JSON}``), its errno by number."""
    return fault_protocol.io_set_command(
        methods=fault.methods,
        percent=fault.percent,
        errno=None if fault.errno_name is None else getattr(errno, fault.errno_name),
        delay_s=fault.delay_s,
        path=fault.path,
    )


class FaultLayer:
    """The layer over one data directory, served by a process of ours."""

    def __init__(self, directory: Path, *, logs_dir: Path, state_dir: Path) -> None:
        self.directory = directory
        self.log_path = logs_dir / f"fault-layer-{directory.name}.log"
        self.report_path = state_dir / f"fault-layer-{directory.name}.json"
        self.io_fault: IoFault | None = None  # the I/O fault set, until it is cleared
        self.daemon: proc.Daemon | None = None
        self.mounted_at_unix_s = 0.0

    def mount(self) -> None:
        if not Path("/dev/fuse").exists():
            raise StorageUnavailable("faults below Prometheus need FUSE for their layer, and /dev/fuse is missing")
        argv = [sys.executable, "-m", MODULE, str(self.directory), "--report", str(self.report_path)]
        self.mounted_at_unix_s = time.time()
        self.daemon = daemon = proc.start_daemon("fault layer", argv, log_path=self.log_path)

        def up() -> bool:
            if not daemon.alive():
                raise InfraError(f"the fault layer over {self.directory} exited: {daemon.log_text()[-800:]}")
            return mounted(self.directory)

        try:
            wait_for(up, what=f"the fault layer's FUSE mount over {self.directory}", timeout_s=MOUNT_TIMEOUT_S)
        except BaseException:
            self.unmount()
            raise
        log.info("fault layer over %s (pid %d)", self.directory, daemon.pid)

    def _command(self, command: bytes, what: str) -> dict[str, Any]:
        """Send one command through the control file; its answer (the layer writes it before the write returns)."""
        self.report_path.unlink(missing_ok=True)
        failure: list[OSError] = []

        def ask() -> None:
            try:
                fault_protocol.send(self.directory, command)
            except OSError as e:
                failure.append(e)

        # A thread, so that a layer that hangs cannot hang the run: the write returns when the command is done.
        worker = threading.Thread(target=ask, name=f"fault-layer {what}", daemon=True)
        worker.start()
        worker.join(COMMAND_TIMEOUT_S)
        if worker.is_alive():
            raise InfraError(f"the fault layer over {self.directory} did not {what} within {COMMAND_TIMEOUT_S:g} s")
        if failure:
            why = f"{failure[0]} (see {self.log_path})" if failure[0].errno == errno.EINVAL else str(failure[0])
            raise InfraError(f"the fault layer over {self.directory} refused to {what}: {why}")
        answer: dict[str, Any] = json.loads(self.report_path.read_text())
        return answer

    def cut(self) -> CutReport:
        """Drop everything not fsynced, in the layer's own process; call it with no writer left."""
        return cut_report(self._command(CUT.encode(), "cut the power"))

    def io_set(self, fault: IoFault) -> float:
        """Set the I/O fault (replacing any); when it took hold."""
        answer = self._command(io_set_command(fault).encode(), "set the I/O fault")
        self.io_fault = fault
        return float(answer["set_at_unix_s"])

    def io_clear(self) -> dict[str, IoCounts]:
        """Lift the I/O fault; what it did, by method (empty when none was set)."""
        answer = self._command(IO_CLEAR.encode(), "lift the I/O fault")
        self.io_fault = None
        return io_counts(answer)

    def unmount(self) -> None:
        """Unmount (nothing may have files open there) and stop the process. Idempotent; what it writes stays: every
        write already went through to the directory underneath, as with a clean unmount."""
        problem = None
        if mounted(self.directory):
            try:
                # fusermount3 is how a user unmounts his own FUSE mount; root uses umount like everywhere else.
                argv = ["umount"] if os.geteuid() == 0 else ["fusermount3", "-u"]
                proc.run([*argv, str(self.directory)], timeout_s=UNMOUNT_TIMEOUT_S)
            except InfraError as e:
                problem = e
        if self.daemon is not None:
            self.daemon.stop(timeout_s=15)
            self.daemon = None
        if problem is not None:
            raise InfraError(f"could not unmount the fault layer over {self.directory}: {problem}")
