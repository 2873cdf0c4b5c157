"""A kubelet's CSI calls from its metrics (``harness.kube.kubelet_metrics``) and the stages a new pod's way back
gets from two readings (``harness.runtime.kubernetes.csi_stages.CsiWatch``), on the real ``/metrics`` of the local
cluster's kubelet v1.32.13 (tests/data/kubelet): read through the API's node proxy on node-1 before and after a run
of scenarios/cephfs-csi.yaml (ceph-csi's CephFS driver, mounter fuse) in which one of Prometheus' pods ran there: its
volume was staged, published, unpublished and unstaged once, the driver's node plugin registered again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.kube.kubelet_metrics import OK, PUBLISH, STAGE, Calls, CsiCalls, parse_csi_calls
from harness.runtime.kubernetes.csi_stages import CsiWatch

DATA = Path(__file__).parent / "data" / "kubelet"
DRIVER = "cephfs.csi.ceph.com"
BEFORE = (DATA / "node-1-before-run.metrics").read_text()
AFTER = (DATA / "node-1-after-run.metrics").read_text()


def _reading(text: str, sent_at: float) -> CsiCalls:
    return CsiCalls(parse_csi_calls(text, DRIVER), sent_at, sent_at + 0.05)


def test_the_kubelet_counts_and_sums_each_csi_method_by_grpc_status() -> None:
    calls = parse_csi_calls(AFTER, DRIVER)
    assert calls[(STAGE, OK)] == Calls(3, pytest.approx(0.173591457))
    assert calls[(PUBLISH, OK)] == Calls(3, pytest.approx(0.012142608))
    assert set(calls) == {
        (f"/csi.v1.Node/{method}", OK)
        for method in (
            "NodeGetCapabilities",
            "NodeGetInfo",
            "NodeStageVolume",
            "NodePublishVolume",
            "NodeUnpublishVolume",
            "NodeUnstageVolume",
        )
    }
    # Another driver's calls are not counted; a driver the kubelet never called is no calls, not a refusal.
    assert parse_csi_calls(AFTER, "other.csi.example.com") == {}


def test_what_completed_between_two_readings_is_the_growth_of_their_counts_and_sums() -> None:
    grown = _reading(AFTER, 20.0).since(_reading(BEFORE, 10.0))
    assert grown[(STAGE, OK)] == Calls(1, pytest.approx(0.059758543))
    assert grown[(PUBLISH, OK)] == Calls(1, pytest.approx(0.004260234))
    assert grown[("/csi.v1.Node/NodeUnstageVolume", OK)].count == 1
    assert grown[("/csi.v1.Node/NodeGetInfo", OK)].count == 1  # the node plugin registered again
    assert all(key[1] == OK for key in grown)
    assert _reading(BEFORE, 10.0).since(_reading(BEFORE, 10.0)) == {}


def test_a_restarted_kubelet_counts_from_zero_so_everything_it_counted_is_new() -> None:
    restarted = CsiCalls({(STAGE, OK): Calls(1, 0.05)}, 20.0, 20.1)
    assert restarted.since(_reading(BEFORE, 10.0)) == {(STAGE, OK): Calls(1, 0.05)}


def _watch(node: str = "node-1") -> CsiWatch:
    before = _reading(BEFORE, 100.0)
    return CsiWatch(DRIVER, "old-uid", {"node-1": before, "node-2": None}, {}, node=node, last=before)


def test_the_stages_are_marked_between_the_readings_with_the_time_each_call_took() -> None:
    w = _watch()
    w.scheduled_at = 99.0  # scheduled before the reading before: that reading bounds the call
    w.saw(_reading(BEFORE, 100.0), _reading(AFTER, 100.5))
    staged, published = w.marks["volume_staged"], w.marks["volume_published"]
    assert (staged.at_unix_s, staged.resolution_s) == (100.0, 0.55)
    assert staged.source == (
        "kubelet metric csi_operations_seconds via the API (node node-1): NodeStageVolume took 0.060 s (grpc OK)"
    )
    assert published.source.endswith("NodePublishVolume took 0.004 s (grpc OK)")
    assert w.why_missing() == ""
    # No call completes before its pod was scheduled: a reading long before does not widen the mark.
    late = _watch()
    late.scheduled_at = 104.0
    late.saw(_reading(BEFORE, 100.0), _reading(AFTER, 104.5))
    assert (late.marks["volume_staged"].at_unix_s, late.marks["volume_staged"].resolution_s) == (104.0, 0.55)


def _with(text: str, line: str) -> str:
    return text + line + "\n"


def test_failed_calls_are_said_in_the_mark_of_the_one_that_succeeded_and_in_the_note_when_none_did() -> None:
    internal = (
        f'csi_operations_seconds_count{{driver_name="{DRIVER}",grpc_status_code="Internal",method_name="{STAGE}",'
        'migrated="false"} 2'
    )
    internal_sum = internal.replace("_count", "_sum").replace("} 2", "} 1.5")
    failing = _with(_with(BEFORE, internal), internal_sum)
    w = _watch()
    w.saw(_reading(BEFORE, 100.0), _reading(failing, 100.5))
    assert w.marks == {}
    assert w.why_missing() == (
        "kubelet metric csi_operations_seconds of node node-1 (cephfs.csi.ceph.com): NodeStageVolume failed "
        "(2 x grpc Internal) and did not succeed; no NodePublishVolume completed between the fault and the "
        "container's start (a volume still staged on the node is not staged again)"
    )
    w.saw(_reading(failing, 100.5), _reading(_with(_with(AFTER, internal), internal_sum), 101.0))
    assert w.marks["volume_staged"].source.endswith(
        "NodeStageVolume took 0.060 s (grpc OK); before it 2 call(s) failed (grpc Internal, 1.500 s)"
    )
    assert "failed" not in w.marks["volume_published"].source and w.why_missing() == ""


def test_a_kubelet_that_served_no_metrics_or_was_not_read_is_said_once() -> None:
    assert _watch("node-2").why_missing() == (
        "volume_staged and volume_published not shown: node node-2's kubelet served no metrics through the API "
        "(403 or 404: no nodes/proxy right?)"
    )
    assert (
        _watch("node-3")
        .why_missing()
        .endswith("node node-3 was not read before the fault (not Ready or unschedulable)")
    )
    assert _watch("").why_missing() == ""  # the new pod was never placed: the wait says why
