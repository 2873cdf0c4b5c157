"""Section 2: the harness' TSDB load against the peers people use, each writing to its own fresh Prometheus under
test: the harness' remote-write writer (``harness/loads/tsdb_writer.py``, ledger included), Prometheus' own remote-write
sender (a second Prometheus in agent mode scraping the harness' synthetic exporter), and avalanche, built from the
unmodified v0.7.0 source in ``../shared/peers/`` into the cache by ``scripts/build-avalanche`` (or given as
AVALANCHE). Acknowledged samples/s are what the Prometheus under test appended to its head (the same counter for every
peer); CPU time comes from /proc for the generator processes and from Prometheus' process_cpu_seconds_total; memory is
the generator's peak RSS (VmHWM).

The offered rate is stepped up (series at a 1 s interval) for each generator until it no longer keeps up, so the
highest rates compare limits, not offers: a generator that fell behind is not offered the next step, and the row
says which side was the limit (the generator's core, Prometheus' cores, or neither)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import (
    ROOT,
    Prom,
    cpu_seconds,
    fmt_spread,
    prometheus,
    prometheus_command,
    spread,
    stop_process,
)
from harness import proc
from harness.loads.tsdb_scrape import SyntheticExporter, scrape_config
from harness.scenario.model import TsdbLoad

METRICS = 20
SATURATED_BELOW = 0.95  # of the offered rate
BUSY_CORE = 0.85  # a single-threaded Python generator at this share of one core is the bottleneck

Snapshot = dict[str, float]


AVALANCHE_VERSION = "v0.7.0"
BUILT = f"avalanche {AVALANCHE_VERSION} built from the unmodified source in ../shared/peers/ by scripts/build-avalanche"
BUILD_TIMEOUT_S = 900.0  # about 3.5 min cold on 2 cores (module downloads), seconds when cached


def avalanche_binary(*, build: bool = True) -> tuple[str | None, str]:
    """The avalanche binary: AVALANCHE, else the cached build, else built now from the shared source (``build``),
    or None and why."""
    given = os.environ.get("AVALANCHE")
    if given:
        ok = Path(given).is_file()
        return (given if ok else None), f"avalanche binary: {given} (AVALANCHE{'' if ok else ': no such file'})"
    cache = Path(os.environ.get("HARNESS_CACHE", "/var/cache/prom-harness")) / f"avalanche-{AVALANCHE_VERSION}"
    cache /= "avalanche"
    if cache.is_file():
        return str(cache), f"{BUILT} into {cache}"
    if not build:
        return None, f"no avalanche build in {cache} (run scripts/build-avalanche; --quick does not build it)"
    return _build(cache)


def _build(cache: Path) -> tuple[str | None, str]:
    """scripts/build-avalanche into ``cache``; the binary or None and why."""
    if shutil.which("go") is None:
        return None, "no avalanche build and no Go toolchain to build it (scripts/build-avalanche needs go)"
    try:
        done = subprocess.run(
            [str(ROOT / "scripts" / "build-avalanche"), AVALANCHE_VERSION],
            capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, f"scripts/build-avalanche did not finish within {BUILD_TIMEOUT_S:g} s"
    if done.returncode != 0 or not cache.is_file():
        return None, f"scripts/build-avalanche failed ({done.returncode}): {done.stderr.strip()[-400:]}"
    return str(cache), f"{BUILT} into {cache} (built by this run)"


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory of ``pid`` so far (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _child(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "benchmarks.child", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=err
        )


def _measure(
    prom: Prom, generators: dict[str, Callable[[], float]], warmup_s: float, window_s: float
) -> dict[str, float]:
    """Appended samples and CPU seconds over ``window_s`` after ``warmup_s``."""
    time.sleep(warmup_s)

    def snap() -> Snapshot:
        s = {"t": time.monotonic(), "appended": prom.appended(), "prom_cpu": prom.cpu_s()}
        s.update({f"{k}_cpu": f() for k, f in generators.items()})
        return s

    a = snap()
    time.sleep(window_s)
    b = snap()
    return {k: b[k] - a[k] for k in a}


def _row(
    peer: str, series: int, d: dict[str, float], gen_keys: list[str], memory_mib: float = float("nan")
) -> dict[str, object]:
    wall = d["t"]
    acked = d["appended"]
    # Nothing acknowledged (a sender still starting): no cost per sample to speak of.
    per_m = acked / 1e6 if acked > 0 else float("nan")
    gen_cpu = sum(d[f"{k}_cpu"] for k in gen_keys)
    util = {k: d[f"{k}_cpu"] / wall for k in gen_keys}
    prom_util = d["prom_cpu"] / wall
    offered = series / 1.0
    rate = acked / wall
    if rate >= SATURATED_BELOW * offered:
        saturated = "neither"
    elif max(util.values()) >= BUSY_CORE:
        saturated = "generator (" + ", ".join(f"{k} {u:.0%} of a core" for k, u in util.items()) + ")"
    elif prom_util >= 1.5:
        saturated = f"prometheus ({prom_util:.0%} of a core)"
    else:
        # Neither process used the CPU it had: the runnable queue was longer than the cores (other jobs on the
        # machine), or the sender waited on answers (the harness writer has one request in flight at a time).
        load1 = os.getloadavg()[0]
        cores = os.cpu_count() or 1
        why = f"CPU-starved: load average {load1:.1f} on {cores} cores" if load1 > cores else "latency-bound"
        saturated = (
            f"undecided: neither side busy (generator {max(util.values()):.0%}, prometheus {prom_util:.0%} of a "
            f"core); {why}"
        )
    return {
        "peer": peer,
        "series": series,
        "offered_per_s": offered,
        "acked_per_s": rate,
        "generator_cpu_s_per_million": gen_cpu / per_m,
        "generator_cpu_share": {k: round(u, 3) for k, u in util.items()},
        "prometheus_cpu_s_per_million": d["prom_cpu"] / per_m,
        "prometheus_cpu_share": round(prom_util, 3),
        "saturated": saturated,
        "kept_up": saturated == "neither",
        "generator_peak_rss_mib": round(memory_mib, 1),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def run_harness(work: Path, series: int, warmup_s: float, window_s: float) -> dict[str, object]:
    with prometheus(work, f"h-{series}-{time.monotonic_ns()}") as prom:
        child = _child(
            [
                "writer",
                prom.url,
                "--series",
                str(series),
                "--metrics",
                str(METRICS),
                "--interval",
                "1s",
                "--seconds",
                str(warmup_s + window_s + 1),
            ],
            prom.log.with_name("writer.log"),
        )
        try:
            d = _measure(prom, {"writer": lambda: cpu_seconds(child.pid)}, warmup_s, window_s)
            memory = peak_rss_mib(child.pid)
            out, _ = child.communicate(timeout=warmup_s + window_s + 60)
        finally:
            stop_process(child)
    row = _row("harness writer", series, d, ["writer"], memory)
    row["writer"] = json.loads(out.decode().strip().splitlines()[-1])
    return row


def run_agent(work: Path, series: int, warmup_s: float, window_s: float) -> dict[str, object]:
    port = proc.free_port()
    load = TsdbLoad.model_validate({"series": series, "interval": "1s", "metrics": METRICS})
    layout = SyntheticExporter(load, "bench", port=port).layout
    with prometheus(work, f"a-{series}-{time.monotonic_ns()}") as prom:
        exp = _child(
            [
                "exporter",
                "--port",
                str(port),
                "--series",
                str(series),
                "--metrics",
                str(METRICS),
                "--seconds",
                str(warmup_s + window_s + 60),
            ],
            prom.log.with_name("exporter.log"),
        )
        try:
            config = {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [scrape_config(layout, f"127.0.0.1:{port}")],
                "remote_write": [{"url": f"{prom.url}/api/v1/write"}],
            }
            with prometheus(work, f"agent-{series}-{time.monotonic_ns()}", json.dumps(config), agent=True) as agent:
                d = _measure(
                    prom,
                    {"agent": agent.cpu_s, "exporter": lambda: cpu_seconds(exp.pid)},
                    warmup_s,
                    window_s,
                )
                memory = peak_rss_mib(agent.process.pid)
        finally:
            stop_process(exp)
    # The agent is the sender; the exporter stands in for the scraped application and is reported beside it.
    row = _row("prometheus agent (remote-write sender)", series, d, ["agent"], memory)
    row["exporter_cpu_s_per_million"] = d["exporter_cpu"] / (d["appended"] / 1e6) if d["appended"] > 0 else float("nan")
    return row


def run_avalanche(binary: str, work: Path, series: int, warmup_s: float, window_s: float) -> dict[str, object]:
    with prometheus(work, f"av-{series}-{time.monotonic_ns()}") as prom:
        # avalanche v0.7 flags (its metrics/ and cmd/avalanche/): series-count is per metric; gauges only (other
        # types default to non-zero in some versions); no churn while measured; its default out-of-order timestamps
        # (a minute and five back) would be refused by a Prometheus without an out-of-order window, and the flag is
        # a kingpin boolean: off is --no-remote-out-of-order (=false is refused: "unexpected false"). It sends every
        # series once per --remote-write-interval, --remote-batch-size series per request, 20 requests in flight;
        # --remote-requests-count=-1 runs until stopped (its default stops after 100 intervals).
        argv = [
            binary, f"--gauge-metric-count={METRICS}", "--counter-metric-count=0", "--histogram-metric-count=0",
            "--native-histogram-metric-count=0", "--summary-metric-count=0", f"--series-count={series // METRICS}",
            "--label-count=1", "--value-interval=1", "--series-interval=100000", "--metric-interval=100000",
            f"--remote-url={prom.url}/api/v1/write", "--remote-write-interval=1s", "--remote-requests-count=-1",
            "--no-remote-out-of-order", f"--port={proc.free_port()}",
        ]  # fmt: skip
        log = prom.log.with_name("avalanche.log")
        with log.open("ab") as out:
            av = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            d = _measure(prom, {"avalanche": lambda: cpu_seconds(av.pid)}, warmup_s, window_s)
            memory = peak_rss_mib(av.pid) if av.poll() is None else float("nan")
            if av.poll() is not None:
                tail = log.read_text(errors="replace")[-600:]
                raise RuntimeError(f"avalanche exited {av.returncode} during the run: {tail}")
        finally:
            stop_process(av)
    row = _row("avalanche", series, d, ["avalanche"], memory)
    row["argv"] = argv
    return row


def run(
    work: Path, steps: list[int], reps: int, warmup_s: float, window_s: float, *, build_avalanche: bool = True
) -> dict[str, object]:
    binary, avalanche_note = avalanche_binary(build=build_avalanche)
    peers: list[tuple[str, Callable[[int], dict[str, object]]]] = [
        ("harness writer", lambda n: run_harness(work, n, warmup_s, window_s)),
        ("prometheus agent (remote-write sender)", lambda n: run_agent(work, n, warmup_s, window_s)),
    ]
    if binary:
        peers.append(("avalanche", lambda n: run_avalanche(binary, work, n, warmup_s, window_s)))
    rows: list[dict[str, object]] = []
    behind: set[str] = set()  # generators that fell behind at a step: the next, higher, offer is not made to them
    for series in steps:
        for rep in range(reps):
            # Interleaved, and in alternating order, so a slow spell of the shared machine hits every peer alike.
            for name, fn in peers if rep % 2 == 0 else list(reversed(peers)):
                if name in behind:
                    continue
                try:
                    row = fn(series)
                except Exception as e:  # noqa: BLE001 - one failed run is reported, the others still count
                    row = {"peer": name, "series": series, "error": f"{type(e).__name__}: {e}"}
                row["rep"] = rep
                rows.append(row)
        for name, _ in peers:
            done = [r for r in rows if r["peer"] == name and r["series"] == series]
            # Behind at this step in most of its runs (or failed in all): it has reached its limit.
            if done and sum(1 for r in done if not r.get("kept_up", False)) * 2 > len(done):
                behind.add(name)
    return {
        "steps": steps,
        "reps": reps,
        "warmup_s": warmup_s,
        "window_s": window_s,
        "metrics": METRICS,
        "interval_s": 1.0,
        "avalanche": avalanche_note,
        "runs": rows,
        "summary": summarize(rows),
    }


def summarize(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    out = []
    for peer in dict.fromkeys(str(r["peer"]) for r in rows):
        for series in dict.fromkeys(int(r["series"]) for r in rows if r["peer"] == peer):
            ok = [r for r in rows if r["peer"] == peer and r["series"] == series and "error" not in r]
            out.append(
                {
                    "peer": peer,
                    "series": series,
                    "acked_per_s": spread([float(r["acked_per_s"]) for r in ok]),
                    "generator_cpu_s_per_million": spread([float(r["generator_cpu_s_per_million"]) for r in ok]),
                    "prometheus_cpu_s_per_million": spread([float(r["prometheus_cpu_s_per_million"]) for r in ok]),
                    "generator_peak_rss_mib": spread([float(r.get("generator_peak_rss_mib", "nan")) for r in ok]),
                    "kept_up": bool(ok) and all(bool(r.get("kept_up")) for r in ok),
                    "saturated": sorted({str(r["saturated"]) for r in ok}),
                    "errors": [
                        r["error"] for r in rows if r["peer"] == peer and r["series"] == series and "error" in r
                    ],
                }
            )
    return out


def best(summary: list[dict[str, object]], peer: str) -> float | None:
    """Highest median acknowledged samples/s the peer reached at any step."""
    vals = [s["acked_per_s"]["median"] for s in summary if s["peer"] == peer and s["acked_per_s"]["n"]]
    return max(vals) if vals else None


def _equal_rate_cpu(summary: list[dict[str, object]]) -> list[str]:
    """Generator CPU per million samples, harness over avalanche, at the highest offer both kept up with (equal
    acknowledged rates): what the generators cost when neither is the limit."""
    kept = {
        peer: {int(s["series"]): s for s in summary if s["peer"] == peer and s.get("kept_up")}
        for peer in ("harness writer", "avalanche")
    }
    common = sorted(set(kept["harness writer"]) & set(kept["avalanche"]))
    if not common:
        return []
    n = common[-1]
    h = kept["harness writer"][n]["generator_cpu_s_per_million"]["median"]
    v = kept["avalanche"][n]["generator_cpu_s_per_million"]["median"]
    if not h or not v:
        return []
    return [
        "",
        f"At {n:,} samples/s, the highest offer both kept up with: generator CPU harness {h:.2f}, avalanche {v:.2f} "
        f"CPU-s per million samples (ratio harness/avalanche {h / v:.2f}).",
    ]


def markdown(res: dict[str, object]) -> str:
    lines = [
        f"{res['reps']} interleaved run(s) per peer and step, {res['metrics']} metrics, 1 s interval, a fresh "
        f"Prometheus under test per run; measured over {res['window_s']:g} s after a {res['warmup_s']:g} s warm-up. "
        "Acknowledged = `prometheus_tsdb_head_samples_appended_total` of the Prometheus under test over the window. "
        "Generator CPU: /proc/<pid>/stat of the writer process (harness: the TSDB writer with its ledger); the agent's "
        "own `process_cpu_seconds_total` (the synthetic exporter it scrapes is listed apart).",
        "",
        "The harness writer has one request in flight at a time (batches of 5,000 series, one after another): at "
        "100k series each of its 20 requests per second must be answered within 50 ms, so a slow answer lowers its "
        "rate without either side being busy. Prometheus' sender runs parallel shards.",
        "",
        f"Avalanche: {res['avalanche']}.",
        "",
        "Commands (per run, `<dir>` a fresh directory):",
        "",
        f"- Prometheus under test: `{prometheus_command()}`",
        f"- harness writer: `python -m benchmarks.child writer http://127.0.0.1:<port> --series N --metrics {METRICS} "
        "--interval 1s --seconds S` (a `harness.loads.tsdb_writer.TsdbWriter`)",
        f"- Prometheus' sender: `{prometheus_command(agent=True)}`, its config scraping "
        f"`python -m benchmarks.child exporter --port P --series N --metrics {METRICS} --seconds S` (the harness' "
        "`SyntheticExporter`) every 1 s and remote-writing to the Prometheus under test",
        "",
        f"- avalanche: `avalanche --gauge-metric-count={METRICS} --series-count=<N/{METRICS}> --label-count=1 "
        "--value-interval=1 --series-interval=100000 --metric-interval=100000 --remote-url=<url>/api/v1/write "
        "--remote-write-interval=1s --remote-requests-count=-1 --no-remote-out-of-order` (other metric types 0)",
        "",
        "The offered rate (series per second) is stepped up for each generator until it no longer keeps up (below "
        f"{SATURATED_BELOW:.0%} of the offer); a generator that fell behind is not offered the next step. "
        "'limit' says who was: the generator (its process at a full core), Prometheus (its cores), or undecided.",
        "",
        "| peer | offered samples/s | acked samples/s | kept up | generator CPU-s / M samples | generator peak RSS MiB "
        "| Prometheus CPU-s / M samples | limit |",
        "|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for s in res["summary"]:
        sat = "; ".join(s["saturated"]) or "—"
        if s["errors"]:
            sat += " — errors: " + "; ".join(s["errors"])
        lines.append(
            f"| {s['peer']} | {s['series']:,} | {fmt_spread(s['acked_per_s'], 0)} | "
            f"{'yes' if s.get('kept_up') else 'no'} | {fmt_spread(s['generator_cpu_s_per_million'])} | "
            f"{fmt_spread(s.get('generator_peak_rss_mib', {'n': 0}), 0)} | "
            f"{fmt_spread(s['prometheus_cpu_s_per_million'])} | {sat} |"
        )
    exporter = [r for r in res["runs"] if "exporter_cpu_s_per_million" in r]
    if exporter:
        e = spread([float(r["exporter_cpu_s_per_million"]) for r in exporter])
        lines += [
            "",
            f"The synthetic exporter the agent scrapes (Python, not part of the sender): {fmt_spread(e)} CPU-s / M.",
        ]
    if "avalanche" not in {s["peer"] for s in res["summary"]}:
        lines += ["", "The avalanche column is empty: " + str(res["avalanche"]) + "."]
    h = best(res["summary"], "harness writer")
    a = best(res["summary"], "prometheus agent (remote-write sender)")
    v = best(res["summary"], "avalanche")
    if h and a:
        line = f"Highest acknowledged rate: harness {h:,.0f}/s, Prometheus' sender {a:,.0f}/s (ratio {h / a:.2f})"
        if v:
            line += f", avalanche {v:,.0f}/s (ratio harness/avalanche {h / v:.2f})"
        lines += ["", line + "."]
    lines += _equal_rate_cpu(res["summary"])
    h_cpu = [
        s["generator_cpu_s_per_million"]["median"]
        for s in res["summary"]
        if s["peer"] == "harness writer" and s["generator_cpu_s_per_million"]["n"]
    ]
    if h_cpu:
        worst = max(h_cpu)
        verdict = "met" if worst <= 1.0 else f"missed by {worst - 1.0:.2f} CPU-s ({worst:.2f}x the target)"
        lines += ["", f"Target generator <= 1.0 CPU-s per million samples (ledger included): {verdict}."]
    return "\n".join(lines)
