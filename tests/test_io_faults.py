"""The ``io_errors`` and ``io_latency`` faults on the local runtime: the fault layer
(``harness.datapath.fault_fuse``, real
FUSE) on its own, then whole runs with the real prometheus.

What the runs show (Prometheus 2.42): while its WAL writes fail with EIO, Prometheus answers remote writes with HTTP
500 ("write to WAL: log samples: ... input/output error") and logs "Error appending remote write"; it takes writes
again as soon as the errors stop and loses nothing while it runs. But the WAL keeps the first part of a record whose
page flush failed and writes it out with the next flush that works (prometheus/prometheus#13027), so the next start
finds "corruption in segment ... unexpected full record", repairs the WAL by cutting it there, and every sample
acknowledged after the errors is gone. A delay on the same operations loses nothing.
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from harness.capabilities.fault_layer import FaultLayerControl
from harness.datapath.fault_protocol import IO_METHODS
from harness.errors import UsageError
from harness.refusals import refuse_faults
from harness.results.model import Status
from harness.runtime.kubernetes import KubernetesRuntime
from harness.scenario.model import IoMethod, Scenario
from tests.leftovers import left_behind, run
from tests.test_power_loss import Layer, layer, needs_fuse_as_root

__all__ = ["layer"]  # the fixture, shared with the power-loss tests: the same layer serves both


def _io_set(layer: Layer, **settings: object) -> None:
    answer = layer.command(b"io-set " + json.dumps({"errno": None, "delay_s": 0, **settings}).encode())
    assert "set_at_unix_s" in answer


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


# --- the layer on its own ----------------------------------------------------------------------------------------


@needs_fuse_as_root
def test_io_errors_fail_the_chosen_operations_until_cleared(layer: Layer) -> None:
    d = layer.directory
    _io_set(layer, methods=["write"], percent=100, errno=errno.EIO)
    with pytest.raises(OSError) as failed:
        _write(d / "new", b"x" * 100)
    assert failed.value.errno == errno.EIO
    assert (d / "new").read_bytes() == b""  # the create went through (not chosen); the write did nothing
    assert (d / "old").read_bytes() == b"hello\n"  # reads are not chosen
    counts = layer.command(b"io-clear")["counts"]
    assert counts == {"write": {"matched": 1, "failed": 1, "delayed": 0}}
    _write(d / "new", b"y" * 100)
    assert (d / "new").read_bytes() == b"y" * 100
    assert layer.command(b"io-clear")["counts"] == {}  # nothing set: nothing to count

    # 0 percent hits nothing; fsync is its own method; a path restricts the fault to what is under it.
    _io_set(layer, methods=["write"], percent=0, errno=errno.EIO)
    _write(d / "new", b"z" * 100)
    assert layer.command(b"io-clear")["counts"]["write"] == {"matched": 1, "failed": 0, "delayed": 0}
    (d / "wal").mkdir()
    _io_set(layer, methods=["fsync"], percent=100, errno=errno.EIO, path="wal")
    fd = os.open(d / "wal" / "seg", os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, b"w" * 10)  # writes are not chosen
        with pytest.raises(OSError) as failed:
            os.fsync(fd)
        assert failed.value.errno == errno.EIO
    finally:
        os.close(fd)
    fd = os.open(d / "new", os.O_WRONLY)
    try:
        os.fsync(fd)  # not under wal/
    finally:
        os.close(fd)
    assert layer.command(b"io-clear")["counts"] == {"fsync": {"matched": 1, "failed": 1, "delayed": 0}}


@needs_fuse_as_root
def test_with_every_operation_failing_the_fault_can_still_be_lifted(layer: Layer) -> None:
    """The kernel needs the data directory's own attributes to reach the control file: those are never hit."""
    _io_set(layer, methods=[], percent=100, errno=errno.EIO)
    with pytest.raises(OSError) as failed:
        (layer.directory / "old").stat()
    assert failed.value.errno == errno.EIO
    counts = layer.command(b"io-clear")["counts"]
    assert counts["getattr"]["failed"] >= 1
    assert (layer.directory / "old").read_bytes() == b"hello\n"


