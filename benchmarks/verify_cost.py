"""Section 4: what the history check (``harness/checks/history.py``) costs. The harness writer fills a fresh
Prometheus with N acknowledged samples (100 ms interval, so it writes as fast as it can), Prometheus is restarted
(the samples come back from its WAL), and the check runs in its own process against it: wall time, and peak memory
from the process' own VmHWM, before and after the check. Then the same check runs again while a writer
loads the restarted Prometheus (the case right after a fault, with the load still running)."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import (
    ROOT,
    BenchError,
    Prom,
    fmt_spread,
    prometheus,
    prometheus_binaries,
    prometheus_command,
    spread,
    stop_process,
)
from harness.checks.history import QUERY_CONCURRENCY

RATE_TARGET_END = 3_000_000  # samples verified per second at the end of a run (the target)
RATE_TARGET_LOADED = 3_000_000  # ... and right after a fault, with the load still running (the target too)
# The running load offers at most this many samples/s (its interval grows with the series: 1M series at 10 s), about
# what Prometheus takes on 2 cores: a load it cannot carry would measure its saturation, not the check.
LOAD_OFFER = 100_000
LOAD_RAMP_S = 5.0  # the running load's first ticks, before the check starts
WRITE_RATE_FLOOR = 20_000  # bound on how long filling may take: samples / this + a minute


def _child(args: list[str], log: Path, timeout_s: float) -> tuple[dict[str, object], int]:
    """Run a benchmark child; its JSON line and its peak RSS in KiB (wait4)."""
    with log.open("ab") as err:
        p = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.child", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=err
        )
    deadline = time.monotonic() + timeout_s
    try:
        assert p.stdout is not None
        out = b""
        while time.monotonic() < deadline:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                out = p.stdout.read()
                p.returncode = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.2)
        else:
            raise BenchError(f"benchmarks.child {args[0]} did not finish within {timeout_s:g} s; see {log}")
    finally:
        stop_process(p)
    if p.returncode != 0:
        raise BenchError(f"benchmarks.child {args[0]} exited {p.returncode}; see {log}")
    return json.loads(out.decode().strip().splitlines()[-1]), int(ru.ru_maxrss)


def one(work: Path, samples: int, series: int, binaries: dict[str, str]) -> list[dict[str, object]]:
    """Fill once (with the first of ``binaries``), then check against each Prometheus restarted on the same data."""
    name = f"v-{samples}-{series}-{time.monotonic_ns()}"
    ledger = work / f"{name}.ledger.json"
    log = work / f"{name}.log"
    first = next(iter(binaries.values()))
    try:
        with prometheus(work, name, binary=first) as prom:
            data = prom.data
            filled, _ = _child(
                [
                    "writer",
                    prom.url,
                    "--series",
                    str(series),
                    "--metrics",
                    "20",
                    "--interval",
                    "100ms",
                    "--seconds",
                    str(samples / WRITE_RATE_FLOOR + 60),
                    "--target-samples",
                    str(samples),
                    "--ledger",
                    str(ledger),
                ],
                log,
                samples / WRITE_RATE_FLOOR + 120,
            )
        # Every later check names this cut-off: the loaded check's writer adds samples after it to the same series.
        cutoff_ms = int(time.time() * 1000)
        rows = []
        for version, binary in binaries.items():
            t0 = time.monotonic()
            with prometheus(work, f"{name}-{version}", data=data, binary=binary) as prom:
                restart_s = time.monotonic() - t0
                cpu0 = prom.cpu_s()
                checked, _ = _child(["verify", prom.url, str(ledger), "--cutoff-ms", str(cutoff_ms)], log, 1800)
                prom_cpu = prom.cpu_s() - cpu0
                loaded = _loaded_check(prom, ledger, log, series=series, cutoff_ms=cutoff_ms)
            rows.append(
                {
                    "samples_target": samples,
                    "series": series,
                    "prometheus": version,
                    "acknowledged": checked["acknowledged"],
                    "lost": checked["lost"],
                    "check_s": checked["check_s"],
                    "verified_per_s": float(checked["acknowledged"]) / max(float(checked["check_s"]), 1e-9),
                    "peak_rss_mib": float(checked["maxrss_kib"]) / 1024,
                    "rss_before_check_mib": float(checked["maxrss_before_check_kib"]) / 1024,
                    "restart_ready_s": restart_s,
                    "prometheus_cpu_s": prom_cpu,
                    "fill_s": filled["wall_s"],
                    "ledger_bytes": filled["ledger_bytes"],
                    "acknowledged_in_ledger": filled["acknowledged_in_ledger"],
                    "reached_target": filled["reached_target"],
                    **loaded,
                }
            )
        return rows
    finally:
        ledger.unlink(missing_ok=True)


def _loaded_check(prom: Prom, ledger: Path, log: Path, *, series: int, cutoff_ms: int) -> dict[str, object]:
    """The check again, while a writer sends the same series at 1 s (new timestamps, after the cut-off)."""
    with log.open("ab") as err:
        load = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.child", "writer", prom.url, "--series", str(series), "--metrics", "20",
             "--interval", f"{_load_interval_s(series)}s", "--seconds", "1800"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        time.sleep(LOAD_RAMP_S + _load_interval_s(series) - 1)  # its first tick may wait for the next interval
        appended0 = prom.appended()
        t0 = time.monotonic()
        checked, _ = _child(["verify", prom.url, str(ledger), "--cutoff-ms", str(cutoff_ms)], log, 1800)
        took = time.monotonic() - t0
        load_rate = (prom.appended() - appended0) / took
        if load.poll() is not None:
            raise BenchError(f"the running load exited {load.returncode} during the check; see {log}")
    finally:
        stop_process(load)
    return {
        "loaded_check_s": checked["check_s"],
        "loaded_verified_per_s": float(checked["acknowledged"]) / max(float(checked["check_s"]), 1e-9),
        "loaded_lost": checked["lost"],
        "load_samples_per_s": load_rate,
    }


def run(
    work: Path,
    *,
    sizes: list[int],
    growth_samples: int,
    growth_series: list[int],
    big_series: int,
    reps: int,
    wide: list[list[int]] | None = None,
) -> dict[str, object]:
    """``wide``: more (samples, series) cases, e.g. 10M samples in 1M series (10 per series: Prometheus' cost per
    series decides the rate there)."""
    cases = [(n, big_series) for n in sizes] + [(growth_samples, s) for s in growth_series if s != big_series]
    cases += [(int(n), int(s)) for n, s in wide or [] if (int(n), int(s)) not in cases]
    binaries = prometheus_binaries()
    runs: list[dict[str, object]] = []
    for rep in range(reps):
        for samples, series in cases:
            try:
                rows = one(work, samples, series, binaries)
            except Exception as e:  # noqa: BLE001 - reported, the other cases still run
                error = f"{type(e).__name__}: {e}"
                rows = [
                    {"samples_target": samples, "series": series, "prometheus": v, "error": error} for v in binaries
                ]
            runs += [{**row, "rep": rep} for row in rows]
    summary = []
    for (samples, series), version in itertools.product(dict.fromkeys(cases), binaries):
        mine = [r for r in runs if (r["samples_target"], r["series"], r["prometheus"]) == (samples, series, version)]
        ok = [r for r in mine if "error" not in r]
        summary.append(
            {
                "samples": samples,
                "series": series,
                "prometheus": version,
                "acknowledged": spread([float(r["acknowledged"]) for r in ok]),
                "check_s": spread([float(r["check_s"]) for r in ok]),
                "verified_per_s": spread([float(r["verified_per_s"]) for r in ok]),
                "peak_rss_mib": spread([float(r["peak_rss_mib"]) for r in ok]),
                "prometheus_cpu_s": spread([float(r["prometheus_cpu_s"]) for r in ok]),
                "rss_before_check_mib": spread([float(r["rss_before_check_mib"]) for r in ok]),
                "loaded_check_s": spread([float(r["loaded_check_s"]) for r in ok]),
                "loaded_verified_per_s": spread([float(r["loaded_verified_per_s"]) for r in ok]),
                "load_samples_per_s": spread([float(r["load_samples_per_s"]) for r in ok]),
                "loaded_lost": sum(int(r["loaded_lost"]) for r in ok),
                "lost": sum(int(r["lost"]) for r in ok),
                "errors": [r["error"] for r in mine if "error" in r],
            }
        )
    return {
        "sizes": sizes,
        "big_series": big_series,
        "growth_samples": growth_samples,
        "growth_series": growth_series,
        "reps": reps,
        "prometheus": list(binaries),
        "runs": runs,
        "summary": summary,
    }


def markdown(res: dict[str, object], full: bool) -> str:
    lines = [
        "History check (`harness.checks.history.check_history`) in its own process against a restarted Prometheus "
        f"holding the data (the writer at 100 ms interval, 20 metrics; {res['reps']} run(s) per case), filled once "
        f"and checked against each of Prometheus {', '.join(res.get('prometheus', ['2.42.0']))} restarted on the same "
        "data (3.x is the one current charts deploy; scripts/build-prometheus3 builds it). The load is stopped: this "
        "is the end-of-run case.",
        "",
        f"Commands: `{prometheus_command()}`; `python -m benchmarks.child writer http://127.0.0.1:<port> --series N "
        "--metrics 20 --interval 100ms --target-samples M --ledger L --seconds S`; Prometheus stopped (SIGTERM) and "
        "started again on the same data; `python -m benchmarks.child verify http://127.0.0.1:<port> L --cutoff-ms C`.",
        "",
        "| acknowledged samples | series | Prometheus | check time s | verified samples/s | checker peak RSS MiB "
        "(before the check) | Prometheus CPU-s answering | lost | target >= 3M/s |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for s in res["summary"]:
        target = _target(s["verified_per_s"]["median"], RATE_TARGET_END)
        err = (" — errors: " + "; ".join(s["errors"])) if s["errors"] else ""
        lines.append(
            f"| {fmt_spread(s['acknowledged'], 0)} | {s['series']:,} | {s.get('prometheus', '2.42.0')} | "
            f"{fmt_spread(s['check_s'])} | {fmt_spread(s['verified_per_s'], 0)} | {fmt_spread(s['peak_rss_mib'], 0)} "
            f"({fmt_spread(s['rss_before_check_mib'], 0)}) | {fmt_spread(s['prometheus_cpu_s'])} | {s['lost']} | "
            f"{target}{err} |"
        )
    lines += [
        "",
        "Peak RSS is the checker's process (VmHWM), which includes the interpreter and numpy; the memory Prometheus "
        "spends answering is not in it. The check splits the metrics into at most "
        f"{QUERY_CONCURRENCY} groups and asks per group and window for one value sum over every series (each series "
        f"selected once, {QUERY_CONCURRENCY} queries at a time: Prometheus evaluates each on one core), plus a few "
        "series per metric sample by sample; its time follows the series count Prometheus has to select more than "
        "the samples: each selection costs Prometheus some microseconds per series (postings, chunk iterators; 3.x "
        "about half what 2.42 spends), so with few samples per series (10M samples in 1M series is 11 each) the "
        "Prometheus version decides.",
        "",
        _growth(res),
    ]
    if not full:
        lines += [
            "",
            "50M samples is measured only with `--full` (filling it takes the writer several minutes and the "
            "check one more; too long for the default run).",
        ]
    lines += [
        "",
        "The same check right after the restart with a load still running: a second writer sends the same series for "
        f"the whole check, every second or, past {LOAD_OFFER:,} series, at an interval that offers at most "
        f"{LOAD_OFFER:,} samples/s (1M series at 10 s), started {LOAD_RAMP_S:g} s plus its interval less 1 s before "
        "the check; its samples are after the check's cut-off, so they only compete for Prometheus' CPU. A check "
        "shorter than the load's interval may see no sample of it arrive (load 0).",
        "",
        "| acknowledged samples | series | Prometheus | load samples/s during the check | check time s "
        "| verified samples/s | lost | target >= 3M/s |",
        "|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for s in res["summary"]:
        target = _target(s["loaded_verified_per_s"]["median"], RATE_TARGET_LOADED)
        lines.append(
            f"| {fmt_spread(s['acknowledged'], 0)} | {s['series']:,} | {s.get('prometheus', '2.42.0')} | "
            f"{fmt_spread(s['load_samples_per_s'], 0)} | "
            f"{fmt_spread(s['loaded_check_s'])} | {fmt_spread(s['loaded_verified_per_s'], 0)} | {s['loaded_lost']} | "
            f"{target} |"
        )
    return "\n".join(lines)


def _load_interval_s(series: int) -> int:
    return max(1, math.ceil(series / LOAD_OFFER))


def _target(median: float | None, goal: float) -> str:
    if median is None:
        return "n/a"
    return "met" if median >= goal else f"missed: reaches {median / goal:.0%} of it"


def _growth(res: dict[str, object]) -> str:
    versions = res.get("prometheus") or [None]
    return " ".join(_growth_of(res, v) for v in versions)


def _growth_of(res: dict[str, object], version: str | None) -> str:
    rows = [
        s
        for s in res["summary"]
        if s["samples"] == res["growth_samples"] and s["check_s"]["n"] and s.get("prometheus") == version
    ]
    if len(rows) < 2:
        return "Growth with series count: not enough cases measured."
    rows.sort(key=lambda s: s["series"])
    a, b = rows[0], rows[-1]
    t = b["check_s"]["median"] / a["check_s"]["median"]
    m = b["peak_rss_mib"]["median"] / a["peak_rss_mib"]["median"]
    return (
        f"Growth with series count at {res['growth_samples']:,} samples"
        f"{f' (Prometheus {version})' if version else ''}: {a['series']:,} -> {b['series']:,} series "
        f"({b['series'] / a['series']:.0f}x) costs {t:.2f}x the time and {m:.2f}x the peak memory."
    )
