"""Comparing stored runs: regressions are flagged only with size and (where values repeat) statistical support."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.report import Change, MetricDelta, compare_runs, render_comparison, summary_text
from harness.report.compare import compare_results
from harness.results.model import ClusterFacts, FaultRecord, NodeFacts, RunResult, VolumeFacts
from harness.results.store import RESULT_FILE, save_result
from tests.test_report import interrupted_result, make_result


def _save(tmp_path: Path, name: str, result: RunResult) -> Path:
    run_dir = tmp_path / name
    run_dir.mkdir()
    save_result(run_dir, result)
    return run_dir


def _status(comparison_deltas: list[MetricDelta], metric: str) -> Change:
    return next(d.status for d in comparison_deltas if d.metric == metric)


def test_regressed_run_is_flagged(tmp_path: Path) -> None:
    base = _save(tmp_path, "last-night", make_result(seed=1))
    slow = _save(tmp_path, "tonight", make_result(seed=2, run_id="d4e5f6", fio_scale=0.8, lost=120))
    out = tmp_path / "compare.html"
    comparison = compare_runs([base, slow], out)
    assert comparison.regressed
    bw = next(d for d in comparison.deltas if d.metric == "randwrite-4k write bandwidth")
    assert bw.status is Change.REGRESSION
    assert bw.p_value is not None and bw.p_value < 0.001  # 20 vs 20 per-second points, ~20% apart
    assert bw.change_pct is not None and -25 < bw.change_pct < -15
    assert _status(comparison.deltas, "samples lost (worst checkpoint)") is Change.REGRESSION
    assert _status(comparison.deltas, "verdict") is Change.REGRESSION  # PASSED -> FAILED
    # fdatasync latency did not change in the synthetic runs.
    assert _status(comparison.deltas, "wal-append sync p99 latency") is Change.UNCHANGED
    text = summary_text(comparison)
    assert "REGRESSION" in text and "regression(s):" in text and "randwrite-4k write bandwidth" in text
    html = out.read_text(encoding="utf-8")
    assert "REGRESSED" in html and "demo/d4e5f6 vs demo/a1b2c3" in html
    assert "data:image/png;base64," in html
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html) and "<script" not in html


def test_equal_runs_are_not_flagged(tmp_path: Path) -> None:
    # Same storage, different noise (seeds): nothing may be called a regression.
    a = _save(tmp_path, "a", make_result(seed=1))
    b = _save(tmp_path, "b", make_result(seed=7, run_id="0b0b0b"))
    comparison = compare_runs([a, b], None)
    assert not comparison.regressed, summary_text(comparison)
    assert {d.status for d in comparison.deltas} == {Change.UNCHANGED}
    assert comparison.notes == []
    assert summary_text(comparison).endswith("where values repeat)")
    html = render_comparison(comparison, tmp_path / "same.html").read_text(encoding="utf-8")
    assert "NO REGRESSION" in html and "Chart omitted: no metric changed by more than 10%" in html


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    good = _save(tmp_path, "good", make_result())
    old = tmp_path / "old"
    old.mkdir()
    raw = json.loads((good / RESULT_FILE).read_text(encoding="utf-8"))
    raw["schema_version"] = 0
    (old / RESULT_FILE).write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(UsageError, match=r"result schema version 0 is older than this harness can read"):
        compare_runs([good, old], tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_needs_two_results(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="at least two results"):
        compare_runs([_save(tmp_path, "only", make_result())], None)


def test_different_scenarios_and_incomplete_runs_are_named(tmp_path: Path) -> None:
    local = _save(tmp_path, "local", make_result())
    nfs = _save(tmp_path, "nfs", interrupted_result())
    comparison = compare_runs([local, nfs], None)
    notes = " | ".join(comparison.notes)
    assert "different scenarios (demo/a1b2c3: demo, nfs-baseline/ffff01: nfs-baseline)" in notes
    assert "different filesystems" in notes and "nfs-baseline/ffff01 is incomplete" in notes
    # Everything the interrupted run never measured is "missing", not a regression; its verdict (ERROR) is.
    assert _status(comparison.deltas, "randwrite-4k write bandwidth") is Change.MISSING
    assert [d.metric for d in comparison.regressions] == ["verdict"]
    assert "note: different scenarios" in summary_text(comparison)


def test_scattered_values_are_unstable_not_regressed() -> None:
    base = make_result(seed=1)
    noisy = make_result(seed=2, fio_scale=0.7)
    job = noisy.fio[0]
    assert job.write is not None
    for i, point in enumerate(job.write.timeseries):
        # Alternate stalls and bursts, as on a machine shared with a noisy neighbour.
        point.bw_bytes_per_s *= 0.2 if i % 2 else 1.6
    comparison = compare_results([(Path("base"), base), (Path("noisy"), noisy)])
    delta = next(d for d in comparison.deltas if d.metric == "randwrite-4k write bandwidth")
    assert delta.status is Change.UNSTABLE and "too noisy" in delta.note


def _with_faults(result: RunResult, action: str, recoveries_s: list[float]) -> RunResult:
    faults = [
        FaultRecord(
            index=i + 1,
            action=action,
            scheduled_at_s=10.0 * (i + 1),
            injected_at_s=10.0 * (i + 1),
            instance_before=f"prom-{i}",
            first_sample_at_s=10.0 * (i + 1) + r,
        )
        for i, r in enumerate(recoveries_s)
    ]
    return result.model_copy(update={"faults": faults})


def test_few_repeated_faults_are_inconclusive_many_are_a_regression() -> None:
    base = make_result(seed=1)
    few = compare_results(
        [
            (Path("a"), _with_faults(base, "sigkill", [1.0, 1.1, 1.05])),
            (Path("b"), _with_faults(base, "sigkill", [2.0, 2.1, 2.2])),
        ]
    )
    delta = next(d for d in few.deltas if d.metric == "recovery after sigkill")
    # Twice as slow every time, but 3 vs 3 values cannot be significant: say so instead of crying wolf.
    assert delta.status is Change.INCONCLUSIVE and "repeat the faults more often" in delta.note
    assert delta.p_value == pytest.approx(0.1)
    many = compare_results(
        [
            (Path("a"), _with_faults(base, "sigkill", [1.0, 1.1, 1.05, 0.95, 1.02, 1.08])),
            (Path("b"), _with_faults(base, "sigkill", [2.0, 2.1, 2.2, 1.9, 2.05, 2.15])),
        ]
    )
    delta = next(d for d in many.deltas if d.metric == "recovery after sigkill")
    assert delta.status is Change.REGRESSION and delta.p_value is not None and delta.p_value < 0.01
    assert delta.baseline == "1.04 s (n=6)"


def test_sub_quarter_second_recovery_jitter_is_not_a_regression() -> None:
    base = make_result(seed=1)
    comparison = compare_results(
        [
            (Path("a"), _with_faults(base, "sigkill", [0.60])),
            (Path("b"), _with_faults(base, "sigkill", [0.75])),  # +25%, but only 0.15 s
        ]
    )
    delta = next(d for d in comparison.deltas if d.metric == "recovery after sigkill")
    assert delta.status is Change.UNCHANGED and "less than 0.25 s apart" in delta.note


def test_kubernetes_runs_on_different_volumes_and_nodes_are_named_and_stages_compared() -> None:
    def on(provisioner: str, source: str, kernel: str, scale: float) -> RunResult:
        result = make_result(recovery_scale=scale)
        cluster = ClusterFacts(
            server_version="v1.32.13",
            nodes=[
                NodeFacts(name="node-2", kernel=kernel, kubelet="v1.32.13", container_runtime="containerd://1.6.20")
            ],
            volume=VolumeFacts(claim="ns/c", pv="pv-1", source=source, provisioner=provisioner),
        )
        return result.model_copy(update={"runtime": "kubernetes", "cluster": cluster})

    local = on("kubernetes.io/no-provisioner", "local /mnt/disks/run-1", "6.1.0", 1.0)
    same = on("kubernetes.io/no-provisioner", "local /mnt/disks/run-2", "6.1.0", 1.0)
    assert not any("different volumes" in n for n in compare_results([("a", local), ("b", same)]).notes)
    nfs = on("nfs.csi.k8s.io", "csi nfs.csi.k8s.io volumeHandle x", "6.12.0", 3.0)
    comparison = compare_results([("local", local), ("nfs", nfs)])
    notes = " | ".join(comparison.notes)
    assert "different volumes (provisioner, source)" in notes and "nfs.csi.k8s.io, csi nfs.csi.k8s.io" in notes
    assert "kernel 6.12.0" in notes
    # The stages the harness timed are compared one by one (the API's whole seconds are not).
    metrics = {d.metric for d in comparison.deltas if d.group == "recovery"}
    assert {"/-/healthy after sigkill", "/-/ready after reschedule", "container started after sigkill"} <= metrics
    assert "scheduled after reschedule" not in metrics
