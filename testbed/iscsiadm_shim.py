#!/usr/bin/python3
"""iscsiadm(8) for the test bed's kubelets, on a machine whose kernel has no iSCSI initiator.

It answers the calls the kubelet's in-tree iSCSI plugin (Kubernetes v1.32 ``pkg/volume/iscsi/iscsi_util.go``) makes,
with open-iscsi's outputs and exit codes, and does a login the only way this machine can: every disk LUN of the
target is attached by ``qemu-storage-daemon`` (libiscsi block driver, FUSE export) and a loop device. Then it makes
what a kernel initiator and udev would: ``/sys/class/iscsi_host/hostN/device/sessionS/...`` (target name, connection
address and port), ``/sys/class/scsi_host/hostN/scan`` and ``/dev/disk/by-path/ip-<portal>-iscsi-<iqn>-lun-<n>`` ->
``/dev/loopM``. Those paths exist only in the kubelet's own mount namespace (``iscsi_launch.py``), where they are
bound from ``$HARNESS_ISCSI_DIR``. ``--logout`` undoes the login; the test bed's stop undoes whatever is left.

A LUN appears at login rather than at the plugin's ``scan`` write (nothing watches a tmpfs file); the plugin
writes ``scan`` and then waits for the by-path link, so it sees what it would on a real node. A LUN the target does
not have never appears, and the plugin says ``Timed out waiting for device at path ...`` as it would.

Stdlib only (runs under Debian's python3). Test-bed machinery, not a product feature: a real node has open-iscsi.
"""

# ruff: noqa: PTH100, PTH103, PTH105, PTH108, PTH110, PTH112, PTH118, PTH119, PTH120, PTH123, PTH208, PTH211
# (os.path on purpose: a stand-alone script for Debian's python3, whose paths are strings from the command line and
# the session records)
import json
import os
import re
import signal
import subprocess
import sys
import time

STATE = os.environ.get("HARNESS_ISCSI_DIR", "")
ATTACH_TIMEOUT_S = 30.0
# Where the node's storage clients log: the kernel log on a real node (what open-iscsi's kernel side says about
# its connections); here the file the launcher binds as the kubelet's /var/log/kern.log (the kubelet serves it at
# /logs/kern.log, where the harness reads it). Unset outside a test-bed kubelet: then the LUN's own file.
NODE_LOG = os.environ.get("HARNESS_NODE_KERN_LOG", "")
HOST_BASE = 1000  # SCSI host numbers far above any real adapter's
# open-iscsi fails a session's I/O up to the filesystem once its target has been unreachable replacement_timeout
# (120 s by default); libiscsi retries for ever (qemu's iscsi `timeout` does not apply while it reconnects), so a
# node whose target is gone for good (the embedded tgt of a SIGKILLed run) kept its pod Terminating and the kubelet's
# unmount hanging. A watcher per LUN does what open-iscsi does: once the portal has refused connections this long
# it stops the LUN's qemu-storage-daemon, whose FUSE export then fails every request (EIO through the loop device).
# Shorter than open-iscsi's, so such a node gives up within `harness cleanup`'s 120 s wait; longer than the shipped
# server restarts' 15 s outage.
REPLACEMENT_TIMEOUT_S = 25.0
# open-iscsi's exit codes (include/iscsi_err.h)
ERR_SESS_NOT_FOUND = 2
ERR_TRANS = 4
ERR_LOGIN = 8
ERR_INVAL = 7
ERR_SESS_EXISTS = 15
ERR_NO_OBJS_FOUND = 21

IFACE_DEFAULT = """# BEGIN RECORD 2.1.8
iface.iscsi_ifacename = {name}
iface.net_ifacename = <empty>
iface.ipaddress = <empty>
iface.hwaddress = <empty>
iface.transport_name = tcp
iface.initiatorname = <empty>
# END RECORD
"""


