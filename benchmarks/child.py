"""The processes the benchmark measures from outside (CPU time from /proc, peak memory from wait4): the harness'
TSDB writer, the harness' synthetic exporter, and the history check. Each prints one JSON line when it is done.

    python -m benchmarks.child writer URL --series N --interval 1s --metrics 20 --seconds S [--target-samples M]
        [--ledger PATH]
    python -m benchmarks.child exporter --series N --interval 1s --metrics 20 --port P --seconds S
    python -m benchmarks.child verify URL LEDGER [--cutoff-ms MS]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from harness.checks.history import check_history
from harness.loads.ledger import Ledger
from harness.loads.tsdb_scrape import SyntheticExporter
from harness.loads.tsdb_writer import TsdbWriter
from harness.prom import PromClient
from harness.scenario.model import TsdbLoad

RUN_ID = "bench"


def _load(args: argparse.Namespace) -> TsdbLoad:
    return TsdbLoad.model_validate({"series": args.series, "interval": args.interval, "metrics": args.metrics})


def writer(args: argparse.Namespace) -> dict[str, object]:
    w = TsdbWriter(_load(args), RUN_ID, endpoint=args.url, request_timeout_s=10.0, retry_bound_s=5.0)
    t0 = time.monotonic()
    w.start()
    deadline = t0 + args.seconds
    # Either a fixed time (throughput) or until enough samples are acknowledged (a data set to verify), bounded.
    while time.monotonic() < deadline:
        if args.target_samples and w.acked_samples >= args.target_samples:
            break
        time.sleep(0.1)
    w.stop()
    out: dict[str, object] = {
        "acked_samples": w.acked_samples,
        "failed_samples": w.failed_samples,
        "skipped_ticks": w.skipped_ticks,
        "wall_s": time.monotonic() - t0,
        "reached_target": not args.target_samples or w.acked_samples >= args.target_samples,
    }
    if args.ledger:
        out["ledger_bytes"] = w.ledger.save(Path(args.ledger))
        out["acknowledged_in_ledger"] = w.ledger.acknowledged()
    return out


def exporter(args: argparse.Namespace) -> dict[str, object]:
    e = SyntheticExporter(_load(args), RUN_ID, port=args.port)
    e.start()
    time.sleep(args.seconds)
    e.stop()
    return {"served": True}


def _peak_rss_kib() -> int:
    """This program's peak RSS (VmHWM). Not getrusage's maxrss, which keeps the peak of the process before its exec:
    a child forked from a large benchmark runner would report the runner's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def verify(args: argparse.Namespace) -> dict[str, object]:
    ledger = Ledger.load(Path(args.ledger))
    rss_before_kib = _peak_rss_kib()
    # Everything the filling writer acknowledged is before the cut-off: now, or the end of the filling when a load
    # writes into the same series during the check.
    cutoff = args.cutoff_ms or int(time.time() * 1000)
    with PromClient(args.url, 300.0) as prom:
        t0 = time.monotonic()
        cp = check_history(prom, ledger, cutoff_unix_ms=cutoff, label="bench", checked_at_s=0.0, run_id=RUN_ID)
        took = time.monotonic() - t0
    return {
        "acknowledged": cp.acknowledged,
        "lost": cp.lost,
        "check_s": took,
        "maxrss_before_check_kib": rss_before_kib,
        "maxrss_kib": _peak_rss_kib(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("writer", "exporter"):
        s = sub.add_parser(name)
        if name == "writer":
            s.add_argument("url")
            s.add_argument("--target-samples", type=int, default=0)
            s.add_argument("--ledger", default="")
        else:
            s.add_argument("--port", type=int, required=True)
        s.add_argument("--series", type=int, required=True)
        s.add_argument("--interval", default="1s")
        s.add_argument("--metrics", type=int, default=20)
        s.add_argument("--seconds", type=float, required=True)
    v = sub.add_parser("verify")
    v.add_argument("url")
    v.add_argument("ledger")
    v.add_argument("--cutoff-ms", type=int, default=0)
    args = p.parse_args()
    out = {"writer": writer, "exporter": exporter, "verify": verify}[args.cmd](args)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
