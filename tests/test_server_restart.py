"""``server_restart`` with the real components: the embedded NFS-Ganesha or tgt stops for 15 s under a running
Prometheus (the real one) that writes through the harness's user-space data paths, and comes back as it was.

The shipped scenarios are run as they are (``scenarios/nfs-server-restart.yaml``, ``iscsi-server-restart.yaml``:
500 series every second, the server stopped at 6 s for 15 s, 32 s of load), so the nightly scenarios are what is
tested. 15 s is longer than the NFS client's per-call timeout (libnfs, 10 s) and the write load's request timeout
(5 s), so what each layer does about an outage shows every time, not only when a request happens to be in flight.
A scenario naming a server the run did not start is refused before anything starts.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harness.errors import UsageError
from harness.refusals import refuse_faults
from harness.results.model import FaultRecord, RunResult, Status
from harness.scenario.model import NfsStorage, Scenario
from tests.leftovers import interrupt_during_load, left_behind, run
from tests.test_power_loss import needs_fuse_as_root

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def _run_shipped(name: str, area: tuple[Path, Path]) -> tuple[RunResult, FaultRecord]:
    reports, work = area
    started = time.monotonic()
    done = run(SCENARIOS / f"{name}.yaml", reports, work)
    assert "Traceback" not in done.output, done.output
    done.expect(0)
    assert time.monotonic() - started < 60, "a 32 s scenario must not take much longer"
    result = done.result
    [fault] = result.faults
    return result, fault


def _pids(detail: str) -> list[int]:
    """The server processes the detail names: the one stopped and the one started again."""
    return [int(p) for p in re.findall(r"\(pid (\d+)", detail)]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") >= 0


def _assert_reported_survived_and_recovered(result: RunResult, fault: FaultRecord, work: Path) -> None:
    """What both data paths show: the data path took a write again once the server was back; Prometheus logged
    nothing; nothing acknowledged is lost (the servers write through to their files, and the clients held or retried
    Prometheus' writes instead of failing them); Prometheus takes writes again once the server is back; and both
    server processes (the one stopped, the one started again) are gone with everything else of the run."""
    detail = fault.detail or ""
    assert "a write and fsync through the data path got through" in detail, detail
    assert fault.prometheus_log == []
    assert fault.status is Status.PASSED and fault.below_prometheus
    assert fault.lifted_at_s is not None and fault.first_sample_at_s is not None
    assert 14.5 < fault.lifted_at_s - fault.injected_at_s < 30
    assert fault.first_sample_at_s > fault.lifted_at_s
    assert [c.label for c in result.durability] == ["after fault 1 (server_restart)", "final"]
    assert all(c.acknowledged > 0 and c.lost == 0 for c in result.durability)
    assert result.verdict is Status.PASSED
    # tgtd's command line does not name the work area (left_behind looks for it), so check the servers by pid.
    assert len(_pids(detail)) == 2 and all(_gone(pid) for pid in _pids(detail))
    assert left_behind(work) == [] and list(work.iterdir()) == []


def _with_marks(test: Any) -> Any:
    """Root, FUSE (the user-space data paths mount for other users) and a prometheus to run."""
    test = needs_fuse_as_root(pytest.mark.slow(test))
    return pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is missing (Debian prometheus)")(
        test
    )


@_with_marks
@pytest.mark.skipif(shutil.which("ganesha.nfsd") is None, reason="NFS-Ganesha is missing (Debian nfs-ganesha-vfs)")
def test_nfs_server_restart_stalls_prometheus_and_loses_nothing(area: tuple[Path, Path]) -> None:
    """What happens, every time: Prometheus' WAL write()s each remote write to the export at once (no writeback cache
    in the FUSE mount), so the first write after the stop blocks in libnfs; after libnfs' 10 s per-call timeout the
    client logs the dead connection (EINTR, "Socket failed with POLLHUP") and hands EINTR to Prometheus, whose Go
    runtime retries the write (EINTR is retried, never reported): the retry blocks until Ganesha is back. So
    Prometheus logs nothing, the load's requests time out meanwhile (5 s: samples whose fate is unknown, never
    acknowledged, so never counted as lost), and once Ganesha is back (same ports; in its grace period, which does
    not hold NFSv3) the blocked write goes through and every acknowledged sample is still there."""
    result, fault = _run_shipped("nfs-server-restart", area)
    detail = fault.detail or ""
    assert "NFS-Ganesha (pid" in detail and "stopped by SIGTERM, for 15 s" in detail, detail
    assert "started again" in detail and "same configuration" in detail, detail
    # A 90 s grace period, as a real server has: Ganesha restarts in grace and keeps it while NFSv4 clients it
    # recorded have not reclaimed, but the run's client speaks NFSv3, which the grace period does not hold: the data
    # path and Prometheus are back long before 90 s.
    assert "NFSv4 grace period 90 s" in detail and "'NFS Server Now IN GRACE, duration 90'" in detail, detail
    assert fault.first_sample_at_s is not None and fault.lifted_at_s is not None
    assert fault.first_sample_at_s - fault.lifted_at_s < 30
    assert "EINTR" in detail and "POLLHUP" in detail, detail  # the client's own words, quoted from its log
    assert fault.write_failures.get("unknown", 0) > 0 and "no answer: ReadTimeout" in fault.write_errors
    _assert_reported_survived_and_recovered(result, fault, area[1])


@_with_marks
@pytest.mark.skipif(shutil.which("tgtd") is None, reason="tgt is missing (Debian tgt)")
@pytest.mark.skipif(
    shutil.which("qemu-storage-daemon") is None,
    reason="qemu-storage-daemon is missing (Debian packages qemu-system-common qemu-block-extra)",
)
def test_iscsi_target_restart_holds_the_initiators_requests_and_loses_nothing(area: tuple[Path, Path]) -> None:
    """What happens: the initiator (libiscsi in qemu-storage-daemon) loses its session when tgt deletes the target,
    holds every request meanwhile (no error reaches the loop device or ext4) and logs in again once tgt is back with
    the same IQN and LUN; the target then reports the new session with a UNIT ATTENTION (bus reset), which qemu
    logs. Prometheus' writes land in ext4's page cache, but ext4 (its journal commits every 5 s) soon waits for
    the LUN, so the load may see requests time out; how many depends on where the journal was, so only their
    kind is asserted. Prometheus logs nothing and every acknowledged sample survives."""
    result, fault = _run_shipped("iscsi-server-restart", area)
    detail = fault.detail or ""
    assert "tgtd (pid" in detail and "for 15 s" in detail, detail
    assert "tgtd started again" in detail and "iqn.2020-02.com:wsg, LUN 1 on lun.img" in detail, detail
    assert "UNIT_ATTENTION" in detail, detail  # qemu-storage-daemon's own line, quoted from its log
    assert set(fault.write_failures) <= {"unknown"} and set(fault.write_errors) <= {"no answer: ReadTimeout"}
    _assert_reported_survived_and_recovered(result, fault, area[1])


@_with_marks
@pytest.mark.skipif(shutil.which("ganesha.nfsd") is None, reason="NFS-Ganesha is missing (Debian nfs-ganesha-vfs)")
def test_ctrl_c_while_the_server_is_down_starts_it_again_then_cleans_up(area: tuple[Path, Path]) -> None:
    """Ctrl-C 8 s into the load, i.e. 2 s into the 15 s outage: the undo recorded before the stop starts Ganesha
    again (so the blocked client and Prometheus can finish), then the cleanup stops everything; nothing is left."""
    reports, work = area
    stopped, before = interrupt_during_load(SCENARIOS / "nfs-server-restart.yaml", reports, work, after_s=8)
    assert any("fuse.nfs-user" in line for line in before)  # the client's mount was there
    stopped.expect(130)
    assert "Traceback" not in stopped.stderr
    # Interrupted inside the window: the fault was under way and never lifted by its own hand.
    [fault] = stopped.result.faults
    assert fault.action == "server_restart" and fault.lifted_at_s is None
    assert left_behind(work) == [] and list(work.iterdir()) == []


@pytest.mark.parametrize(
    ("storage", "says"),
    [
        (
            {"backend": "nfs", "server": "172.17.73.37", "export": "/vol/k8s-prometheus/prometheus_db"},
            "the NFS server 172.17.73.37 (export /vol/k8s-prometheus/prometheus_db) is not one this run starts",
        ),
        (
            {"backend": "iscsi", "target_portal": "172.17.73.37:3260", "iqn": "iqn.2020-02.com:wsg", "lun": 1},
            "the iSCSI target at 172.17.73.37:3260 (iqn.2020-02.com:wsg) is not one this run starts",
        ),
        ({"backend": "local"}, "local storage has no server this run starts"),
    ],
)
@pytest.mark.parametrize("runtime", ["local", "kubernetes"])
def test_a_server_the_run_did_not_start_is_never_stopped(storage: dict[str, object], says: str, runtime: str) -> None:
    scenario = Scenario.model_validate(
        {
            "name": "t",
            "duration": "1m",
            "storage": {**storage, "claim": {"storage_class": "", "size": "1Gi"}},
            "faults": [{"action": "server_restart", "at": "10s", "for": "5s"}],
        }
    )
    with pytest.raises(UsageError) as refused:
        refuse_faults(runtime, scenario)
    said = str(refused.value)
    assert "faults[0] (server_restart)" in said and "stop and start the storage server" in said
    assert says in said


@pytest.mark.parametrize("runtime", ["local", "kubernetes"])
def test_an_embedded_server_may_be_restarted(runtime: str) -> None:
    """On both runtimes (on a cluster, whether its nodes reach the server is checked once it runs:
    tests/k8s/test_embedded_reach.py)."""
    for storage in (
        {"backend": "nfs", "server": "embedded"},
        {"backend": "iscsi", "target_portal": "embedded", "iqn": "iqn.2020-02.com:wsg", "lun": 1},
    ):
        scenario = Scenario.model_validate(
            {
                "name": "t",
                "duration": "1m",
                "storage": {**storage, "claim": {"storage_class": "", "size": "1Gi"}},
                "faults": [{"action": "server_restart", "at": "10s", "for": "5s"}],
            }
        )
        refuse_faults(runtime, scenario)


def test_the_command_line_refuses_it_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    scenario = tmp_path / "external.yaml"
    scenario.write_text(
        "name: external\nduration: 20s\n"
        "storage: {backend: nfs, server: 172.17.73.37, export: /vol/x, claim: {storage_class: '', size: 1Gi}}\n"
        "faults: [{action: server_restart, at: 5s, for: 5s}]\n"
    )
    out = run(scenario, tmp_path / "reports", tmp_path / "work").expect(2).output
    assert "never stops a server it did not start" in out and "Traceback" not in out
    assert not (tmp_path / "reports").exists()  # refused before anything, the run directory included


def test_the_embedded_nfs_servers_grace_period_is_bounded_as_ganeshas() -> None:
    def storage(grace: str) -> dict[str, object]:
        return {"backend": "nfs", "server": "embedded", "embedded": {"grace": grace}}

    doc = {"name": "t", "duration": "1m", "faults": [{"action": "server_restart", "at": "1s"}]}
    ok = Scenario.model_validate({**doc, "storage": storage("90s")})
    assert isinstance(ok.storage, NfsStorage) and ok.storage.embedded is not None
    assert ok.storage.embedded.grace_s == 90.0
    with pytest.raises(ValidationError):
        Scenario.model_validate({**doc, "storage": storage("5m")})  # Ganesha takes at most 180 s
