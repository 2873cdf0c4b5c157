"""The local runtime's side of the power-loss layer (``harness.powerloss_fuse``, a FUSE filesystem run as its own
process): mount it over Prometheus' data directory, cut the power, unmount it. Every wait is bounded.

The layer is mounted only when a scenario has a ``power_loss`` fault: Prometheus writes through a Python FUSE
filesystem then, which is slower than the disk underneath. fio does not measure through it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness import proc
from harness.errors import InfraError, StorageUnavailable
from harness.mounts import mount_table
from harness.wait import wait_for

log = logging.getLogger(__name__)

MODULE = "harness.powerloss_fuse"
CONTROL_NAME = ".harness-power-cut"  # harness.powerloss_fuse.CONTROL_NAME (not imported: it runs apart)
FSTYPE = "fuse.power-loss"
MOUNT_TIMEOUT_S = 30.0  # a local FUSE mount comes up in well under a second; a minute would hide a hang
CUT_TIMEOUT_S = 60.0  # restoring the overwritten pages of a few files; Prometheus' WAL only appends
UNMOUNT_TIMEOUT_S = 60.0
WAL_DIR = "wal"  # Prometheus' write-ahead log, relative to the data directory


@dataclass(frozen=True)
class CutReport:
    """What one cut took away."""

    cut_at_unix_s: float
    reverted: list[str]  # files put back to their last fsynced size and content
    removed: list[str]  # files created and never made durable
    dropped_bytes: int
    last_fsync_unix_s: dict[str, float]  # every path the layer saw fsynced, and when last

    def last_fsync_under(self, directory: str) -> float | None:
        times = [t for p, t in self.last_fsync_unix_s.items() if p == directory or p.startswith(directory + "/")]
        return max(times) if times else None


def mounted(directory: Path) -> bool:
    real = Path(os.path.realpath(directory))
    return any(e.mount_point == real and e.fstype == FSTYPE for e in mount_table())


class PowerLossLayer:
    """The layer over one data directory, served by a process of ours."""

    def __init__(self, directory: Path, *, logs_dir: Path, state_dir: Path) -> None:
        self.directory = directory
        self.log_path = logs_dir / f"power-loss-layer-{directory.name}.log"
        self.report_path = state_dir / f"power-loss-cut-{directory.name}.json"
        self.daemon: proc.Daemon | None = None
        self.mounted_at_unix_s = 0.0

    def mount(self) -> None:
        if not Path("/dev/fuse").exists():
            raise StorageUnavailable("the power_loss fault needs FUSE for its layer, and /dev/fuse is missing")
        argv = [sys.executable, "-m", MODULE, str(self.directory), "--report", str(self.report_path)]
        self.mounted_at_unix_s = time.time()
        self.daemon = daemon = proc.start_daemon("power-loss layer", argv, log_path=self.log_path)

        def up() -> bool:
            if not daemon.alive():
                raise InfraError(f"the power-loss layer over {self.directory} exited: {daemon.log_text()[-800:]}")
            return mounted(self.directory)

        try:
            wait_for(up, what=f"the power-loss layer's FUSE mount over {self.directory}", timeout_s=MOUNT_TIMEOUT_S)
        except BaseException:
            self.unmount()
            raise
        log.info("power-loss layer over %s (pid %d)", self.directory, daemon.pid)

    def cut(self) -> CutReport:
        """Drop everything not fsynced, in the layer's own process; call it with no writer left."""
        self.report_path.unlink(missing_ok=True)
        failure: list[BaseException] = []

        def ask() -> None:
            try:
                fd = os.open(self.directory / CONTROL_NAME, os.O_WRONLY)
                try:
                    os.write(fd, b"cut")
                finally:
                    os.close(fd)
            except OSError as e:
                failure.append(e)

        # A thread, so that a layer that hangs cannot hang the run: the write returns when the cut is done.
        worker = threading.Thread(target=ask, name="power-cut", daemon=True)
        worker.start()
        worker.join(CUT_TIMEOUT_S)
        if worker.is_alive():
            raise InfraError(f"the power-loss layer over {self.directory} did not cut within {CUT_TIMEOUT_S:g} s")
        if failure:
            raise InfraError(f"the power-loss layer over {self.directory} refused the cut: {failure[0]}")
        raw = json.loads(self.report_path.read_text())
        return CutReport(
            cut_at_unix_s=float(raw["cut_at_unix_s"]),
            reverted=list(raw["reverted"]),
            removed=list(raw["removed"]),
            dropped_bytes=int(raw["dropped_bytes"]),
            last_fsync_unix_s={str(k): float(v) for k, v in raw["last_fsync_unix_s"].items()},
        )

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
            raise InfraError(f"could not unmount the power-loss layer over {self.directory}: {problem}")
