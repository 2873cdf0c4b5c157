"""The HTML report, rendered from synthetic but realistic stored results (no daemons: it reads only result.json).

The results are built here, saved with the real store and rendered from disk, so the tests exercise exactly what
``harness report RUN_DIR`` does on an old run.
"""

from __future__ import annotations

import base64
import math
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import UsageError
from harness.report import charts, frames
from harness.report.html import build_context, render_html, render_report
from harness.report.tables import yamlish
from harness.results.model import (
    CheckResult,
    DoctorFinding,
    DurabilityCheckpoint,
    Environment,
    Event,
    FaultRecord,
    FioDirection,
    FioJobResult,
    FioPoint,
    IngestPoint,
    RecoveryStage,
    RunResult,
    Severity,
    Status,
)
from harness.results.store import REPORT_FILE, RESULT_FILE, save_result

T0_UNIX_S = 1_795_000_000.0  # 2026-11-19, a fixed instant so rendered times are predictable
SERIES = 20_000
SAMPLES_PER_S = 2_000  # 20k series written every 10 s


def environment(filesystem: str = "ext4") -> Environment:
    return Environment(
        hostname="bench-01",
        kernel="6.1.0-27-amd64",
        os="Debian GNU/Linux 12 (bookworm)",
        python="3.11.2",
        harness_version="0.1.0",
        runtime="local",
        cpu_count=2,
        memory_bytes=8 * 1024**3,
        prometheus_version="2.42.0",
        fio_version="fio-3.33",
        data_path="/var/lib/harness/tsdb",
        data_filesystem=filesystem,
        data_device="/dev/loop3",
    )


def fio_job(
    name: str, profile: str, bw_bytes_per_s: float, block_bytes: int, rng: random.Random, *, points: int = 20
) -> FioJobResult:
    """A write job with a noisy per-second time series around ``bw_bytes_per_s`` and plausible percentiles."""
    series = []
    for i in range(points):
        bw = bw_bytes_per_s * rng.uniform(0.93, 1.07)
        series.append(FioPoint(t_s=float(i + 1), bw_bytes_per_s=bw, iops=bw / block_bytes, lat_ns_mean=40_000.0))
    mean_bw = sum(p.bw_bytes_per_s for p in series) / points
    base_ns = 30_000.0 * (1024**2 * 60 / bw_bytes_per_s)
    write = FioDirection(
        io_bytes=int(mean_bw * points),
        bw_bytes_per_s=mean_bw,
        iops=mean_bw / block_bytes,
        runtime_s=float(points),
        clat_ns_mean=base_ns * 1.3,
        clat_percentiles_ns={"p50": base_ns, "p90": base_ns * 2, "p99": base_ns * 12, "p99.9": base_ns * 60},
        timeseries=series,
    )
    sync = {"p50": 900_000.0, "p90": 1_800_000.0, "p99": 6_000_000.0, "p99.9": 14_000_000.0}
    return FioJobResult(
        name=name,
        profile=profile,
        argv=["fio", f"--name={name}", "--output-format=json"],
        directory="/var/lib/harness/fio",
        size_bytes=512 * 1024**2,
        runtime_s=float(points),
        write=write,
        sync_lat_ns_percentiles=sync if profile == "wal-append" else {},
        raw_json_file=f"fio-{name}.json",
        block_size_bytes=block_bytes,
        ioengine="psync" if profile == "wal-append" else "libaio",
        direct=profile != "wal-append",
        iodepth=1 if profile == "wal-append" else 16,
        sync_every_bytes=16 * 1024**2 if profile == "wal-append" else None,
        sync_count=480 if profile == "wal-append" else 0,
        sync_lat_ns_mean=1_100_000.0 if profile == "wal-append" else None,
    )


def _stages(action: str, injected: float, up: float, ready: float, first: float) -> list[RecoveryStage]:
    """A SIGKILL's stages as the local runtime sees them; a reschedule's as the kubernetes runtime does (a new pod
    with API timestamps of whole seconds, truncated)."""
    harness = [("injected", injected, 0.0), ("healthy", up, 0.0), ("ready", ready, 0.0), ("first_sample", first, 0.0)]
    if action == "sigkill":
        api = [("container_started", injected + 0.05, 0.0)]
    else:
        api = [
            ("pod_created", math.floor(injected + 0.3), 1.0),
            ("scheduled", math.floor(injected + 0.35), 1.0),
            ("volumes_mounted", math.floor(injected + 0.6), 1.0),
            ("container_started", math.floor(injected + 0.8), 1.0),
        ]
    marks = harness[:1] + api + harness[1:]
    return [RecoveryStage(stage=st, at_s=at, source=f"test {st}", resolution_s=res) for st, at, res in marks]