def fail(code: int, *lines: str) -> None:
    for line in lines:
        print(f"iscsiadm: {line}", file=sys.stderr)
    sys.exit(code)


def opts(argv: list[str]) -> dict[str, str]:
    """-m MODE -p PORTAL -T IQN -I IFACE -o OP -n NAME -v VALUE -t TYPE, and the flags --login/--logout/--discover."""
    found: dict[str, str] = {}
    short = {"-m": "mode", "-p": "portal", "-T": "iqn", "-I": "iface", "-o": "op", "-n": "name", "-v": "value",
             "-t": "type", "--mode": "mode", "--portal": "portal", "--targetname": "iqn", "--interface": "iface",
             "--op": "op", "--name": "name", "--value": "value", "--type": "type"}  # fmt: skip
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in short and i + 1 < len(argv):
            found[short[a]] = argv[i + 1]
            i += 2
        elif a in ("--login", "-l", "--logout", "-u", "--discover"):
            found["action"] = {"-l": "--login", "-u": "--logout"}.get(a, a)
            i += 1
        else:
            fail(ERR_INVAL, f"the test bed's shim does not handle {a!r} (in {' '.join(argv)})")
    return found


def norm_portal(portal: str) -> tuple[str, str, str]:
    """(address, port, portal as host:port) from ``host``, ``host:port`` or ``[v6]:port``."""
    if portal.startswith("["):
        host, _, rest = portal[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "3260"
        return host, port, f"[{host}]:{port}"
    host, sep, port = portal.rpartition(":")
    if not sep:
        host, port = portal, "3260"
    return host, port, f"{host}:{port}"


def path(*parts: str) -> str:
    return os.path.join(STATE, *parts)


def record_file(portal: str, iqn: str) -> str:
    return path("nodes", f"{norm_portal(portal)[2]},{iqn}".replace("/", "_"))


def sessions() -> list[dict]:
    found = []
    d = path("sessions")
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if name.startswith("."):
            continue
        with open(os.path.join(d, name)) as f:
            text = f.read()
        if text:  # empty: a login has claimed the id and not yet written its record
            found.append(json.loads(text))
    return found


def claim_sid() -> int:
    """A session id no other login holds: the kubelet locks per IQN only, so logins to two targets may run at once;
    the record's file, created exclusively, is the claim."""
    os.makedirs(path("sessions"), exist_ok=True)
    for sid in range(1, 10000):
        try:
            os.close(os.open(path("sessions", str(sid)), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        return sid
    fail(ERR_LOGIN, "no free session id (9999 sessions recorded)")
    return 0


def save_session(s: dict) -> None:
    os.makedirs(path("sessions"), exist_ok=True)
    tmp = path("sessions", f".{s['sid']}.tmp")
    with open(tmp, "w") as f:
        json.dump(s, f)
    os.replace(tmp, path("sessions", str(s["sid"])))


def iscsi_url(portal: str, iqn: str = "") -> str:
    return f"iscsi://{norm_portal(portal)[2]}/{iqn}" if iqn else f"iscsi://{norm_portal(portal)[2]}"


def sendtargets(portal: str) -> list[tuple[str, list[int]]]:
    """Targets at the portal with their disk LUNs, from libiscsi's ``iscsi-ls -s`` (SendTargets + REPORT LUNS)."""
    try:
        out = subprocess.run(["iscsi-ls", "-s", iscsi_url(portal)], check=False, capture_output=True, text=True,
                             timeout=30)  # fmt: skip
    except subprocess.TimeoutExpired:
        fail(ERR_TRANS, f"cannot make connection to {norm_portal(portal)[0]}: Connection timed out",
             "Could not perform SendTargets discovery: encountered connection failure")  # fmt: skip
    if out.returncode != 0:
        said = (out.stderr or out.stdout).strip().splitlines()
        fail(ERR_TRANS, f"cannot make connection to {norm_portal(portal)[0]}: {said[-1] if said else 'failed'}",
             "Could not perform SendTargets discovery: encountered connection failure")  # fmt: skip
    targets: list[tuple[str, list[int]]] = []
    for line in out.stdout.splitlines():
        m = re.match(r"Target:(\S+)", line.strip())
        if m:
            targets.append((m.group(1), []))
            continue
        m = re.match(r"Lun:(\d+)\s+Type:DIRECT_ACCESS", line.strip())
        if m and targets:
            targets[-1][1].append(int(m.group(1)))
    return targets


def export_prefix(portal: str) -> str:
    return norm_portal(portal)[2].replace("[", "").replace("]", "").replace(":", "_") + "-"


def mounted(target: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def attach_lun(s: dict, lun: int) -> dict:
    portal = norm_portal(s["portal"])[2]
    luns_dir = path("luns")
    os.makedirs(luns_dir, exist_ok=True)
    # Named after the portal, so a test can tell its own LUNs from another test's on the same node.
    export = os.path.join(luns_dir, f"{export_prefix(portal)}session{s['sid']}-lun{lun}")
    open(export, "a").close()
    log_path = NODE_LOG or export + ".log"
    pidfile = export + ".pid"
    blockdev = f"driver=iscsi,node-name=lun,transport=tcp,portal={portal},target={s['iqn']},lun={lun}"
    argv = ["qemu-storage-daemon", "--blockdev", blockdev, "--pidfile", pidfile,
            "--export", f"type=fuse,id=export,node-name=lun,mountpoint={export},writable=on"]  # fmt: skip
    with open(log_path, "ab") as log:
        log.write(f"{time.strftime('%b %d %H:%M:%S')} iscsiadm: attaching {s['iqn']} lun {lun} at {portal}\n".encode())
        log.flush()
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    entry = {"lun": lun, "pid": child.pid, "export": export, "loop": ""}
    subprocess.Popen([sys.executable, os.path.abspath(__file__), "--harness-watch", str(child.pid), portal, log_path],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + ATTACH_TIMEOUT_S
    while not mounted(export):
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            with open(log_path, errors="replace") as f:
                said = [line.strip() for line in f if line.strip()][-1:]
            raise RuntimeError(f"lun {lun}: {said[0] if said else 'qemu-storage-daemon did not attach it'}")
        time.sleep(0.05)
    loop = subprocess.run(
        ["losetup", "--find", "--show", export], check=False, capture_output=True, text=True, timeout=30
    )
    if loop.returncode != 0:
        detach_lun(entry)
        raise RuntimeError(f"lun {lun}: losetup: {loop.stderr.strip()}")
    entry["loop"] = loop.stdout.strip()
    return entry


def detach_lun(entry: dict) -> None:
    if entry.get("loop"):
        subprocess.run(["losetup", "-d", entry["loop"]], check=False, capture_output=True, timeout=30)
    pid = entry.get("pid")
    if pid and _is_qsd(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _is_qsd(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_qsd(pid):
            os.kill(pid, signal.SIGKILL)
    if mounted(entry["export"]):
        subprocess.run(["umount", "-l", entry["export"]], check=False, capture_output=True, timeout=30)
    for p in (entry["export"], entry["export"] + ".pid"):
        if os.path.exists(p):
            os.unlink(p)


def _is_qsd(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0")[0]
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return argv0.endswith(b"qemu-storage-daemon") and state not in ("Z", "X")


def by_path(s: dict, lun: int) -> str:
    host, port, _ = norm_portal(s["portal"])
    return path("dev-disk", "by-path", f"ip-{host}:{port}-iscsi-{s['iqn']}-lun-{lun}")


def make_sysfs(s: dict) -> None:
    """What iscsi_tcp and the SCSI midlayer would show for the session (see the module docstring)."""
    host, port, _ = norm_portal(s["portal"])
    hostname, sid = f"host{s['host']}", f"session{s['sid']}"
    conn = f"connection{s['sid']}:0"
    dev = path("sys", "iscsi_host", hostname, "device")
    files = {
        os.path.join(dev, sid, "iscsi_session", sid, "targetname"): s["iqn"],
        os.path.join(dev, sid, conn, "iscsi_connection", conn, "address"): host,
        os.path.join(dev, sid, conn, "iscsi_connection", conn, "port"): port,
        os.path.join(dev, sid, conn, "iscsi_connection", conn, "persistent_address"): host,
        os.path.join(dev, sid, conn, "iscsi_connection", conn, "persistent_port"): port,
        path("sys", "scsi_host", hostname, "scan"): "",
    }
    for entry in s["luns"]:
        lun_dir = os.path.join(dev, sid, f"target{s['host']}:0:0", f"{s['host']}:0:0:{entry['lun']}", "block")
        os.makedirs(os.path.join(lun_dir, os.path.basename(entry["loop"])), exist_ok=True)
    for file, text in files.items():
        os.makedirs(os.path.dirname(file), exist_ok=True)
        with open(file, "w") as f:
            f.write(text + "\n" if text else "")


def remove_sysfs(s: dict) -> None:
    import shutil

    for d in (path("sys", "iscsi_host", f"host{s['host']}"), path("sys", "scsi_host", f"host{s['host']}")):
        shutil.rmtree(d, ignore_errors=True)


def login(o: dict[str, str]) -> None:
    iface = o.get("iface", "default")
    if not os.path.exists(record_file(o["portal"], o["iqn"])):
        fail(ERR_NO_OBJS_FOUND, "No records found")
    host, port, portal = norm_portal(o["portal"])
    where = f"[iface: {iface}, target: {o['iqn']}, portal: {host},{port}]"
    for s in sessions():
        if s["iqn"] == o["iqn"] and s["portal"] == portal:
            fail(ERR_SESS_EXISTS, f"{iface}: 1 session requested, but 1 already present.",
                 "Could not log into all portals")  # fmt: skip
    print(f"Logging in to {where} (multiple)")
    luns = dict(sendtargets(portal)).get(o["iqn"])
    if luns is None:
        fail(ERR_LOGIN, f"Could not login to {where}.", "initiator reported error (19 - encountered non-retryable "
             "iSCSI login failure)", "Could not log into all portals")  # fmt: skip
    sid = claim_sid()
    s = {"sid": sid, "host": HOST_BASE + sid, "portal": portal, "iqn": o["iqn"], "iface": iface, "luns": []}
    save_session(s)  # before the first daemon starts: the test bed's stop finds what a failed login left
    try:
        for lun in luns:
            s["luns"].append(attach_lun(s, lun))
            save_session(s)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        undo(s)
        fail(ERR_LOGIN, f"Could not login to {where}.", f"initiator reported error (8 - connection timed out): {e}",
             "Could not log into all portals")  # fmt: skip
    make_sysfs(s)
    for entry in s["luns"]:
        link = by_path(s, entry["lun"])
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(entry["loop"], link)
    print(f"Login to {where} successful.")


def undo(s: dict) -> None:
    for entry in s["luns"]:
        link = by_path(s, entry["lun"])
        if os.path.lexists(link):
            os.unlink(link)
        detach_lun(entry)
    remove_sysfs(s)
    f = path("sessions", str(s["sid"]))
    if os.path.exists(f):
        os.unlink(f)


def logout(o: dict[str, str]) -> None:
    portal = norm_portal(o["portal"])[2] if "portal" in o else None
    mine = [s for s in sessions() if (portal is None or s["portal"] == portal) and s["iqn"] == o.get("iqn", s["iqn"])]
    if not mine:
        fail(ERR_NO_OBJS_FOUND, "No matching sessions found")
    for s in mine:
        host, port, _ = norm_portal(s["portal"])
        where = f"[sid: {s['sid']}, target: {s['iqn']}, portal: {host},{port}]"
        print(f"Logging out of session {where}")
        undo(s)
        print(f"Logout of {where} successful.")


def iface_mode(o: dict[str, str]) -> None:
    """``-m iface``: only ``default`` (tcp) exists, plus the ifaces the plugin clones for a PV's initiatorName."""
    name, op = o.get("iface", "default"), o.get("op")
    record = path("ifaces", name)
    if op == "show":
        if name != "default" and not os.path.exists(record):
            fail(ERR_NO_OBJS_FOUND, f"Could not read iface {name} (21)")
        print(IFACE_DEFAULT.format(name=name), end="")
    elif op == "new":
        os.makedirs(path("ifaces"), exist_ok=True)
        open(record, "a").close()
        print(f"New interface {name} added")
    elif op == "delete" and os.path.exists(record):
        os.unlink(record)


def discovery_mode(o: dict[str, str]) -> None:
    """``-m discoverydb ... --discover``: a real SendTargets; the node records it makes are what ``--login`` needs.
    ``-o new/update/delete`` of the discovery record itself keep nothing."""
    if o.get("action") != "--discover" and o.get("mode") != "discovery":
        return
    host, port, _ = norm_portal(o["portal"])
    for iqn, _luns in sendtargets(o["portal"]):
        os.makedirs(path("nodes"), exist_ok=True)
        open(record_file(o["portal"], iqn), "a").close()
        print(f"{host}:{port},1 {iqn}")


def node_mode(o: dict[str, str], argv: list[str]) -> None:
    action, op = o.get("action"), o.get("op")
    if action == "--login":
        login(o)
    elif action == "--logout":
        logout(o)
    elif op in ("delete", "update"):
        rec = record_file(o["portal"], o["iqn"])
        if not os.path.exists(rec):
            fail(ERR_NO_OBJS_FOUND, "No records found")
        if op == "delete":
            os.unlink(rec)
    else:
        fail(ERR_INVAL, f"the test bed's shim does not handle {' '.join(argv)}")


def session_mode() -> None:
    found = sessions()
    if not found:
        fail(ERR_NO_OBJS_FOUND, "No active sessions.")
    for s in found:
        print(f"tcp: [{s['sid']}] {s['portal']},1 {s['iqn']} (non-flash)")


def watch(pid: int, portal: str, log_path: str) -> None:
    """``--harness-watch PID PORTAL LOG``: open-iscsi's replacement_timeout for one LUN's qemu-storage-daemon (see
    ``REPLACEMENT_TIMEOUT_S``); ends with the daemon."""
    import socket

    host, _, port = portal.rpartition(":")
    gone_since = None
    while _is_qsd(pid):
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
            gone_since = None
        except OSError:
            gone_since = gone_since or time.monotonic()
            if time.monotonic() - gone_since >= REPLACEMENT_TIMEOUT_S:
                with open(log_path, "ab") as log:
                    log.write(f"{time.strftime('%b %d %H:%M:%S')} iscsiadm: {portal} unreachable for "
                              f"{REPLACEMENT_TIMEOUT_S:g} s: failing its I/O (replacement_timeout), "
                              f"qemu-storage-daemon pid {pid} stopped\n".encode())  # fmt: skip
                os.kill(pid, signal.SIGKILL)
                return
        time.sleep(1)


def main() -> None:
    if sys.argv[1:2] == ["--harness-watch"]:
        watch(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    if not STATE:
        fail(ERR_INVAL, "HARNESS_ISCSI_DIR is not set: this shim serves the test bed's kubelets only")
    argv = sys.argv[1:]
    o = opts(argv)
    mode = o.get("mode")
    if mode == "iface":
        iface_mode(o)
    elif mode in ("discoverydb", "discovery"):
        discovery_mode(o)
    elif mode == "node":
        node_mode(o, argv)
    elif mode == "session":
        session_mode()
    else:
        fail(ERR_INVAL, f"the test bed's shim does not handle {' '.join(argv)}")


if __name__ == "__main__":
    main()
