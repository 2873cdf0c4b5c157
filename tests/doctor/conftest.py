"""Fixtures for the doctor tests: a real NFS-Ganesha export and a real tgt iSCSI target on 127.0.0.1.

Each daemon is started on a free port and stopped by PID in the fixture's finalizer. Both servers need root (they
bind privileged resources and serve files owned by other uids), so without root the tests that use them are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import proc
from harness.datapath.servers import IscsiTarget, NfsServer, start_ganesha, start_tgt
from harness.errors import MissingBinary


def _need(binary: str) -> None:
    try:
        proc.which(binary)
    except MissingBinary as e:
        pytest.skip(str(e))


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root (it serves files owned by other uids)")


@pytest.fixture
def nfs_server(tmp_path: Path) -> Iterator[NfsServer]:
    """NFS-Ganesha exporting a fresh directory (owned by 1000:1000, mode 0755) as /export."""
    _need("ganesha.nfsd")
    _need_root("NFS-Ganesha")
    export = tmp_path / "export"
    export.mkdir()
    os.chown(export, 1000, 1000)
    export.chmod(0o755)
    server = start_ganesha(tmp_path / "ganesha", export)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def iscsi_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IscsiTarget]:
    """tgtd with target iqn.2020-02.com:wsg and no LUNs yet; tests add file-backed LUNs."""
    _need("tgtd")
    _need("tgtadm")
    _need_root("tgtd")
    target = start_tgt(tmp_path_factory.mktemp("tgt"))
    try:
        yield target
    finally:
        target.stop()
