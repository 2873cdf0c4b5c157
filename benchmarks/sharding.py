"""Section 6: the write load split over 1, 2 and 4 writer processes (``load.tsdb.shards``, the real
``ShardedWriter`` and ``ProcessShards`` a run uses) at a rate offered above what one writer sustains, each run against
its own fresh Prometheus. Per shard count: acknowledged samples/s, ticks the writers skipped (fell behind), the
generators' CPU per million samples (all shard processes) and Prometheus' own, and whether the merged ledger matched
Prometheus' own count of what it took: the remote writes it answered 2xx and the samples it appended (its /metrics;
this Prometheus scrapes nothing, so every appended sample came from the writers). The ledger is fed by the writers'
acknowledgements, Prometheus' counters are not: only they can show an acknowledgement missed, doubled or made up."""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks.common import cpu_seconds, fmt_spread, prometheus, spread
from harness.loads.shards import ProcessShards, ShardedWriter
from harness.loads.tsdb import make_layout
from harness.prom import PromClient
from harness.scenario.model import TsdbLoad

METRICS = 20


def _one(work: Path, series: int, shards: int, *, batch: int, warmup_s: float, window_s: float) -> dict[str, object]:
    load = TsdbLoad.model_validate(
        {"series": series, "metrics": METRICS, "interval": "1s", "batch_series": batch, "shards": shards}
    )
    logs = work / f"shards-{shards}-{time.monotonic_ns()}"
    logs.mkdir()
    with prometheus(work, f"s{shards}-{series}-{time.monotonic_ns()}") as prom:
        launcher = ProcessShards(logs)
        writer = ShardedWriter(make_layout(load, "bench", time.time()), shards, launcher, prom.url)
        writer.start()
        try:
            time.sleep(warmup_s)
            pids = launcher.pids
            a = (time.monotonic(), prom.appended(), prom.cpu_s(), sum(cpu_seconds(p) for p in pids))
            acked_a, skipped_a = writer.acked_samples, writer.skipped_samples
            time.sleep(window_s)
            b = (time.monotonic(), prom.appended(), prom.cpu_s(), sum(cpu_seconds(p) for p in pids))
            acked_b, skipped_b = writer.acked_samples, writer.skipped_samples
        finally:
            writer.stop()  # every shard has ended: nothing more reaches Prometheus, its count is final
        with PromClient(prom.url, timeout_s=10.0) as client:
            server = client.server_writes()
    wall, appended, prom_cpu, gen_cpu = (y - x for x, y in zip(a, b, strict=True))
    millions = appended / 1e6 if appended > 0 else float("nan")
    return {
        "shards": shards,
        "series": series,
        "offered_per_s": series,
        "acked_per_s": (acked_b - acked_a) / wall,
        "appended_per_s": appended / wall,
        "skipped_samples_per_s": (skipped_b - skipped_a) / wall,
        "generator_cpu_s_per_million": gen_cpu / millions,
        "prometheus_cpu_s_per_million": prom_cpu / millions,
        "ledger_requests": writer.ledger.acknowledged_requests(),
        "ledger_samples": writer.ledger.acknowledged(),
        "unanswered_attempts": writer.unanswered_attempts,
        "prometheus_requests_2xx": server.accepted_requests,
        "prometheus_appended_total": server.samples_appended,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def ledger_exact(r: dict[str, object]) -> bool:
    """The ledger holds every request Prometheus answered 2xx and no other, and their samples are the ones it
    appended. An attempt that got no answer may have been taken unseen (it is no acknowledgement): only then may
    Prometheus count more, by at most that many requests."""
    ledger, server = int(str(r["ledger_requests"])), int(str(r["prometheus_requests_2xx"]))
    unanswered = int(str(r["unanswered_attempts"]))
    if unanswered:
        return ledger <= server <= ledger + unanswered
    return ledger == server and r["ledger_samples"] == r["prometheus_appended_total"]


def run(
    work: Path, *, series: int, batch: int, shard_counts: list[int], reps: int, warmup_s: float, window_s: float
) -> dict[str, object]:
    runs = [
        _one(work, series, k, batch=batch, warmup_s=warmup_s, window_s=window_s)
        for _ in range(reps)
        for k in shard_counts  # interleaved: each repetition runs every shard count once
    ]
    summary = []
    for k in shard_counts:
        mine = [r for r in runs if r["shards"] == k]
        summary.append(
            {
                "shards": k,
                "acked_per_s": spread([float(r["acked_per_s"]) for r in mine]),
                "skipped_samples_per_s": spread([float(r["skipped_samples_per_s"]) for r in mine]),
                "generator_cpu_s_per_million": spread([float(r["generator_cpu_s_per_million"]) for r in mine]),
                "prometheus_cpu_s_per_million": spread([float(r["prometheus_cpu_s_per_million"]) for r in mine]),
                "ledger_exact": all(ledger_exact(r) for r in mine),
            }
        )
    return {"series": series, "batch_series": batch, "offered_per_s": series, "runs": runs, "summary": summary}


def markdown(res: dict[str, object]) -> str:
    summary: list[dict[str, object]] = res["summary"]  # type: ignore[assignment]
    lines = [
        f"{res['series']:,} series at 1 s (offered {res['offered_per_s']:,} samples/s), {res['batch_series']:,} "
        "series per request, one fresh Prometheus per run; shard counts interleaved. Each shard is a process "
        "(`python -m harness.loads.shard`) sending its share of the batches with one request in flight; its "
        "request records merge into one ledger (on the cluster the shards are the pods of an indexed Job). *ledger "
        "exact*: the merged ledger holds exactly the requests Prometheus answered 2xx and the samples it appended, by "
        "its own /metrics.",
        "",
        "| shards | acknowledged samples/s | skipped samples/s | generator CPU-s / M | Prometheus CPU-s / M | "
        "ledger exact |",
        "|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['shards']} | {fmt_spread(s['acked_per_s'], 0)} | {fmt_spread(s['skipped_samples_per_s'], 0)} | "  # type: ignore[arg-type]
            f"{fmt_spread(s['generator_cpu_s_per_million'])} | {fmt_spread(s['prometheus_cpu_s_per_million'])} | "  # type: ignore[arg-type]
            f"{'yes' if s['ledger_exact'] else '**no**'} |"
        )
    by = {int(str(s["shards"])): s for s in summary}
    if 1 in by and len(by) > 1:
        one = by[1]["acked_per_s"]["median"]  # type: ignore[index]
        best_k = max(by, key=lambda k: by[k]["acked_per_s"]["median"] or 0)  # type: ignore[index]
        best = by[best_k]["acked_per_s"]["median"]  # type: ignore[index]
        if one and best:
            lines += [
                "",
                f"One writer acknowledged {one:,.0f} samples/s; {best_k} shards {best:,.0f} ({best / one:.2f}x). "
                "Where the shards stop adding, Prometheus (or the cores the machine has) is the limit, not the "
                "generator.",
            ]
    return "\n".join(lines)
