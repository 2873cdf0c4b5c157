"""The benchmark run behind ``nox -s benchmark``: the harness against its peers and its limits, every section a
ratio measured in this one session on this machine, written to ``reports/benchmarks/<utc>/report.md`` with every
number in ``report.json``. Numbers, not asserts: the run fails only when it cannot run.

    python -m benchmarks.run [--quick | --full] [--false-alarms N] [--reports DIR] [--workdir DIR] [--sections KEY,...]

--quick is a smoke run (small sizes, one repetition: the numbers mean little) and leaves out section 7 (compare's
false alarms, about 10 s per run: N + 7 runs) unless --false-alarms N asks for it; --full adds 50M samples to the
verification cost (several more minutes). --false-alarms N sets section 7's number of comparisons (0: left out).
--sections runs only those (keys of TITLES, e.g. promtool_ceiling, the one that needs Go where the Go module cache
lacks prometheus' 20kseries.json); the others are listed as not run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import false_alarms, fio_overhead, ledger_cost, load_peers, promtool_ceiling, sharding, verify_cost
from benchmarks.common import ROOT, machine
from harness.results.store import atomic_write_text

SMOKE = " (smoke run: sizes too small for the numbers to mean much)"
TITLES = {
    "fio_overhead": "1. fio overhead: harness vs fio run directly",
    "load_peers": "2. Load generator vs the peers",
    "promtool_ceiling": "3. Prometheus' own ceiling: promtool tsdb bench write",
    "verify_cost": "4. Verification cost",
    "ledger_cost": "5. Ledger overhead",
    "sharding": "6. Scale past one generator",
    "false_alarms": "7. Compare's false alarms on identical runs",
}
FALSE_ALARMS_N = 10  # section 7's comparisons by default: N + 7 runs of about 10 s


def sizes(quick: bool, full: bool, false_alarms_n: int | None = None) -> dict[str, dict[str, object]]:
    # Section 7 is a few minutes of runs whatever the mode: --quick leaves it out unless asked for.
    n = false_alarms_n if false_alarms_n is not None else 0 if quick else FALSE_ALARMS_N
    extra: dict[str, dict[str, object]] = {"false_alarms": {"n": n, "repeat": 8}} if n > 0 else {}
    return _sizes(quick, full) | extra


def _sizes(quick: bool, full: bool) -> dict[str, dict[str, object]]:
    if quick:
        return {
            "fio_overhead": {"profiles": ["wal-append"], "runtime": "1s", "size": "16Mi", "reps": 1},
            # avalanche when already built (the build is minutes cold): scripts/build-avalanche
            "load_peers": {"steps": [2000], "reps": 1, "warmup_s": 6.0, "window_s": 3.0, "build_avalanche": False},
            "promtool_ceiling": {"metrics": 2000, "scrapes": 50, "reps": 1},
            "verify_cost": {
                "sizes": [100_000],
                "growth_samples": 100_000,
                "growth_series": [1000, 10_000],
                "big_series": 10_000,
                "reps": 1,
            },
            "ledger_cost": {"series": 10_000, "ticks": 100, "reps": 1},
            "sharding": {
                "series": 4000,
                "batch": 1000,
                "shard_counts": [1, 2],
                "reps": 1,
                "warmup_s": 3.0,
                "window_s": 3.0,
            },
        }
    return {
        "fio_overhead": {"profiles": ["wal-append", "randwrite-4k"], "runtime": "5s", "size": "128Mi", "reps": 3},
        # Offers stepped up until each generator falls behind (it is then offered no more): limits, not offers.
        "load_peers": {
            "steps": [50_000, 100_000, 200_000, 400_000, 800_000],
            "reps": 2,
            "warmup_s": 8.0,
            "window_s": 15.0,
        },
        "promtool_ceiling": {"metrics": 20_000, "scrapes": 1000, "reps": 3},
        "verify_cost": {
            "sizes": [1_000_000, 10_000_000] + ([50_000_000] if full else []),
            "growth_samples": 1_000_000,
            "growth_series": [10_000, 100_000],
            "big_series": 100_000,
            "wide": [[10_000_000, 1_000_000]],
            "reps": 1,
        },
        "ledger_cost": {"series": 100_000, "ticks": 600, "reps": 3},
        # Requests of 1,000 series (Prometheus' sender sends at most 2,000): one writer, one request in flight,
        # falls behind 150k samples/s here before Prometheus does.
        "sharding": {
            "series": 150_000,
            "batch": 1000,
            "shard_counts": [1, 2, 4],
            "reps": 2,
            "warmup_s": 8.0,
            "window_s": 15.0,
        },
    }


def _sections(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in TITLES]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown) or 'none'}: the sections are {', '.join(TITLES)}")
    return keys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smoke run: small sizes, one repetition")
    mode.add_argument("--full", action="store_true", help="also verify 50M samples")
    p.add_argument(
        "--false-alarms",
        type=int,
        metavar="N",
        help=f"section 7's comparisons of identical runs (default {FALSE_ALARMS_N}; --quick: 0, left out)",
    )
    p.add_argument("--reports", default=str(ROOT / "reports"), help="the report goes to REPORTS/benchmarks/<utc>/")
    p.add_argument("--workdir", default=tempfile.gettempdir(), help="where the data (fio files, Prometheus TSDBs) goes")
    p.add_argument(
        "--sections",
        type=_sections,
        default=list(TITLES),
        help=f"comma-separated, run only these (default: all of {','.join(TITLES)})",
    )
    args = p.parse_args()
    started = datetime.now(UTC)
    out_dir = Path(args.reports) / "benchmarks" / started.strftime("%Y%m%dT%H%M%SZ")
    params = sizes(args.quick, args.full, args.false_alarms)
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="harness-bench-", dir=args.workdir))
    work.chmod(0o755)  # Prometheus runs as the scenario's uid when the harness runs as root
    results: dict[str, object] = {}
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    try:
        info = machine(work)

        def section(key: str, fn: Callable[[], dict[str, object]]) -> None:
            if key not in args.sections:
                return
            print(f"== {TITLES[key]}", flush=True)
            t0 = time.monotonic()
            try:
                results[key] = fn()
            except Exception as e:  # noqa: BLE001 - a section that cannot run is reported; the others still run
                errors[key] = f"{type(e).__name__}: {e}"
                traceback.print_exc()
            timings[key] = round(time.monotonic() - t0, 1)

        section("fio_overhead", lambda: fio_overhead.run(work, **params["fio_overhead"]))
        section("load_peers", lambda: load_peers.run(work, **params["load_peers"]))
        section("promtool_ceiling", lambda: promtool_ceiling.run(work, **params["promtool_ceiling"]))
        section("verify_cost", lambda: verify_cost.run(work, **params["verify_cost"]))
        verify_runs = results.get("verify_cost", {}).get("runs", [])
        section("ledger_cost", lambda: ledger_cost.run(work, **params["ledger_cost"], verify_runs=verify_runs))
        section("sharding", lambda: sharding.run(work, **params["sharding"]))
        if "false_alarms" in params:
            section("false_alarms", lambda: false_alarms.run(work, **params["false_alarms"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = {
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "command": shlex.join([sys.executable, "-m", "benchmarks.run", *sys.argv[1:]]),
        "mode": "quick" if args.quick else "full" if args.full else "default",
        "sections": args.sections,
        "machine": info,
        "parameters": params,
        "section_seconds": timings,
        "results": results,
        "errors": errors,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "report.json", json.dumps(doc, indent=2, default=str))
    atomic_write_text(out_dir / "report.md", markdown(doc))
    print(f"written: {out_dir / 'report.md'}")
    return 0 if not errors else 2


def markdown(doc: dict[str, object]) -> str:
    m: dict[str, object] = doc["machine"]
    res: dict[str, dict[str, object]] = doc["results"]
    errors: dict[str, str] = doc["errors"]
    lines = [
        f"# Harness benchmark, {doc['started']}",
        "",
        f"Mode: {doc['mode']}{SMOKE if doc['mode'] == 'quick' else ''}. "
        "Every ratio is measured in this one session on this machine, runs interleaved and repeated; medians with "
        "(min-max, n). **The machine is shared and noisy**: other jobs may use the same cores during the run, which "
        "widens the spreads.",
        "",
        f"- Command: `{doc['command']}` (`nox -s benchmark` runs `python -m benchmarks.run`)",
        f"- CPU: {m['cpu_model']}, {m['cores']} cores; memory {m['memory_gib']} GiB; kernel {m['kernel']}; "
        f"load average at start {m['loadavg_at_start']}",
        f"- Storage for every section: {m['storage_path']} on `{m['filesystem']}`",
        f"- {m['prometheus']}; {m['fio']}; Python {m['python']}",
        f"- Section durations (s): {doc['section_seconds']}",
        "",
    ]
    harness_best = agent_best = writer_cpu = None
    if "load_peers" in res:
        summary = res["load_peers"]["summary"]
        harness_best = load_peers.best(summary, "harness writer")
        agent_best = load_peers.best(summary, "prometheus agent (remote-write sender)")
        cpu = [
            s["generator_cpu_s_per_million"]["median"]
            for s in summary
            if s["peer"] == "harness writer" and s["generator_cpu_s_per_million"]["n"]
        ]
        writer_cpu = sorted(cpu)[len(cpu) // 2] if cpu else None
    bodies: dict[str, Callable[[], str]] = {
        "fio_overhead": lambda: fio_overhead.markdown(res["fio_overhead"]),
        "load_peers": lambda: load_peers.markdown(res["load_peers"]),
        "promtool_ceiling": lambda: promtool_ceiling.markdown(res["promtool_ceiling"], harness_best, agent_best),
        "verify_cost": lambda: verify_cost.markdown(res["verify_cost"], doc["mode"] == "full"),
        "ledger_cost": lambda: ledger_cost.markdown(res["ledger_cost"], writer_cpu),
        "sharding": lambda: sharding.markdown(res["sharding"]),
        "false_alarms": lambda: false_alarms.markdown(res["false_alarms"]),
    }
    for key, title in TITLES.items():
        lines += [f"## {title}", ""]
        if key not in doc["sections"]:
            lines.append("Not run: not among --sections.")
        elif key not in res and key not in errors:
            lines.append("Not run: `--quick` leaves it out (and `--false-alarms 0`); `--false-alarms N` runs it.")
        elif key in errors:
            lines.append(f"Could not run: {errors[key]}")
        else:
            lines.append(bodies[key]())
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
