"""Section 1: the same fio job run by the harness (a fio-only scenario: no Prometheus, no TSDB load) and run directly
with the argv the harness recorded in its result, interleaved and repeated, on the local disk. Bandwidth and p99
completion-latency ratios (harness / direct) per profile."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import ROOT, fmt_spread, spread
from harness.loads.fio_output import load_fio_json
from harness.results.store import load_result

BW_TARGET = 0.97
P99_TARGET = 0.05


def _scenario(profiles: list[str], runtime: str, size: str) -> str:
    jobs = ", ".join(f"{{profile: {p}, runtime: {runtime}, size: {size}}}" for p in profiles)
    return f"name: bench-fio\nduration: 1s\nstorage: {{backend: local}}\nloads: {{tsdb: null, fio: [{jobs}]}}\n"


def harness_run(work: Path, profiles: list[str], runtime: str, size: str) -> tuple[list[dict[str, object]], float]:
    path = work / "bench-fio.yaml"
    path.write_text(_scenario(profiles, runtime, size))
    reports = work / "reports"
    argv = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        str(path),
        "--reports",
        str(reports),
        "--workdir",
        str(work),
        "--no-report",
        "--skip-doctor",
    ]
    t0 = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=600, check=False)
    wall = time.monotonic() - t0
    results = sorted((reports / "bench-fio").glob("*/result.json"))
    if done.returncode != 0 or not results:
        raise RuntimeError(f"harness run exited {done.returncode}: {done.stderr.decode()[-800:]}")
    result = load_result(results[-1])
    jobs = []
    for job in result.fio:
        d = job.write or job.read
        jobs.append(
            {
                "profile": job.profile,
                "argv": job.argv,
                "bw": d.bw_bytes_per_s if d else None,
                "p99_ns": d.clat_percentiles_ns.get("p99") if d else None,
                "sync_p99_ns": job.sync_lat_ns_percentiles.get("p99"),
            }
        )
    return jobs, wall


def direct_argv(argv: list[str], directory: Path) -> list[str]:
    """The harness' argv with its (removed) data directory, log prefix and JSON output moved to ``directory``."""
    moved = {"--directory": str(directory), "--output": str(directory / "fio.json")}
    moved |= dict.fromkeys(("--write_bw_log", "--write_iops_log", "--write_lat_log"), str(directory / "log"))
    out = []
    for arg in argv:
        key = arg.split("=", 1)[0]
        out.append(f"{key}={moved[key]}" if key in moved else arg)
    return out


def direct_run(argv: list[str], directory: Path) -> dict[str, object]:
    directory.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(direct_argv(argv, directory), capture_output=True, text=True, timeout=600, check=False)
        written = directory / "fio.json"
        doc = load_fio_json(written.read_text() if written.exists() else done.stdout + done.stderr)
    finally:
        for f in directory.iterdir():
            f.unlink()
        directory.rmdir()
    job = doc["jobs"][0]
    d = job["write"] if int(job["write"].get("io_bytes", 0)) > 0 else job["read"]
    sync = job.get("sync", {}).get("lat_ns", {})
    return {
        "bw": float(d["bw_bytes"]),
        "p99_ns": float(d["clat_ns"]["percentile"]["99.000000"]),
        "sync_p99_ns": float(sync["percentile"]["99.000000"]) if int(sync.get("N", 0)) > 0 else None,
    }


