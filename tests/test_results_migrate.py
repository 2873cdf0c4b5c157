"""Stored results across format versions: older files are migrated on read, newer ones refused with a message that
says what to do, never a pydantic dump; a run that never reached its load phase has no 1970 anywhere."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.report.html import build_context, render_html
from harness.results.model import (
    RESULT_SCHEMA_VERSION,
    AckCount,
    AckReading,
    CheckResult,
    ClusterFacts,
    Event,
    LoadStats,
    RunResult,
    Status,
    VolumeFacts,
)
from harness.results.store import RESULT_FILE, load_result, save_result
from tests.test_report import T0_UNIX_S, interrupted_result, make_result


def _as_v1(result: RunResult, t0: float, event_times_v1: list[float]) -> dict[str, object]:
    """``result`` written by a version-1 harness: events timed in ``t_s``, no load stats, t0 0.0 when unset."""
    raw = json.loads(result.model_dump_json())
    raw["schema_version"] = 1
    raw["t0_unix_s"] = t0
    raw.pop("load")
    _drop_v3_fields(raw)
    raw["events"] = [
        {"t_s": t, "kind": e["kind"], "message": e["message"]}
        for t, e in zip(event_times_v1, raw["events"], strict=True)
    ]
    return raw


def _drop_v12_fields(raw: dict[str, object]) -> None:
    for fault in raw["faults"]:  # type: ignore[attr-defined]
        fault.pop("stages_note")


def _drop_v11_fields(raw: dict[str, object]) -> None:
    _drop_v12_fields(raw)
    raw.pop("overrides")


def _drop_v10_fields(raw: dict[str, object]) -> None:
    _drop_v11_fields(raw)
    raw.pop("server_acks")


def _drop_v9_fields(raw: dict[str, object]) -> None:
    """Version 9 added no field, only the PARTIAL status, which a version 8 file cannot hold."""
    _drop_v10_fields(raw)
    assert all(c["status"] != "PARTIAL" for c in raw["checks"])  # type: ignore[attr-defined]


def _drop_v8_fields(raw: dict[str, object]) -> None:
    _drop_v9_fields(raw)
    if raw.get("load"):
        raw["load"].pop("shards")  # type: ignore[attr-defined]


def _drop_v7_fields(raw: dict[str, object]) -> None:
    _drop_v8_fields(raw)
    cluster = raw["cluster"]
    if cluster and cluster["volume"]:  # type: ignore[index]
        cluster["volume"].pop("volume_binding_mode")  # type: ignore[index]


def _drop_v6_fields(raw: dict[str, object]) -> None:
    _drop_v7_fields(raw)
    for job in raw["fio"]:  # type: ignore[attr-defined]
        job.pop("cpu_pct")


def _drop_v5_fields(raw: dict[str, object]) -> None:
    _drop_v6_fields(raw)
    for job in raw["fio"]:  # type: ignore[attr-defined]
        job.pop("job")
        job.pop("repetition")


def _drop_v4_fields(raw: dict[str, object]) -> None:
    _drop_v5_fields(raw)
    for checkpoint in raw["durability"]:  # type: ignore[attr-defined]
        checkpoint.pop("after_fault")
    for fault in raw["faults"]:  # type: ignore[attr-defined]
        for key in ("below_prometheus", "lifted_at_s", "write_failures", "write_errors", "prometheus_log"):
            fault.pop(key)


def _drop_v3_fields(raw: dict[str, object]) -> None:
    _drop_v4_fields(raw)
    raw.pop("cluster")
    for fault in raw["faults"]:  # type: ignore[attr-defined]
        fault.pop("stages")
    for job in raw["fio"]:  # type: ignore[attr-defined]
        job.pop("measured_on")


def _as_version(result: RunResult, version: int) -> dict[str, object]:
    """``result`` as a harness of ``version`` (2 to 11) wrote it: without the fields added since."""
    raw = json.loads(result.model_dump_json())
    raw["schema_version"] = version
    {
        2: _drop_v3_fields,
        3: _drop_v4_fields,
        4: _drop_v5_fields,
        5: _drop_v6_fields,
        6: _drop_v7_fields,
        7: _drop_v8_fields,
        8: _drop_v9_fields,
        9: _drop_v10_fields,
        10: _drop_v11_fields,
        11: _drop_v12_fields,
    }[version](raw)
    return raw  # type: ignore[no-any-return]


def _without_stages(result: RunResult) -> list[object]:
    return [f.model_copy(update={"stages": []}) for f in result.faults]


def _write(tmp_path: Path, raw: dict[str, object]) -> Path:
    (tmp_path / RESULT_FILE).write_text(json.dumps(raw), encoding="utf-8")
    return tmp_path


def _with_server_acks(result: RunResult) -> RunResult:
    """``result`` with Prometheus' own count of the remote writes it answered, over its two SIGKILLed lifetimes."""
    t0 = result.t0_unix_s or 0.0
    readings = [
        AckReading(label="start", at_unix_s=t0, instance="prom-0", process_start_unix_s=t0 - 1),
        AckReading(label="before fault 1 (sigkill)", at_unix_s=t0 + 30, instance="prom-0",
                   process_start_unix_s=t0 - 1, write_requests={"204": 300}, settled=True),
        AckReading(label="after fault 1 (sigkill)", at_unix_s=t0 + 31, instance="prom-1",
                   process_start_unix_s=t0 + 30.5),
        AckReading(label="end of the load", at_unix_s=t0 + 90, instance="prom-1", process_start_unix_s=t0 + 30.5,
                   write_requests={"204": 590, "503": 2}, settled=True),
    ]  # fmt: skip
    acks = AckCount(
        ledger_requests=890, ledger_samples=890_000, unanswered_attempts=0, server_requests=890, lifetimes=2,
        readings=readings,
    )  # fmt: skip
    return result.model_copy(update={"server_acks": acks})


