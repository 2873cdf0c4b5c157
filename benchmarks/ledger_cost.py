"""Section 5: the ledger's cost. Bytes on disk per acknowledged sample (the ledgers section 4's writer saved, and a
worst case where every other request fails), and its write path (``Ledger.record_ack``, once per acknowledged
request) timed alone in-process: the writer has no switch to run without its ledger, so "with vs without" is the
writer's measured CPU per million samples against the ledger's share of it."""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.common import fmt_spread, spread
from harness.loads.ledger import Ledger
from harness.loads.tsdb import make_layout
from harness.scenario.model import TsdbLoad


def _ledger(series: int) -> Ledger:
    load = TsdbLoad.model_validate({"series": series, "interval": "1s", "metrics": 20})
    return Ledger(make_layout(load, "bench", time.time()))


def record_cost(series: int, ticks: int, reps: int) -> dict[str, object]:
    """CPU seconds ``record_ack`` takes per million samples, ``ticks`` ticks of every batch."""
    per_m = []
    for _ in range(reps):
        ledger = _ledger(series)
        first = ledger.layout.start_ms // ledger.layout.interval_ms
        t0 = time.process_time()
        for tick in range(first, first + ticks):
            for batch in range(ledger.layout.batches):
                ledger.record_ack(tick, batch)
        took = time.process_time() - t0
        per_m.append(took / (ledger.acknowledged() / 1e6))
    return {"series": series, "ticks": ticks, "cpu_s_per_million": spread(per_m)}


def worst_case_bytes(work: Path, series: int, ticks: int) -> dict[str, object]:
    """Every other request acknowledged: one run per acknowledged request, the most the ledger ever holds."""
    ledger = _ledger(series)
    first = ledger.layout.start_ms // ledger.layout.interval_ms
    for tick in range(first, first + ticks, 2):
        for batch in range(ledger.layout.batches):
            ledger.record_ack(tick, batch)
    path = work / "worst.ledger.json"
    size = ledger.save(path)
    path.unlink()
    return {
        "series": series,
        "ticks": ticks,
        "bytes": size,
        "acknowledged": ledger.acknowledged(),
        "bytes_per_sample": size / ledger.acknowledged(),
    }


def run(work: Path, series: int, ticks: int, reps: int, verify_runs: list[dict[str, object]]) -> dict[str, object]:
    saved = [
        {
            "series": r["series"],
            "bytes": r["ledger_bytes"],
            "acknowledged": r["acknowledged_in_ledger"],
            "bytes_per_sample": float(r["ledger_bytes"]) / max(1.0, float(r["acknowledged_in_ledger"])),
        }
        for r in verify_runs
        if "ledger_bytes" in r
    ]
    return {"record": record_cost(series, ticks, reps), "worst": worst_case_bytes(work, series, ticks), "saved": saved}


def markdown(res: dict[str, object], writer_cpu_per_m: float | None) -> str:
    rec = res["record"]
    worst = res["worst"]
    lines = ["| ledger | bytes | acknowledged samples | bytes / sample |", "|---|---:|---:|---:|"]
    for s in res["saved"]:
        lines.append(
            f"| section 4 writer, {s['series']:,} series | {s['bytes']:,} | {s['acknowledged']:,} | "
            f"{s['bytes_per_sample']:.2e} |"
        )
    lines.append(
        f"| worst case (every other request lost), {worst['series']:,} series | {worst['bytes']:,} | "
        f"{worst['acknowledged']:,} | {worst['bytes_per_sample']:.2e} |"
    )
    cost = rec["cpu_s_per_million"]
    lines += [
        "",
        "The ledger stores runs of acknowledged ticks per request batch, so its size grows with gaps (failed "
        "requests, ticks the writer skipped when it fell behind), "
        "not with samples.",
        "",
        "The writer has no switch to turn the ledger off: its write path, `Ledger.record_ack` once per acknowledged "
        f"request, was timed alone in-process ({rec['series']:,} series, {rec['ticks']} ticks): "
        f"{fmt_spread(cost, 4)} CPU-s per million samples.",
    ]
    if writer_cpu_per_m and cost["median"]:
        share = cost["median"] / writer_cpu_per_m
        lines.append(
            f"That is {share:.3%} of the harness writer's measured {writer_cpu_per_m:.2f} CPU-s per million "
            f"(section 2): throughput without the ledger would be at most {1 / (1 - share):.5f}x."
        )
    return "\n".join(lines)
