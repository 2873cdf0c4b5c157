"""The ledger held to Prometheus' own count of the remote writes it answered (``ack_count``), with the real
``prometheus``: the two agree exactly through a SIGKILL (requests, and samples where Prometheus scrapes nothing), and a
writer whose ledger misses acknowledgements, or records some Prometheus never gave, is caught on a real run, where
the history check and the writer's own counter see nothing wrong."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.checks.acks import ack_count_check, count_acks
from harness.loads.ledger import Ledger, SeriesLayout
from harness.loads.tsdb import RequestRecord, WriteLog
from harness.loads.tsdb_writer import TsdbWriter
from harness.prom import ServerWrites, WriteOutcome
from harness.results.model import AckReading, Status
from harness.scenario.model import TsdbLoad
from harness.wait import wait_for
from tests.cli import CliRun, harness_cli
from tests.prometheus_fixture import PrometheusLauncher, prometheus_launcher
from tests.test_pipeline import scenario

EVERY = 7  # the broken writers below go wrong on every 7th acknowledgement (attempt)

# 200 requests of 2 series a second: the writer is mid-request much of the time, so the fault often finds a request
# in flight, which must be over (and counted) before Prometheus' count is read. (Read before the writer lets go, the
# count came out 2 short of the ledger in one run of two here.)
SIGKILLED = """\
name: acks
duration: 10s
storage: {backend: local}
prometheus: {scrape_interval: 2s}
loads: {tsdb: {series: 400, batch_series: 2, interval: 1s}}
faults: [{action: sigkill, at: 4s}]
"""


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[PrometheusLauncher]:
    yield from prometheus_launcher(tmp_path)


# --- writers that break the ledger, for the runs below (imported by the harness process they run in) --------------


class _ForgetfulLog(WriteLog):
    """Records every 7th acknowledgement nowhere: not in the ledger, not in the counters, which so still agree."""

    def __init__(self, layout: SeriesLayout) -> None:
        super().__init__(layout)
        self._acks = 0

    def add(self, record: RequestRecord) -> None:
        if record.outcome is WriteOutcome.ACKED:
            self._acks += 1
            if self._acks % EVERY == 0:
                return
        super().add(record)


class ForgetfulWriter(TsdbWriter):
    """The real writer with a ledger that misses acknowledgements."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log = _ForgetfulLog(self.layout)


