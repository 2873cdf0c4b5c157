"""Section 3: Prometheus' own in-process ingestion ceiling, ``promtool tsdb bench write`` (Debian's promtool) on the
same storage as the other sections. It reads ``tsdb/testdata/20kseries.json`` from the prometheus Go module."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from benchmarks.common import BenchError, fmt_spread, require, spread

MODULE = "github.com/prometheus/prometheus"


def cached_series_file() -> Path | None:
    """20kseries.json if the Go module cache already has a prometheus module (no Go needed then), else None."""
    # $GOMODCACHE replaces the default cache for go itself (and so for the download below): the same here.
    given = os.environ.get("GOMODCACHE")
    roots = [Path(given)] if given else [Path.home() / "go" / "pkg" / "mod", Path("/root/go/pkg/mod")]
    for root in roots:
        found = sorted(root.glob("github.com/prometheus/prometheus@*/tsdb/testdata/20kseries.json"))
        if found:
            return found[-1]
    return None


def series_file() -> Path:
    """20kseries.json from the module cache, downloading the module (Go module proxy) when it is not there."""
    cached = cached_series_file()
    if cached is not None:
        return cached
    go = shutil.which("go")
    if go is None:
        raise BenchError("20kseries.json not in the Go module cache and no go binary to fetch it: install 'golang-go'")
    # scripts/build-prometheus3 fetches the same module; the version only has to ship the file.
    out = subprocess.run(
        [go, "mod", "download", "-json", f"{MODULE}@v0.305.0"], capture_output=True, text=True, timeout=600, check=False
    )
    if out.returncode != 0:
        raise BenchError(f"go mod download {MODULE} failed: {out.stderr.strip()[-400:]}")
    path = Path(json.loads(out.stdout)["Dir"]) / "tsdb" / "testdata" / "20kseries.json"
    if not path.is_file():
        raise BenchError(f"{path} is missing from the downloaded module")
    return path


def run(work: Path, metrics: int, scrapes: int, reps: int) -> dict[str, object]:
    promtool = require("promtool", "prometheus")
    data = series_file()
    runs = []
    for rep in range(reps):
        out_dir = work / f"promtool-{rep}"
        argv = [
            promtool,
            "tsdb",
            "bench",
            "write",
            f"--out={out_dir}",
            f"--metrics={metrics}",
            f"--scrapes={scrapes}",
            str(data),
        ]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        m = re.search(r"samples/sec:\s*([0-9.eE+]+)", done.stdout + done.stderr)
        if m is None:
            raise BenchError(f"promtool tsdb bench write printed no samples/sec (exit {done.returncode})")
        runs.append(float(m.group(1)))
    return {"argv": argv, "metrics": metrics, "scrapes": scrapes, "samples_per_s": spread(runs), "runs": runs}


def markdown(res: dict[str, object], harness_best: float | None, agent_best: float | None) -> str:
    s = res["samples_per_s"]
    lines = [
        f"`{' '.join(res['argv'])}` ({len(res['runs'])} runs; --out on the benchmark's work directory): "
        f"**{fmt_spread(s, 0)} samples/s** in-process (no HTTP, no protobuf, no remote write).",
    ]
    ceiling = s["median"]
    if ceiling and harness_best:
        lines.append("")
        lines.append(
            f"The harness load's highest acknowledged rate ({harness_best:,.0f}/s) is "
            f"{harness_best / ceiling:.1%} "
            "of this in-process ceiling."
        )
        if agent_best:
            lines.append(
                f"Against the remote-write path measured with Prometheus' own sender ({agent_best:,.0f}/s): "
                f"{harness_best / agent_best:.2f}x."
            )
    return "\n".join(lines)