def make_result(
    *,
    lost: int = 0,
    fio_scale: float = 1.0,
    recovery_scale: float = 1.0,
    seed: int = 1,
    scenario_name: str = "demo",
    run_id: str = "a1b2c3",
) -> RunResult:
    """A complete run: fio, 90 s of ingest, a SIGKILL at 30 s and a reschedule at 60 s, three checkpoints.

    ``lost`` samples go missing at the reschedule (as on ephemeral storage); ``fio_scale`` and ``recovery_scale``
    make a slower or faster run for comparisons.
    """
    rng = random.Random(seed)
    fio = [
        fio_job("randwrite-4k", "randwrite-4k", 60 * 1024**2 * fio_scale, 4096, rng),
        fio_job("wal-append", "wal-append", 380 * 1024**2 * fio_scale, 128 * 1024, rng),
    ]
    faults = []
    for index, (action, at_s) in enumerate((("sigkill", 30.0), ("reschedule", 60.0)), start=1):
        injected = at_s + 0.02
        up = injected + (0.3 if action == "sigkill" else 1.1) * recovery_scale * rng.uniform(0.95, 1.05)
        replay = 0.55 * recovery_scale
        ready = up + replay + 0.1
        faults.append(
            FaultRecord(
                index=index,
                action=action,
                scheduled_at_s=at_s,
                injected_at_s=injected,
                instance_before=f"prom-{index - 1}",
                instance_after=f"prom-{index}",
                process_up_at_s=up,
                ready_at_s=ready,
                first_sample_at_s=ready + 0.4,
                wal_replay_s=replay,
                detail=f"{action} pid {4000 + index}",
                stages=_stages(action, injected, up, ready, ready + 0.4),
            )
        )
    ingest = []
    for t in range(90):
        down = any(f.injected_at_s <= t < (f.first_sample_at_s or 0) for f in faults)
        acked = 0 if down else int(SAMPLES_PER_S * rng.uniform(0.98, 1.02))
        ingest.append(IngestPoint(t_s=float(t), acked_samples=acked, failed_samples=SAMPLES_PER_S if down else 0))

    def checkpoint(label: str, at_s: float, acknowledged: int, lost_here: int) -> DurabilityCheckpoint:
        window = lost_here > 0
        after = re.match(r"after fault (\d+)", label)
        return DurabilityCheckpoint(
            label=label,
            after_fault=int(after.group(1)) if after else None,
            checked_at_s=at_s,
            acknowledged=acknowledged,
            present=acknowledged - lost_here,
            lost=lost_here,
            cutoff_unix_ms=int((T0_UNIX_S + at_s - 1) * 1000),
            loss_window_start_unix_ms=int(T0_UNIX_S * 1000) if window else None,
            loss_window_end_unix_ms=int((T0_UNIX_S + 60) * 1000) if window else None,
            lost_series_count=SERIES if window else 0,
            lost_series=[f'harness_load{{series="{i}"}}' for i in range(5)] if window else [],
        )

    durability = [
        checkpoint("after fault 1 (sigkill)", 32.0, 60_000, 0),
        checkpoint("after fault 2 (reschedule)", 63.0, 118_000, lost),
        checkpoint("final", 91.0, 174_000, lost),
    ]
    history = Status.FAILED if lost else Status.PASSED
    checks = [
        CheckResult(
            name="history_survival",
            status=history,
            reason=f"{lost:,} acknowledged samples lost after fault 2 (reschedule)" if lost else "0 samples lost",
            details={"checkpoints": 3},
        ),
        CheckResult(name="max_recovery", status=Status.PASSED, reason="slowest recovery 2.1 s <= 30 s"),
    ]
    started = datetime.fromtimestamp(T0_UNIX_S - 5, tz=UTC)
    result = RunResult(
        run_id=run_id,
        scenario_name=scenario_name,
        scenario_file=f"scenarios/{scenario_name}.yaml",
        scenario={
            "name": scenario_name,
            "storage": {"backend": "local", "image": {"filesystem": "ext4", "size": "2Gi"}},
            "loads": {"tsdb": {"series": SERIES, "interval": "10s"}, "fio": [{"profile": "randwrite-4k"}]},
            "faults": [{"at": "30s", "action": "sigkill"}, {"at": "60s", "action": "reschedule"}],
            "checks": {"history_survival": True, "max_recovery": "30s"},
        },
        runtime="local",
        started_at=started,
        finished_at=started + timedelta(seconds=100),
        t0_unix_s=T0_UNIX_S,
        complete=True,
        environment=environment(),
        fio=fio,
        ingest=ingest,
        faults=faults,
        durability=durability,
        checks=checks,
        events=[
            Event(at_unix_s=T0_UNIX_S - 4.0, kind="phase", message="prometheus ready on 127.0.0.1:41234"),
            Event(at_unix_s=T0_UNIX_S + 30.02, kind="fault", message="sigkill prom-0 (pid 4001)"),
            Event(at_unix_s=T0_UNIX_S + 60.02, kind="fault", message="reschedule prom-1 -> prom-2"),
            Event(at_unix_s=T0_UNIX_S + 91.0, kind="phase", message="history check done"),
        ],
    )
    result.verdict = result.overall()
    return result