def test_the_current_version_is_12_and_round_trips(tmp_path: Path) -> None:
    assert RESULT_SCHEMA_VERSION == 12
    overridden = make_result().model_copy(update={"overrides": ["storage.node=node-1", "storage.path=/mnt/x"]})
    for result in (make_result(), _with_server_acks(make_result()), overridden, _with_stages_note(make_result())):
        save_result(tmp_path, result)
        assert load_result(tmp_path) == result


def test_a_version_1_result_is_migrated_to_absolute_event_times(tmp_path: Path) -> None:
    result = make_result()
    started = result.started_at.timestamp()
    setup_s = T0_UNIX_S - started
    # Version 1: the first event (before the load phase) counted from the run's start, the others from t0.
    v1_times = [setup_s - 4.0, 30.02, 60.02, 91.0]
    loaded = load_result(_write(tmp_path, _as_v1(result, T0_UNIX_S, v1_times)))
    assert loaded.schema_version == RESULT_SCHEMA_VERSION
    assert [e.at_unix_s for e in loaded.events] == pytest.approx([e.at_unix_s for e in result.events])
    assert loaded.t0_unix_s == T0_UNIX_S and loaded.load is None
    assert _without_stages(loaded) == _without_stages(result) and loaded.durability == result.durability


def test_a_version_2_result_gets_the_stages_the_harness_observed(tmp_path: Path) -> None:
    result = make_result()
    loaded = load_result(_write(tmp_path, _as_version(result, 2)))
    for before, after in zip(result.faults, loaded.faults, strict=True):
        assert after.stages[0].stage == "injected"
        assert after.stage_s("injected") == 0.0
        assert after.stage_s("ready") == pytest.approx(before.ready_at_s - before.injected_at_s)  # type: ignore[operator]
        assert after.stage_s("first_sample") == pytest.approx(before.recovery_s)
        assert after.stage_s("scheduled") is None  # a version 2 harness did not look
    assert all(job.measured_on is None for job in loaded.fio)


def test_a_version_3_result_marks_power_loss_as_below_prometheus(tmp_path: Path) -> None:
    result = make_result()
    raw = _as_version(result, 3)
    raw["faults"][0]["action"] = "power_loss"  # type: ignore[index]
    loaded = load_result(_write(tmp_path, raw))
    assert [f.below_prometheus for f in loaded.faults] == [True] + [False] * (len(result.faults) - 1)
    assert all(f.lifted_at_s is None and f.write_failures == {} and f.prometheus_log == [] for f in loaded.faults)
    assert loaded.faults[1:] == result.faults[1:]


