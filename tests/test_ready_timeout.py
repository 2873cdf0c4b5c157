"""Prometheus alive but not ready within ``prometheus.ready_timeout`` on the local runtime, end to end with the real
prometheus and the real write load: after a SIGKILL it replays a WAL longer than the budget. That is the storage or
Prometheus not holding (FAILED, exit 1), never a broken harness (ERROR, exit 2), and the run says why: alive, not
ready, and how far its WAL replay had got by its own log."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.promlog import line_time_unix_s, replay_progress, wal_replay_durations_s
from tests.cli import harness_cli
from tests.not_ready import assert_alive_but_not_ready
from tests.test_compare import parse_xml
from tests.test_pipeline import no_prometheus_left, scenario

# Every series replaced at every tick: each second Prometheus creates 60,000 new series, and a replay pays for each
# series again. 8 s of it makes a WAL of ~480k series that takes 2-3 s to replay on 2 cores (measured: 2.2-3.4 s);
# an empty TSDB is ready in ~0.05 s, so a 1 s budget holds the first start and not the restart.
READY_TIMEOUT_S = 1
SLOW_REPLAY = f"""
name: slow-replay
duration: 12s
storage: {{backend: local}}
prometheus: {{ready_timeout: {READY_TIMEOUT_S}s}}
loads: {{tsdb: {{series: 60000, interval: 1s, churn: {{every: 1s, fraction: 1.0}}}}}}
faults: [{{action: sigkill, at: 8s}}, {{action: restart, at: 11s}}]
"""


@pytest.mark.slow
def test_a_wal_replay_longer_than_ready_timeout_fails_the_run_saying_prometheus_was_alive_and_replaying(
    area: tuple[Path, Path], tmp_path: Path
) -> None:
    reports, work = area
    junit = tmp_path / "run.xml"
    path = scenario(tmp_path, SLOW_REPLAY)
    done = harness_cli("run", str(path), "--reports", str(reports), "--workdir", str(work), "--junit", str(junit))
    run_dir, result = done.expect(1).run_dir, done.result
    fault = assert_alive_but_not_ready(result, READY_TIMEOUT_S)
    assert [s.stage for s in fault.stages] == ["injected", "container_started", "healthy"]
    checks = {c.name: c for c in result.checks}
    assert "fault 1 (sigkill): Prometheus did not recover: Prometheus (pod #1" in checks["recovery"].reason
    # The reason is real: the restarted Prometheus, stopped at the end of the run, finished its replay first
    # (SIGTERM waits for it) and logged how long it took, longer than the budget.
    [replay_s] = wal_replay_durations_s((run_dir / "logs" / "prometheus-pod1-restart1.log").read_text())
    assert replay_s > READY_TIMEOUT_S, replay_s
    assert "alive but not ready within" in (run_dir / "report.html").read_text()
    failures = [f.get("message", "") for f in parse_xml(junit).iter("failure")]
    assert any("alive but not ready within" in m for m in failures), failures
    assert no_prometheus_left(work)


# Prometheus 2.42's own lines from one restart above (the replay of a ~720k-series WAL), cut at three moments.
_RESTART = """\
ts=2026-12-06T16:32:59.478Z caller=main.go:551 level=info msg="Starting Prometheus Server" mode=server
ts=2026-12-06T16:32:59.482Z caller=main.go:988 level=info msg="Starting TSDB ..."
ts=2026-12-06T16:32:59.485Z caller=head.go:564 level=info component=tsdb msg="Replaying on-disk memory mappable chunks if any"
ts=2026-12-06T16:32:59.485Z caller=head.go:608 level=info component=tsdb msg="On-disk memory mappable chunks replay completed" duration=2.469µs
ts=2026-12-06T16:32:59.485Z caller=head.go:614 level=info component=tsdb msg="Replaying WAL, this may take a while"
ts=2026-12-06T16:33:02.863Z caller=head.go:685 level=info component=tsdb msg="WAL segment loaded" segment=0 maxSegment=1
ts=2026-12-06T16:33:02.863Z caller=head.go:722 level=info component=tsdb msg="WAL replay completed" checkpoint_replay_duration=19.024µs wal_replay_duration=3.378105999s wbl_replay_duration=193ns total_replay_duration=3.378140061s
"""  # noqa: E501 -- log lines as Prometheus wrote them


def test_replay_progress_reads_how_far_the_last_start_got_from_prometheus_own_lines() -> None:
    lines = _RESTART.splitlines()
    at = line_time_unix_s(lines[4])
    assert at is not None
    assert replay_progress("\n".join(lines[:5]), at + 1.25) == (
        "it had been replaying its WAL for 1.2 s, no WAL segment loaded yet"
    )
    assert replay_progress("\n".join(lines[:6]), at + 3.5) == (
        "it had been replaying its WAL for 3.5 s, WAL segments loaded up to 0 of 1 (the last, 0.1 s ago)"
    )
    assert replay_progress(_RESTART, at + 4).startswith("its WAL replay had completed in 3.38 s, but it was not ready")
    # Only the last start counts: an earlier process' completed replay says nothing of this one.
    assert replay_progress(_RESTART + "\n".join(lines[:3]), at + 4) == (
        "it had been replaying its on-disk memory-mappable chunks for 4.0 s"
    )
    assert replay_progress("\n".join(lines[:2]), at) == ""
