"""Comparing stored runs: regressions need size and significance over independent repetitions; single values are
"threshold only"; runs measured differently are named as such; unreadable inputs are left out with their reason.

These build stored results by hand (the judging logic on known numbers); tests/test_compare_real.py shows the same
on real fio runs.
"""

from __future__ import annotations

import json
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.report import Change, MetricDelta, compare_runs, render_comparison, summary_text
from harness.report.ci import comparison_junit, comparison_summary, run_junit, run_summary
from harness.report.compare import ALPHA, Rules, compare_paths, compare_results, compare_sides
from harness.results.model import ClusterFacts, FaultRecord, NodeFacts, RunResult, Status, VolumeFacts
from harness.results.store import RESULT_FILE, save_result
from tests.test_report import fio_job, interrupted_result, make_result

BW = "randwrite-4k write bandwidth"


def _save(tmp_path: Path, name: str, result: RunResult) -> Path:
    run_dir = tmp_path / name
    run_dir.mkdir()
    save_result(run_dir, result)
    return run_dir


def parse_xml(path: Path) -> ET.Element:
    return ET.parse(path).getroot()  # noqa: S314 -- a file the harness just wrote, not untrusted input


def _delta(deltas: list[MetricDelta], metric: str) -> MetricDelta:
    return next(d for d in deltas if d.metric == metric)


def repeated(result: RunResult, n: int, scale: float, seed: int, spread: float = 0.05) -> RunResult:
    """``result`` whose randwrite-4k job ran ``n`` times (repeat: n), each repetition's bandwidth drawn within
    ``spread`` of ``scale`` x 60 MiB/s."""
    rng = random.Random(seed)
    reps = []
    for k in range(1, n + 1):
        bw = 60 * 1024**2 * scale * rng.uniform(1 - spread, 1 + spread)
        job = fio_job("randwrite-4k" if k == 1 else f"randwrite-4k.r{k}", "randwrite-4k", bw, 4096, rng)
        reps.append(job.model_copy(update={"job": "randwrite-4k", "repetition": k}))
    return result.model_copy(update={"fio": reps})


def test_a_single_value_per_side_is_threshold_only_and_fails_only_when_asked(tmp_path: Path) -> None:
    base = _save(tmp_path, "last-night", make_result(seed=1))
    slow = _save(tmp_path, "tonight", make_result(seed=2, run_id="d4e5f6", fio_scale=0.8))
    out = tmp_path / "compare.html"
    comparison = compare_runs([base, slow], out)
    bw = _delta(comparison.deltas, BW)
    # fio's 20 per-second points of one job are not 20 samples: one job, one value, no test.
    assert bw.status is Change.THRESHOLD_ONLY and bw.p_value is None and (bw.n_baseline, bw.n_candidate) == (1, 1)
    assert (
        bw.change_pct is not None and -25 < bw.change_pct < -15 and bw.note.startswith("worse by 19%; 1 vs 1 value(s)")
    )
    assert not comparison.regressed, summary_text(comparison)
    strict = compare_runs([base, slow], rules=Rules(fail_on_threshold_only=True))
    assert strict.regressed and BW in {d.metric for d in strict.failures}
    assert "THRESHOLD ONLY" in summary_text(strict)
    html = out.read_text(encoding="utf-8")
    assert "NO REGRESSION" in html and "threshold only" in html and "data:image/png;base64," in html
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html) and "<script" not in html


def test_repetitions_make_a_regression_significant(tmp_path: Path) -> None:
    base = repeated(make_result(seed=1), 8, 1.0, seed=1)
    slow = repeated(make_result(seed=2, run_id="d4e5f6"), 8, 0.8, seed=2)
    comparison = compare_results([(Path("a"), base), (Path("b"), slow)])
    bw = _delta(comparison.deltas, BW)
    assert bw.status is Change.REGRESSION and (bw.n_baseline, bw.n_candidate) == (8, 8)
    assert bw.p_value is not None and bw.p_value < 0.001
    assert bw.p_adjusted is not None and bw.p_value <= bw.p_adjusted < 0.002
    assert comparison.regressed and next(d.metric for d in comparison.failures) == BW
    # Five repetitions cannot reach the strict level: inconclusive, and the note says how many would.
    few = compare_results(
        [(Path("a"), repeated(make_result(), 5, 1.0, 1)), (Path("b"), repeated(make_result(), 5, 0.8, 2))]
    )
    bw = _delta(few.deltas, BW)
    assert bw.status is Change.INCONCLUSIVE and "cannot reach it: about" in bw.note and not few.regressed


