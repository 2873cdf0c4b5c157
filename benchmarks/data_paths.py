"""The same fio jobs on each data path the local runtime has, side by side: the local disk, NFS through the harness's
user-space client over FUSE (embedded NFS-Ganesha), and iSCSI through the user-space initiator and a loop device
(embedded tgt). What the user-space paths cost against the disk under them, so a reader can tell the storage from
the path. Writes ``reports/benchmarks/<utc>/data-paths.json`` and prints a table. Numbers, not asserts. Root.

    python benchmarks/data_paths.py [--runtime 10s] [--size 256Mi]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness import fmt
from harness.results.store import atomic_write_text, load_result

ROOT = Path(__file__).resolve().parent.parent
PATHS = {
    "local disk": "{backend: local}",
    "nfs (FUSE client)": "{backend: nfs, server: embedded, claim: {storage_class: '', size: 4Gi}}",
    "iscsi (user-space initiator)": "{backend: iscsi, target_portal: embedded, iqn: 'iqn.2020-02.com:bench', "
    "lun: 1, claim: {storage_class: '', size: 4Gi}}",
}
PROFILES = ("wal-append", "randwrite-4k", "seqwrite-1m", "randread-4k")


def run_path(name: str, storage: str, fio_job: tuple[str, str], reports: Path, work: Path) -> list[dict[str, object]]:
    runtime, size = fio_job
    slug = name.split(" ", maxsplit=1)[0]
    path = work / f"paths-{slug}.yaml"
    jobs = ", ".join(f"{{profile: {p}, runtime: {runtime}, size: {size}}}" for p in PROFILES)
    path.write_text(f"name: paths-{slug}\nduration: 1s\nstorage: {storage}\nloads: {{tsdb: null, fio: [{jobs}]}}\n")
    argv = [sys.executable, "-m", "harness.cli", "run", str(path), "--reports", str(reports), "--workdir", str(work)]
    proc = subprocess.run([*argv, "--no-report", "--skip-doctor"], cwd=ROOT, check=False)
    [result_file] = sorted((reports / f"paths-{slug}").glob("*/result.json"))[-1:]
    result = load_result(result_file)
    rows = []
    for job in result.fio:
        direction = job.write or job.read
        rows.append(
            {
                "path": name,
                "data_access": result.environment.data_access or "a directory on the local disk",
                "exit_code": proc.returncode,
                "profile": job.profile,
                "bw_bytes_per_s": direction.bw_bytes_per_s if direction else None,
                "iops": direction.iops if direction else None,
                "clat_p99_ns": direction.clat_percentiles_ns.get("p99") if direction else None,
                "sync_p99_ns": job.sync_lat_ns_percentiles.get("p99"),
                "error": job.error,
            }
        )
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime", default="10s", help="per fio job")
    p.add_argument("--size", default="256Mi", help="per fio job")
    args = p.parse_args()
    out_dir = ROOT / "reports" / "benchmarks" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="harness-paths-", dir="/tmp") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        for name, storage in PATHS.items():
            rows += run_path(name, storage, (args.runtime, args.size), out_dir / "runs", work)
    atomic_write_text(out_dir / "data-paths.json", json.dumps({"runtime": args.runtime, "rows": rows}, indent=2))
    table = Table(title=f"fio on each data path ({args.runtime} per job)")
    for column in ("profile", "path", "bandwidth", "IOPS", "p99 latency", "p99 sync"):
        table.add_column(column)
    for profile in PROFILES:
        for row in (r for r in rows if r["profile"] == profile):
            table.add_row(
                profile,
                str(row["path"]),
                fmt.rate(row["bw_bytes_per_s"]),  # type: ignore[arg-type]
                fmt.count(row["iops"]),  # type: ignore[arg-type]
                fmt.latency_ns(row["clat_p99_ns"]),  # type: ignore[arg-type]
                fmt.latency_ns(row["sync_p99_ns"]),  # type: ignore[arg-type]
            )
    Console().print(table)
    print(f"results: {out_dir / 'data-paths.json'}")
    return 0 if all(r["exit_code"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