class InventingWriter(TsdbWriter):
    """The real writer, but every 7th attempt is recorded acknowledged without being sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._attempts = 0

    def _attempt(self, body: bytes) -> tuple[WriteOutcome, str | None]:
        self._attempts += 1
        if self._attempts % EVERY == 0:
            return WriteOutcome.ACKED, None
        return super()._attempt(body)


def _run_with_writer(writer: str, path: Path, reports: Path, work: Path) -> CliRun:
    """``harness run`` as the CLI runs it, with the driver's writer class replaced by ``writer`` of this module."""
    code = (
        "import sys\n"
        "import harness.loads.driver as driver\n"
        f"from tests.test_ack_count import {writer}\n"
        f"driver.TsdbWriter = {writer}\n"
        "from harness.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return harness_cli("run", str(path), "--reports", str(reports), "--workdir", str(work), code=code)


# --- the count itself -----------------------------------------------------------------------------------------------


def test_prometheus_counts_exactly_the_requests_and_samples_the_ledger_holds_through_a_sigkill(
    launcher: PrometheusLauncher, tmp_path: Path
) -> None:
    """Per process lifetime, read once the writer has let go of it: the sums are the ledger's, request for request
    and (this Prometheus scrapes nothing, and a WAL replay appends nothing) sample for sample."""
    load = TsdbLoad.model_validate({"series": 60, "metrics": 3, "interval": "200ms", "batch_series": 25})
    prom = launcher.start(tmp_path / "data")
    writer = TsdbWriter(load, uuid.uuid4().hex[:8], endpoint=prom.url)
    writer.start()
    lifetimes: list[ServerWrites] = []
    try:
        wait_for(lambda: writer.acked_samples >= 60 * 8, what="8 ticks acknowledged", timeout_s=20)
        writer.set_endpoint(None)  # returns once the request in flight has ended
        assert writer.detached()
        lifetimes.append(prom.client.server_writes())
        prom.kill()
        prom = launcher.start(tmp_path / "data")
        replayed = prom.client.server_writes()
        assert replayed.samples_appended == 0 and replayed.accepted_requests == 0
        writer.set_endpoint(prom.url)
        acked = writer.acked_samples
        wait_for(lambda: writer.acked_samples >= acked + 60 * 8, what="8 more ticks", timeout_s=20)
    finally:
        writer.stop()
    lifetimes.append(prom.client.server_writes())
    ledger = writer.ledger
    assert lifetimes[0].process_start_unix_s != lifetimes[1].process_start_unix_s
    assert all(lt.accepted_requests > 0 for lt in lifetimes)
    assert sum(lt.accepted_requests for lt in lifetimes) == ledger.acknowledged_requests()
    assert sum(lt.samples_appended for lt in lifetimes) == ledger.acknowledged() == writer.acked_samples
    assert set().union(*(lt.write_requests for lt in lifetimes)) <= {"204"}


def _reading(label: str, start: float | None, accepted: int, *, settled: bool, error: str | None = None) -> AckReading:
    return AckReading(
        label=label, at_unix_s=0.0, instance="i", process_start_unix_s=start,
        write_requests={"204": accepted} if accepted else {}, settled=settled, error=error,
    )  # fmt: skip


def test_the_count_sums_each_process_once_and_is_incomplete_where_a_process_was_read_too_early() -> None:
    whole = [
        _reading("start", 1.0, 0, settled=False),
        _reading("before fault 1 (sigkill)", 1.0, 40, settled=True),
        _reading("after fault 1 (sigkill)", 2.0, 0, settled=False),
        _reading("before fault 2 (restart)", 2.0, 30, settled=True),
        _reading("after fault 2 (restart)", 3.0, 1, settled=False),
        _reading("end of the load", 3.0, 50, settled=True),
    ]
    acks = count_acks(whole, ledger_requests=118, ledger_samples=118 * 25, unanswered_attempts=2)
    assert (acks.server_requests, acks.lifetimes, acks.incomplete) == (120, 3, None)
    check = ack_count_check(acks)
    assert check.status is Status.PASSED and "2 more answered unseen" in check.reason
    assert ack_count_check(acks.model_copy(update={"unanswered_attempts": 1})).status is Status.ERROR
    assert ack_count_check(acks.model_copy(update={"ledger_requests": 121})).status is Status.ERROR

    # Shards writing to a Service write on through a fault: the reading before it is not the process' final count.
    service = [r if r.label != "before fault 1 (sigkill)" else r.model_copy(update={"settled": False}) for r in whole]
    # Prometheus replaced unseen during a fault that keeps it: the process read at the start was never read again.
    unseen = [r if r.label != "before fault 2 (restart)" else r.model_copy(update={"process_start_unix_s": 2.5})
              for r in whole]  # fmt: skip
    failed = [*whole[:-1], _reading("end of the load", None, 0, settled=True, error="connection refused")]
    for readings, words in (
        (service, "before fault 1 (sigkill) was taken while the load could still write"),
        (unseen, "after fault 1 (sigkill) was taken while the load could still write"),
        (failed, "reading end of the load: connection refused"),
        ([], "never read"),
    ):
        partial = count_acks(readings, ledger_requests=118, ledger_samples=0, unanswered_attempts=0)
        assert partial.server_requests is None and partial.incomplete is not None and words in partial.incomplete
        check = ack_count_check(partial)
        assert check.status is Status.SKIPPED and words in check.reason


# --- real runs --------------------------------------------------------------------------------------------------------


def test_a_real_run_through_a_sigkill_agrees_with_prometheus_request_for_request(
    area: tuple[Path, Path], tmp_path: Path
) -> None:
    reports, work = area
    done = _run_with_writer("TsdbWriter", scenario(tmp_path, SIGKILLED), reports, work).expect(0)
    run_dir, result = done.run_dir, done.result
    acks = result.server_acks
    assert acks is not None and acks.incomplete is None and acks.lifetimes == 2
    ledger = Ledger.load(run_dir / "tsdb-ledger.json")
    assert acks.server_requests == acks.ledger_requests == ledger.acknowledged_requests() > 0
    assert acks.ledger_samples == ledger.acknowledged() == result.durability[-1].acknowledged
    assert [r.label for r in acks.readings] == [
        "start", "before fault 1 (sigkill)", "after fault 1 (sigkill)", "end of the load"
    ]  # fmt: skip
    checks = {c.name: c.status for c in result.checks}
    assert checks == {"history_survival": Status.PASSED, "ack_count": Status.PASSED, "recovery": Status.PASSED}
    html = (run_dir / "report.html").read_text()
    assert "remote writes answered 2xx by Prometheus" in html and f"ledger {acks.ledger_requests:,}" in html


def test_a_ledger_that_misses_acknowledgements_is_caught_by_prometheus_count(
    area: tuple[Path, Path], tmp_path: Path
) -> None:
    """Every 7th acknowledgement is recorded nowhere: the history check passes (it checks only what the ledger
    holds) and the ledger agrees with the writer's counter, as before; Prometheus' count does not."""
    reports, work = area
    started = time.monotonic()
    done = _run_with_writer("ForgetfulWriter", scenario(tmp_path, SIGKILLED), reports, work)
    print(f"\nforgetful writer run: {time.monotonic() - started:.1f} s")
    result = done.expect(2).result
    checks = {c.name: c for c in result.checks}
    assert checks["history_survival"].status is Status.PASSED
    assert result.load is not None and result.load.acked_samples == result.durability[-1].acknowledged
    acks = result.server_acks
    assert acks is not None and acks.server_requests is not None and acks.unanswered_attempts == 0
    missed = acks.server_requests - acks.ledger_requests
    print(f"Prometheus answered {acks.server_requests} requests 2xx, the ledger holds {acks.ledger_requests}")
    assert missed == acks.server_requests // EVERY > 0  # one writer thread: every 7th of all it sent
    check = checks["ack_count"]
    assert check.status is Status.ERROR and f"the writer missed {missed:,} acknowledgement(s)" in check.reason
    assert result.verdict is Status.ERROR


def test_a_ledger_with_acknowledgements_prometheus_never_gave_is_caught_by_prometheus_count(
    area: tuple[Path, Path], tmp_path: Path
) -> None:
    """Every 7th attempt is recorded acknowledged without being sent: the history check reports its samples lost,
    which is the harness's doing, not the storage's; Prometheus' count says so, and the run is an ERROR."""
    reports, work = area
    result = _run_with_writer("InventingWriter", scenario(tmp_path, SIGKILLED), reports, work).expect(2).result
    checks = {c.name: c for c in result.checks}
    acks = result.server_acks
    assert acks is not None and acks.server_requests is not None
    invented = acks.ledger_requests - acks.server_requests
    print(f"\nPrometheus answered {acks.server_requests} requests 2xx, the ledger holds {acks.ledger_requests}")
    assert invented > 0  # every 7th attempt, retries into the outage included
    assert checks["history_survival"].status is Status.FAILED
    check = checks["ack_count"]
    assert check.status is Status.ERROR
    assert f"recorded {invented:,} acknowledgement(s) Prometheus never gave" in check.reason
    assert result.verdict is Status.ERROR