def test_equal_runs_are_not_flagged(tmp_path: Path) -> None:
    # Same storage, different noise (seeds): nothing may be called a regression.
    a = _save(tmp_path, "a", repeated(make_result(seed=1), 8, 1.0, seed=1))
    b = _save(tmp_path, "b", repeated(make_result(seed=7, run_id="0b0b0b"), 8, 1.0, seed=7))
    comparison = compare_runs([a, b], None)
    assert not comparison.regressed, summary_text(comparison)
    assert {d.status for d in comparison.deltas} <= {Change.UNCHANGED}
    assert comparison.notes == [] and comparison.differences == [] and comparison.kind == "same setup"
    assert summary_text(comparison).endswith("over the comparison's metrics)")
    html = render_comparison(comparison, tmp_path / "same.html").read_text(encoding="utf-8")
    assert "NO REGRESSION" in html and "Chart omitted: no metric changed by more than 10%" in html


def test_unreadable_inputs_are_named_and_left_out(tmp_path: Path) -> None:
    good = [_save(tmp_path, f"good{i}", make_result(run_id=f"00000{i}")) for i in range(2)]
    raw = json.loads((good[0] / RESULT_FILE).read_text(encoding="utf-8"))
    bad = {name: tmp_path / name for name in ("missing", "truncated", "foreign", "newer")}
    for name, path in bad.items():
        if name != "missing":
            path.mkdir()
    (bad["truncated"] / RESULT_FILE).write_text(json.dumps(raw)[:500], encoding="utf-8")
    (bad["foreign"] / RESULT_FILE).write_text('{"benchmarks": []}', encoding="utf-8")
    (bad["newer"] / RESULT_FILE).write_text(json.dumps({**raw, "schema_version": 99}), encoding="utf-8")
    comparison = compare_runs([good[0], *bad.values(), good[1]])
    reasons = {Path(s.path).name: s.reason for s in comparison.skipped}
    assert reasons.keys() == bad.keys()
    assert reasons["missing"].startswith("no result here")
    assert reasons["truncated"].startswith("truncated or not JSON")
    assert "not a result file of this harness" in reasons["foreign"]
    assert "written by a newer harness (result schema version 99" in reasons["newer"]
    assert len(comparison.sides) == 2 and not comparison.regressed
    assert "skipped: " in summary_text(comparison)
    with pytest.raises(UsageError, match=r"at least two usable results.*1 of 3 could be read") as e:
        compare_runs([good[0], bad["missing"], bad["newer"]])
    assert "newer harness" in str(e.value) and "no result here" in str(e.value)
    with pytest.raises(UsageError, match="no usable result left for the baseline"):
        compare_paths([bad["foreign"]], [[good[1]]])