def run(work: Path, profiles: list[str], runtime: str, size: str, reps: int) -> dict[str, object]:
    runs: list[dict[str, object]] = []
    argvs: dict[str, list[str]] = {}
    for rep in range(reps):
        # Alternate which goes first, so drift of the shared disk does not favour one side.
        order = ["harness", "direct"] if rep % 2 == 0 else ["direct", "harness"]
        for side in order:
            if side == "direct" and not argvs:
                # The argv is taken from a harness run: the first repetition starts with one.
                jobs, wall = harness_run(work, profiles, runtime, size)
                argvs = {str(j["profile"]): list(j["argv"]) for j in jobs}
                runs += [{"side": "harness", "rep": rep, "wall_s": wall, **j} for j in jobs]
                continue
            if side == "harness":
                jobs, wall = harness_run(work, profiles, runtime, size)
                argvs = argvs or {str(j["profile"]): list(j["argv"]) for j in jobs}
                runs += [{"side": "harness", "rep": rep, "wall_s": wall, **j} for j in jobs]
            else:
                for profile, argv in argvs.items():
                    runs.append(
                        {
                            "side": "direct",
                            "rep": rep,
                            "profile": profile,
                            **direct_run(argv, work / f"direct-{profile}"),
                        }
                    )
    summary = []
    for profile in profiles:
        h = [r for r in runs if r["side"] == "harness" and r["profile"] == profile]
        d = [r for r in runs if r["side"] == "direct" and r["profile"] == profile]
        bw_ratio = [float(a["bw"]) / float(b["bw"]) for a, b in zip(h, d, strict=False) if a["bw"] and b["bw"]]
        p99_ratio = [
            float(a["p99_ns"]) / float(b["p99_ns"]) for a, b in zip(h, d, strict=False) if a["p99_ns"] and b["p99_ns"]
        ]
        summary.append(
            {
                "profile": profile,
                "harness_bw": spread([float(r["bw"]) for r in h if r["bw"]]),
                "direct_bw": spread([float(r["bw"]) for r in d if r["bw"]]),
                "bw_ratio": spread(bw_ratio),
                "p99_ratio": spread(p99_ratio),
                "verdict": verdict(bw_ratio, p99_ratio, [float(r["bw"]) for r in d if r["bw"]]),
            }
        )
    return {
        "profiles": profiles,
        "runtime": runtime,
        "size": size,
        "reps": reps,
        "argv": argvs,
        "runs": runs,
        "summary": summary,
        "harness_wall_s": spread([float(r["wall_s"]) for r in runs if r["side"] == "harness"][:: len(profiles)]),
        "data_paths": "NFS and iSCSI paths not measured in this run: each needs root and an embedded server per run "
        "(about a minute each per repetition); benchmarks/data_paths.py (nox -s benchmark-paths) measures them",
    }


def verdict(bw_ratio: list[float], p99_ratio: list[float], direct_bw: list[float]) -> str:
    if not bw_ratio:
        return "no pairs measured"
    noise = (max(direct_bw) / min(direct_bw) - 1) if len(direct_bw) > 1 else 0.0
    bw = sorted(bw_ratio)[len(bw_ratio) // 2]
    p99 = sorted(p99_ratio)[len(p99_ratio) // 2] if p99_ratio else None
    parts = [f"bandwidth {'met' if bw >= BW_TARGET else f'missed by {BW_TARGET - bw:.3f}'} (>= {BW_TARGET})"]
    if p99 is not None:
        within = abs(p99 - 1) <= P99_TARGET
        parts.append(f"p99 {'within' if within else f'off by {abs(p99 - 1):.0%}, outside'} 5%")
    if noise > 2 * (1 - BW_TARGET):
        parts.append(f"spread too large to tell: direct runs alone differ by {noise:.0%} (min-max)")
    return "; ".join(parts)


def markdown(res: dict[str, object]) -> str:
    lines = [
        f"Each profile {res['runtime']} x {res['reps']} repetitions, size {res['size']}, harness and direct runs "
        "interleaved (order alternating). Harness: `harness run` of a fio-only scenario (`tsdb: null`, no faults: no "
        "Prometheus); direct: the argv from the harness' stored result (below), its data directory, log prefix "
        "and `--output` moved "
        "to a directory of the benchmark on the same filesystem.",
        "",
        "| profile | harness bandwidth MiB/s | direct bandwidth MiB/s | bandwidth ratio | p99 latency ratio "
        "| verdict |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for s in res["summary"]:
        lines.append(
            f"| {s['profile']} | {fmt_spread(s['harness_bw'], 1, 2**20)} | {fmt_spread(s['direct_bw'], 1, 2**20)} | "
            f"{fmt_spread(s['bw_ratio'])} | {fmt_spread(s['p99_ratio'])} | {s['verdict']} |"
        )
    lines += ["", f"Wall time of one harness run (all profiles): {fmt_spread(res['harness_wall_s'], 1)} s.", ""]
    lines.append("The harness' fio argv (per profile), run directly with the three paths moved:")
    lines.append("")
    for profile, argv in res["argv"].items():
        lines.append(f"- {profile}: `{' '.join(argv)}`")
    lines += ["", str(res["data_paths"]) + "."]
    return "\n".join(lines)
