"""``server_restart``: the storage server the run started (embedded NFS-Ganesha or tgt) stops for ``for`` and comes
back as it was, while Prometheus keeps running on the storage.

Nothing under Prometheus is lost by the server itself (Ganesha and tgt write through to their files), so the
question is what the client and Prometheus do meanwhile: the user-space NFS client's calls block until libnfs gives
up on the dead connection and reconnects; the user-space iSCSI initiator (libiscsi in qemu-storage-daemon) holds its
requests until the target is back. The write load records what Prometheus did not acknowledge, the pipeline quotes
Prometheus' log, and the history check says whether acknowledged samples survived.

It needs ``ServerControl``, which only a storage whose server the run started gives: a scenario pointing at
someone else's server is refused before anything starts. Starting the server again is
recorded in the undo log before it is stopped, so Ctrl-C during the window brings it back too.
"""

from __future__ import annotations

from dataclasses import replace

from harness.capabilities.storage_server import ServerControl
from harness.faults.base import WindowInjector
from harness.runtime.base import Injection, Runtime
from harness.scenario.model import ServerRestartFault
from harness.undo import UndoLog, UndoStep

# How long the data path may take to serve a write once the server is back: the NFS client's per-call timeout
# (10 s) plus its reconnect, with room; Prometheus' own recovery is bounded by its ready_timeout after this.
DATA_PATH_TIMEOUT_S = 60.0


class ServerRestart(WindowInjector[ServerRestartFault]):
    action = "server_restart"
    needs = frozenset({ServerControl})

    def begin(self, spec: ServerRestartFault, runtime: Runtime, undo: UndoLog) -> tuple[float, str, UndoStep]:
        server = runtime.capability(ServerControl)

        def start_again() -> None:
            server.start()

        step = undo.record("start the storage server again", start_again)
        stopped_at, stopped = server.stop()
        return stopped_at, f"{stopped}, for {spec.for_s:g} s", step

    def inject(self, spec: ServerRestartFault, runtime: Runtime, undo: UndoLog) -> Injection:
        injection = super().inject(spec, runtime, undo)
        return replace(
            injection,
            detail=f"{injection.detail}; {runtime.capability(ServerControl).await_data_path(DATA_PATH_TIMEOUT_S)}",
        )


FAULT = ServerRestart()