def test_a_version_4_result_ran_each_fio_job_once_under_its_own_name(tmp_path: Path) -> None:
    result = make_result()
    loaded = load_result(_write(tmp_path, _as_version(result, 4)))
    assert [(j.job, j.repetition) for j in loaded.fio] == [("randwrite-4k", 1), ("wal-append", 1)]
    assert [j.model_copy(update={"job": None}) for j in loaded.fio] == result.fio
    assert loaded.faults == result.faults and loaded.durability == result.durability


def test_a_version_5_result_has_no_fio_cpu_use(tmp_path: Path) -> None:
    result = make_result()
    for job in result.fio:
        job.cpu_pct = 42.0
    loaded = load_result(_write(tmp_path, _as_version(result, 5)))
    assert [j.cpu_pct for j in loaded.fio] == [None, None]
    assert [j.model_copy(update={"cpu_pct": 42.0}) for j in loaded.fio] == result.fio


def test_a_version_6_result_has_no_binding_mode(tmp_path: Path) -> None:
    volume = VolumeFacts(
        claim="ns/c", pv="pvc-1", storage_class="local-path", provisioner="rancher.io/local-path",
        volume_binding_mode="WaitForFirstConsumer",
    )  # fmt: skip
    result = make_result().model_copy(update={"cluster": ClusterFacts(server_version="v1.32.13", volume=volume)})
    loaded = load_result(_write(tmp_path, _as_version(result, 6)))
    assert loaded.cluster is not None and loaded.cluster.volume is not None
    assert loaded.cluster.volume.volume_binding_mode is None
    assert loaded.cluster.volume.model_copy(update={"volume_binding_mode": "WaitForFirstConsumer"}) == volume
    assert loaded.fio == result.fio and loaded.faults == result.faults


def test_a_version_6_result_without_a_cluster_stays_without(tmp_path: Path) -> None:
    loaded = load_result(_write(tmp_path, _as_version(make_result(), 6)))
    assert loaded.cluster is None and loaded.schema_version == RESULT_SCHEMA_VERSION


def test_a_version_7_result_had_one_writer(tmp_path: Path) -> None:
    load = LoadStats(mode="remote_write", series=100_000, interval_s=1.0, acked_samples=6_000_000, shards=4)
    result = make_result().model_copy(update={"load": load})
    loaded = load_result(_write(tmp_path, _as_version(result, 7)))
    assert loaded.load is not None and loaded.load.shards == 1
    assert loaded.load.model_copy(update={"shards": 4}) == load


def _unrecovered(history: Status, reason: str) -> RunResult:
    """A run whose fault 2 Prometheus never recovered from, its history check as an older harness judged it."""
    result = make_result()
    result.faults[1].status = Status.FAILED
    result.durability = result.durability[:1]
    result.checks = [
        CheckResult(name="history_survival", status=history, reason=reason),
        CheckResult(name="recovery", status=Status.FAILED, reason="fault 2 (reschedule): Prometheus did not recover"),
    ]
    result.verdict = result.overall()
    return result


UNKNOWN_SINCE = "; Prometheus did not recover after fault 2 (reschedule), so its history since is unknown"


def test_a_version_8_history_passed_before_a_fault_never_recovered_from_becomes_partial(tmp_path: Path) -> None:
    """Version 8 passed it, with "history since is unknown" in its reason: what came after was never checked."""
    reason = "1 checkpoint(s), 60,000 acknowledged samples checked, at most 0 lost (limit 0)" + UNKNOWN_SINCE
    result = _unrecovered(Status.PASSED, reason)
    loaded = load_result(_write(tmp_path, _as_version(result, 8)))
    history, recovery = loaded.checks
    assert history.status is Status.PARTIAL and history.reason == reason
    # The run was FAILED already (its recovery check failed), and nothing else changes.
    assert recovery == result.checks[1] and result.verdict is Status.FAILED
    assert loaded.model_copy(update={"checks": result.checks}) == result


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (Status.FAILED, "after fault 1 (sigkill): 40 of 60,000 acknowledged samples lost" + UNKNOWN_SINCE),
        (Status.PASSED, "1 checkpoint(s), 60,000 acknowledged samples checked, at most 0 lost (limit 0)"),
    ],
)
def test_other_version_8_history_checks_keep_their_status(tmp_path: Path, status: Status, reason: str) -> None:
    result = _unrecovered(status, reason)
    loaded = load_result(_write(tmp_path, _as_version(result, 8)))
    assert loaded.checks == result.checks and loaded.schema_version == RESULT_SCHEMA_VERSION


