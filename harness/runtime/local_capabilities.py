"""The capabilities the local runtime hands out (``harness.capabilities``), each owning its state:

- ``LocalSignals``: the signal goes to the ``prometheus`` process, which the runtime starts again in the same pod;
- ``LocalFaultLayer``: the fault layer (``harness.runtime.fault_layer``) mounted over every data directory while a
  pod uses it: ``power_cut`` kills Prometheus, drops what it wrote but did not fsync, takes what the volume holds
  volatile below the filesystem (``LocalVolatileBelow``) and restarts the container in the same pod, as a node does
  after a power failure; ``io_fault`` makes chosen operations fail or slow down;
- ``LocalVolatileBelow``: what the volume holds volatile below its filesystem, as the volume says (librbd's
  write-back cache in qemu-storage-daemon for ``rbd`` with ``cache: writeback``), and its loss;
- ``LocalVolumeFill``: fills the filesystem under the data directory with ``.harness-fill-<run_id>`` in the
  volume's root, beside ``prometheus-db/``, as root so the root reserve goes too (``harness.datapath.fill``); only a
  filesystem of the volume's own (a loop-mounted ``image:``, a disk at ``storage.path``, an iSCSI LUN), checked
  when the storage is provisioned;
- ``LocalServerControl``: stops and starts the storage server the run started (embedded NFS-Ganesha or tgt) while
  Prometheus keeps running, and says when a write through the data path got through again;
- ``LocalExport``: the export this run's own NFS client mounted, with Prometheus' data directory in it;
- ``LocalCephClient``: SIGKILLs the Ceph client process this run's volume is served by (ceph-fuse,
  qemu-storage-daemon) and says what its mount answers then;
- ``LocalCephOsd``: stops and starts the OSD of the embedded cluster the run started.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import fmt
from harness.capabilities.ceph import CephClientControl, CephMdsControl, CephOsdControl
from harness.capabilities.export import ExportReach
from harness.capabilities.fault_layer import FaultLayerControl, IoFault, PowerCut
from harness.capabilities.signals import SignalControl
from harness.capabilities.storage_server import ServerControl
from harness.capabilities.volatile_below import VolatileBelow
from harness.capabilities.volume_fill import VolumeFill, VolumeFiller
from harness.datapath import fill
from harness.datapath.mounts import filesystem_of
from harness.errors import InfraError, StorageUnavailable, WaitTimeout
from harness.runtime.fault_layer import WAL_DIR, FaultLayer, cut_detail, io_summary, utc_time
from harness.storage.base import EmbeddedServer, ExportAccess, ProvisionedStorage
from harness.storage.ceph import EmbeddedCephServer
from harness.storage.mounted import ServedVolume
from harness.wait import wait_for

if TYPE_CHECKING:
    from harness.runtime.local import LocalRuntime

log = logging.getLogger(__name__)


class LocalSignals(SignalControl):
    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime

    def send(self, sig: signal.Signals) -> tuple[float, str]:
        rt = self.runtime
        current = rt.current()
        injected = time.time()
        current.daemon.signal(sig)
        rt.restart_container(current)
        return (
            injected,
            f"{sig.name} to pid {current.daemon.pid}; the container restarted in the same pod (same volume)",
        )


class LocalFaultLayer(FaultLayerControl):
    """The layers, by data directory, while a pod uses it (a volume that outlives its pod keeps its layer, and with
    it the fsyncs it saw)."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime
        self.layers: dict[Path, FaultLayer] = {}

    def attach(self, data_dir: Path) -> None:
        if data_dir not in self.layers:
            layer = FaultLayer(data_dir, logs_dir=self.runtime.logs_dir, state_dir=self.runtime.workdir)
            layer.mount()
            self.layers[data_dir] = layer

    def detach(self, data_dir: Path) -> None:
        layer = self.layers.pop(data_dir, None)
        if layer is not None:
            layer.unmount()

    def detach_all(self) -> list[str]:
        """Unmount every layer; what could not be unmounted."""
        problems = []
        for data_dir in list(self.layers):
            try:
                self.detach(data_dir)
            except InfraError as e:
                problems.append(str(e))
        return problems

    def power_cut(self, below: VolatileBelow) -> PowerCut:
        rt = self.runtime
        current = rt.current()
        layer = self._layer(current.data_dir)
        held = below.held()
        injected = time.time()
        # Prometheus first, so that nothing writes after the cut: the two are one instant as far as the disk knows.
        current.daemon.signal(signal.SIGKILL)
        current.daemon.wait(rt.stop_timeout_s)
        cut = layer.cut()
        if below.volatile():
            # The layer's FUSE mount sits on the filesystem that goes down with the disk: off before, and over the
            # filesystem mounted again after. The layer's put-backs were page cache too, lost with the disk: the
            # filesystem comes back as the storage kept it.
            self.detach(current.data_dir)
            lost = below.lose()
            self.attach(current.data_dir)
            took = f"below the filesystem the cut took {held} too: {lost}"
        else:
            took = f"below the filesystem it took nothing more ({held})"
        rt.restart_container(current)
        detail = cut_detail(
            cut,
            where=str(current.data_dir),
            killed=f"SIGKILL to pid {current.daemon.pid}",
            injected=injected,
            layer_since=f"the layer was mounted at {utc_time(layer.mounted_at_unix_s)}",
            after=f"{took}; the container restarted in the same pod on what was durable",
        )
        log.info("%s (reverted %s, removed %s)", detail, cut.reverted, cut.removed)
        return PowerCut(injected, detail, cut.last_fsync_under(WAL_DIR))

    def io_fault(self, fault: IoFault) -> tuple[float, str]:
        current = self.runtime.current()
        started = self._layer(current.data_dir).io_set(fault)
        return started, f"{fault.describe()} in {current.data_dir}, while Prometheus ({current.name}) runs"

    def io_heal(self) -> str:
        said = []
        for layer in self.layers.values():
            fault = layer.io_fault
            if fault is not None:
                said.append(io_summary(layer.io_clear(), failing=fault.errno_name is not None))
        return "; ".join(said) or "no I/O fault was set"

    def _layer(self, data_dir: Path) -> FaultLayer:
        layer = self.layers.get(data_dir)
        if layer is None:
            raise InfraError(f"no fault layer under {data_dir}")
        return layer


