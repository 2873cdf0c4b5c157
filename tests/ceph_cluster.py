"""One embedded Ceph for a test module (``tests/test_ceph.py``, ``tests/test_ceph_doctor.py``): a CephFS volume and an
RBD pool, as a user would name their own cluster, started once per module (about 20 s) and stopped after it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.datapath.ceph_cluster import CephCluster, start_ceph


@contextmanager
def module_ceph(prefix: str, parent: str) -> Iterator[CephCluster]:
    """A cluster in a fresh directory ``parent/prefix*`` (not on tmpfs: BlueStore needs O_DIRECT), removed after."""
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    started = start_ceph(directory / "ceph", osd_size_bytes=4 * 1024**3, fs_name="cephfs", pool="rbd")
    try:
        yield started
    finally:
        started.stop()
        shutil.rmtree(directory, ignore_errors=True)
