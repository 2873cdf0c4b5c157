"""One shard of a TSDB write load, as its own process: ``python3 -m harness.loads.shard``.

Where one writer cannot produce the load, the load's batches are split over several writers (``load.tsdb.shards``):
processes on the local runtime, pods of an indexed Job on Kubernetes (``JOB_COMPLETION_INDEX`` is the shard). Each
writes the batches ``b`` with ``b % shards == shard`` of the run's one layout, and tells the harness every request as
it ends, as one JSON line on standard output: the harness merges them into the run's ledger, so the check stays exact
(each batch has one writer, so its ticks arrive in order).

The shard's spec is JSON in ``HARNESS_SHARD`` (``ShardSpec``). With ``control: stdin`` (a local process) the harness
sends ``endpoint URL`` (``endpoint -`` while Prometheus is down) and ``stop`` lines; end of input stops too. Each
``endpoint`` line is confirmed with ``{"k":"endpoint"}`` once no request to the old endpoint is in flight (so the
harness can read Prometheus' own count of them as final before a fault). With
``control: signal`` (a pod: its endpoint is a Service that outlives Prometheus' restarts) SIGTERM stops it, as the
Job's deletion sends. Either way the shard finishes the tick in progress, says ``end``, and exits 0.

Lines out: ``{"k":"start",...}`` once, ``{"k":"req",...}`` per request (``RequestRecord.to_wire``),
``{"k":"skip","ticks":N,"samples":M}`` when it fell behind, ``{"k":"endpoint"}`` per endpoint change (stdin control),
``{"k":"end"}`` last. Nothing else goes to stdout.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal, TextIO

from harness.loads.ledger import SeriesLayout
from harness.loads.tsdb import RequestRecord, SkippedTicks
from harness.loads.tsdb_writer import TsdbWriter
from harness.prom import PromClient
from harness.scenario.model import TsdbLoad

ENV = "HARNESS_SHARD"
INDEX_ENV = "JOB_COMPLETION_INDEX"  # set by Kubernetes in each pod of an indexed Job


@dataclass(frozen=True)
class ShardSpec:
    layout: SeriesLayout
    shards: int
    shard: int | None  # None: from JOB_COMPLETION_INDEX
    endpoint: str | None
    control: Literal["stdin", "sigterm"]  # how the shard is told to stop: a line on stdin, or SIGTERM (a pod)
    request_timeout_s: float = 5.0
    retry_bound_s: float = 1.0
    # Seconds to wait, before saying "start", until Prometheus answers ready at the endpoint. A Service's address
    # is refused for a few seconds after its creation, until the proxy has its endpoints: writes sent then would
    # all fail, and the run would count that as the storage's doing.
    wait_ready_s: float = 0.0

    def batches(self, shard: int) -> list[int]:
        """Round robin, so the shards' loads differ by one batch at most."""
        return list(range(shard, self.layout.batches, self.shards))

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ShardSpec:
        doc: dict[str, Any] = json.loads(text)
        doc["layout"] = SeriesLayout(**doc["layout"])
        return cls(**doc)


class _Out:
    """Standard output, one whole line at a time from any thread (the writer's, the control loop's)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def line(self, doc: dict[str, object]) -> None:
        text = json.dumps(doc, separators=(",", ":")) + "\n"
        with self._lock:
            self._stream.write(text)
            self._stream.flush()


def _load_of(layout: SeriesLayout) -> TsdbLoad:
    """The writer reads its series from the layout; the load model only carries what the layout leaves out."""
    return TsdbLoad.model_validate(
        {
            "series": layout.series,
            "metrics": layout.metrics,
            "interval": f"{layout.interval_ms}ms",
            "label_cardinality": layout.label_cardinality,
            "batch_series": layout.batch_series,
        }
    )


def wait_ready(endpoint: str, timeout_s: float) -> bool:
    """Until Prometheus at ``endpoint`` answers ready, at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    with PromClient(endpoint, timeout_s=2.0) as client:
        while not client.ready():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
    return True


def run(spec: ShardSpec, shard: int, stdin: TextIO, out: _Out) -> None:
    def report(event: RequestRecord | SkippedTicks) -> None:
        if isinstance(event, RequestRecord):
            out.line({"k": "req", **event.to_wire()})
        else:
            out.line({"k": "skip", "ticks": event.ticks, "samples": event.samples})

    writer = TsdbWriter(
        _load_of(spec.layout),
        spec.layout.run_id,
        endpoint=spec.endpoint,
        request_timeout_s=spec.request_timeout_s,
        retry_bound_s=spec.retry_bound_s,
        layout=spec.layout,
        batches=spec.batches(shard),
        report=report,
    )
    stop = threading.Event()
    if spec.control == "sigterm":
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    out.line({"k": "start", "shard": shard, "shards": spec.shards, "batches": len(writer.batches), "pid": os.getpid()})
    writer.start()
    if spec.control == "stdin":
        for raw in stdin:
            command = raw.strip()
            if command == "stop":
                break
            if command.startswith("endpoint "):
                url = command.removeprefix("endpoint ").strip()
                writer.set_endpoint(None if url == "-" else url)  # returns once no request to the old one is in flight
                out.line({"k": "endpoint"})
    else:
        while not stop.wait(1.0):
            pass
    writer.stop()
    out.line({"k": "end", "acked": writer.acked_samples, "failed": writer.failed_samples})


def main() -> int:
    # This program's own input (a child process the harness starts), not a harness setting: read here, in its entry
    # point only (tests/test_settings.py holds every other module to harness.settings).
    text = os.environ.get(ENV)
    if not text:
        print(f"{ENV} is not set: this module is started by the harness with its shard's spec", file=sys.stderr)
        return 2
    spec = ShardSpec.from_json(text)
    shard = spec.shard if spec.shard is not None else int(os.environ.get(INDEX_ENV, "-1"))
    if not 0 <= shard < spec.shards:
        print(
            f"shard index {shard} is not in 0..{spec.shards - 1} (set {INDEX_ENV} or the spec's shard)", file=sys.stderr
        )
        return 2
    if spec.wait_ready_s > 0 and spec.endpoint and not wait_ready(spec.endpoint, spec.wait_ready_s):
        print(f"Prometheus at {spec.endpoint} did not answer ready within {spec.wait_ready_s:g} s", file=sys.stderr)
        return 3
    run(spec, shard, sys.stdin, _Out(sys.stdout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
