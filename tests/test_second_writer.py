"""The ``second_writer`` fault: the field notes' Grafana (uid 472) writing into Prometheus' NFS export.

Real components only: NFS-Ganesha on 127.0.0.1 (the writer's and the harness's NFS clients are libnfs, as in a run)
and, end to end, a real Prometheus on the harness's user-space NFS mount. What is asserted is what happens, measured
with Prometheus 2.42 against Ganesha: a writer that only adds its files leaves Prometheus alone; once Prometheus'
files are chowned to 472 (Grafana's init-chown-data), every WAL write is refused with `permission denied`, remote
writes get HTTP 500 and nothing is acknowledged in the window, nothing acknowledged before is lost, and writes
succeed again once the owners are put back. Each check counts events (refused writes > 0, lost == 0), never times.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from pydantic import ValidationError

from harness.datapath.servers import NfsServer, start_ganesha
from harness.errors import UsageError
from harness.faults import injector_for
from harness.faults.second_writer_summary import Outcome, describe
from harness.faults.second_writer_window import Window
from harness.loads.second_writer_child import MODULE, TAG, WriterArgs, events
from harness.refusals import refuse_faults
from harness.results.model import Status
from harness.scenario.model import Scenario, SecondWriterFault
from harness.storage.base import ExportAccess
from harness.undo import UndoLog
from harness.wait import wait_for
from tests.leftovers import interrupt_during_load, left_behind, run

F = TypeVar("F", bound=Callable[..., None])


def needs_ganesha_as_root(test: F) -> F:
    marks = [
        pytest.mark.root(reason="NFS-Ganesha serves files owned by other uids: needs root"),
        pytest.mark.skipif(shutil.which("ganesha.nfsd") is None, reason="ganesha.nfsd is not installed (nfs-ganesha)"),
    ]
    for mark in marks:
        test = mark(test)
    return test


def fault(**kw: object) -> SecondWriterFault:
    return SecondWriterFault.model_validate({"action": "second_writer", "at": "1s", **kw})


def scenario(storage: dict[str, object], **kw: object) -> Scenario:
    doc = {"name": "t", "duration": "1m", "storage": storage, "faults": [{"action": "second_writer", "at": "1s", **kw}]}
    return Scenario.model_validate(doc)


# --- the model and its refusals ------------------------------------------------------------------------------


def test_grafana_is_the_default_writer() -> None:
    spec = fault()
    assert (spec.uid, spec.gid, spec.for_s, spec.chown_data) == (472, 472, 10.0, False)
    assert spec.creates == ["grafana.db", "plugins/", "png/"]
    assert fault(mode="0777").mode_bits == 0o777
    assert injector_for(spec).keeps_instance and injector_for(spec).below_prometheus


@pytest.mark.parametrize("names", [["../x"], ["a/b"], ["/etc"], ["."], ["x", "x/"], [""]])
def test_it_creates_only_names_of_its_own_in_the_data_directory(names: list[str]) -> None:
    with pytest.raises(ValidationError):
        fault(creates=names)


def test_it_is_refused_where_there_is_no_export_of_the_runs_own() -> None:
    with pytest.raises(UsageError) as local:
        refuse_faults("local", scenario({"backend": "local"}))
    assert "faults[0] (second_writer)" in str(local.value) and "no network export" in str(local.value)

    mounted = {"backend": "nfs", "server": "10.0.0.1", "export": "/x", "mount_path": "/mnt/nfs"}
    with pytest.raises(UsageError) as user_mount:
        refuse_faults("local", scenario(mounted))
    assert "storage.mount_path" in str(user_mount.value)

    real = {"backend": "nfs", "server": "10.0.0.1", "export": "/vol/k8s-prometheus/prometheus_db"}
    refuse_faults("local", scenario(real))  # the run mounts it itself: allowed
    refuse_faults("kubernetes", scenario(real))  # the PV names the export: allowed
    with pytest.raises(UsageError) as cluster:
        refuse_faults("kubernetes", scenario({"backend": "local", "path": "/mnt/disks/p", "node": "n1"}))
    assert "no network export" in str(cluster.value)


# --- the writer's command line and report lines, and the sentence made of them --------------------------------


def test_the_writers_command_line_reads_back_as_it_was_built() -> None:
    args = WriterArgs("10.0.0.1", "/x", 2049, 20048, 472, 472, 0.5, 1.0e9, 0o770, ("/d/grafana.db", "/d/png/"))
    argv = args.argv("/usr/bin/python3")
    assert argv[:3] == ["/usr/bin/python3", "-m", MODULE] and argv[-3:] == ["--", "/d/grafana.db", "/d/png/"]
    assert "--mode" in argv and argv[argv.index("--mode") + 1] == "770"
    assert WriterArgs.parse(argv[3:]) == args
    plain = dataclasses.replace(args, mount_port=None, mode=None)
    assert WriterArgs.parse(plain.argv("python")[3:]) == plain


def test_the_summary_is_a_function_of_the_outcome_alone() -> None:
    lines = f'noise\n{TAG}{{"event": "created", "path": "/d/png", "kind": "dir"}}\n{TAG}not json\n'
    lines += f'{TAG}{{"event": "exists", "path": "/d/grafana.db"}}\n{TAG}{{"event": "summary", "writes": 7}}\n'
    outcome = Outcome(
        uid=472, gid=472, mode="0770", chown_data=True, where="/x/d", as_process=0, python="/usr/bin/python3.11",
        events=tuple(events(lines)), write_bytes=4096, before=3, changed=(), chowned=3, chown_refused="",
        restored=3, removed=1,
    )  # fmt: skip
    assert describe(outcome) == (
        "a second writer (uid 472 gid 472, its own NFSv3 client; its process ran as uid 0, since uid 472 cannot "
        "reach /usr/bin/python3.11, and sent 472:472 in every request) in Prometheus' data directory /x/d: created "
        "png/ (chmod 0770), 7 writes of 4096 bytes to its files; left alone what already existed: grafana.db; "
        "init chown -R 472:472 as root: 3 entries; 3 put back after the window; Prometheus' 3 entries kept their "
        "owners and modes; removed afterwards: 1 entries it created"
    )


# --- the writer and its undo, against a real NFS server -------------------------------------------------------


@pytest.fixture
def export(tmp_path: Path) -> Iterator[tuple[NfsServer, Path]]:
    """Ganesha (NFSv3, no_root_squash) exporting a directory like a run's: Prometheus' data directory in it, owned
    1000:2000 with a WAL segment and a chunks_head directory."""
    directory = tmp_path / "export"
    data = directory / "harness-run"
    (data / "wal").mkdir(parents=True)
    (data / "chunks_head").mkdir()
    (data / "wal" / "00000000").write_bytes(b"wal")
    directory.chmod(0o777)
    for path in [data, *data.rglob("*")]:
        os.chown(path, 1000, 2000)
    data.chmod(0o777)  # the field notes' export was drwxrwxrwx: both applications could create files in it
    server = start_ganesha(tmp_path / "ganesha", directory, pseudo=str(directory), v3=True)
    try:
        yield server, data
    finally:
        server.stop()


def access(server: NfsServer) -> ExportAccess:
    return ExportAccess("127.0.0.1", server.pseudo, server.port, server.mount_port, "3", "/harness-run")


def owners(data: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(data)): (p.stat().st_uid, p.stat().st_gid) for p in [data, *data.rglob("*")]}


@needs_ganesha_as_root
def test_what_it_created_goes_and_what_was_there_stays(export: tuple[NfsServer, Path]) -> None:
    server, data = export
    # Someone else's grafana.db is already there (uid 1000): the writer must neither take it over nor delete it.
    (data / "grafana.db").write_bytes(b"not the writer's")
    os.chown(data / "grafana.db", 1000, 2000)
    before = owners(data)
    spec = fault(**{"for": "2s", "interval": "0.2s", "chown_data": True, "mode": "0770"})
    undo = UndoLog()
    window = Window.prepare(spec, access(server), data.parent.parent / "writer.log")
    step = undo.record("lift", window.lift)  # as the injector does: the undo first
    window.act()
    # Every entry is 472's now (the init chown), and the writer's own directories are there, created as 472.
    assert {o for o in owners(data).values()} == {(472, 472)}
    assert (data / "plugins").is_dir() and (data / "png").is_dir()
    assert (data / "plugins").stat().st_mode & 0o777 == 0o770
    undo.run_now(step)

    assert not (data / "plugins").exists() and not (data / "png").exists()
    assert (data / "grafana.db").read_bytes() == b"not the writer's"
    assert owners(data) == before  # the init chown is undone, everything is 1000:2000 again
    summary = window.summary()
    assert "created plugins/, png/ (chmod 0770)" in summary
    assert "left alone what already existed: grafana.db" in summary
    assert f"init chown -R 472:472 as root: {len(before)} entries; {len(before)} put back" in summary
    assert "wal 1000:2000 0755 -> 472:472 0755" in summary or "changed owner or mode" in summary
    assert "removed afterwards: 2 entries it created" in summary
    assert window.daemon is not None and not window.daemon.alive()


@needs_ganesha_as_root
def test_a_directory_it_may_not_write_refuses_it_with_the_servers_words(export: tuple[NfsServer, Path]) -> None:
    """Prometheus' directory 0755 owned 1000: uid 472 cannot create anything there (the other half of "sometimes
    writable, sometimes not"); the refusal is reported and nothing is removed, since nothing was created."""
    server, data = export
    data.chmod(0o755)
    window = Window.prepare(fault(**{"for": "1s", "interval": "0.2s"}), access(server), data.parent.parent / "w.log")
    undo = UndoLog()
    step = undo.record("lift", window.lift)
    window.act()
    undo.run_now(step)
    summary = window.summary()
    assert "created nothing" in summary
    assert "the server refused it: create grafana.db:" in summary and "Permission denied" in summary
    assert "Prometheus' 4 entries kept their owners and modes" in summary
    assert "removed afterwards: 0 entries" in summary
    assert sorted(p.name for p in data.iterdir()) == ["chunks_head", "wal"]


