#!/usr/bin/python3
"""Run a test-bed kubelet in a mount namespace of its own where its iSCSI plugin finds an initiator's sysfs.

Started as ``unshare -m --propagation unchanged /usr/bin/python3 iscsi_launch.py ISCSI_DIR -- KUBELET ARGS``
(stdlib only: it runs under Debian's python3, before anything of the harness is importable). In the new namespace:

- ``/sys`` and ``/dev`` become slaves, so nothing mounted below them here reaches the host;
- a tmpfs goes over ``/sys/class`` with a bind mount of each real class directory (a bind, not a symlink: the
  entries inside are relative links like ``../../devices/...`` that must resolve from ``/sys/class/<name>``), and
  the node's own ``ISCSI_DIR/sys/iscsi_host`` and ``ISCSI_DIR/sys/scsi_host`` bound beside them: the trees that
  ``GetISCSIPortalHostMapForTarget`` walks and ``scanOneLun`` writes, made by the ``iscsiadm`` shim at login;
- ``ISCSI_DIR/dev-disk`` is bound at ``/dev/disk``, where the shim makes the ``by-path`` links the plugin waits for;
- the node's ``var-log`` (beside ``ISCSI_DIR``) is bound at ``/var/log``: its ``kern.log`` is where the node's storage
  clients (the shim's qemu-storage-daemons, the NFS mount wrapper's FUSE clients) log, as a real node's kernel
  clients do, and the kubelet serves it (``/logs/kern.log`` through the API server's node proxy); the kubelet's pod
  logs go to its own ``podLogsDir`` elsewhere;

then it execs the kubelet (same pid). The node's directory was made a shared mount on the host before
(``iscsi_helper.prepare``), so
what the kubelet mounts under it (volumes, the shim's FUSE exports) is seen by the host and by containerd.
Test-bed machinery only: a real node has open-iscsi and a kernel initiator.
"""

# ruff: noqa: PTH102, PTH103, PTH118, PTH208
# (os.path on purpose: this runs under Debian's python3 before the harness is importable; kept in the style of
# the shell steps it replaces)
import os
import subprocess
import sys


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, timeout=30)


def main() -> None:
    iscsi_dir, sep, *kubelet = sys.argv[1:]
    if sep != "--" or not kubelet:
        sys.exit("usage: iscsi_launch.py ISCSI_DIR -- KUBELET [ARGS]")
    mount("--make-rslave", "/sys")
    mount("--make-rslave", "/dev")
    real = os.open("/sys/class", os.O_PATH | os.O_DIRECTORY)
    entries = sorted(os.listdir(f"/proc/self/fd/{real}"))
    mount("-t", "tmpfs", "-o", "mode=0755", "harness-sysclass", "/sys/class")
    prepared = {"iscsi_host", "scsi_host"}
    for name in entries:
        if name in prepared:
            continue
        os.mkdir(f"/sys/class/{name}")
        mount("--bind", f"/proc/{os.getpid()}/fd/{real}/{name}", f"/sys/class/{name}")
    os.close(real)
    for name in sorted(prepared):
        source = os.path.join(iscsi_dir, "sys", name)
        os.makedirs(source, exist_ok=True)
        os.mkdir(f"/sys/class/{name}")
        mount("--bind", source, f"/sys/class/{name}")
    disk = os.path.join(iscsi_dir, "dev-disk")
    os.makedirs(os.path.join(disk, "by-path"), exist_ok=True)
    mount("--bind", disk, "/dev/disk")
    var_log = os.path.join(iscsi_dir, os.pardir, "var-log")  # the node's directory holds both
    os.makedirs(var_log, exist_ok=True)
    mount("--bind", var_log, "/var/log")
    os.environ["HARNESS_NODE_KERN_LOG"] = "/var/log/kern.log"  # for the kubelet's helpers (iscsiadm, mount)
    os.execv(kubelet[0], kubelet)  # noqa: S606 - the kubelet replaces this process: its pid is the daemon's


if __name__ == "__main__":
    main()
