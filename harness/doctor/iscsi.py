"""iSCSI checks: log in to the LUN from user space, read its capacity and first sectors, and tell apart the layouts
that decide what the kubelet's mount will do: a whole-disk ext4/xfs (good), a partition table (the mount fails with
``Can't find ext4 filesystem``), a blank LUN (the kubelet formats it because the PV sets fsType), unknown data, and a
LUN smaller than the claim.

Layout detection (``detect_layout``) is a pure function of the bytes read, so it is tested on image files too.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from harness.datapath.iscsi_client import IscsiError, IscsiLun, LunCapacity
from harness.doctor.fmt import bullets
from harness.fmt import k8s_quantity as size
from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import IscsiStorage

HEAD_BYTES = 1024 * 1024  # blank means: nothing but zeros in the first MiB
EXT4_MAGIC_OFFSET = 1080
GPT_SIGNATURE = b"EFI PART"
PARTITION_TABLE_MOUNT_ERROR = "EXT4-fs (sdc): VFS: Can't find ext4 filesystem"

LayoutKind = Literal["ext4", "xfs", "gpt", "mbr", "blank", "unknown"]


@dataclass(frozen=True)
class Filesystem:
    kind: Literal["ext4", "xfs"]
    label: str
    size_bytes: int

    def describe(self) -> str:
        label = f" label {self.label!r}" if self.label else " (no label)"
        return f"{self.kind}{label}, {size(self.size_bytes)}"


@dataclass(frozen=True)
class Partition:
    number: int
    start_bytes: int
    size_bytes: int
    name: str = ""
    filesystem: Filesystem | None = None

    def describe(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        fs = f" holding {self.filesystem.describe()}" if self.filesystem else ""
        return f"partition {self.number}{name} at {size(self.start_bytes)}, {size(self.size_bytes)}{fs}"


@dataclass(frozen=True)
class Layout:
    kind: LayoutKind
    filesystem: Filesystem | None = None
    partitions: tuple[Partition, ...] = field(default_factory=tuple)
    evidence: str = ""


Reader = Callable[[int, int], bytes]  # (offset_bytes, length_bytes) -> bytes


def filesystem_at(block: bytes) -> Filesystem | None:
    """ext4 (magic 0xEF53 at byte 1080) or xfs ("XFSB" at byte 0) at the start of ``block`` (>= 2 KiB)."""
    if len(block) >= 2048 and block[EXT4_MAGIC_OFFSET : EXT4_MAGIC_OFFSET + 2] == b"\x53\xef":
        sb = block[1024:2048]
        blocks_lo, log_block = struct.unpack_from("<I", sb, 4)[0], struct.unpack_from("<I", sb, 24)[0]
        incompat = struct.unpack_from("<I", sb, 96)[0]
        blocks_hi = struct.unpack_from("<I", sb, 0x150)[0] if incompat & 0x80 else 0  # INCOMPAT_64BIT
        label = sb[120:136].split(b"\0", 1)[0].decode(errors="replace")
        return Filesystem("ext4", label, ((blocks_hi << 32) | blocks_lo) * (1024 << log_block))
    if block[:4] == b"XFSB":
        blocksize, dblocks = struct.unpack_from(">IQ", block, 4)
        label = block[108:120].split(b"\0", 1)[0].decode(errors="replace")
        return Filesystem("xfs", label, blocksize * dblocks)
    return None


def detect_layout(head: bytes, block_size: int, read: Reader) -> Layout:
    """Classify a LUN from its first MiB (``head``); ``read`` fetches more (partition starts) when needed."""
    fs = filesystem_at(head)
    if fs is not None:
        return Layout(fs.kind, filesystem=fs, evidence=_signature_evidence(fs))
    for sector in sorted({block_size, 512, 4096}):
        if head[sector : sector + 8] == GPT_SIGNATURE:
            return Layout(
                "gpt", partitions=_gpt_partitions(head, sector, read), evidence=f"'EFI PART' at byte {sector}"
            )
    if head[510:512] == b"\x55\xaa":
        partitions = _mbr_partitions(head, read)
        if partitions:
            return Layout("mbr", partitions=partitions, evidence="MBR boot signature 0x55AA at byte 510")
    if not any(head):
        return Layout("blank", evidence=f"the first {size(len(head))} are all zeros")
    first = next(i for i, b in enumerate(head) if b)
    return Layout("unknown", evidence=f"no ext4/xfs signature and no partition table; first non-zero byte at {first}")


def _signature_evidence(fs: Filesystem) -> str:
    return "ext4 magic 0xEF53 at byte 1080" if fs.kind == "ext4" else "xfs magic 'XFSB' at byte 0"


def _fs_inside(read: Reader, start: int) -> Filesystem | None:
    try:
        return filesystem_at(read(start, 4096))
    except IscsiError:
        return None  # a partition beyond the LUN's end or unreadable: describe it without its contents


def _gpt_partitions(head: bytes, header_at: int, read: Reader) -> tuple[Partition, ...]:
    entries_lba, count, entry_size = struct.unpack_from("<QII", head, header_at + 72)
    lba_bytes = header_at  # the GPT header sits at LBA 1, so its offset is one logical block
    if not 128 <= entry_size <= 1024 or count > 1024:
        return ()
    table_at = entries_lba * lba_bytes
    table = head[table_at : table_at + count * entry_size] if table_at + count * entry_size <= len(head) else b""
    if not table:
        table = read(table_at, count * entry_size)
    parts = []
    for i in range(count):
        entry = table[i * entry_size : (i + 1) * entry_size]
        if len(entry) < 128 or not any(entry[:16]):
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        name = entry[56:128].decode("utf-16-le", errors="replace").split("\0", 1)[0]
        start = first * lba_bytes
        parts.append(Partition(i + 1, start, (last - first + 1) * lba_bytes, name, _fs_inside(read, start)))
    return tuple(parts)


def _mbr_partitions(head: bytes, read: Reader) -> tuple[Partition, ...]:
    parts = []
    for i in range(4):
        entry = head[446 + 16 * i : 446 + 16 * (i + 1)]
        ptype = entry[4]
        start_lba, sectors = struct.unpack_from("<II", entry, 8)
        if ptype == 0 or sectors == 0:
            continue
        start = start_lba * 512
        parts.append(Partition(i + 1, start, sectors * 512, f"type 0x{ptype:02x}", _fs_inside(read, start)))
    return tuple(parts)


def check_iscsi(spec: IscsiStorage, *, timeout_s: float = 10.0) -> list[DoctorFinding]:
    where = f"{spec.target_portal} {spec.iqn} lun {spec.lun}"
    try:
        with IscsiLun(spec.target_portal, spec.iqn, spec.lun, timeout_s=timeout_s) as lun:
            cap = lun.read_capacity()
            head = lun.read(0, HEAD_BYTES, cap)

            def read(offset: int, length: int) -> bytes:
                if offset >= cap.size_bytes:
                    raise IscsiError("read", where, f"offset {offset} is beyond the LUN's end")
                return lun.read(offset, length, cap)

            layout = detect_layout(head, cap.block_size_bytes, read)
    except IscsiError as e:
        return [
            DoctorFinding(
                check="iscsi.login",
                severity=Severity.BLOCKER,
                title=f"Cannot log in to the iSCSI LUN {where}",
                evidence=str(e),
                why="The kubelet's iscsiadm login would fail the same way: the pod stays in ContainerCreating with "
                "a FailedMount / FailedAttachVolume event.",
                fix=bullets(
                    [
                        f"Check the portal {spec.target_portal} is reachable from the nodes (port 3260 by default).",
                        f"Check the IQN {spec.iqn!r} and that LUN {spec.lun} exists on it "
                        "(tgtadm --op show --mode target; targetcli ls).",
                        "Check the target's ACL allows the nodes' initiator names (and CHAP, if configured).",
                    ]
                ),
            )
        ]
    return [*_capacity_findings(spec, cap, layout), _layout_finding(spec, where, cap, layout)]


def _capacity_findings(spec: IscsiStorage, cap: LunCapacity, layout: Layout) -> list[DoctorFinding]:
    claim = spec.claim.size_bytes
    if cap.size_bytes < claim:
        return [
            DoctorFinding(
                check="iscsi.capacity",
                severity=Severity.BLOCKER,
                title=f"The LUN ({size(cap.size_bytes)}) is smaller than the claim ({size(claim)})",
                evidence=f"READ CAPACITY(16): {cap.blocks} blocks of {cap.block_size_bytes} bytes = {cap.size_bytes} "
                f"bytes; storage.claim.size = {claim} bytes.",
                why="Kubernetes trusts the PV's declared capacity and never checks the LUN, so Prometheus is promised "
                "space that does not exist and fails with `no space left on device` (WAL and compaction writes) "
                "long before its retention limit.",
                fix=f"Grow the LUN to at least {size(claim)} (then resize2fs / xfs_growfs), or lower "
                f"storage.claim.size and the PV capacity to {size(cap.size_bytes)} and set Prometheus' retention.size "
                "below it.",
            )
        ]
    fs = layout.filesystem
    if fs is not None and fs.size_bytes < claim:
        return [
            DoctorFinding(
                check="iscsi.capacity",
                severity=Severity.WARNING,
                title=f"The filesystem ({size(fs.size_bytes)}) is smaller than the claim ({size(claim)})",
                evidence=f"LUN {size(cap.size_bytes)}; {fs.describe()}.",
                why="The LUN was grown but the filesystem was not: Prometheus sees only the filesystem's size.",
                fix="Grow the filesystem to the LUN: resize2fs /dev/sdX (ext4) or xfs_growfs <mountpoint> (xfs).",
            )
        ]
    return []


def _layout_finding(spec: IscsiStorage, where: str, cap: LunCapacity, layout: Layout) -> DoctorFinding:
    lun_desc = f"LUN {where}: {size(cap.size_bytes)} ({cap.blocks} x {cap.block_size_bytes} B blocks)"
    fs = layout.filesystem
    if fs is not None and fs.kind == spec.fs_type:
        return DoctorFinding(
            check="iscsi.layout",
            severity=Severity.INFO,
            title=f"Whole-disk {fs.kind} on the LUN: {fs.describe()}",
            evidence=f"{lun_desc}; {layout.evidence}.",
        )
    if fs is not None:
        return DoctorFinding(
            check="iscsi.layout",
            severity=Severity.BLOCKER,
            title=f"The LUN holds {fs.kind}, but the PV says fsType {spec.fs_type}",
            evidence=f"{lun_desc}; {layout.evidence}: {fs.describe()}.",
            why=f'The kubelet refuses to mount or reformat it: `failed to mount the volume as "{spec.fs_type}", it '
            f"already contains {fs.kind}`.",
            fix=f"Set storage.fs_type: {fs.kind} (the PV's iscsi.fsType), or reformat the LUN if its data is not "
            "needed.",
        )
    if layout.kind in ("gpt", "mbr"):
        parts = "; ".join(p.describe() for p in layout.partitions) or "no partitions"
        table = "GPT" if layout.kind == "gpt" else "MBR"
        return DoctorFinding(
            check="iscsi.layout",
            severity=Severity.BLOCKER,
            title=f"The LUN is partitioned ({table}); Kubernetes mounts the whole disk and will fail",
            evidence=f"{lun_desc}; {table} partition table ({layout.evidence}): {parts}.",
            why="The in-tree iscsi volume has no partition field: the kubelet mounts the whole device (/dev/sdX), "
            "finds a partition table instead of a filesystem and fails with `it already contains unknown data, "
            f"probably partitions` / `{PARTITION_TABLE_MOUNT_ERROR}`. It will not format it either (that would "
            "destroy the partitions).",
            fix=bullets(
                [
                    "Put the filesystem on the whole LUN, no partition table: on a host with the LUN attached as "
                    f"/dev/sdX, `wipefs -a /dev/sdX && mkfs.{spec.fs_type} -L prometheus /dev/sdX` "
                    "(destroys the data).",
                    "To keep existing data: mount the partition (/dev/sdX1) on a host, copy the TSDB to a new "
                    "whole-disk LUN (rsync -a), and point the PV at that LUN.",
                ]
            ),
        )
    if layout.kind == "blank":
        return DoctorFinding(
            check="iscsi.layout",
            severity=Severity.WARNING,
            title=f"The LUN is blank: the kubelet will format it as {spec.fs_type} on first mount",
            evidence=f"{lun_desc}; {layout.evidence}.",
            why=f"The PV sets fsType {spec.fs_type}, so on first mount the kubelet finds no filesystem (blkid) and "
            f"runs mkfs.{spec.fs_type} on the whole LUN (without fsType on the PV it would not format and the mount "
            "would fail). The local runtime cannot format it: it needs the LUN already mounted at storage.mount_path.",
            fix=f"Nothing for Kubernetes if this is the right LUN. For the local runtime: attach it and run "
            f"`mkfs.{spec.fs_type} -L prometheus /dev/sdX` (whole disk), mount it, set storage.mount_path.",
        )
    return DoctorFinding(
        check="iscsi.layout",
        severity=Severity.WARNING,
        title="The LUN holds data that is neither ext4/xfs nor a partition table",
        evidence=f"{lun_desc}; {layout.evidence}.",
        why=f"If blkid recognises nothing either, the kubelet treats the LUN as unformatted and runs "
        f"mkfs.{spec.fs_type} over it, destroying what it holds; if blkid recognises something else, the mount fails.",
        fix="Check this is the intended LUN (iqn and lun number) before deploying; wipe it (wipefs -a) if it is.",
    )