def interrupted_result() -> RunResult:
    """Ctrl-C during the load phase: no fio, no faults, no checkpoints, a few seconds of ingest at most."""
    started = datetime.fromtimestamp(T0_UNIX_S - 5, tz=UTC)
    result = RunResult(
        run_id="ffff01",
        scenario_name="nfs-baseline",
        scenario={"name": "nfs-baseline", "storage": {"backend": "nfs", "server": "127.0.0.1", "path": "/export"}},
        runtime="local",
        started_at=started,
        t0_unix_s=T0_UNIX_S,
        complete=False,
        interrupted=True,
        error="interrupted by the user (SIGINT) during phase 'load'",
        environment=environment(filesystem="nfs4"),
        events=[
            Event(at_unix_s=T0_UNIX_S, kind="phase", message="load started"),
            Event(at_unix_s=T0_UNIX_S + 3.2, kind="error", message="SIGINT"),
        ],
        doctor=[
            DoctorFinding(
                check="nfs.supported",
                severity=Severity.WARNING,
                title="Prometheus does not support NFS for its TSDB",
                evidence="data path /var/lib/harness/tsdb is on nfs4",
                why="The Prometheus storage docs say NFS filesystems are not supported; corruption has been seen.",
                fix="Use a local PersistentVolume or an iSCSI LUN with a whole-disk ext4 filesystem.",
            ),
            DoctorFinding(check="nfs.writable", severity=Severity.BLOCKER, title="uid 1000 cannot write <here>"),
        ],
    )
    result.verdict = result.overall()
    return result


def _save(tmp_path: Path, result: RunResult, name: str = "run") -> Path:
    run_dir = tmp_path / name
    run_dir.mkdir()
    save_result(run_dir, result)
    return run_dir


def _pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def _assert_self_contained(html: str) -> None:
    # No asset may come from elsewhere: no src/href to http(s), no stylesheets or scripts by URL.
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
    assert "<script" not in html
    assert "<link" not in html
    assert "@import" not in html


def test_passing_run_renders_verdict_tables_and_charts(tmp_path: Path) -> None:
    run_dir = _save(tmp_path, make_result())
    out = render_report(run_dir)
    assert out == run_dir / REPORT_FILE
    html = out.read_text(encoding="utf-8")
    assert 'class="verdict ok">PASSED<' in html
    assert "2 of 2 checks passed" in html
    for section in ("Checks", "Durability", "fio", "Faults and recovery", "Environment", "Scenario", "Events"):
        assert f"<h2>{section}</h2>" in html
    assert "history_survival" in html and "after fault 2 (reschedule)" in html and "174,000" in html
    assert "Incomplete run" not in html and "Storage doctor" not in html
    assert 'id="below"' not in html  # a SIGKILL and a reschedule are not faults below Prometheus
    pngs = _pngs(html)
    assert len(pngs) == 5  # throughput, latency, ingest, recovery, samples lost
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") and len(p) > 5_000 for p in pngs)
    assert "Chart omitted" not in html
    # Environment and scenario come through.
    assert "2.42.0" in html and "fio-3.33" in html and "6.1.0-27-amd64" in html and "<td>ext4</td>" in html
    assert "backend: local" in html and "series: 20000" in html
    # The resolved fio settings, and the warning that 480 syncs make p99.9 the maximum.
    assert "<td>libaio</td>" in html and "<td>16.0\u00a0MiB</td>" in html
    assert "480 syncs, mean 1.10\u00a0ms, p99 6.00\u00a0ms (few syncs" in html
    _assert_self_contained(html)


