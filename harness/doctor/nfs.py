"""NFS checks: can Prometheus, as the uid/gid of its security context, write its TSDB on the export; who owns what
is already there; does the server squash root; and the standing warning that Prometheus does not support NFS.

Everything is tried from user space through ``harness.datapath.nfs_client`` with AUTH_SYS credentials set to the pod's
uid/gid, which is exactly what the server sees from a kernel mount inside the pod, so no mount and no root is needed.
The prometheus-operator mounts the volume with ``subPath: prometheus-db``; when that directory already exists it is
the TSDB directory and is probed and scanned too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections import Counter
from dataclasses import dataclass

from harness.datapath import nfs_client
from harness.datapath.nfs_client import NfsClient, NfsEntry, NfsError
from harness.doctor.fmt import bullets, can_write, perms
from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import NfsStorage, SecurityContext

OPERATOR_SUBPATH = "prometheus-db"
PROBE_BYTES = 8192
SCAN_MAX_ENTRIES = 2000  # enough to see a TSDB's top levels (wal/, chunks_head/, blocks) without walking it all
SCAN_MAX_DEPTH = 2

PROMETHEUS_NFS_QUOTE = (
    'Prometheus storage documentation (https://prometheus.io/docs/prometheus/latest/storage/): "Non-POSIX compliant '
    "filesystems are not supported for Prometheus' local storage as unrecoverable corruptions may happen. NFS "
    "filesystems (including AWS's EFS) are not supported. NFS could be POSIX-compliant, but most implementations are "
    'not. It is strongly recommended to use a local filesystem for reliability."'
)


@dataclass(frozen=True)
class ProbeOutcome:
    directory: str
    steps_done: tuple[str, ...]
    error: NfsError | None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_nfs(spec: NfsStorage, sc: SecurityContext, *, timeout_s: float = 10.0) -> list[DoctorFinding]:
    findings = [_unsupported()]
    where = f"{spec.server}:{spec.export}" + (f" (port {spec.port})" if spec.port != 2049 else "")
    uid, gid = sc.run_as_user, sc.run_as_group
    try:
        with _connect(spec, uid, gid, timeout_s) as client:
            targets = ["/"]
            if client.exists(f"/{OPERATOR_SUBPATH}"):
                targets.append(f"/{OPERATOR_SUBPATH}")
            outcomes = [_probe(client, d) for d in targets]
            dir_stats = {d: client.stat(d) for d in targets}
            scan_root = targets[-1]
            entries = _scan(client, scan_root)
    except NfsError as e:
        findings.append(
            DoctorFinding(
                check="nfs.connect",
                severity=Severity.BLOCKER,
                title=f"Cannot mount the NFS export {where}",
                evidence=str(e),
                why="The kubelet's mount of this PV would fail the same way: the Prometheus pod stays in "
                "ContainerCreating with a FailedMount event and never starts.",
                fix=bullets(
                    [
                        f"Check that {spec.server} answers NFS on port {spec.port} from the nodes (firewall, address).",
                        f"Check the export path {spec.export!r}: with NFSv4 it is the server's pseudo path "
                        "(showmount -e does not list NFSv4-only exports; Ganesha: EXPORT { Pseudo = ... }).",
                        "Check that the export allows these clients (exports(5) host list, Ganesha CLIENT block).",
                    ]
                ),
            )
        )
        return findings

    root_squash = _root_squash(spec, timeout_s)
    for outcome in outcomes:
        st = dir_stats[outcome.directory]
        findings.append(
            _writable_finding(
                spec, sc, outcome, owner_uid=st.uid, owner_gid=st.gid, mode=st.mode, root_squash=root_squash
            )
        )
    owners = _owners_finding(sc, scan_root, entries)
    if owners is not None:
        findings.append(owners)
    if root_squash is not None:
        findings.append(
            DoctorFinding(
                check="nfs.root_squash",
                severity=Severity.INFO,
                title="The export squashes root" if root_squash else "The export does not squash root",
                evidence=_ROOT_SQUASH_EVIDENCE[root_squash],
                why="An initContainer that chowns the TSDB directory only works without root squashing; with "
                "root_squash the ownership must be fixed on the server.",
            )
        )
    return findings


_ROOT_SQUASH_EVIDENCE = {
    True: "A file created as uid 0 was refused or came out owned by another uid (root is mapped to nobody).",
    False: "A file created as uid 0 came out owned by uid 0 (no_root_squash).",
}


def _connect(spec: NfsStorage, uid: int, gid: int, timeout_s: float) -> contextlib.AbstractContextManager[NfsClient]:
    """The export as ``uid``/``gid`` (AUTH_SYS), the way the scenario names it."""
    return nfs_client.connect_to(spec, uid=uid, gid=gid, timeout_s=timeout_s)


def _unsupported() -> DoctorFinding:
    return DoctorFinding(
        check="nfs.supported",
        severity=Severity.WARNING,
        title="Prometheus does not support NFS for its TSDB",
        evidence=PROMETHEUS_NFS_QUOTE,
        why="Corrupted blocks or a WAL that cannot be replayed after a crash mean lost history; the harness "
        "measures how often that happens on this server, but a pass here is not a guarantee.",
        fix="Prefer a local PV or a block device (iSCSI LUN with a whole-disk filesystem); if NFS it must be, keep "
        "remote_write to a second store so the history survives a corrupted TSDB.",
    )


def _probe(client: NfsClient, directory: str) -> ProbeOutcome:
    """create, write, fsync, rename, mkdir, rmdir, unlink: what Prometheus does in its TSDB directory."""
    base = directory.rstrip("/") + f"/.harness-doctor-{os.getpid()}-{secrets.token_hex(4)}"
    tmp, final, subdir = base + ".tmp", base + ".probe", base + ".d"
    done: list[str] = []
    try:
        with client.create(tmp, 0o644) as f:
            done.append("create")
            f.write(b"\0" * PROBE_BYTES)
            done.append("write")
            f.fsync()
            done.append("fsync")
        client.rename(tmp, final)
        done.append("rename")
        client.mkdir(subdir)
        done.append("mkdir")
        client.rmdir(subdir)
        done.append("rmdir")
        client.unlink(final)
        done.append("unlink")
    except NfsError as e:
        _cleanup(client, [tmp, final], subdir)
        return ProbeOutcome(directory, tuple(done), e)
    return ProbeOutcome(directory, tuple(done), None)


def _cleanup(client: NfsClient, files: list[str], subdir: str) -> None:
    # Whatever was not created (or this uid may not delete) is simply skipped: nothing more can be done as this uid.
    for path in files:
        with contextlib.suppress(NfsError):
            client.unlink(path)
    with contextlib.suppress(NfsError):
        client.rmdir(subdir)


def _root_squash(spec: NfsStorage, timeout_s: float) -> bool | None:
    """True: root is squashed; False: not; None: could not tell (the export is not writable even by nobody)."""
    name = f"/.harness-doctor-root-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with _connect(spec, 0, 0, timeout_s) as client:
            try:
                client.create(name, 0o600).close()
            except NfsError as e:
                # An unsquashed root may write anywhere on the export, so a refusal means root became nobody.
                return True if e.permission_denied else None
            owner = client.stat(name).uid
            client.unlink(name)
            return owner != 0
    except NfsError:
        return None


def _writable_finding(
    spec: NfsStorage,
    sc: SecurityContext,
    outcome: ProbeOutcome,
    *,
    owner_uid: int,
    owner_gid: int,
    mode: int,
    root_squash: bool | None,
) -> DoctorFinding:
    uid, gid = sc.run_as_user, sc.run_as_group
    shown = spec.export.rstrip("/") + ("" if outcome.directory == "/" else outcome.directory)
    if outcome.ok:
        return DoctorFinding(
            check="nfs.writable",
            severity=Severity.INFO,
            title=f"Prometheus (uid {uid}, gid {gid}) can write in {shown}",
            evidence=f"{', '.join(outcome.steps_done)} of a probe file succeeded as uid {uid} gid {gid}; "
            f"{shown} is {owner_uid}:{owner_gid} {perms(mode)}.",
        )
    err = outcome.error
    assert err is not None
    failed_step = err.op
    evidence = (
        f"{failed_step} in {shown} as uid {uid} gid {gid} failed: {err}. "
        f"{shown} is owned by {owner_uid}:{owner_gid} with mode {perms(mode)}."
    )
    if not err.permission_denied:
        return DoctorFinding(
            check="nfs.writable",
            severity=Severity.BLOCKER,
            title=f"Writing in {shown} fails ({failed_step})",
            evidence=evidence,
            why="Prometheus creates, fsyncs, renames and deletes files in its TSDB directory all the time; any of "
            "these failing stops ingestion or compaction.",
            fix="Check the server's log and the export's options (read-only export? quota? full filesystem?).",
        )
    fs_group = sc.fs_group
    if (
        fs_group is not None
        and fs_group != gid
        and can_write(owner_uid=owner_uid, owner_gid=owner_gid, mode=mode, uid=uid, groups={gid, fs_group})
    ):
        # The pod's process carries fsGroup as a supplementary group and AUTH_SYS sends it; libnfs 4.0 cannot.
        return DoctorFinding(
            check="nfs.writable",
            severity=Severity.WARNING,
            title=f"{shown} is writable for Prometheus only through its fsGroup {fs_group} (not tested)",
            evidence=evidence + f" The probe sent gid {gid} only; {shown} grants group {owner_gid} write access.",
            why=f"The container runs with fsGroup {fs_group} as a supplementary group, which the NFS client sends "
            "along, so this should work; the doctor's NFS client cannot send supplementary groups to prove it.",
            fix=f"To be independent of supplementary groups: `chown -R {uid}:{gid} {spec.export}` on the server.",
        )
    root_note = {
        True: "this export squashes root, so an initContainer running as root cannot chown it",
        False: "this export has no_root_squash, so an initContainer running as root can chown it",
        None: "root squashing could not be determined",
    }[root_squash]
    group_writable = bool(mode & 0o020)
    return DoctorFinding(
        check="nfs.writable",
        severity=Severity.BLOCKER,
        title=f"Permission denied: Prometheus (uid {uid}) cannot write in {shown}",
        evidence=evidence,
        why=(
            "Prometheus would exit at startup with `open DB in /prometheus: ... permission denied` or "
            "`lock DB directory: open /prometheus/lock: permission denied`, and the pod restart-loops. Kubernetes "
            "does not apply fsGroup to in-tree NFS volumes"
            + (f", so securityContext.fsGroup {fs_group} does not help" if fs_group is not None else "")
            + "; ownership on the export is all that counts."
        ),
        fix=bullets(
            [
                f"On the NFS server, give the directory to the Prometheus user: "
                f"`chown -R {uid}:{gid} {spec.export}` (kube-prometheus-stack runs as 1000:2000).",
                f"Or keep the owner and add its group to the pod: `securityContext.supplementalGroups: [{owner_gid}]`"
                + ("" if group_writable else f" together with `chmod -R g+rwX {spec.export}` on the server")
                + " (helm: prometheus.prometheusSpec.securityContext).",
                f"Or an initContainer running as root that runs `chown -R {uid}:{gid} /prometheus` before "
                f"Prometheus starts (needs no_root_squash; {root_note}).",
                f"Or use csi-driver-nfs with `fsGroupPolicy: File`, so the kubelet applies fsGroup "
                f"{fs_group if fs_group is not None else '(set one)'} to the volume like it does for block storage.",
                "Or export with `no_root_squash` (exports(5); Ganesha: Squash = No_Root_Squash) so root-run fixes "
                "work; prefer fixing the ownership once on the server.",
            ]
        ),
    )


def _scan(client: NfsClient, root: str) -> list[NfsEntry]:
    found: list[NfsEntry] = []
    frontier = [(root, 0)]
    while frontier and len(found) < SCAN_MAX_ENTRIES:
        path, depth = frontier.pop()
        try:
            entries = client.listdir(path)
        except NfsError:
            continue  # unreadable for this uid: the writability probe reports what matters
        for entry in entries:
            if entry.name.startswith(".harness-doctor-"):
                continue
            found.append(entry)
            if entry.stat.is_dir and depth + 1 < SCAN_MAX_DEPTH:
                frontier.append((entry.path, depth + 1))
    return found[:SCAN_MAX_ENTRIES]


def _owners_finding(sc: SecurityContext, root: str, entries: list[NfsEntry]) -> DoctorFinding | None:
    if not entries:
        return None
    uid = sc.run_as_user
    groups = {sc.run_as_group} | ({sc.fs_group} if sc.fs_group is not None else set())
    owners = Counter(e.stat.uid for e in entries)
    blocked = [
        e
        for e in entries
        if not can_write(owner_uid=e.stat.uid, owner_gid=e.stat.gid, mode=e.stat.mode, uid=uid, groups=groups)
    ]
    if set(owners) == {uid} and not blocked:
        return None
    owner_list = ", ".join(f"uid {o} ({n} entries)" for o, n in owners.most_common())
    sample = "; ".join(f"{e.path} {e.stat.uid}:{e.stat.gid} {perms(e.stat.mode)}" for e in (blocked or entries)[:8])
    if blocked:
        return DoctorFinding(
            check="nfs.owners",
            severity=Severity.BLOCKER,
            title=f"Mixed owners in the existing TSDB ({root}): {len(blocked)} entries uid {uid} cannot write",
            evidence=f"Owners found: {owner_list}. Not writable for uid {uid} (groups {sorted(groups)}): {sample}.",
            why="Files left by another uid (e.g. 472 from an earlier Grafana or a different chart, root from a debug "
            "pod) stop Prometheus from appending to the WAL, compacting or deleting old blocks: "
            "`permission denied` at startup or later at the first compaction.",
            fix=f"On the server: `chown -R {uid}:{sc.run_as_group} <export>/{root.strip('/')}` (or move the stale "
            "files away); then make every writer use the same uid.",
        )
    return DoctorFinding(
        check="nfs.owners",
        severity=Severity.WARNING,
        title=f"Mixed owners in the existing TSDB ({root}), but all writable by uid {uid}",
        evidence=f"Owners found: {owner_list}. Examples: {sample}.",
        why="Mixed ownership shows several writers used this export; it works today through group or world "
        "permissions, and breaks as soon as one writer's umask differs.",
        fix=f"Normalise on the server: `chown -R {uid}:{sc.run_as_group}` on the TSDB directory.",
    )
