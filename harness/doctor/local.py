"""Local-path checks (a local PV, or the local runtime's data directory) and the emptyDir warning.

For a path: it exists, it is a mount of its own rather than a directory on the root filesystem, which filesystem it
is, how much is free against the claim, and whether the uid Prometheus will run as can write there. As root the
write test is real: a forked child switches to the security context's uid/gid (and fsGroup as a supplementary group)
and creates, fsyncs, renames and deletes a probe file. Otherwise the test is for the current user, who is who the
local runtime runs Prometheus as when it is not root.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from harness import proc
from harness.datapath.mounts import filesystem_of, first_untraversable
from harness.doctor.fmt import bullets, perms
from harness.doctor.nfs import PROMETHEUS_NFS_QUOTE
from harness.errors import MissingBinary
from harness.fmt import k8s_quantity as size
from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import EphemeralStorage, LocalStorage, SecurityContext

if TYPE_CHECKING:
    from harness.binding import BindingOutcome
    from harness.kube import KubeInventory

GOOD_FILESYSTEMS = {"ext4", "xfs", "btrfs", "zfs"}


def check_ephemeral(spec: EphemeralStorage) -> list[DoctorFinding]:
    limit = f" (sizeLimit {size(spec.size_limit_bytes)})" if spec.size_limit_bytes else ""
    return [
        DoctorFinding(
            check="ephemeral.history",
            severity=Severity.WARNING,
            title="emptyDir: every new pod starts with an empty TSDB",
            evidence=f"storage.backend: ephemeral{limit}, the kube-prometheus-stack default without storageSpec.",
            why="A container restart keeps the emptyDir, but a reschedule, node drain or helm redeploy creates a new "
            "pod and all metric history is gone.",
            fix="Use a PersistentVolume: prometheus.prometheusSpec.storageSpec.volumeClaimTemplate (a local PV, "
            "or an iSCSI LUN).",
        )
    ]


def check_local(spec: LocalStorage, sc: SecurityContext, *, runtime: str) -> list[DoctorFinding]:
    findings: list[DoctorFinding] = []
    if runtime == "kubernetes" and spec.volume.create and spec.node is None:
        findings.append(
            DoctorFinding(
                check="local.node",
                severity=Severity.BLOCKER,
                title="A local PV needs a node: storage.node is not set",
                evidence="storage.backend: local, storage.volume.create: true, no storage.node.",
                why="The API server rejects a local PV without nodeAffinity (`Local volume requires node affinity`); "
                "the affinity is what pins Prometheus to the host that holds the disk.",
                fix="Set storage.node to the node's kubernetes.io/hostname label.",
            )
        )
    if runtime == "kubernetes" and spec.image is not None:
        image = spec.image
        findings.append(
            DoctorFinding(
                check="local.image",
                severity=Severity.WARNING,
                title="storage.image is not made on the kubernetes runtime: the PV is storage.path as the node has it",
                evidence=f"storage.image: {size(image.size_bytes)} {image.filesystem}; --runtime kubernetes.",
                why="The harness creates and loop-mounts an image only where Prometheus runs on this host; a local "
                "PV is the node's directory, so what is measured (and filled, by disk_full) is whatever filesystem "
                "holds that directory, not the image's.",
                fix=f"Mount the filesystem to test at storage.path on the node (e.g. `mkfs.{image.filesystem} IMG && "
                "mount -o loop IMG PATH`), or drop storage.image.",
            )
        )
    if runtime == "kubernetes" and spec.node is not None and spec.node != socket.gethostname():
        findings.append(
            DoctorFinding(
                check="local.path",
                severity=Severity.INFO,
                title=f"The local path is on node {spec.node}; not checked from {socket.gethostname()}",
                evidence=f"storage.path {spec.path or '(default)'} on {spec.node}.",
                fix=f"Run `harness doctor` on {spec.node} to check the path itself.",
            )
        )
        return findings
    if spec.image is not None:
        findings += _image_findings(spec)
    if spec.path is None:
        if spec.image is None:
            findings.append(
                DoctorFinding(
                    check="local.path",
                    severity=Severity.INFO,
                    title="No storage.path: the TSDB goes to a fresh directory in the run's work area",
                    evidence="Good for trying the harness; set storage.path to measure a disk you mounted.",
                )
            )
        return findings
    path = Path(spec.path)
    if not path.is_dir():
        findings.append(
            DoctorFinding(
                check="local.path",
                severity=Severity.BLOCKER,
                title=f"storage.path {path} does not exist" if not path.exists() else f"{path} is not a directory",
                evidence=f"stat {path}: {'missing' if not path.exists() else 'not a directory'}.",
                why="A local PV whose path is missing leaves the pod in ContainerCreating (`path does not exist`); "
                "the local runtime stops before starting.",
                fix=f"Mount the disk there: `mkdir -p {path} && mount /dev/<disk> {path}` (and add it to /etc/fstab).",
            )
        )
        return findings
    if spec.image is None:
        findings += _mount_findings(path)
        findings += _free_space_findings(path, spec.claim.size_bytes)
    findings.append(_writable_finding(path, sc))
    return findings


def _image_findings(spec: LocalStorage) -> list[DoctorFinding]:
    image = spec.image
    assert image is not None
    found = []
    if os.geteuid() != 0:
        found.append(
            DoctorFinding(
                check="local.image",
                severity=Severity.BLOCKER,
                title="storage.image needs root (losetup and mount)",
                evidence=f"running as uid {os.geteuid()}.",
                why="The harness creates, loop-mounts and removes the filesystem image itself.",
                fix="Run the harness as root, or drop storage.image and point storage.path at a mounted disk.",
            )
        )
    for binary in (f"mkfs.{image.filesystem}", "losetup", "mount"):
        try:
            proc.which(binary)
        except MissingBinary as e:
            found.append(
                DoctorFinding(
                    check="local.image",
                    severity=Severity.BLOCKER,
                    title=f"{binary} is missing",
                    evidence=str(e),
                    fix=f"apt-get install {e.package}",
                )
            )
    base = Path(spec.path) if spec.path else None
    if base is not None and base.is_dir():
        free = shutil.disk_usage(base).free
        if free < image.size_bytes:
            found.append(
                DoctorFinding(
                    check="local.image",
                    severity=Severity.BLOCKER,
                    title=f"Not enough space for the {size(image.size_bytes)} image in {base}",
                    evidence=f"{size(free)} free on {filesystem_of(base).mount_point}.",
                    fix="Free space, point storage.path elsewhere or shrink storage.image.size.",
                )
            )
    if not found:
        found.append(
            DoctorFinding(
                check="local.image",
                severity=Severity.INFO,
                title=f"The harness will create and loop-mount a {size(image.size_bytes)} {image.filesystem} image",
                evidence=f"in {base or 'the run directory'}; direct I/O on the loop device: {image.direct_io}.",
            )
        )
    return found


def _mount_findings(path: Path) -> list[DoctorFinding]:
    mount = filesystem_of(path)
    found = []
    real = Path(os.path.realpath(path))
    if mount.mount_point == Path("/"):
        found.append(
            DoctorFinding(
                check="local.mount",
                severity=Severity.WARNING,
                title=f"{path} is on the root filesystem, not a disk of its own",
                evidence=f"{real} belongs to the mount / ({mount.fstype}, {mount.source}).",
                why="The TSDB then competes with the OS and container images for space and I/O, a full root disk "
                "takes the node down with it, and the benchmark measures the root disk.",
                fix=f"Mount a dedicated disk at {path} (the field notes used /mnt/disks/vol1 on its own disk).",
            )
        )
    elif mount.mount_point != real:
        found.append(
            DoctorFinding(
                check="local.mount",
                severity=Severity.INFO,
                title=f"{path} is inside the mount {mount.mount_point}, not a mount point itself",
                evidence=f"{mount.mount_point}: {mount.fstype} from {mount.source}.",
            )
        )
    fstype = mount.fstype
    if fstype.startswith("nfs"):
        found.append(
            DoctorFinding(
                check="local.filesystem",
                severity=Severity.WARNING,
                title=f"{path} is on NFS ({fstype}), which Prometheus does not support",
                evidence=PROMETHEUS_NFS_QUOTE,
                fix="Use a local filesystem (ext4 or xfs on a local disk).",
            )
        )
    elif fstype in ("tmpfs", "ramfs", "overlay"):
        found.append(
            DoctorFinding(
                check="local.filesystem",
                severity=Severity.WARNING,
                title=f"{path} is on {fstype}: not persistent storage",
                evidence=f"{mount.mount_point}: {fstype} from {mount.source}.",
                why="tmpfs/ramfs live in memory and vanish on reboot; overlay is a container's writable layer, gone "
                "with the container. Results would not describe a disk.",
                fix="Point storage.path at a mounted ext4/xfs disk.",
            )
        )
    else:
        severity = Severity.INFO if fstype in GOOD_FILESYSTEMS else Severity.WARNING
        found.append(
            DoctorFinding(
                check="local.filesystem",
                severity=severity,
                title=f"{path} is on {fstype} ({mount.source})",
                evidence=f"mount point {mount.mount_point}.",
                why="" if severity is Severity.INFO else "Prometheus is tested on POSIX local filesystems (ext4, xfs).",
            )
        )
    return found


def _free_space_findings(path: Path, claim_bytes: int) -> list[DoctorFinding]:
    usage = shutil.disk_usage(path)
    if usage.free >= claim_bytes:
        return [
            DoctorFinding(
                check="local.free_space",
                severity=Severity.INFO,
                title=f"{size(usage.free)} free in {path} (claim {size(claim_bytes)})",
                evidence=f"statvfs: {size(usage.total)} total, {size(usage.free)} available.",
            )
        ]
    return [
        DoctorFinding(
            check="local.free_space",
            severity=Severity.WARNING,
            title=f"Only {size(usage.free)} free in {path}, less than the claim ({size(claim_bytes)})",
            evidence=f"statvfs: {size(usage.total)} total, {size(usage.free)} available.",
            why="A local PV declares the claim's size but nothing enforces it: Prometheus fills the disk and fails "
            "with `no space left on device` before its retention limit.",
            fix="Free space or use a bigger disk; or lower storage.claim.size and set Prometheus' retention.size.",
        )
    ]


def _writable_finding(path: Path, sc: SecurityContext) -> DoctorFinding:
    st = path.stat()
    as_root = os.geteuid() == 0
    uid = sc.run_as_user if as_root else os.geteuid()
    gid = sc.run_as_group if as_root else os.getegid()
    groups = [sc.fs_group] if as_root and sc.fs_group is not None else []
    err = _try_write(path, uid, gid, groups) if as_root else _try_write_here(path)
    who = f"uid {uid} gid {gid}" + (f" (supplementary group {groups[0]})" if groups else "")
    found_stat = f"{path} is {st.st_uid}:{st.st_gid} {perms(st.st_mode)}"
    if err == 0:
        return DoctorFinding(
            check="local.writable",
            severity=Severity.INFO,
            title=f"{who} can write in {path}",
            evidence=f"create, write, fsync, rename and delete of a probe file succeeded; {found_stat}.",
        )
    evidence = f"writing a probe file in {path} as {who} failed: {os.strerror(err)}; {found_stat}."
    # The parents of ``path``: a missing x bit on ``path`` itself shows up in the write probe.
    blocked = first_untraversable(Path(os.path.realpath(path)).parent, uid, {gid, *groups})
    if blocked is not None:
        bst = blocked.stat()
        evidence += (
            f" Its parent {blocked} ({bst.st_uid}:{bst.st_gid} {perms(bst.st_mode)}) is not searchable by uid {uid}."
        )
    if as_root and sc.fs_group is not None:
        return DoctorFinding(
            check="local.writable",
            severity=Severity.INFO,
            title=f"{path} is not writable by uid {uid} itself; fsGroup {sc.fs_group} will make it so",
            evidence=evidence,
            why="For local volumes the kubelet (and the local runtime) applies fsGroup: the tree is group-owned "
            f"by {sc.fs_group} and made group-writable before Prometheus starts.",
        )
    return DoctorFinding(
        check="local.writable",
        severity=Severity.BLOCKER,
        title=f"Permission denied: {who} cannot write in {path}",
        evidence=evidence,
        why="Prometheus would exit at startup with `open DB in /prometheus: ... permission denied`.",
        fix=bullets(
            [
                f"`chown -R {uid}:{gid} {path}`, or",
                "set prometheus.security_context.fs_group so the kubelet group-owns the volume, or",
                f"run the harness as a user who can write in {path}.",
            ]
        ),
    )


def _probe_name(path: Path) -> Path:
    return path / f".harness-doctor-{os.getpid()}-{secrets.token_hex(4)}"


def _write_probe(base: Path) -> None:
    tmp, final = base.with_suffix(".tmp"), base.with_suffix(".probe")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.write(fd, b"\0" * 4096)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.rename(final)
    final.unlink()


def _try_write_here(path: Path) -> int:
    try:
        _write_probe(_probe_name(path))
    except OSError as e:
        return e.errno or errno.EIO
    return 0


def _try_write(path: Path, uid: int, gid: int, groups: list[int]) -> int:
    """errno of the probe write as uid/gid (0 on success), in a forked child so this process keeps root."""
    base = _probe_name(path)
    pid = os.fork()
    if pid == 0:  # child: only syscalls, then _exit; never return into the caller's stack
        code = 0
        try:
            os.setgroups(groups)
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            _write_probe(base)
        except OSError as e:
            code = min(e.errno or errno.EIO, 255)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    for leftover in (base.with_suffix(".tmp"), base.with_suffix(".probe")):
        leftover.unlink(missing_ok=True)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else errno.EIO


def local_class_findings(outcome: BindingOutcome, inventory: KubeInventory) -> list[DoctorFinding]:
    """The field notes' local-PV recipe: a no-provisioner StorageClass with WaitForFirstConsumer."""
    name = outcome.effective_class
    sc = inventory.storage_class(name) if name else None
    if sc is not None and sc.volume_binding_mode == "WaitForFirstConsumer":
        return []
    found = (
        f'StorageClass "{name}" does not exist'
        if name and sc is None
        else (f'StorageClass "{name}" binds Immediate' if sc is not None else "the claim has no StorageClass")
    )
    return [
        DoctorFinding(
            check="k8s.storage_class",
            severity=Severity.WARNING,
            title=f"Local PV without WaitForFirstConsumer: {found}",
            evidence=f"inventory: {inventory.source}.",
            why="With Immediate binding the claim binds before the pod is scheduled, ignoring the other constraints "
            "of the pod (resources, taints); the pod may then be unschedulable on the one node the PV allows.",
            fix=f"Create it: `kind: StorageClass, metadata.name: {name or 'local-storage'}, provisioner: "
            "kubernetes.io/no-provisioner, volumeBindingMode: WaitForFirstConsumer`.",
        )
    ]