def test_other_schema_version_is_left_out(tmp_path: Path) -> None:
    good = _save(tmp_path, "good", make_result())
    old = tmp_path / "old"
    old.mkdir()
    raw = json.loads((good / RESULT_FILE).read_text(encoding="utf-8"))
    (old / RESULT_FILE).write_text(json.dumps({**raw, "schema_version": 0}), encoding="utf-8")
    with pytest.raises(UsageError, match=r"result schema version 0 is older than this harness can read"):
        compare_runs([good, old], tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_different_scenarios_and_incomplete_runs_are_named(tmp_path: Path) -> None:
    local = _save(tmp_path, "local", make_result())
    nfs = _save(tmp_path, "nfs", interrupted_result())
    comparison = compare_runs([local, nfs], None)
    notes = " | ".join(comparison.notes)
    assert comparison.kind.startswith("storage comparison")
    assert "different scenarios: demo (demo/a1b2c3); nfs-baseline (nfs-baseline/ffff01)" in notes
    assert "different storage: local, ext4 (demo/a1b2c3); nfs, nfs4 (nfs-baseline/ffff01)" in notes
    assert "nfs-baseline/ffff01 is incomplete" in notes
    # Everything the interrupted run never measured is "missing", not a regression; its verdict (ERROR) is.
    assert _delta(comparison.deltas, BW).status is Change.MISSING
    assert [d.metric for d in comparison.regressions] == ["verdict"]
    assert "note: different scenarios" in summary_text(comparison)


def test_runs_measured_differently_are_not_comparable_unless_allowed() -> None:
    base = repeated(make_result(seed=1), 8, 1.0, seed=1)
    env = base.environment.model_copy(update={"fio_version": "fio-3.38", "hostname": "bench-02"})
    other = repeated(make_result(seed=2), 8, 0.5, seed=2).model_copy(update={"environment": env})
    comparison = compare_results([(Path("a"), base), (Path("b"), other)])
    bw = _delta(comparison.deltas, BW)
    assert bw.status is Change.NOT_COMPARABLE and not comparison.regressed
    assert "node: demo/a1b2c3 bench-01 vs demo/a1b2c3#2 bench-02" in bw.note and "fio version" in bw.note
    assert any(d.startswith("different node: bench-01 (demo/a1b2c3); bench-02") for d in comparison.differences)
    # Recovery does not depend on fio's version, but on the node: not comparable either.
    assert _delta(comparison.deltas, "recovery after sigkill").status is Change.NOT_COMPARABLE
    allowed = compare_results(
        [(Path("a"), base), (Path("b"), other)], Rules(allow_different=frozenset({"node", "fio"}))
    )
    assert _delta(allowed.deltas, BW).status is Change.REGRESSION and allowed.differences == []
    assert any("(allowed)" in n for n in allowed.notes)
    with pytest.raises(UsageError, match="unknown fact"):
        Rules(allow_different=frozenset({"weather"}))


def test_changed_fio_settings_name_the_arguments_that_differ() -> None:
    base = repeated(make_result(), 8, 1.0, seed=1)
    other = base.model_copy(
        update={"fio": [j.model_copy(update={"argv": [*j.argv, "--iodepth=64"]}) for j in base.fio]}
    )
    comparison = compare_results([(Path("a"), base), (Path("b"), other)])
    assert _delta(comparison.deltas, BW).note == "fio job settings: demo/a1b2c3 (none) vs demo/a1b2c3#2 --iodepth=64"
    assert comparison.differences == ["fio job settings: demo/a1b2c3 (none) vs demo/a1b2c3#2 --iodepth=64"]


def test_a_fio_throttle_is_slower_storage_a_storage_comparison() -> None:
    base = repeated(make_result(), 8, 1.0, seed=1)
    throttled = repeated(make_result(), 8, 0.5, seed=2)
    throttled = throttled.model_copy(
        update={"fio": [j.model_copy(update={"argv": [*j.argv, "--rate_iops=500"]}) for j in throttled.fio]}
    )
    comparison = compare_results([(Path("a"), base), (Path("b"), throttled)])
    assert comparison.kind == "storage comparison" and comparison.differences == []
    assert any(
        "local, ext4, fio throttled (randwrite-4k --rate_iops=500) (demo/a1b2c3#2)" in n for n in comparison.notes
    )
    assert _delta(comparison.deltas, BW).status is Change.REGRESSION


def test_both_sides_of_several_runs_compare_runs_not_repetitions() -> None:
    fast = [(Path(f"a{i}"), repeated(make_result(run_id=f"a0000{i}"), 3, 1.0, seed=i)) for i in range(2)]
    slow = [(Path(f"b{i}"), repeated(make_result(run_id=f"b0000{i}"), 3, 0.8, seed=10 + i)) for i in range(2)]
    bw = _delta(compare_sides([fast, slow]).deltas, BW)
    # 6 vs 6 repetitions would be tested; 2 vs 2 runs cannot be significant, and the note says how many runs would.
    assert bw.per_run and (bw.n_baseline, bw.n_candidate) == (2, 2) and bw.status is Change.INCONCLUSIVE
    assert "2 vs 2 runs cannot reach it" in bw.note and "more runs per side" in bw.note and "(n=2 runs)" in bw.baseline


def test_nights_pooled_into_a_side_and_runs_that_disagree_are_unstable() -> None:
    nights = [(Path(f"n{i}"), repeated(make_result(run_id=f"n0000{i}"), 4, 1.0, seed=i)) for i in range(6)]
    tonight = [(Path("t"), repeated(make_result(run_id="t00000"), 8, 0.7, seed=9))]
    comparison = compare_sides([nights[:4], tonight])
    bw = _delta(comparison.deltas, BW)
    assert (bw.n_baseline, bw.n_candidate) == (16, 8) and bw.status is Change.REGRESSION
    assert bw.p_runs is not None and bw.p_runs < ALPHA and comparison.sides[0].label == "baseline (4 runs)"
    # One night whose machine was 30% slower: the nights disagree, and tonight lies between them: no verdict.
    slow_night = (Path("n9"), repeated(make_result(run_id="n00009"), 4, 0.7, seed=5))
    slower = [(Path("t"), repeated(make_result(run_id="t00000"), 8, 0.74, seed=9))]
    shaky = compare_sides([[*nights[:1], slow_night], slower])
    bw = _delta(shaky.deltas, BW)
    assert bw.status is Change.UNSTABLE and "runs of a side disagree" in bw.note
    # A change far beyond the nights' own variation (a throttled disk) is judged all the same, given nights enough
    # to say how they vary: one run against two says nothing at the 0.2% level (Student's t, one degree of freedom).
    collapsed = [(Path("t"), repeated(make_result(run_id="t00000"), 8, 0.1, seed=9))]
    bw = _delta(compare_sides([[*nights, slow_night], collapsed]).deltas, BW)
    assert bw.status is Change.REGRESSION
    bw = _delta(compare_sides([[*nights[:1], slow_night], collapsed]).deltas, BW)
    assert bw.status is Change.INCONCLUSIVE and "not out of their range" in bw.note


def test_one_run_off_the_nights_by_more_than_its_repetitions_but_not_more_than_nights_vary_is_no_regression() -> None:
    """The nightly gate's false alarm: each night's repetitions agree within 1%, the nights' medians vary by a few
    percent (another job on the machine that night). Tonight's repetitions are all below every night's, so the
    Mann-Whitney test alone calls a 12% drop significant; among nights that vary this much, one run this far off is
    ordinary (Student's t), and a run 40% off is not."""
    scales = (1.0, 0.95, 1.05, 0.97, 1.03, 0.99, 1.01)
    nights = [
        (Path(f"n{i}"), repeated(make_result(run_id=f"n0000{i}"), 4, scale, seed=i, spread=0.01))
        for i, scale in enumerate(scales)
    ]
    ordinary = [(Path("t"), repeated(make_result(run_id="t00000"), 8, 0.88, seed=9, spread=0.01))]
    bw = _delta(compare_sides([nights, ordinary]).deltas, BW)
    assert bw.p_value is not None and bw.p_value < ALPHA / 10  # the repetitions alone: "significant"
    assert bw.p_runs is not None and bw.p_runs > ALPHA
    assert bw.status is Change.INCONCLUSIVE and "one run against 7 runs" in bw.note, bw.note
    collapsed = [(Path("t"), repeated(make_result(run_id="t00000"), 8, 0.6, seed=9, spread=0.01))]
    bw = _delta(compare_sides([nights, collapsed]).deltas, BW)
    assert bw.status is Change.REGRESSION and bw.p_runs is not None and bw.p_runs < ALPHA


def test_scattered_values_are_unstable_not_regressed() -> None:
    base = repeated(make_result(seed=1), 8, 1.0, seed=1)
    noisy = repeated(make_result(seed=2), 8, 0.7, seed=2, spread=0.9)
    delta = _delta(compare_results([(Path("base"), base), (Path("noisy"), noisy)]).deltas, BW)
    assert delta.status is Change.UNSTABLE and "middle halves overlap: too noisy" in delta.note


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


def test_repeated_faults_are_samples() -> None:
    base = make_result(seed=1)
    few = compare_results(
        [
            (Path("a"), _with_faults(base, "sigkill", [1.0, 1.1, 1.05])),
            (Path("b"), _with_faults(base, "sigkill", [2.0, 2.1, 2.2])),
        ]
    )
    delta = _delta(few.deltas, "recovery after sigkill")
    # Twice as slow every time, but 3 vs 3 values cannot be significant: say so instead of crying wolf.
    assert delta.status is Change.INCONCLUSIVE and "about 7 per side would" in delta.note
    assert delta.p_value == pytest.approx(0.1)
    many = compare_results(
        [
            (Path("a"), _with_faults(base, "sigkill", [1.0, 1.1, 1.05, 0.95, 1.02, 1.08, 0.99, 1.01])),
            (Path("b"), _with_faults(base, "sigkill", [2.0, 2.1, 2.2, 1.9, 2.05, 2.15, 1.95, 2.01])),
        ]
    )
    delta = _delta(many.deltas, "recovery after sigkill")
    assert delta.status is Change.REGRESSION and delta.p_value is not None and delta.p_value < 0.001
    assert delta.baseline == "1.02 s (n=8)"


def test_sub_quarter_second_recovery_jitter_is_not_a_regression() -> None:
    base = make_result(seed=1)
    comparison = compare_results(
        [
            (Path("a"), _with_faults(base, "sigkill", [0.60])),
            (Path("b"), _with_faults(base, "sigkill", [0.75])),  # +25%, but only 0.15 s
        ]
    )
    delta = _delta(comparison.deltas, "recovery after sigkill")
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
    alike = compare_results([(Path("a"), local), (Path("b"), same)])
    assert not any("different volumes" in n for n in alike.notes) and alike.kind == "same setup"
    nfs = on("nfs.csi.k8s.io", "csi nfs.csi.k8s.io volumeHandle x", "6.12.0", 3.0)
    comparison = compare_results([(Path("local"), local), (Path("nfs"), nfs)])
    notes = " | ".join(comparison.notes)
    assert comparison.kind.startswith("storage comparison")
    assert "different volumes (provisioner, source)" in notes and "nfs.csi.k8s.io, csi nfs.csi.k8s.io" in notes
    assert any("different kernel: 6.1.0" in d and "6.12.0" in d for d in comparison.differences)
    # The stages the harness timed are listed one by one (the API's whole seconds are not).
    metrics = {d.metric for d in comparison.deltas if d.group == "recovery"}
    assert {"/-/healthy after sigkill", "/-/ready after reschedule", "container started after sigkill"} <= metrics
    assert "scheduled after reschedule" not in metrics


def test_junit_and_json_of_a_comparison(tmp_path: Path) -> None:
    base = repeated(make_result(seed=1), 8, 1.0, seed=1)
    slow = repeated(make_result(seed=2, run_id="d4e5f6"), 8, 0.8, seed=2)
    comparison = compare_results([(Path("a"), base), (Path("b"), slow)])
    root = parse_xml(comparison_junit(comparison, tmp_path / "compare.xml"))
    assert (
        root.tag == "testsuites" and int(root.get("failures", "0")) == len(comparison.failures) + 1
    )  # the metrics and the gate
    (suite,) = root.findall("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    failure = cases[BW].find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert re.match(rf"{BW}: baseline 59\.\d+ MiB/s \(n=8\), demo/d4e5f6 48\.\d+ MiB/s \(n=8\), change -18", message)
    assert re.search(r"\(p=<?0\.\d+, adjusted <?0\.\d+\): regression", message)
    gate = cases["gate: no regression"].find("failure")
    assert gate is not None and BW in (gate.text or "")
    summary = comparison_summary(comparison)
    assert summary["regressed"] is True and summary["regressions"][0].startswith(BW)
    metrics = {m["metric"]: m for m in summary["comparisons"][0]["metrics"]}
    assert metrics[BW]["status"] == "regression" and metrics[BW]["fails"] is True and metrics[BW]["n_baseline"] == 8
    json.dumps(summary)  # plain data


def test_junit_and_json_of_a_run_with_an_expected_failure(tmp_path: Path) -> None:
    lost = make_result(lost=120)
    assert lost.verdict is Status.FAILED
    root = parse_xml(run_junit(lost, tmp_path / "run.xml"))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"history_survival", "max_recovery", "gate: verdict is PASSED"}
    history = cases["history_survival"].find("failure")
    assert history is not None and "120 acknowledged samples lost" in history.get("message", "")
    assert root.get("failures") == "2"
    # The emptyDir baseline must lose data: its losing check is expected, its gate passes.
    root = parse_xml(run_junit(lost, tmp_path / "expected.xml", expected=Status.FAILED))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert root.get("failures") == "0" and cases["history_survival"].find("skipped") is not None
    assert list(cases["gate: verdict is FAILED"]) == []
    summary = run_summary(lost, expected=Status.FAILED)
    assert summary["gate_passed"] is True and summary["verdict"] == "FAILED"


def test_junit_and_json_of_a_run_with_a_partial_check(tmp_path: Path) -> None:
    """PARTIAL must not look green: a failure saying PARTIAL; for a scenario that must fail, a skipped saying it."""
    from tests.test_report import PARTIAL_REASON, partial_result

    result = partial_result()
    root = parse_xml(run_junit(result, tmp_path / "run.xml"))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    history = cases["history_survival"].find("failure")
    assert history is not None and history.get("message") == f"PARTIAL: {PARTIAL_REASON}"
    gate = cases["gate: verdict is PASSED"].find("failure")
    assert gate is not None and f"history_survival (PARTIAL): {PARTIAL_REASON}" in (gate.text or "")
    assert root.get("failures") == "3" and root.get("errors") == "0"  # history, recovery, the gate
    expected = parse_xml(run_junit(result, tmp_path / "expected.xml", expected=Status.FAILED))
    cases = {c.get("name"): c for c in expected.iter("testcase")}
    skipped = cases["history_survival"].find("skipped")
    assert skipped is not None and skipped.get("message") == f"PARTIAL: {PARTIAL_REASON}"
    assert expected.get("failures") == "0" and list(cases["gate: verdict is FAILED"]) == []
    summary = run_summary(result)
    assert summary["checks"][0] == {"name": "history_survival", "status": "PARTIAL", "reason": PARTIAL_REASON}
    assert summary["verdict"] == "FAILED" and summary["gate_passed"] is False


def test_the_cli_knows_every_fact_and_refuses_half_a_pairing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import build_parser, main
    from harness.report.compare import FACTS

    parser = build_parser()  # lists the facts without importing compare (pandas): the lists must agree
    for fact in FACTS:
        assert parser.parse_args(["compare", "a", "b", "--allow-different", fact]).allow_different == [fact]
    with pytest.raises(SystemExit):
        parser.parse_args(["compare", "a", "b", "--allow-different", "weather"])
    capsys.readouterr()
    run = _save(tmp_path, "a", make_result())
    assert main(["compare", "--baseline", str(run)]) == 2
    assert "give --baseline RUN... and --candidate RUN... together" in capsys.readouterr().err
    assert main(["compare", str(run)]) == 2
    assert main(["compare", str(run), str(tmp_path / "gone")]) == 2
    err = capsys.readouterr().err
    assert "at least two usable results" in err and "gone: no result here" in err and "Traceback" not in err


def test_the_run_report_charts_the_first_repetition_and_tables_them_all() -> None:
    from harness.report import frames

    result = repeated(make_result(), 3, 1.0, seed=1)
    assert set(frames.fio_timeseries_frame(result)["job"]) == {"randwrite-4k"}
    assert list(frames.fio_summary_frame(result)["job"]) == ["randwrite-4k", "randwrite-4k.r2", "randwrite-4k.r3"]