def test_failing_run_shows_losses(tmp_path: Path) -> None:
    result = make_result(lost=58_000)
    assert result.verdict is Status.FAILED
    html = render_report(_save(tmp_path, result)).read_text(encoding="utf-8")
    assert 'class="verdict bad">FAILED<' in html
    assert "58,000 acknowledged samples lost after fault 2 (reschedule)" in html
    # The loss window is shown in UTC, and the lost series are named (escaped: they hold quotes and braces).
    start = datetime.fromtimestamp(T0_UNIX_S, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert f"{start}.000 UTC" in html
    assert "harness_load{series=&#34;0&#34;}" in html
    assert "(20,000 series in all)" in html
    assert '<tr class="bad">' in html
    assert len(_pngs(html)) == 5
    _assert_self_contained(html)


PARTIAL_REASON = (
    "0 of 60,000 acknowledged samples lost up to fault 1 (sigkill); Prometheus did not recover after fault 2 "
    "(reschedule), so the 58,000 samples acknowledged since the last checkpoint were never checked"
)


def partial_result() -> RunResult:
    """``make_result`` whose reschedule Prometheus never came back from: history PARTIAL, recovery FAILED."""
    result = make_result()
    stuck = result.faults[1]
    stuck.status, stuck.error = Status.FAILED, "the pod cannot be scheduled: volume node affinity conflict"
    stuck.ready_at_s = stuck.first_sample_at_s = stuck.wal_replay_s = None
    result.durability = result.durability[:1]
    result.checks = [
        CheckResult(name="history_survival", status=Status.PARTIAL, reason=PARTIAL_REASON),
        CheckResult(name="recovery", status=Status.FAILED, reason="fault 2 (reschedule): Prometheus did not recover"),
    ]
    result.verdict = result.overall()
    return result


def test_a_partial_check_is_shown_as_such_in_a_failed_run(tmp_path: Path) -> None:
    result = partial_result()
    assert result.verdict is Status.FAILED
    html = render_report(_save(tmp_path, result)).read_text(encoding="utf-8")
    assert 'class="verdict bad">FAILED<' in html
    # The checks table: its own row class and status, with the reason saying what was never checked.
    assert re.search(r'<tr class="part">\s*<th scope="row">history_survival</th><td>PARTIAL</td>', html)
    assert html.count(PARTIAL_REASON) == 2  # the verdict's reason at the top, and the checks table
    assert f"history_survival (PARTIAL): {PARTIAL_REASON}; recovery: fault 2 (reschedule)" in html
    _assert_self_contained(html)


def below_result() -> RunResult:
    """``make_result`` with its faults below Prometheus: a disk filled for 15 s that lost nothing, and a power cut
    that took what was written since the last WAL fsync."""
    result = make_result(lost=900)
    full, cut = result.faults
    full.action, cut.action = "disk_full", "power_loss"
    full.below_prometheus = cut.below_prometheus = True
    full.lifted_at_s = full.injected_at_s + 15.0
    full.first_sample_at_s = full.lifted_at_s + 0.2
    full.write_failures = {"rejected": 7_500}
    full.write_errors = ["HTTP 500: write to WAL: log samples: write /data/wal/00000003: no space left on device"]
    full.prometheus_log = [
        'time=2026-12-03T10:00:31Z level=ERROR msg="Error on ingesting samples" err="no space left on device"'
    ]
    cut.last_wal_fsync_at_s = cut.injected_at_s - 1.5
    cut.write_failures = {"unreachable": 1_000}
    result.durability[0].label, result.durability[1].label = "after fault 1 (disk_full)", "after fault 2 (power_loss)"
    return result


def test_faults_below_prometheus_are_told_with_their_quotes(tmp_path: Path) -> None:
    result = below_result()
    context = build_context(result)
    full, cut = context["below"]
    facts = {row[0]: row[1] for row in full.facts.rows}
    assert facts["window"].startswith("from +30.02 s (") and facts["window"].endswith("(15.00\u00a0s)")
    assert facts["remote writes that failed"] == "7,500 samples rejected (Prometheus answered an error)"
    assert facts["back"] == "the first new sample was acknowledged 0.20\u00a0s after the fault was lifted"
    assert facts["acknowledged samples"] == "60,000 acknowledged up to the end of the fault, 0 lost"
    assert not full.failed
    cut_facts = {row[0]: row[1] for row in cut.facts.rows}
    assert cut_facts["last WAL fsync before the fault"].startswith("1.50\u00a0s before it")
    assert "900 lost (written from" in cut_facts["acknowledged samples"]
    assert cut.failed and cut.prometheus_log == []
    html = render_report(_save(tmp_path, result)).read_text(encoding="utf-8")
    assert "<h2>Faults below Prometheus</h2>" in html and 'href="#below"' in html
    assert "err=&#34;no space left on device&#34;" in html  # quoted, escaped
    assert "Prometheus logged no warning or error in the window." in html  # the power cut's
    assert len(_pngs(html)) == 5
    _assert_self_contained(html)


def test_interrupted_run_with_empty_sections(tmp_path: Path) -> None:
    run_dir = _save(tmp_path, interrupted_result())
    html = render_report(run_dir).read_text(encoding="utf-8")
    assert 'class="verdict err">ERROR<' in html
    assert "Incomplete run." in html and "interrupted by the user (SIGINT)" in html
    assert _pngs(html) == []
    assert html.count("Chart omitted") == 5
    assert "no fio job ran in this run" in html and "no faults were injected" in html
    assert "No checks were run." in html and "No durability checkpoint was recorded." in html
    # Doctor findings, blockers first, with user text escaped.
    assert html.index("BLOCKER") < html.index("Prometheus does not support NFS")
    assert "uid 1000 cannot write &lt;here&gt;" in html
    assert "<td>nfs4</td>" in html
    _assert_self_contained(html)


def test_rerender_from_result_json_only(tmp_path: Path) -> None:
    run_dir = _save(tmp_path, make_result(lost=10))
    first = render_report(run_dir).read_text(encoding="utf-8")
    # Nothing but result.json in the directory: a copied-away old run re-renders to the same content.
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / RESULT_FILE).write_bytes((run_dir / RESULT_FILE).read_bytes())
    second = render_report(moved).read_text(encoding="utf-8")
    strip = re.compile(r"Rendered [^<]* from result.json")
    assert strip.sub("", first) == strip.sub("", second)
    assert sorted(p.name for p in moved.iterdir()) == [REPORT_FILE, RESULT_FILE]


