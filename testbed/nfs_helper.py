"""NFS volumes for the local cluster's kubelets, on a machine with no kernel NFS client.

The kubelet's in-tree ``nfs`` plugin mounts a PV with ``mount -t nfs -o <mountOptions> server:path target``, found on
its PATH. Each kubelet here gets a PATH whose first directory holds ``mount``, a small wrapper: NFS mounts go to the
harness's user-space client over FUSE (``python -m harness.datapath.nfs_fuse``, detached, so the mount outlives the
call as a
kernel mount would; the kubelet's ``umount`` ends it), everything else goes to ``/bin/mount`` unchanged. Only these
kubelets see it: nothing on the host's own PATH changes. The interpreter that can run ``harness.datapath.nfs_fuse`` (one
with the harness and mfusepy installed) is named in ``python`` beside the wrapper, written by whoever starts the
cluster with such an interpreter (the test session); without it NFS mounts fail, saying so, as ``FailedMount``.

Tests only: the product never installs anything into a cluster's nodes.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from testbed import config

WRAPPER = r'''#!/usr/bin/python3
"""mount(8) for the local cluster's kubelets: NFS through the harness's user-space client, the rest to /bin/mount."""
import os, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
fstype = args[args.index("-t") + 1] if "-t" in args[:-1] else None
if fstype not in ("nfs", "nfs4"):
    os.execv("/bin/mount", ["mount", *args])

options, positional, i = [], [], 0
while i < len(args):
    if args[i] == "-t":
        i += 2
    elif args[i] == "-o":
        options += args[i + 1].split(",")
        i += 2
    else:
        positional.append(args[i])
        i += 1
source, target = positional[-2], positional[-1]
server, _, export = source.rpartition(":")
values = dict(o.split("=", 1) for o in options if "=" in o)
try:
    python = open(os.path.join(HERE, "python")).read().strip()
except OSError:
    sys.exit(f"mount: no user-space NFS client configured for this cluster ({HERE}/python is missing)")
argv = [python, "-m", "harness.datapath.nfs_fuse", server, export, target, "--version", "3"]
argv += ["--port", values.get("port", "2049")]
if "mountport" in values:
    argv += ["--mount-port", values["mountport"]]
# The node's kernel log in the kubelet's namespace (testbed/iscsi_launch.py), where a kernel NFS client would log.
log_path = os.environ.get("HARNESS_NODE_KERN_LOG") or os.path.join(HERE, "nfs-fuse.log")
with open(log_path, "ab") as log:
    log.write((time.strftime("%b %d %H:%M:%S") + " mount.nfs: " + " ".join(argv) + "\n").encode())
    log.flush()
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)


def mounted():
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    if mounted():
        sys.exit(0)
    if child.poll() is not None:
        with open(log_path, errors="replace") as f:
            last = [line.strip() for line in f if line.strip()][-1:]
        sys.exit(f"mount: user-space NFS client could not mount {source}: {last[0] if last else 'no output'}")
    time.sleep(0.1)
child.kill()
sys.exit(f"mount: user-space NFS client did not mount {source} within 30 s")
'''


def helpers_dir() -> Path:
    return config.STATE_ROOT / "mount-helpers"


def install() -> Path:
    """Write the wrapper; the directory to put first on the kubelets' PATH."""
    directory = helpers_dir()
    directory.mkdir(parents=True, exist_ok=True)
    wrapper = directory / "mount"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(0o755)
    if can_run_client(sys.executable):
        set_client_python(sys.executable)
    return directory


def can_run_client(python: str) -> bool:
    """Whether ``python`` is this process's interpreter and has what harness.datapath.nfs_fuse imports."""
    return python == sys.executable and all(importlib.util.find_spec(m) is not None for m in ("mfusepy", "libnfs"))


def set_client_python(python: str) -> None:
    helpers_dir().mkdir(parents=True, exist_ok=True)
    (helpers_dir() / "python").write_text(python + "\n")


def kubelet_env() -> dict[str, str]:
    return {"PATH": f"{helpers_dir()}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
