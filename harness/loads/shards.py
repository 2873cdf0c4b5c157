"""The TSDB write load split over several writers (``load.tsdb.shards``), seen by the pipeline as one writer.

One writer sends one request at a time, so past some rate (measured in ``benchmarks/``) it falls behind its
schedule and skips ticks; Prometheus takes concurrent requests. Shards are independent writers of one layout, each
owning the batches ``b % shards == k`` (``harness.loads.shard``). Each tells every request it ends as a line; the
``ShardedWriter`` here merges the lines into one ``WriteLog`` (ledger, counters, skips), so the history check sees
one ledger and stays exact.

Where the shards run is the runtime's business (a ``ShardLauncher``): processes on this host (``ProcessShards``),
or pods of an indexed Job (``harness.runtime.kube_shards``), which is Kubernetes doing the distribution.
A shard that ends without saying ``end`` broke: the run is an ERROR (the harness' load broke), never a FAILED.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from harness import proc
from harness.errors import InfraError, WaitTimeout
from harness.loads.ledger import SeriesLayout
from harness.loads.shard import ENV, ShardSpec
from harness.loads.tsdb import RequestRecord, SkippedTicks, WriteLog, WriterResults

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30.0  # a shard finishes its tick in progress: at most a few request timeouts


class ShardLauncher(Protocol):
    """Runs the shards somewhere and hands back each one's lines."""

    @property
    def description(self) -> str:
        """Where the shards run, for the result's environment."""
        ...

    @property
    def start_timeout_s(self) -> float:
        """How long the shards may take to say ``start`` (a process: seconds; a pod: scheduling and image too)."""
        ...

    def start(self, layout: SeriesLayout, shards: int, endpoint: str | None) -> list[Iterable[str]]:
        """Start every shard; one iterable of its output lines each, ending when the shard does."""
        ...

    @property
    def follows_endpoint(self) -> bool:
        """True: each shard takes every ``set_endpoint`` and confirms it (``{"k":"endpoint"}``) once no request to the
        old endpoint is in flight. False: the shards write to an endpoint that outlives instances and ignore it."""
        ...

    def set_endpoint(self, endpoint: str | None) -> None:
        """Prometheus moved (or is down: None); shards whose endpoint outlives instances ignore it."""
        ...

    def stop(self) -> None:
        """Ask every shard to finish its tick in progress and end."""
        ...

    def problem(self, shard: int) -> str:
        """Why ``shard`` ended without saying ``end``: its exit status and the end of its log."""
        ...

    def close(self) -> None:
        """Nothing of the shards is left running. Idempotent; also the undo step."""
        ...


class _Shard:
    def __init__(self, index: int) -> None:
        self.index = index
        self.started = threading.Event()
        self.ended = False  # said "end"
        self.endpoints_confirmed = 0  # "endpoint" lines: endpoint changes it has taken
        self.closed = threading.Event()  # its lines are over
        self.bad_line: str | None = None
        self.error: str | None = None  # why its lines stopped, when reading them failed


