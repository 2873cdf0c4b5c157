"""The test bed's ``iscsiadm`` (testbed/iscsiadm_shim.py) against a real tgt, without the cluster: the calls the
kubelet's iSCSI plugin makes, in its order, get open-iscsi's outputs and exit codes, a login attaches the LUN (a loop
device on qemu-storage-daemon's FUSE export, the by-path link, the sysfs entries the plugin reads) and the logout
removes all of it; a wrong IQN, a portal nobody serves and a LUN the target lacks fail as on a real node."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.datapath.servers import IscsiTarget, start_tgt
from testbed import iscsi_helper

IQN = "iqn.2020-02.com:wsg"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="a login attaches a loop device: needs root"),
    pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="qemu-storage-daemon's export needs FUSE"),
]


@pytest.fixture
def target(public_tmp: Path) -> Iterator[IscsiTarget]:
    server = start_tgt(public_tmp / "tgt", iqn=IQN)
    lun = public_tmp / "lun.img"
    with lun.open("wb") as f:
        f.truncate(64 * 1024**2)
    server.add_lun(1, lun)
    try:
        yield server
    finally:
        server.stop()


def iscsiadm(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HARNESS_ISCSI_DIR": str(state)}
    return subprocess.run(
        [iscsi_helper.SYSTEM_PYTHON, str(iscsi_helper.SHIM), *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def test_the_plugins_calls_log_in_attach_and_log_out(public_tmp: Path, target: IscsiTarget) -> None:
    state, tp = public_tmp / "iscsi", target.portal
    host, port = tp.rsplit(":", 1)
    iface = iscsiadm(state, "-m", "iface", "-I", "default", "-o", "show")
    assert iface.returncode == 0 and re.search(r"iface.transport_name = tcp\n", iface.stdout)  # the plugin's regexp
    found = iscsiadm(state, "-m", "discoverydb", "-t", "sendtargets", "-p", tp, "-I", "default", "--discover")
    assert found.returncode == 0 and found.stdout == f"{host}:{port},1 {IQN}\n", found
    update = ("-o", "update", "-n", "node.session.scan", "-v", "manual")
    assert iscsiadm(state, "-m", "node", "-p", tp, "-T", IQN, "-I", "default", *update).returncode == 0
    login = iscsiadm(state, "-m", "node", "-p", tp, "-T", IQN, "-I", "default", "--login")
    assert login.returncode == 0, login.stderr
    assert f"Login to [iface: default, target: {IQN}, portal: {host},{port}] successful." in login.stdout
    again = iscsiadm(state, "-m", "node", "-p", tp, "-T", IQN, "-I", "default", "--login")
    assert again.returncode == 15 and "already present" in again.stderr  # ISCSI_ERR_SESS_EXISTS

    link = state / "dev-disk" / "by-path" / f"ip-{tp}-iscsi-{IQN}-lun-1"
    device = link.readlink()
    assert str(device).startswith("/dev/loop")
    [session] = iscsi_helper.sessions_in(state)
    hostdir = state / "sys" / "iscsi_host" / f"host{session['host']}" / "device" / f"session{session['sid']}"
    conn = f"connection{session['sid']}:0"
    assert (hostdir / "iscsi_session" / f"session{session['sid']}" / "targetname").read_text().strip() == IQN
    assert (hostdir / conn / "iscsi_connection" / conn / "address").read_text().strip() == host
    assert (hostdir / conn / "iscsi_connection" / conn / "port").read_text().strip() == port
    assert (state / "sys" / "scsi_host" / f"host{session['host']}" / "scan").exists()
    with device.open("rb") as dev:  # the LUN itself, through the loop device
        assert len(dev.read(4096)) == 4096
    listed = iscsiadm(state, "-m", "session")
    assert listed.returncode == 0 and f"{tp},1 {IQN}" in listed.stdout

    logout = iscsiadm(state, "-m", "node", "-p", tp, "-T", IQN, "--logout", "-I", "default")
    assert logout.returncode == 0 and "successful" in logout.stdout, logout.stderr
    assert not link.exists() and not (state / "sys" / "iscsi_host" / f"host{session['host']}").exists()
    assert iscsi_helper.leftovers_in(state, tp) == []
    gone = iscsiadm(state, "-m", "node", "-p", tp, "-T", IQN, "--logout", "-I", "default")
    assert gone.returncode == 21 and "No matching sessions found" in gone.stderr  # the plugin ignores 21
    assert iscsiadm(state, "-m", "node", "-p", tp, "-T", IQN, "-o", "delete", "-I", "default").returncode == 0
    assert iscsiadm(state, "-m", "session").returncode == 21


def test_a_wrong_iqn_an_unserved_portal_and_a_missing_lun_fail_as_on_a_real_node(
    public_tmp: Path, target: IscsiTarget
) -> None:
    state, tp = public_tmp / "iscsi", target.portal
    iscsiadm(state, "-m", "discoverydb", "-t", "sendtargets", "-p", tp, "-I", "default", "--discover")
    wrong = iscsiadm(state, "-m", "node", "-p", tp, "-T", "iqn.2020-02.com:nobody", "-I", "default", "--login")
    assert wrong.returncode == 21 and wrong.stderr == "iscsiadm: No records found\n"

    closed = f"127.0.0.1:{target.port + 1 if target.port < 65535 else target.port - 1}"
    nobody = iscsiadm(state, "-m", "discoverydb", "-t", "sendtargets", "-p", closed, "-I", "default", "--discover")
    assert nobody.returncode == 4 and "Could not perform SendTargets discovery" in nobody.stderr

    # LUN 2 does not exist: the login succeeds (it is per target) and no by-path link for LUN 2 appears, so the
    # plugin's wait ends in its own "Timed out waiting for device at path".
    assert iscsiadm(state, "-m", "node", "-p", tp, "-T", IQN, "-I", "default", "--login").returncode == 0
    by_path = state / "dev-disk" / "by-path"
    assert sorted(p.name for p in by_path.iterdir()) == [f"ip-{tp}-iscsi-{IQN}-lun-1"]
    assert iscsiadm(state, "-m", "node", "-p", tp, "-T", IQN, "--logout").returncode == 0
    assert iscsi_helper.leftovers_in(state, tp) == []