class LocalVolatileBelow(VolatileBelow):
    """What the run's volume holds volatile below its filesystem, as the volume says (``ProvisionedStorage``)."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime

    def held(self) -> str:
        return self.runtime.provisioned().held_below()

    def volatile(self) -> bool:
        return self.runtime.provisioned().volatile_below()

    def lose(self) -> str:
        return self.runtime.provisioned().lose_below()


class LocalVolumeFill(VolumeFiller):
    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime
        self._fill: Path | None = None  # the fill file, from just before it is created until it is deleted

    def check_fillable(self, root: Path) -> None:
        """A disk_full fills the volume under test, never the host's filesystems: refuse a volume that is not a
        filesystem of its own on a block device (a plain directory on /, the work area, an emptyDir, an NFS
        export, whose filesystem is the server's)."""
        fs = filesystem_of(root)
        others = (("the host's root filesystem /", Path("/")), ("the run's work area", self.runtime.workdir))
        shared = [what for what, other in others if other.stat().st_dev == root.stat().st_dev]
        if shared or not fs.source.startswith("/dev/"):
            why = (
                f"it is {' and '.join(shared)}" if shared else f"it is {fs.fstype} from {fs.source}, not a block device"
            )
            raise StorageUnavailable(
                f"disk_full fills the filesystem under Prometheus' data directory, {fs.mount_point} ({fs.fstype} on "
                f"{fs.source}), and the harness fills only a filesystem of the volume's own: {why}. Give the "
                "storage a loop-mounted image (storage.image: {filesystem: ext4, size: 256Mi}, root) or a "
                "storage.path on a disk of its own"
            )

    def fill(self) -> VolumeFill:
        rt = self.runtime
        current = rt.current()
        root = rt.provisioned().root
        if self._fill is not None:
            raise InfraError(f"the volume is already filled ({self._fill}): one disk_full at a time")
        # Known before it exists, so free (the undo, recorded first) removes even a half-made fill.
        self._fill = root / fill.fill_name(rt.run_id)
        filled = fill.fill(self._fill)
        at = time.time()
        fs = filesystem_of(root)
        # As root the fill takes the root reserve too; otherwise Prometheus runs as this same user (only root can
        # switch uid), for whom the reserve was never there.
        who = "even as root" if os.geteuid() == 0 else f"as uid {os.geteuid()}, whom Prometheus runs as"
        detail = fill.describe(
            allocated=filled.allocated_bytes,
            where=f"{fs.mount_point} ({fs.fstype} on {fs.source})",
            name=f"{self._fill.name} beside {current.data_dir.name}/",
            took_s=filled.took_s,
            method=filled.method,
            before=filled.before,
            after=filled.after,
            who=who,
        )
        log.info("%s", detail)
        return VolumeFill(at, detail)

    def free(self) -> None:
        if self._fill is None:
            return
        path = self._fill
        try:
            fill.free(path)
        except (InfraError, OSError) as e:
            raise InfraError(f"could not delete the fill file {path}: {e}") from e
        self._fill = None
        log.info("deleted the fill file %s: %s free for root", path, fmt.iec_bytes(fill.Space.of(path.parent).for_root))


class LocalServerControl(ServerControl):
    def __init__(self, runtime: LocalRuntime, server: EmbeddedServer[Any]) -> None:
        self.runtime = runtime
        self.server = server
        # Around a restart: where the client's log stood when the server stopped, and its return (when, what).
        self._client_log_at_stop = 0
        self._back: tuple[float, str] | None = None
        # True from the moment the server is asked to stop until it serves again: the runtime's ``stop`` then starts
        # it again first, wherever Ctrl-C cut the restart short, since Prometheus' and the client's shutdown and the
        # unmount all wait on the server (a hung NFS client blocks every call through its mount).
        self.halted = False

    def stop(self) -> tuple[float, str]:
        self._client_log_at_stop = len(self.runtime.provisioned().client_log())
        self._back = None
        # From the moment it is asked to stop the server is going away (connections closed, requests refused).
        stopped = time.time()
        self.halted = True
        return stopped, self.server.halt()

    def start(self) -> tuple[float, str]:
        asked = time.time()
        what = self.server.resume()
        self.halted = False
        back = time.time()
        self._back = (back, f"{what} ({back - asked:.1f} s to start)")
        return self._back

    def await_data_path(self, timeout_s: float) -> str:
        """After a server restart: wait (bounded) until a small write and fsync through the storage's data path
        complete, and say when that was and what the storage's client logged since the server stopped."""
        storage = self.runtime.provisioned()
        if self._back is None:
            raise InfraError("the storage server was not started again")
        back, what = self._back
        # The write may hang as long as the client does: it runs on a thread of its own, which is left behind (a
        # daemon thread, blocked in the kernel) if the wait gives up; the teardown's unmount ends it.
        outcome: list[str] = []
        probe = threading.Thread(target=_write_and_fsync, args=(storage, outcome), daemon=True, name="data-path")
        probe.start()
        try:
            wait_for(
                lambda: bool(outcome) or None,
                what="a write and fsync through the data path after the storage server came back",
                timeout_s=timeout_s,
                interval_s=0.05,
            )
            served = (
                f"a write and fsync through the data path {outcome[0]} {time.time() - back:.1f} s after it was back"
            )
        except WaitTimeout:
            served = f"a write and fsync through the data path had not returned {timeout_s:g} s after it was back"
        logged = [line.strip() for line in storage.client_log()[self._client_log_at_stop :].splitlines()]
        said = _quote_lines([line for line in logged if line])
        client = f"the storage client logged {said}" if said else "the storage client logged nothing meanwhile"
        return f"{what}; {served}; {client}"


class LocalExport(ExportReach):
    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime

    def data_export(self) -> ExportAccess:
        rt = self.runtime
        current = rt.current()
        access = rt.backend.export_access(rt.storage_spec, rt.provisioned(), current.data_dir)
        if access is None:
            raise InfraError(
                f"{current.data_dir} is not in an export this run mounted itself ({rt.storage_spec.backend} storage)"
            )
        return access


class LocalCephClient(CephClientControl):
    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime

    def kill_client(self, node_plugin_restart: list[str] | None) -> tuple[float, str]:
        # node_plugin_restart is a cluster's (refused with backend cephfs or rbd before the run starts).
        storage = self.runtime.provisioned()
        daemon = storage.daemon if isinstance(storage, ServedVolume) else None
        if not isinstance(storage, ServedVolume) or daemon is None or not daemon.alive():
            raise InfraError(f"the {self.runtime.storage_spec.backend} volume has no running client process to kill")
        served = next(iter(storage.mount_points()), None)  # ceph-fuse's mount; qemu-storage-daemon's FUSE file
        name = daemon.name
        killed = time.time()
        daemon.signal(signal.SIGKILL)
        daemon.wait(15)
        answer = "still answers"
        if served is not None:
            try:
                served.stat()
            except OSError as e:  # a dead FUSE server's mount answers at once, with ENOTCONN
                answer = f"answers '{e.strerror}'"
        # What Prometheus' next fsync meets (an RBD image's ext4 still takes writes into the page cache).
        outcome: list[str] = []
        probe = threading.Thread(target=_write_and_fsync, args=(storage, outcome), daemon=True, name="data-path")
        probe.start()
        probe.join(PROBE_TIMEOUT_S)
        fsync = outcome[0] if outcome else f"had not returned after {PROBE_TIMEOUT_S:g} s"
        return killed, (
            f"SIGKILL to {name} (pid {daemon.pid}); its FUSE mount {served} {answer}; a write and fsync through the "
            f"data path {fsync}; nothing remounts it"
        )


class LocalCephOsd(CephOsdControl):
    def __init__(self, server: EmbeddedCephServer[Any]) -> None:
        self.server = server
        self.pid = 0

    def stop_osd(self) -> tuple[float, str]:
        cluster = self.server.running()
        stopped = time.time()
        self.pid = cluster.stop_daemon("osd.0")
        up = cluster.admin.ceph_json("osd", "stat").get("num_up_osds", "?")
        return stopped, f"osd.0 (pid {self.pid}) stopped (SIGTERM); the monitor counts {up} OSD(s) up"

    def start_osd(self) -> tuple[float, str]:
        cluster = self.server.running()
        daemon = cluster.start_daemon("osd.0")
        back = cluster.osd_back()
        return time.time(), f"osd.0 started again (pid {daemon.pid}) on the same data: {back}"


# An MDS asked to stop tells the monitor first; a kubelet would wait 30 s (the default grace period) as well.
MDS_STOP_TIMEOUT_S = 30.0


class LocalCephMds(CephMdsControl):
    def __init__(self, server: EmbeddedCephServer[Any]) -> None:
        self.server = server

    def stop_mds(self) -> tuple[float, str]:
        cluster = self.server.running()
        asked = time.time()
        pid = cluster.stop_daemon("mds.a", MDS_STOP_TIMEOUT_S)
        stopped = time.time()  # the window counts from its exit: until then it served
        state = cluster.mds_state() or "no MDS"
        return stopped, (
            f"mds.a (pid {pid}) stopped (SIGTERM; it exited after {stopped - asked:.1f} s); the file system "
            f"{cluster.fs_name} lists {state}"
        )

    def start_mds(self) -> tuple[float, str]:
        cluster = self.server.running()
        daemon = cluster.start_daemon("mds.a")
        back = cluster.mds_back()
        return time.time(), f"mds.a started again (pid {daemon.pid}) on its journal: {back}"


PROBE_FILE = ".harness-data-path-probe"
PROBE_TIMEOUT_S = 10.0  # a dead client's mount answers at once; a hung one is said to hang


def _write_and_fsync(storage: ProvisionedStorage, outcome: list[str]) -> None:
    """One small write and fsync in the run's fio directory (next to Prometheus' data, never in it), then removed;
    ``outcome`` gets "got through" or the error it met: either way the data path answered."""
    try:
        path = storage.fio_dir() / PROBE_FILE
        with path.open("wb") as f:
            f.write(b"probe")
            f.flush()
            os.fsync(f.fileno())
        path.unlink()
        outcome.append("got through")
    except OSError as e:
        outcome.append(f"failed ({e.strerror or e})")


def _quote_lines(lines: list[str], most: int = 3) -> str:
    """Up to ``most`` log lines, quoted, and how many more there were."""
    quoted = "; ".join(f"'{line[:240]}'" for line in lines[:most])
    more = f" (and {len(lines) - most} more lines)" if len(lines) > most else ""
    return f"{len(lines)} line(s): {quoted}{more}" if lines else ""
