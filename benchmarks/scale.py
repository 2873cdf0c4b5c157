"""Section "scale": what a growing head costs, on each data path. For 100k, 300k and 1M series (15 s interval, a
SIGKILL two thirds in, Prometheus restarted on the same directory) through ``harness run`` on the local runtime, on
the local disk and through the user-space NFS path (embedded NFS-Ganesha, the harness's FUSE client): Prometheus' peak
RSS and WAL size (sampled from /proc and the WAL directory while it runs), the WAL replay time it logged, and the
history check's time per checkpoint; each figure with its ratio to the previous size, so how cost grows with the work
is visible. Writes ``reports/benchmarks/<utc>/scale.json`` and ``scale.md``. Numbers, not asserts. Root.

    python benchmarks/scale.py [--series 100000 300000 1000000] [--paths local nfs] [--duration 2m]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from harness.results.store import atomic_write_text, load_result
from harness.scenario.units import parse_duration_s

ROOT = Path(__file__).resolve().parent.parent
PATHS = {
    "local": "{backend: local}",
    "nfs": "{backend: nfs, server: embedded, claim: {storage_class: '', size: 8Gi}}",
}
PATH_NAMES = {"local": "local disk", "nfs": "NFS (user-space FUSE client, embedded NFS-Ganesha)"}


def scenario_text(series: int, duration_s: float, storage: str) -> str:
    return (
        f"name: scale-{series}\nduration: {duration_s:g}s\nstorage: {storage}\n"
        f"prometheus: {{ready_timeout: 10m}}\n"
        f"loads: {{tsdb: {{series: {series}, interval: 15s, metrics: 20}}}}\n"
        f"faults: [{{action: sigkill, at: {round(duration_s * 2 / 3)}s}}]\n"
        "checks: {max_recovery: 10m}\n"
    )


class _Watch(threading.Thread):
    """Peak RSS of the Prometheus processes whose command line names ``work``, and the largest WAL directory."""

    def __init__(self, work: Path) -> None:
        super().__init__(daemon=True)
        self.work, self.rss_bytes, self.wal_bytes = str(work), 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            for proc in Path("/proc").glob("[0-9]*"):
                try:
                    argv = (proc / "cmdline").read_bytes().split(b"\0")
                    if not argv[0].endswith(b"prometheus") or self.work.encode() not in b" ".join(argv):
                        continue
                    status = (proc / "status").read_text()
                except OSError:
                    continue
                rss = next((int(x.split()[1]) * 1024 for x in status.splitlines() if x.startswith("VmRSS:")), 0)
                self.rss_bytes = max(self.rss_bytes, rss)
                for arg in argv:
                    if arg.startswith(b"--storage.tsdb.path="):
                        wal = Path(arg.split(b"=", 1)[1].decode()) / "wal"
                        try:
                            size = sum(f.stat().st_size for f in wal.iterdir())
                        except OSError:
                            continue
                        self.wal_bytes = max(self.wal_bytes, size)


def run_one(series: int, path: str, duration_s: float, reports: Path, work: Path) -> dict[str, object]:
    name = f"scale-{series}"
    scenario = work / f"{name}-{path}.yaml"
    scenario.write_text(scenario_text(series, duration_s, PATHS[path]))
    watch = _Watch(work)
    watch.start()
    t0 = time.monotonic()
    argv = [sys.executable, "-m", "harness.cli", "run", str(scenario), "--reports", str(reports / path)]
    proc = subprocess.run([*argv, "--workdir", str(work), "--no-report"], cwd=ROOT, check=False)
    watch.done.set()
    watch.join()
    results = sorted((reports / path / name).glob("*/result.json"))
    if not results:
        return {"series": series, "path": path, "exit_code": proc.returncode, "error": "no result stored"}
    result = load_result(results[-1])
    return {
        "series": series,
        "path": path,
        "exit_code": proc.returncode,
        "verdict": result.verdict.value,
        "wall_s": round(time.monotonic() - t0, 1),
        "acked_samples": sum(p.acked_samples for p in result.ingest),
        "prometheus_peak_rss_mib": round(watch.rss_bytes / 2**20, 1),
        "wal_mib": round(watch.wal_bytes / 2**20, 1),
        "wal_replay_s": max((f.wal_replay_s for f in result.faults if f.wal_replay_s is not None), default=None),
        "ready_s": max(
            (r for f in result.faults if (r := _after(f.ready_at_s, f.injected_at_s)) is not None), default=None
        ),
        "first_sample_s": max((f.recovery_s for f in result.faults if f.recovery_s is not None), default=None),
        "checks": [
            {"label": c.label, "samples": c.acknowledged, "lost": c.lost, "check_s": c.check_duration_s}
            for c in result.durability
        ],
        "check_s": max((c.check_duration_s or 0.0 for c in result.durability), default=None),
        "lost": max((c.lost for c in result.durability), default=None),
    }


def _after(at: float | None, since: float) -> float | None:
    return None if at is None else at - since


FIGURES = (
    ("prometheus_peak_rss_mib", "Prometheus peak RSS MiB"),
    ("wal_mib", "WAL MiB"),
    ("wal_replay_s", "WAL replay s"),
    ("check_s", "longest history check s"),
)


def markdown(rows: list[dict[str, object]], duration: str) -> str:
    lines = [
        f"Each run: `harness run` of 1 writer, 20 metrics, 15 s interval, {duration}, a SIGKILL two thirds in, "
        "local runtime. Ratios are to the previous size on the same path.",
        "",
        "| path | series | exit | lost | " + " | ".join(title for _, title in FIGURES) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(FIGURES),
    ]
    for path in PATHS:
        previous: dict[str, object] | None = None
        for row in (r for r in rows if r["path"] == path):
            cells = []
            for key, _ in FIGURES:
                v, p = row.get(key), (previous or {}).get(key)
                ratio = f" ({v / p:.2f}x)" if isinstance(v, float | int) and isinstance(p, float | int) and p else ""
                cells.append(f"{v:,.1f}{ratio}" if isinstance(v, float | int) else "n/a")
            lines.append(
                f"| {PATH_NAMES[path]} | {row['series']:,} | {row['exit_code']} | {row.get('lost', 'n/a')} | "
                + " | ".join(cells)
                + " |"
            )
            previous = row
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS))
    parser.add_argument("--duration", default="2m")
    parser.add_argument("--reports", default=str(ROOT / "reports"))
    args = parser.parse_args()
    out_dir = Path(args.reports) / "benchmarks" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    rows = []
    with tempfile.TemporaryDirectory(prefix="harness-bench-", dir="/tmp") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # Prometheus runs as the scenario's uid when we are root
        for path in args.paths:
            for series in args.series:
                rows.append(run_one(series, path, parse_duration_s(args.duration), out_dir / "runs", work))
                print(json.dumps(rows[-1]), flush=True)
    atomic_write_text(out_dir / "scale.json", json.dumps({"duration": args.duration, "runs": rows}, indent=2))
    atomic_write_text(out_dir / "scale.md", markdown(rows, args.duration))
    print(markdown(rows, args.duration))
    print(f"written: {out_dir / 'scale.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
