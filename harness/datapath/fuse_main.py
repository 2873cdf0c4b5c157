"""How the FUSE programs (``harness.datapath.nfs_fuse``, ``harness.datapath.fault_fuse``) end their ``main``: the log
format, and the
mount that serves one request at a time in the foreground until SIGTERM or an unmount ends it.

The standard library and ``mfusepy`` alone; imported by those two programs only, each run as its own process.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import mfusepy


def log_to_stderr(level: int = logging.INFO) -> None:
    """The programs' log lines, as their starter reads them back from the log file their stderr goes to."""
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def serve(operations: mfusepy.Operations, mountpoint: str, log: logging.Logger, **options: Any) -> int:
    """Mount ``operations`` at ``mountpoint`` (``options``: mfusepy's, e.g. ``fsname``) and serve it, one request at
    a time, until SIGTERM or an unmount ends the loop (logged on ``log``); 0."""
    try:
        mfusepy.FUSE(
            operations,
            mountpoint,
            foreground=True,
            nothreads=True,
            # As root the harness runs Prometheus as the scenario's uid, which must reach the mount too.
            allow_other=os.geteuid() == 0,
            **options,
        )
    except RuntimeError as e:
        # fuse_main's exit status: also non-zero when SIGTERM or an unmount ended the loop, which is how we stop.
        log.info("FUSE loop ended (status %s)", e)
    return 0