@needs_fuse_as_root
def test_io_latency_delays_the_chosen_operations_and_they_succeed(layer: Layer) -> None:
    d = layer.directory
    _io_set(layer, methods=["write"], percent=100, delay_s=0.3)
    started = time.monotonic()
    _write(d / "slow", b"s" * 100)
    assert time.monotonic() - started >= 0.3  # a lower bound only: the machine may be slower still
    assert (d / "slow").read_bytes() == b"s" * 100
    assert layer.command(b"io-clear")["counts"] == {"write": {"matched": 1, "failed": 0, "delayed": 1}}


@needs_fuse_as_root
def test_the_layer_refuses_io_settings_it_does_not_know(layer: Layer) -> None:
    for bad in (b'io-set {"methods": ["explode"]}', b'io-set {"percent": 101}', b"io-set not json"):
        with pytest.raises(OSError) as refused:
            layer.command(bad)
        assert refused.value.errno == errno.EINVAL
    _write(layer.directory / "fine", b"f")  # nothing was set


def test_the_scenario_and_the_layer_name_the_same_methods() -> None:
    assert set(get_args(IoMethod)) == IO_METHODS


def test_io_fault_settings_are_validated_and_kubernetes_needs_a_privileged_helper_allowed() -> None:
    def scenario(fault: dict[str, object]) -> Scenario:
        raw = {"name": "t", "duration": "1m", "storage": {"backend": "ephemeral"}, "faults": [fault]}
        return Scenario.model_validate(raw)

    for bad in (
        {"action": "io_errors", "at": "1s", "errno": "EBOGUS"},
        {"action": "io_errors", "at": "1s", "methods": ["explode"]},
        {"action": "io_errors", "at": "1s", "path": "/abs"},
        {"action": "io_errors", "at": "1s", "path": "../up"},
        {"action": "io_errors", "at": "1s", "percent": 150},
        {"action": "io_latency", "at": "1s"},  # a delay is required
        {"action": "io_latency", "at": "1s", "delay": "0s"},
    ):
        with pytest.raises(ValidationError):
            scenario(bad)
    for fault in ({"action": "io_errors", "at": "10s"}, {"action": "io_latency", "at": "10s", "delay": "50ms"}):
        ok = scenario(fault)
        refuse_faults("local", ok)
        refuse_faults("kubernetes", ok)
        # The cluster runtime puts the layer in a privileged sidecar: only where the scenario allows one.
        with pytest.raises(UsageError) as refused:
            KubernetesRuntime(ok, "r1", logs_dir=Path("/nonexistent"), needs=frozenset({FaultLayerControl}))
        said = str(refused.value)
        assert "privileged_helper: true" in said and "--runtime local" in said
        operator = ok.model_copy(update={"prometheus": ok.prometheus.model_copy(update={"deploy": "operator"})})
        allowed = operator.prometheus.model_copy(update={"privileged_helper": True})
        with pytest.raises(UsageError) as refused:
            KubernetesRuntime(
                operator.model_copy(update={"prometheus": allowed}),
                "r1",
                logs_dir=Path("/x"),
                needs=frozenset({FaultLayerControl}),
            )
        assert "prometheus.deploy: statefulset" in str(refused.value)


# --- whole runs ----------------------------------------------------------------------------------------------------

SCENARIO = """
name: io-faults
duration: {duration}
storage: {{backend: local}}
loads: {{tsdb: {{series: 500, interval: 1s}}}}
faults: [{faults}]
"""