def test_a_version_9_result_has_no_server_count_of_its_acknowledgements(tmp_path: Path) -> None:
    result = _with_server_acks(make_result())
    loaded = load_result(_write(tmp_path, _as_version(result, 9)))
    assert loaded.server_acks is None and loaded.schema_version == RESULT_SCHEMA_VERSION
    assert loaded.model_copy(update={"server_acks": result.server_acks}) == result


def test_a_version_10_result_ran_its_file_as_written(tmp_path: Path) -> None:
    result = make_result()
    loaded = load_result(_write(tmp_path, _as_version(result, 10)))
    assert loaded.overrides == [] and loaded == result


def _with_stages_note(result: RunResult) -> RunResult:
    note = "volume_staged and volume_published not shown: node-1's kubelet served no metrics through the API"
    return result.model_copy(update={"faults": [f.model_copy(update={"stages_note": note}) for f in result.faults]})


def test_a_version_11_result_did_not_look_for_the_csi_stages(tmp_path: Path) -> None:
    result = _with_stages_note(make_result())
    loaded = load_result(_write(tmp_path, _as_version(result, 11)))
    assert [f.stages_note for f in loaded.faults] == [""] * len(result.faults)
    assert loaded == make_result()


def test_a_version_1_run_stopped_before_its_load_phase_gets_no_t0(tmp_path: Path) -> None:
    result = interrupted_result()
    started = result.started_at.timestamp()
    loaded = load_result(_write(tmp_path, _as_v1(result, 0.0, [1.0, 2.5])))
    assert loaded.t0_unix_s is None
    assert [e.at_unix_s for e in loaded.events] == pytest.approx([started + 1.0, started + 2.5])


def test_a_newer_result_is_refused_with_what_to_do(tmp_path: Path) -> None:
    raw = json.loads(make_result().model_dump_json())
    raw["schema_version"] = RESULT_SCHEMA_VERSION + 1
    raw["something_new"] = {"a": 1}
    with pytest.raises(UsageError) as info:
        load_result(_write(tmp_path, raw))
    message = str(info.value)
    assert f"written by a newer harness (result schema version {RESULT_SCHEMA_VERSION + 1}" in message
    assert "upgrade the harness" in message and "validation error" not in message


@pytest.mark.parametrize("version", [None, "2", True])
def test_a_file_without_an_integer_version_is_not_a_result(tmp_path: Path, version: object) -> None:
    raw = json.loads(make_result().model_dump_json())
    raw["schema_version"] = version
    with pytest.raises(UsageError, match="not a result file of this harness"):
        load_result(_write(tmp_path, raw))


def test_a_broken_current_file_names_the_problem_briefly(tmp_path: Path) -> None:
    raw = json.loads(make_result().model_dump_json())
    raw["faults"] = [{"index": "x"}] * 50
    with pytest.raises(UsageError) as info:
        load_result(_write(tmp_path, raw))
    message = str(info.value)
    assert f"does not match schema version {RESULT_SCHEMA_VERSION}" in message and len(message) < 1200


def test_a_run_stopped_by_the_doctor_shows_its_own_times_not_1970() -> None:
    started = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
    result = interrupted_result().model_copy(
        update={
            "started_at": started,
            "t0_unix_s": None,
            "events": [Event(at_unix_s=started.timestamp() + 1.5, kind="error", message="doctor: blocked")],
        }
    )
    events = build_context(result)["events"]
    assert events == [("+1.50 s (10:00:01.500)", "error", "doctor: blocked")]
    assert "1970" not in render_html(result)
