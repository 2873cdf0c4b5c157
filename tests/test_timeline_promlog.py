"""Pure pieces: the fault timeline and what is read from Prometheus' log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from harness.faults.timeline import plan_faults
from harness.promlog import parse_go_duration_s, storage_errors, wal_replay_durations_s, warnings_between
from harness.scenario.model import FaultSpec, Scenario


def fault(**kw: object) -> FaultSpec:
    """One fault entry, validated as the scenario validates it (the union is told apart by ``action``)."""
    raw = {"name": "t", "duration": "1h", "storage": {"backend": "ephemeral"}, "faults": [kw]}
    return Scenario.model_validate(raw).faults[0]


def test_timeline_orders_and_expands() -> None:
    planned = plan_faults(
        [fault(action="reschedule", at="45s"), fault(action="sigkill", every="20s")],
        duration_s=70.0,
    )
    assert [(p.index, p.at_s, p.action) for p in planned] == [
        (1, 20.0, "sigkill"),
        (2, 40.0, "sigkill"),
        (3, 45.0, "reschedule"),
        (4, 60.0, "sigkill"),
    ]


def test_timeline_count_limits_every() -> None:
    planned = plan_faults([fault(action="sigterm", every="5s", count=2)], duration_s=60.0)
    assert [p.at_s for p in planned] == [5.0, 10.0]


def test_timeline_leaves_time_to_recover_at_the_end() -> None:
    planned = plan_faults([fault(action="sigkill", every="10s")], duration_s=30.0)
    assert [p.at_s for p in planned] == [10.0, 20.0]


@pytest.mark.parametrize(
    ("text", "seconds"), [("2.4s", 2.4), ("550.123ms", 0.550123), ("1m2.5s", 62.5), ("36.5µs", 36.5e-6), ("1h", 3600)]
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration_s(text) == pytest.approx(seconds)


def test_wal_replay_from_prometheus_2_and_3_logs() -> None:
    v2 = (
        'ts=2026-11-27T05:00:00.000Z caller=head.go:683 level=info component=tsdb msg="WAL replay completed" '
        "checkpoint_replay_duration=36.5µs wal_replay_duration=2.3s wbl_replay_duration=200ns "
        "total_replay_duration=2.4s"
    )
    v3 = 'time=2026-11-27T05:00:01Z level=INFO source=head.go:1 msg="WAL replay completed" total_replay_duration=12ms'
    assert wal_replay_durations_s(f"{v2}\nother line\n{v3}\n") == pytest.approx([2.4, 0.012])


def test_storage_errors_are_explained() -> None:
    line = (
        'ts=x caller=main.go:1 level=error err="opening storage failed: lock DB directory: '
        'open /prometheus/lock: permission denied"'
    )
    [(found, meaning)] = storage_errors(line)
    assert found == line
    assert "not writable" in meaning


def test_warnings_between_quotes_the_window_only() -> None:
    log = "\n".join(
        [
            'time=2026-12-03T10:00:00.000Z level=INFO source=main.go msg="Server is ready to receive web requests."',
            'time=2026-12-03T10:00:05.000Z level=ERROR source=head.go msg="write to WAL" err="no space left on device"',
            "goroutine 1 [running]:",
            'ts=2026-12-03T10:00:06.5Z caller=db.go level=warn msg="compaction failed"',
            'time=2026-12-03T10:00:09.000Z level=ERROR source=head.go msg="after the window"',
        ]
    )
    t = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC).timestamp()
    lines = warnings_between(log, t + 1, t + 8)
    assert lines == [
        'time=2026-12-03T10:00:05.000Z level=ERROR source=head.go msg="write to WAL" err="no space left on device"',
        "goroutine 1 [running]:",
        'ts=2026-12-03T10:00:06.5Z caller=db.go level=warn msg="compaction failed"',
    ]
    assert warnings_between(log, t + 1, t + 8, limit=1)[-1] == "... and 2 more"
    assert warnings_between(log, t - 10, t - 1) == []


def test_warnings_between_quotes_a_repeated_line_once_with_its_count() -> None:
    line = 'time=2026-12-03T10:00:0{s}.000Z level=ERROR msg="Error appending" err="no space left on device"'
    log = "\n".join(line.format(s=s) for s in (1, 2, 3))
    t = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC).timestamp()
    assert warnings_between(log, t, t + 10) == [
        line.format(s=1) + "  [3 such lines, the last at 2026-12-03T10:00:03.000Z]"
    ]