# --- end to end: Prometheus on the export while the writer works ---------------------------------------------

E2E = """\
name: second-writer
duration: 18s
storage: {backend: nfs, server: embedded, client: user-space, embedded: {owner: "1000:2000", mode: "0777"}}
prometheus: {security_context: {run_as_user: 1000, run_as_group: 2000, fs_group: 2000}}
loads: {tsdb: {series: 200, interval: 1s}}
faults:
  - {action: second_writer, at: 2s, for: 4s, interval: 0.5s}
  - {action: second_writer, at: 9s, for: 4s, interval: 0.5s, chown_data: true}
checks: {history_survival: {max_samples_lost: 0}}
"""


@pytest.mark.slow
@needs_ganesha_as_root
@pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="no /dev/fuse: the user-space NFS mount needs FUSE")
def test_prometheus_refuses_writes_while_its_files_are_grafanas_and_loses_nothing(
    area: tuple[Path, Path], tmp_path: Path
) -> None:
    reports, work = area
    path = tmp_path / "second-writer.yaml"
    path.write_text(E2E)
    # Nothing acknowledged was lost and Prometheus took writes again after each window: PASSED, exit 0.
    done = run(path, reports, work).expect(0)
    result = done.result
    assert [(f.action, f.status, f.below_prometheus) for f in result.faults] == [
        ("second_writer", Status.PASSED, True)
    ] * 2
    alongside, chowned = result.faults

    # Grafana's files next to Prometheus' change nothing for Prometheus: no refused write, no error in its log.
    assert "a second writer (uid 472 gid 472, its own NFSv3 client" in alongside.detail
    assert "created grafana.db, plugins/, png/" in alongside.detail
    assert "entries kept their owners and modes" in alongside.detail
    assert "removed afterwards: 3 entries it created" in alongside.detail
    assert alongside.write_failures == {} and alongside.write_errors == []
    assert not any("permission denied" in line for line in alongside.prometheus_log)

    # Its files chowned to 472 under it, Prometheus cannot append to its WAL: each remote write fails with its own
    # words, and nothing is acknowledged until the owners are back.
    assert "init chown -R 472:472 as root" in chowned.detail and "put back after the window" in chowned.detail
    assert "changed owner or mode in the window" in chowned.detail
    assert "removed afterwards: 3 entries it created" in chowned.detail
    assert chowned.write_failures.get("rejected", 0) > 0
    assert any("write to WAL" in e and "permission denied" in e for e in chowned.write_errors)
    assert any("permission denied" in line for line in chowned.prometheus_log)
    assert chowned.lifted_at_s is not None and chowned.first_sample_at_s is not None
    assert chowned.first_sample_at_s >= chowned.lifted_at_s  # writes are taken again only once the owners are back

    assert result.durability and all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    assert result.verdict is Status.PASSED
    # Each writer's own report lines stay with the run's logs.
    logs = done.run_dir / "logs"
    assert sorted(p.name for p in logs.glob("second-writer-*.log")) == ["second-writer-1.log", "second-writer-2.log"]
    assert '"event": "created"' in (logs / "second-writer-2.log").read_text()
    # The writer's files went with the window, the run's mount and export with the run: nothing is left.
    assert left_behind(work) == [] and list(work.iterdir()) == []