class ShardedWriter(WriterResults):
    """``TsdbWriter``'s interface over shards: the pipeline and the driver do not know the load is split."""

    def __init__(self, layout: SeriesLayout, shards: int, launcher: ShardLauncher, endpoint: str | None) -> None:
        self.layout = layout
        self.shards = shards
        self.launcher = launcher
        self.log = WriteLog(layout)
        self._endpoint = endpoint
        self._endpoint_changes = 0  # set_endpoint calls passed on to the shards
        self._confirmed = threading.Condition()  # notified on every "endpoint" line and every shard's end
        self._shards = [_Shard(k) for k in range(shards)]
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._reported: set[int] = set()  # shards whose breakage was raised already (not again at the stop)

    # --- control ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the shards and wait (bounded) until each has said ``start``."""
        streams = self.launcher.start(self.layout, self.shards, self._endpoint)
        for shard, lines in zip(self._shards, streams, strict=True):
            t = threading.Thread(target=self._read, args=(shard, lines), name=f"shard-{shard.index}", daemon=True)
            t.start()
            self._threads.append(t)
        deadline = time.monotonic() + self.launcher.start_timeout_s
        for shard in self._shards:
            while not shard.started.wait(0.2):
                if shard.closed.is_set():
                    self._reported.add(shard.index)
                    raise InfraError(f"writer shard {shard.index} ended at its start: {self._why(shard)}")
                if time.monotonic() > deadline:
                    raise WaitTimeout(
                        f"writer shard {shard.index} of {self.shards} to start ({self.launcher.description})",
                        self.launcher.start_timeout_s,
                    )

    def set_endpoint(self, base_url: str | None) -> None:
        self._endpoint = base_url
        with self._confirmed:
            self._endpoint_changes += 1
        self.launcher.set_endpoint(base_url)

    def detached(self, timeout_s: float) -> bool:
        """Every shard has ended, or (shards that follow the endpoint) has confirmed ``set_endpoint(None)``."""

        def done() -> bool:
            if all(shard.closed.is_set() for shard in self._shards):
                return True
            if self._endpoint is not None or not self.launcher.follows_endpoint:
                return False
            return all(s.closed.is_set() or s.endpoints_confirmed >= self._endpoint_changes for s in self._shards)

        with self._confirmed:
            return self._confirmed.wait_for(done, timeout_s)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Every shard finishes its tick and ends; then the merged ledger holds everything acknowledged."""
        if self._stopping:
            return
        self._stopping = True
        self.launcher.stop()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.launcher.close()
        self.check()
        late = [s.index for s in self._shards if not s.closed.is_set()]
        if late:
            raise WaitTimeout(f"writer shard(s) {late} to end after the stop ({self.launcher.description})", timeout_s)

    def check(self) -> None:
        """An ERROR if a shard broke: its acknowledgements from then on are unknown, so no check could be exact."""
        for shard in self._shards:
            if shard.index in self._reported:
                continue
            if shard.bad_line is not None:
                self._reported.add(shard.index)
                raise InfraError(f"writer shard {shard.index} said something unreadable: {shard.bad_line[:200]!r}")
            if shard.closed.is_set() and not shard.ended:
                self._reported.add(shard.index)
                raise InfraError(f"writer shard {shard.index} ended before the load did: {self._why(shard)}")

    def _why(self, shard: _Shard) -> str:
        return (f"{shard.error}; " if shard.error else "") + self.launcher.problem(shard.index)

    # --- the lines -------------------------------------------------------------------------------------

    def _read(self, shard: _Shard, lines: Iterable[str]) -> None:
        try:
            for line in lines:
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                    kind = doc["k"]
                    if kind == "req":
                        self.log.add(RequestRecord.from_wire(doc))
                    elif kind == "skip":
                        self.log.skipped(SkippedTicks(int(doc["ticks"]), int(doc["samples"])))
                    elif kind == "start":
                        shard.started.set()
                    elif kind == "endpoint":
                        with self._confirmed:
                            shard.endpoints_confirmed += 1
                            self._confirmed.notify_all()
                    elif kind == "end":
                        shard.ended = True
                except (ValueError, KeyError, TypeError):
                    # A line that is not ours (e.g. a log message on stdout) would hide acknowledgements: stop trusting
                    # this shard rather than guess.
                    shard.bad_line = line
                    log.warning("writer shard %d: unreadable line %r", shard.index, line[:200])
        except Exception as e:  # noqa: BLE001 - a broken stream is reported as the shard's problem, never lost
            shard.error = str(e)
            log.warning("writer shard %d: reading its lines failed: %s", shard.index, e)
        finally:
            shard.closed.set()
            with self._confirmed:
                self._confirmed.notify_all()


class ProcessShards:
    """Shards as processes of this host (the local runtime): they die with the harness, like its other children."""

    start_timeout_s = 60.0  # a Python start with numpy: about a second; more only on a host that is far too busy
    follows_endpoint = True  # each process takes the endpoint lines on its stdin

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = logs_dir
        self._daemons: list[proc.Daemon] = []
        self._lock = threading.Lock()

    @property
    def description(self) -> str:
        return f"{len(self._daemons)} process(es) on the harness host"

    @property
    def pids(self) -> list[int]:
        return [d.pid for d in self._daemons]

    def start(self, layout: SeriesLayout, shards: int, endpoint: str | None) -> list[Iterable[str]]:
        streams: list[Iterable[str]] = []
        for k in range(shards):
            spec = ShardSpec(layout=layout, shards=shards, shard=k, endpoint=endpoint, control="stdin")
            daemon = proc.start_daemon(
                f"tsdb writer shard {k}",
                [sys.executable, "-m", "harness.loads.shard"],
                log_path=self.logs_dir / f"writer-shard-{k}.log",
                env={ENV: spec.to_json()},
                pipes=True,
            )
            self._daemons.append(daemon)
            assert daemon.popen.stdout is not None
            streams.append(raw.decode(errors="replace") for raw in daemon.popen.stdout)
        return streams

    def _tell(self, line: str, *, close: bool = False) -> None:
        with self._lock:
            for daemon in self._daemons:
                stdin = daemon.popen.stdin
                if stdin is None or stdin.closed:
                    continue
                try:
                    stdin.write(line.encode() + b"\n")
                    stdin.flush()
                    if close:
                        stdin.close()
                except (BrokenPipeError, ValueError):
                    pass  # it ended already: its reader tells why

    def set_endpoint(self, endpoint: str | None) -> None:
        self._tell(f"endpoint {endpoint or '-'}")

    def stop(self) -> None:
        self._tell("stop", close=True)

    def problem(self, shard: int) -> str:
        daemon = self._daemons[shard]
        code = daemon.popen.poll()
        status = "still running" if code is None else f"exit code {code}"
        tail = "\n".join(daemon.log_text().splitlines()[-10:])
        return f"{status}; its log {daemon.log_path}" + (f":\n{tail}" if tail else " is empty")

    def close(self) -> None:
        for daemon in self._daemons:
            daemon.stop(timeout_s=5.0)