@needs_fuse_as_root
@pytest.mark.slow
def test_eio_on_wal_writes_is_rejected_and_recovered_from_but_the_next_restart_loses_what_came_after(
    area: tuple[Path, Path], tmp_path: Path
) -> None:
    """EIO on every write and fsync under wal/ for 4 s, then a SIGKILL. While Prometheus runs nothing acknowledged
    is lost; the restart's WAL repair loses what was acknowledged after the errors (prometheus/prometheus#13027)."""
    reports, work = area
    path = tmp_path / "io-errors.yaml"
    faults = "{action: io_errors, at: 3s, for: 4s, methods: [write, fsync], path: wal}, {action: sigkill, at: 10s}"
    path.write_text(SCENARIO.format(duration="13s", faults=faults))
    done = run(path, reports, work).expect(1)
    result = done.result
    assert result.environment.data_access is not None and "fault layer" in result.environment.data_access
    assert [(f.action, f.status) for f in result.faults] == [("io_errors", Status.PASSED), ("sigkill", Status.PASSED)]
    errors, sigkill = result.faults
    assert errors.below_prometheus and errors.lifted_at_s is not None
    assert "EIO on 100% of write, fsync under wal/" in errors.detail and "the layer failed" in errors.detail
    # How Prometheus reacted: the remote writes were rejected (HTTP 500) and it said why, in its log.
    assert errors.write_failures.get("rejected", 0) > 0, errors.write_failures
    assert any("input/output error" in e for e in errors.write_errors), errors.write_errors
    assert any("Error appending remote write" in line and "write to WAL" in line for line in errors.prometheus_log)
    # It recovered once the errors stopped, and lost nothing while it ran.
    assert errors.first_sample_at_s is not None and errors.first_sample_at_s >= errors.lifted_at_s
    after_errors, after_sigkill, final = result.durability
    assert after_errors.acknowledged > 0 and after_errors.lost == 0
    # The restart found the torn record, cut the WAL there, and lost what was acknowledged after the errors.
    restart_log = (done.run_dir / "logs" / "prometheus-pod1-restart1.log").read_text()
    assert "Encountered WAL read error, attempting repair" in restart_log, restart_log[-2000:]
    assert after_sigkill.lost > 0 and after_sigkill.mismatched_values == 0
    assert result.t0_unix_s is not None
    assert after_sigkill.loss_window_start_unix_ms is not None and after_sigkill.loss_window_end_unix_ms is not None
    assert after_sigkill.loss_window_start_unix_ms >= (result.t0_unix_s + errors.injected_at_s) * 1000
    assert after_sigkill.loss_window_end_unix_ms <= (result.t0_unix_s + sigkill.injected_at_s) * 1000
    assert final.lost == after_sigkill.lost
    assert {c.name: c.status for c in result.checks}["history_survival"] is Status.FAILED
    assert left_behind(work) == [] and list(work.iterdir()) == []


@needs_fuse_as_root
@pytest.mark.slow
def test_latency_on_wal_writes_delays_them_and_loses_nothing(area: tuple[Path, Path], tmp_path: Path) -> None:
    reports, work = area
    path = tmp_path / "io-latency.yaml"
    faults = "{action: io_latency, at: 2s, for: 3s, delay: 200ms, methods: [write], path: wal}, "
    faults += "{action: sigkill, at: 7s}"
    path.write_text(SCENARIO.format(duration="9s", faults=faults))
    result = run(path, reports, work).expect(0).result
    latency, _sigkill = result.faults
    assert latency.status is Status.PASSED and latency.lifted_at_s is not None
    assert "a 200 ms delay on 100% of write under wal/" in latency.detail and "the layer delayed" in latency.detail
    assert "the layer saw no matching operation" not in latency.detail
    after_latency, after_sigkill, final = result.durability
    # What was acknowledged during the window counts (the checkpoint's cutoff is the lift), and all of it is there.
    assert result.t0_unix_s is not None
    assert after_latency.cutoff_unix_ms >= int((result.t0_unix_s + latency.lifted_at_s) * 1000)
    assert all(c.acknowledged > 0 and c.lost == 0 for c in (after_latency, after_sigkill, final))
    assert left_behind(work) == [] and list(work.iterdir()) == []