@pytest.mark.slow
@needs_ganesha_as_root
@pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="no /dev/fuse: the user-space NFS mount needs FUSE")
def test_ctrl_c_during_the_window_stops_the_writer_and_undoes_it(area: tuple[Path, Path], tmp_path: Path) -> None:
    reports, work = area
    path = tmp_path / "long.yaml"
    path.write_text(E2E.replace("duration: 18s", "duration: 5m").replace("for: 4s", "for: 4m"))
    written: list[Path] = []

    def window_open(_result_file: Path) -> None:
        # The writer's grafana.db in the export (server side) says the window is open.
        written.append(
            wait_for(
                lambda: next(work.glob("*/server/export/harness-*/grafana.db"), None),
                what="the second writer's grafana.db",
                timeout_s=60,
            )
        )

    stopped, before = interrupt_during_load(path, reports, work, first=window_open)
    assert written and any("harness.loads.second_writer_child" in line for line in before), before
    stopped.expect(130)
    assert not written[0].exists()
    result = stopped.result
    assert result.interrupted
    # The undo ran (writer stopped, its files removed, owners put back) without a problem to report.
    assert not [e.message for e in result.events if e.kind == "error" and "cleanup" in e.message]
    assert left_behind(work) == [] and list(work.iterdir()) == []
