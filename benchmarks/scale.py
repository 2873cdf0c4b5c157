"""How the harness itself scales: the write load, the recovery timeline and the history check at growing series counts.

Runs ``harness run`` on generated scenarios (local runtime, persistent storage, one SIGKILL) and collects, from the
stored results alone, the numbers that matter for the harness's own speed: acknowledged samples per second, history
check duration per checkpoint, samples checked per second, ledger size, recovery and WAL replay times. Writes
``reports/benchmarks/<utc>/benchmark.json`` and prints a table. Numbers, not asserts: a slow machine is not a bug.

    python benchmarks/scale.py [--series 20000 100000] [--duration 30s]
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

from harness.results.store import atomic_write_text, load_result
from harness.scenario.units import parse_duration_s

ROOT = Path(__file__).resolve().parent.parent


def scenario_text(series: int, duration_s: float) -> str:
    return (
        f"name: bench-{series}\nduration: {duration_s:g}s\nstorage: {{backend: local}}\n"
        f"loads: {{tsdb: {{series: {series}, interval: 1s, metrics: 20}}}}\n"
        f"faults: [{{action: sigkill, at: {duration_s / 2:g}s}}]\n"
    )


def run_one(series: int, duration_s: float, reports: Path, work: Path) -> dict[str, object]:
    path = work / f"bench-{series}.yaml"
    path.write_text(scenario_text(series, duration_s))
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(path), "--reports", str(reports), "--workdir", str(work)],
        cwd=ROOT,
        check=False,
    )
    [result_file] = sorted((reports / f"bench-{series}").glob("*/result.json"))[-1:]
    result = load_result(result_file)
    acked = sum(p.acked_samples for p in result.ingest)
    active_s = max(1, len([p for p in result.ingest if p.acked_samples > 0]))
    ledger = result_file.parent / "tsdb-ledger.json"
    return {
        "series": series,
        "exit_code": proc.returncode,
        "verdict": result.verdict.value,
        "acked_samples": acked,
        "acked_samples_per_s": round(acked / active_s),
        "ledger_bytes": ledger.stat().st_size if ledger.exists() else None,
        "checks": [
            {
                "label": c.label,
                "samples": c.acknowledged,
                "lost": c.lost,
                "check_duration_s": c.check_duration_s,
                "samples_per_s": round(c.acknowledged / c.check_duration_s) if c.check_duration_s else None,
            }
            for c in result.durability
        ],
        "recovery_s": [f.recovery_s for f in result.faults],
        "wal_replay_s": [f.wal_replay_s for f in result.faults],
        "run_dir": str(result_file.parent),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--duration", default="30s")
    parser.add_argument("--reports", default=str(ROOT / "reports"))
    args = parser.parse_args()
    out_dir = Path(args.reports) / "benchmarks" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    rows = []
    with tempfile.TemporaryDirectory(prefix="harness-bench-", dir="/tmp") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # Prometheus runs as the scenario's uid when we are root
        for series in args.series:
            rows.append(run_one(series, parse_duration_s(args.duration), out_dir / "runs", work))
    atomic_write_text(out_dir / "benchmark.json", json.dumps({"duration": args.duration, "runs": rows}, indent=2))
    table = Table(title=f"harness scale benchmark ({args.duration} per run)")
    for col in ("series", "verdict", "acked/s", "ledger", "checkpoint", "samples", "check s", "checked/s", "recovery"):
        table.add_column(col, justify="right")
    for row in rows:
        for i, check in enumerate(row["checks"]):  # type: ignore[arg-type]
            first = i == 0
            table.add_row(
                f"{row['series']:,}" if first else "",
                str(row["verdict"]) if first else "",
                f"{row['acked_samples_per_s']:,}" if first else "",
                f"{row['ledger_bytes']:,} B" if first and row["ledger_bytes"] else "",
                check["label"],
                f"{check['samples']:,}",
                f"{check['check_duration_s']:.2f}",
                f"{check['samples_per_s']:,}" if check["samples_per_s"] else "",
                ", ".join(f"{r:.2f} s" for r in row["recovery_s"] if r is not None) if first else "",  # type: ignore[attr-defined]
            )
    Console(width=160).print(table)
    print(f"written: {out_dir / 'benchmark.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
