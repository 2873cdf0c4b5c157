"""Ceph checks (``cephfs``, ``rbd``): asked of the cluster the scenario names, as the run's own client, before the run
mounts anything. Each finding says what it saw in Ceph's own numbers:

* ``ceph.reach``: the cluster does not answer the client (monitors unreachable, a wrong user or key): a BLOCKER
  naming what to check;
* ``ceph.health``: HEALTH_ERR is a BLOCKER (the run would measure the failure, not the storage), HEALTH_WARN a
  WARNING naming each check Ceph raised;
* ``ceph.redundancy``: a pool of size 1 keeps one copy (an OSD lost is its data lost; an OSD down blocks its I/O);
  min_size 1 on a larger pool acknowledges writes held by a single OSD;
* ``ceph.osds``: fewer OSDs up than the pool's size (degraded: fewer copies than asked), or than its min_size (its
  I/O blocks);
* ``ceph.full``: raw use at or past the full ratio (writes refused: BLOCKER) or the nearfull ratio (WARNING), with
  the ratios set;
* ``ceph.mds``: a CephFS file system with no active MDS (nothing can mount or write it: BLOCKER);
* ``ceph.caps``: the client's caps lack what the data path needs (osd for the pool, mds for CephFS), or cannot be
  read as that client.

A cluster the run starts itself (``monitors: embedded``) does not exist yet when ``harness doctor`` runs: it is
checked when the run has started it (the run's doctor step comes after its storage server). Ceph's tools are called
through ``harness.datapath.ceph_cli`` only, every call bounded.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from harness.datapath.ceph_cli import CephClient, CephError, write_client_conf
from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import CephClientSpec, CephFsStorage, RbdStorage

DOCS = "docs/concepts/storage.md#ceph-on-any-linux-host-cephfs-and-rbd"


def check_ceph(spec: CephClientSpec) -> list[DoctorFinding]:
    """Every Ceph finding for the cluster ``spec`` names (an INFO for one the run will start)."""
    if spec.embedded_cluster is not None:
        return [
            DoctorFinding(
                check="ceph.embedded",
                severity=Severity.INFO,
                title="The embedded Ceph cluster is checked once the run has started it",
                evidence="storage.monitors: embedded (one mon, mgr and OSD, pool size 1, started by the run)",
                why="It does not exist before the run; `harness run` runs these checks against it.",
            )
        ]
    with tempfile.TemporaryDirectory(prefix="harness-doctor-ceph-") as tmp:
        keyring = Path(spec.keyring) if spec.keyring else None
        keyfile = Path(spec.secret_file) if spec.secret_file else None
        conf = write_client_conf(Path(tmp) / "ceph.conf", spec.monitors, keyring=keyring, keyfile=keyfile)
        return ceph_findings(CephClient(conf, spec.user), spec)


def ceph_findings(client: CephClient, spec: CephClientSpec) -> list[DoctorFinding]:
    """The findings, asked of the cluster as ``client``; one BLOCKER naming what to check when it does not answer
    (unreachable monitors, a wrong user or key): the run then stops here, within one bounded call."""
    try:
        found = _health(client)
    except CephError as e:
        return [
            _finding(
                "ceph.reach",
                Severity.BLOCKER,
                f"The Ceph cluster at {spec.monitors} does not answer {client.name}",
                str(e),
                "Nothing of the run can reach its storage: the client would fail to mount or attach.",
                "Fix what the evidence names to check.",
            )
        ]
    # Few calls (each is a process and a monitor round trip, seconds on a busy host): the OSD map has the pools,
    # the OSDs and the ratios; the FS map the file system's pools and its MDSs.
    osd_map = client.ceph_json("osd", "dump")
    fs_map = client.ceph_json("fs", "dump") if isinstance(spec, CephFsStorage) else {}
    pools = _pools(osd_map, fs_map, spec)
    found += _redundancy(pools)
    found += _osds(osd_map, pools)
    found += _fullness(client, osd_map)
    if isinstance(spec, CephFsStorage):
        found += _mds(fs_map, spec.fs_name)
    found += _caps(client, spec)
    return found


def _finding(check: str, severity: Severity, title: str, evidence: str, why: str, fix: str) -> DoctorFinding:  # noqa: PLR0917
    return DoctorFinding(check=check, severity=severity, title=title, evidence=evidence, why=why, fix=f"{fix} ({DOCS})")


def _health(client: CephClient) -> list[DoctorFinding]:
    health = client.ceph_json("health", "detail")
    status = str(health.get("status", "?"))
    if status == "HEALTH_OK":
        return []
    checks = health.get("checks", {})
    said = "; ".join(f"{name}: {c.get('summary', {}).get('message', '')}" for name, c in checks.items())
    if status == "HEALTH_ERR":
        return [
            _finding(
                "ceph.health",
                Severity.BLOCKER,
                f"The Ceph cluster is in HEALTH_ERR ({', '.join(checks) or 'no check named'})",
                f"ceph health detail: {said or status}",
                "A cluster in error (full OSDs, placement groups down, a file system offline) fails or blocks I/O: "
                "a run would measure the failure, not the storage.",
                "Fix what `ceph health detail` names first.",
            )
        ]
    return [
        _finding(
            "ceph.health",
            Severity.WARNING,
            f"The Ceph cluster is in {status}: {', '.join(checks) or 'no check named'}",
            f"ceph health detail: {said or status}",
            "Each warning is something Ceph itself thinks may cost data or time; the run's numbers are taken with it.",
            "See `ceph health detail`; mute a warning you accept with `ceph health mute NAME`.",
        )
    ]


def _pools(osd_map: dict[str, Any], fs_map: dict[str, Any], spec: CephClientSpec) -> list[dict[str, Any]]:
    """The pools Prometheus' data lands in: the RBD pool, or the CephFS file system's data and metadata pools."""
    if isinstance(spec, RbdStorage):
        return [p for p in osd_map.get("pools", []) if p.get("pool_name") == spec.pool]
    ids: set[int] = set()
    for fs in fs_map.get("filesystems", []):
        mdsmap = fs.get("mdsmap", {})
        if isinstance(spec, CephFsStorage) and mdsmap.get("fs_name") == spec.fs_name:
            ids = {int(mdsmap.get("metadata_pool", -1)), *(int(p) for p in mdsmap.get("data_pools", []))}
    return [p for p in osd_map.get("pools", []) if int(p.get("pool", -2)) in ids]


def _redundancy(pools: list[dict[str, Any]]) -> list[DoctorFinding]:
    found = []
    for pool in pools:
        name, size, min_size = pool.get("pool_name"), int(pool.get("size", 0)), int(pool.get("min_size", 0))
        evidence = f"pool {name}: size {size}, min_size {min_size}"
        if size == 1:
            found.append(
                _finding(
                    "ceph.redundancy",
                    Severity.WARNING,
                    f"Pool {name} keeps one copy (size 1): no redundancy",
                    evidence,
                    "With one copy, an OSD lost is Prometheus' data lost, and an OSD down blocks every I/O to the "
                    "placement groups it holds until it is back (see the ceph_osd_down fault).",
                    f"`ceph osd pool set {name} size 3` (and min_size 2) on a cluster with 3 OSDs; size 1 is for "
                    "tests.",
                )
            )
        elif min_size <= 1:
            found.append(
                _finding(
                    "ceph.redundancy",
                    Severity.WARNING,
                    f"Pool {name} acknowledges writes with one copy (min_size {min_size} of size {size})",
                    evidence,
                    "With min_size 1 a write is acknowledged while a single OSD holds it: that OSD lost before "
                    "recovery, the write is lost.",
                    f"`ceph osd pool set {name} min_size 2`.",
                )
            )
    return found


def _osds(osd_map: dict[str, Any], pools: list[dict[str, Any]]) -> list[DoctorFinding]:
    osds = osd_map.get("osds", [])
    up, total = sum(1 for o in osds if int(o.get("up", 0))), len(osds)
    found = []
    for pool in pools:
        name, size, min_size = pool.get("pool_name"), int(pool.get("size", 0)), int(pool.get("min_size", 0))
        evidence = f"ceph osd dump: {up} of {total} OSD(s) up; pool {name}: size {size}, min_size {min_size}"
        if up < min_size:
            found.append(
                _finding(
                    "ceph.osds",
                    Severity.BLOCKER,
                    f"Fewer OSDs up ({up}) than pool {name}'s min_size ({min_size}): its I/O blocks",
                    evidence,
                    "Ceph serves a placement group only with min_size copies up: Prometheus' reads and writes wait.",
                    "Start the OSDs that are down (`ceph osd tree down`).",
                )
            )
        elif up < size:
            found.append(
                _finding(
                    "ceph.osds",
                    Severity.WARNING,
                    f"Fewer OSDs up ({up}) than pool {name}'s size ({size}): it is degraded",
                    evidence,
                    "The pool keeps fewer copies than it asks for; one more OSD lost may block or lose data.",
                    "Start the OSDs that are down (`ceph osd tree down`), or add OSDs.",
                )
            )
    return found


def _fullness(client: CephClient, dump: dict[str, Any]) -> list[DoctorFinding]:
    full, nearfull = float(dump.get("full_ratio", 0.95)), float(dump.get("nearfull_ratio", 0.85))
    stats = client.ceph_json("df").get("stats", {})
    total, used = int(stats.get("total_bytes", 0)), int(stats.get("total_used_raw_bytes", 0))
    if total <= 0:
        return []
    ratio = used / total
    evidence = (
        f"ceph df: {used:,} of {total:,} raw bytes used ({ratio:.1%}); full_ratio {full:g}, nearfull_ratio {nearfull:g}"
    )
    if ratio >= full:
        return [
            _finding(
                "ceph.full",
                Severity.BLOCKER,
                f"The cluster is full ({ratio:.1%} used, full_ratio {full:g}): Ceph refuses writes",
                evidence,
                "Past the full ratio Ceph stops every write: Prometheus' WAL writes block or fail.",
                "Free or add space; `ceph osd set-full-ratio` only moves the line.",
            )
        ]
    if ratio >= nearfull:
        return [
            _finding(
                "ceph.full",
                Severity.WARNING,
                f"The cluster is nearly full ({ratio:.1%} used, nearfull_ratio {nearfull:g})",
                evidence,
                f"At {full:g} Ceph refuses every write; Prometheus' TSDB grows until retention removes blocks.",
                "Free or add space before the run, or give the TSDB a retention size below what is left.",
            )
        ]
    return []


def _mds(dump: dict[str, Any], fs_name: str) -> list[DoctorFinding]:
    for fs in dump.get("filesystems", []):
        mdsmap = fs.get("mdsmap", {})
        if mdsmap.get("fs_name") != fs_name:
            continue
        states = [str(info.get("state", "?")) for info in mdsmap.get("info", {}).values()]
        if "up:active" in states:
            return []
        return [
            _finding(
                "ceph.mds",
                Severity.BLOCKER,
                f"No MDS is active for the file system {fs_name}",
                f"ceph fs dump: {fs_name}'s MDS states: {', '.join(states) or 'none'}"
                f"{'; the file system is marked down' if 'down' in mdsmap.get('flags_state', {}) else ''}",
                "Without an active MDS nothing can mount the file system or change its metadata: ceph-fuse "
                "cannot mount, and Prometheus' file creations and renames block.",
                f"Start an MDS (`ceph fs status {fs_name}`); after `ceph fs fail`, "
                f"`ceph fs set {fs_name} joinable true`.",
            )
        ]
    return []  # no such file system: the run's own check names it (exit 2) when it connects


def _caps(client: CephClient, spec: CephClientSpec) -> list[DoctorFinding]:
    try:
        entries = client.ceph_json("auth", "get", client.name)
    except CephError as e:
        return [
            _finding(
                "ceph.caps",
                Severity.INFO,
                f"{client.name} may not read its own caps",
                str(e),
                "The caps decide what the data path may do; the doctor could not see them as this client.",
                f"Check them as an admin: `ceph auth get {client.name}`.",
            )
        ]
    first: dict[str, Any] = entries[0] if isinstance(entries, list) and entries else {}
    caps: dict[str, str] = first.get("caps", {})
    needs = {"mon": "read the cluster maps", "osd": "read and write the pool's objects"}
    if isinstance(spec, CephFsStorage):
        needs["mds"] = "open and change files in the file system"
    missing = [f"{kind} ({what})" for kind, what in needs.items() if not _grants(caps.get(kind, ""), kind)]
    if not missing:
        return []
    return [
        _finding(
            "ceph.caps",
            Severity.BLOCKER,
            f"{client.name}'s caps lack what the data path needs: {', '.join(m.split(' ')[0] for m in missing)}",
            f"ceph auth get {client.name}: caps {caps or 'none'}; missing {'; '.join(missing)}",
            "The client mounts or attaches, then fails or blocks at the first operation its caps do not allow.",
            "`ceph fs authorize FS client.NAME / rw` (CephFS) or caps mon 'profile rbd' osd 'profile rbd pool=POOL' "
            "(RBD).",
        )
    ]


def _grants(cap: str, kind: str) -> bool:
    """Whether a cap string gives what the data path needs of ``kind`` (write for osd and mds, read for mon)."""
    text = cap.replace('"', "").lower()
    if not text:
        return False
    if kind == "mon":
        return "allow" in text and ("r" in text.split("allow", 1)[1] or "profile" in text or "*" in text)
    return "*" in text or "rw" in text or "profile rbd" in text or ("profile" in text and "read-only" not in text)
