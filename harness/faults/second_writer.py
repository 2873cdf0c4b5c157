"""``second_writer`` (NFS): another application writes into the export that holds Prometheus' data, for a while.

The field notes' Grafana: its PV named the same NFS path as Prometheus', so Grafana (uid 472) wrote ``grafana.db``
and its directories next to Prometheus' blocks (uid 1000), and Grafana's chart chowned the volume to 472 at every
start (its ``init-chown-data`` container, root). The export then held "sometimes writable, sometimes not" files.

The model, and why:

* the writer is a **process of its own, running as ``uid``/``gid``**, with an **NFS client of its own** (libnfs,
  NFSv3, AUTH_SYS ``uid``/``gid``: ``python -m harness.loads.second_writer_child``), as Grafana's pod on another
  node has its own mount. The server judges its requests as it would Grafana's, and it shares no client cache with
  Prometheus' mount. Writing on the server side (into the exported directory as root) would skip exactly what makes
  the trap: the server's permission checks on uid 472's requests. It mounts nothing, so nothing can stay mounted;
* ``chown_data`` is the init container: the harness itself, as uid 0 through its own NFS client (root, as that
  container runs; with ``root_squash`` the server refuses it, which is said), changes the owner of every entry of
  Prometheus' data directory, recording each entry's owner *before* changing it;
* the undo step is recorded before anything starts: stop the writer, put back the owners recorded (only where they
  are still what the fault set), remove what the writer created. The writer announces each name *before* creating it
  (exclusively: a name that exists is someone else's and is left alone) and the undo removes only those names that
  exist and are owned by the writer's uid, so the harness deletes nothing it did not create.

The detail says what the writer wrote, as which uid, and whether Prometheus' own entries changed owner or mode in
the window (compared with a listing taken before it). The window's work and state are ``second_writer_window.Window``,
its sentence ``second_writer_summary``; the registered injector keeps no state: each window has an injector of its
own (``_OneWindow``) that holds it.
"""

from __future__ import annotations

from dataclasses import replace

from harness.capabilities.export import ExportReach
from harness.faults.base import Acted, Injector, WindowInjector
from harness.faults.second_writer_window import Window
from harness.runtime.base import Runtime
from harness.scenario.model import SecondWriterFault
from harness.undo import UndoLog, UndoStep


class SecondWriter(Injector[SecondWriterFault]):
    action = "second_writer"
    needs = frozenset({ExportReach})
    keeps_instance = True  # a fault that lasts, each window held by a ``_OneWindow`` (a ``WindowInjector``)
    below_prometheus = True

    def act(self, spec: SecondWriterFault, runtime: Runtime, undo: UndoLog) -> Acted:
        """The window as every fault that lasts has it; the detail then says what the window did, known only once
        it was lifted (what the writer wrote, what changed owner)."""
        one = _OneWindow()
        acted = one.act(spec, runtime, undo)
        if one.window is None:
            return acted
        lifted = acted.detail.rsplit("; lifted after ", 1)[-1]
        return replace(acted, detail=f"{one.window.summary()}; lifted after {lifted}")


class _OneWindow(WindowInjector[SecondWriterFault]):
    """One window of the fault, and the ``Window`` it opened (None until ``begin`` opened one)."""

    action = SecondWriter.action

    def __init__(self) -> None:
        self.window: Window | None = None

    def begin(self, spec: SecondWriterFault, runtime: Runtime, undo: UndoLog) -> tuple[float, str, UndoStep]:
        n = len(list(runtime.logs_dir.glob("second-writer-*.log"))) + 1
        log_path = runtime.logs_dir / f"second-writer-{n}.log"
        window = self.window = Window.prepare(spec, runtime.capability(ExportReach).data_export(), log_path)
        step = undo.record(
            f"stop the second writer (uid {spec.uid}) and remove what it created in {window.where}", window.lift
        )
        started = window.act()
        return started, f"a second writer as uid {spec.uid} gid {spec.gid} writes into {window.where}", step


FAULT = SecondWriter()