def test_render_refuses_missing_or_foreign_result(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no result here"):
        render_report(tmp_path)
    (tmp_path / RESULT_FILE).write_text('{"schema_version": 99}', encoding="utf-8")
    with pytest.raises(UsageError, match="schema version 99"):
        render_report(tmp_path)
    assert not (tmp_path / REPORT_FILE).exists()


def test_frames_have_columns_even_when_empty() -> None:
    empty = interrupted_result()
    for frame, columns in (
        (frames.fio_timeseries_frame(empty), frames.FIO_TIMESERIES_COLUMNS),
        (frames.fio_summary_frame(empty), frames.FIO_SUMMARY_COLUMNS),
        (frames.ingest_frame(empty), frames.INGEST_COLUMNS),
        (frames.faults_frame(empty), frames.FAULT_COLUMNS),
        (frames.durability_frame(empty), frames.DURABILITY_COLUMNS),
    ):
        assert frame.empty and list(frame.columns) == columns
    full = make_result()
    assert len(frames.fio_timeseries_frame(full)) == 40
    assert set(frames.fio_latency_frame(full)["series"]) == {
        "randwrite-4k write",
        "wal-append write",
        "wal-append sync",
    }
    faults = frames.faults_frame(full)
    assert faults["recovery_s"].notna().all()


def test_charts_are_independent_of_each_other_and_of_pyplot() -> None:
    full = make_result()
    ingest, faults, stages = frames.ingest_frame(full), frames.faults_frame(full), frames.stages_frame(full)
    first = charts.ingest_chart(ingest, faults)
    charts.fio_throughput_chart(frames.fio_timeseries_frame(full))
    assert charts.ingest_chart(ingest, faults) == first  # no state carried over from the chart in between
    assert charts.ingest_chart(ingest, faults.iloc[0:0]) != first  # without fault markers it differs
    assert charts.ingest_chart(ingest.iloc[0:0], faults) is None
    assert charts.recovery_timeline_chart(faults.iloc[0:0], stages) is None
    import matplotlib.pyplot as plt  # imported only to prove no figure was left behind in its global state

    assert plt.get_fignums() == []


def test_recovery_chart_survives_a_fault_that_never_recovered() -> None:
    result = make_result()
    broken = result.faults[1].model_copy(update={"ready_at_s": None, "first_sample_at_s": None, "wal_replay_s": None})
    result.faults[1] = broken
    png = charts.recovery_timeline_chart(frames.faults_frame(result), frames.stages_frame(result))
    assert png is not None and png.startswith(b"\x89PNG")
    context = build_context(result)
    assert any(row[-3] == "–" for row in context["faults"].rows)


def test_yamlish_dump() -> None:
    text = yamlish({"a": {"b": [1, {"c": "x: y", "d": None}], "e": []}, "f": True, "g": "on"})
    assert text == 'a:\n  b:\n    - 1\n    - c: "x: y"\n      d: null\n  e: []\nf: true\ng: "on"'


def test_a_csi_volume_s_staging_and_publishing_are_drawn_between_attach_and_mount_and_a_note_says_why_not() -> None:
    result = make_result()
    kill, move = result.faults
    scheduled = next(st for st in move.stages if st.stage == "scheduled")
    source = "kubelet metric csi_operations_seconds via the API (node node-1): {} took 0.050 s (grpc OK)"
    csi = [
        RecoveryStage(stage=stage, at_s=scheduled.at_s, source=source.format(call), resolution_s=0.4)
        for stage, call in (("volume_staged", "NodeStageVolume"), ("volume_published", "NodePublishVolume"))
    ]
    move.stages[2:2] = csi
    kill.stages_note = "no claim (an emptyDir): no CSI volume to stage or publish"
    context = build_context(result)
    headers = context["stages"].headers
    labels = ["scheduled", "volume staged", "volume published", "volumes mounted"]
    assert headers[headers.index("scheduled") : headers.index("volumes mounted") + 1] == labels
    staged = context["stages"].rows[1][headers.index("volume staged")]
    assert staged.startswith("+") and not staged.endswith("*"), "polled at 0.4 s: not a whole-second time"
    assert ["volume staged", source.format("NodeStageVolume")] in context["stage_sources"].rows
    assert context["stage_notes"] == ["#1 sigkill: no claim (an emptyDir): no CSI volume to stage or publish"]
    assert "Not shown: #1 sigkill: no claim (an emptyDir)" in render_html(result)


def test_timestamps_are_utc() -> None:
    frame = frames.durability_frame(make_result(lost=5))
    start = frame["loss_window_start"].iloc[1]
    assert isinstance(start, pd.Timestamp) and str(start.tz) == "UTC"


def test_the_recovery_stages_table_says_which_times_come_from_the_api() -> None:
    context = build_context(make_result())
    table = context["stages"]
    assert table.headers[:3] == ["fault", "action", "old pod gone, new pod created"]
    assert table.headers[-3:] == ["/-/healthy", "/-/ready", "first new sample stored"]
    kill, move = table.rows
    assert kill[2] == "–" and not any("*" in cell for cell in kill)  # a restarted container: no new pod
    assert move[2].endswith("s*")  # the API's whole-second timestamp
    # Truncated API times never show a stage before the one it follows.
    offsets = [float(c.strip("+*s").replace("\u00a0", "")) for c in move[2:]]
    assert offsets == sorted(offsets) and offsets[0] >= 0
    assert ["scheduled", "test scheduled"] in context["stage_sources"].rows
