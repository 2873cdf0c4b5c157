"""The conformance table: every file in ``scenarios/``, the runtimes it runs on as shipped, and how it must end there
(its exit code and the status of each of its checks).

This is what the shipped scenarios promise, held to the files themselves: ``tests/test_conformance.py`` runs every
local row as shipped through ``harness nightly`` (so the nightly path is what proves them) and fails when a file in
``scenarios/`` has no row, when a row names no file, or when a run ends otherwise than its row says; the rows with a
``kubernetes`` outcome run the same files with ``--runtime kubernetes`` on the local cluster
(``tests/k8s/test_conformance_cluster.py``), handed with ``--override`` only what names a node or a path (``pv``):
nothing else of the file is changed, and the run's result records the settings. The nightly set
(``harness.nightly.NIGHTLY``) is the rows marked ``nightly``. Pure data: it imports nothing that runs.

Why each outcome is what it is: the emptyDir baseline must lose its history (a new pod, a new empty volume); a power
loss loses what was written after the WAL's last fsync; I/O errors or a full disk under the WAL leave a torn record
that the next restart's repair cuts, with what was acknowledged after it (prometheus/prometheus#13027); a second
writer on the NFS export makes Prometheus refuse writes while its files are chowned but loses nothing it
acknowledged; an embedded NFS or iSCSI server that stops for 15 s and comes back makes the clients hold or retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

PASSED, FAILED, PARTIAL, SKIPPED = "PASSED", "FAILED", "PARTIAL", "SKIPPED"


# Why the files that take a local PV have no cluster row, where they do not (each costs a minute or more of the
# serial cluster worker, so only files that add what no other row covers get one).
_LAYER = (
    "on a cluster its fault layer is a privileged sidecar, which the file must allow (prometheus.privileged_helper: "
    "true), more than a node or a path; tests/k8s/test_io_faults_kubernetes.py runs its fault on a local PV"
)
_EMBEDDED = (
    "its embedded {server} runs on 127.0.0.1 of the harness host, which only nodes on that host's network reach "
    "(the local cluster's do; another cluster's are refused, named); no cluster row of its own: the server restart "
    "rows run the embedded {server} on the cluster"
)


@dataclass(frozen=True)
class LocalPv:
    """What a cluster row is handed for a ``backend: local`` file, and nothing more: ``--override storage.node=NODE
    --override storage.path=DIR`` for a fresh directory on a node. ``own_filesystem``: a filesystem of its own is
    mounted on that directory (a volume a fault fills must be one, or the node's own disk would fill)."""

    own_filesystem: bool = False

    @staticmethod
    def overrides(node: str, path: str) -> tuple[str, ...]:
        return (f"storage.node={node}", f"storage.path={path}")


@dataclass(frozen=True)
class Expect:
    """How a run must end: its exit code, and every check it stores with the status it must have (no more checks)."""

    exit_code: int
    checks: Mapping[str, str]


@dataclass(frozen=True)
class Row:
    file: str  # relative to the repository root, where nox and CI run
    local: Expect | None  # None: the scenario cannot run on the local runtime (``why`` says so)
    kubernetes: Expect | None = None  # None: not run on the local cluster (``why_not_kubernetes`` says why)
    nightly: bool = True  # in the nightly set (``harness nightly`` with no --set)
    why: str = ""  # why it ends as it does, or why it does not run on the local runtime
    why_not_kubernetes: str = ""  # why there is no cluster row (where ``kubernetes`` is None)
    pv: LocalPv | None = None  # the cluster row's node and path (None: it is handed nothing)
    why_kubernetes: str = ""  # why it ends on the cluster otherwise than on the local runtime
    # A test-bed component the local cluster runs only on demand, which the cluster row needs: the row runs in the
    # test that starts it (``TESTBED_TESTS``), not in tests/k8s/test_conformance_cluster.py.
    testbed: str = ""

    @property
    def name(self) -> str:
        return self.file.rsplit("/", 1)[-1].removesuffix(".yaml")


def _holds(**extra: str) -> Expect:
    """Exit 0: every acknowledged sample kept and every recovery within its limit; the ledger agrees with
    Prometheus' own count of the remote writes it answered."""
    return Expect(0, MappingProxyType({"history_survival": PASSED, "ack_count": PASSED, "recovery": PASSED, **extra}))


def _loses(**extra: str) -> Expect:
    """Exit 1: acknowledged samples lost; Prometheus came back in time; the ledger held what it answered."""
    return Expect(1, MappingProxyType({"history_survival": FAILED, "ack_count": PASSED, "recovery": PASSED, **extra}))


_NFS = _EMBEDDED.format(server="NFS-Ganesha")
_ISCSI = _EMBEDDED.format(server="iSCSI target (tgt)")
_CEPH = (
    "its backend mounts Ceph on the harness host through a user-space client (ceph-fuse, librbd) and its embedded "
    "cluster runs on 127.0.0.1 there, for the local runtime (the kubelet is refused both); on a cluster a Ceph volume "
    "is ceph-csi's, through backend: dynamic on its StorageClass (scenarios/cephfs-csi.yaml)"
)

CEPH_CSI = "ceph-csi"
# The test that starts each on-demand component on the local cluster, and runs the rows that need it.
TESTBED_TESTS = MappingProxyType({CEPH_CSI: "tests/k8s/test_ceph_csi.py"})

CONFORMANCE: tuple[Row, ...] = (
    Row(
        "scenarios/demo.yaml",
        _holds(),
        # Exit 1: nothing lost up to the SIGKILL, and what was acknowledged after it never checked (PARTIAL).
        kubernetes=Expect(1, MappingProxyType({"history_survival": PARTIAL, "ack_count": PASSED, "recovery": FAILED})),
        pv=LocalPv(),
        why_kubernetes=(
            "a local PV pins the pod to its node: the reschedule cannot move it (the scheduler's volume node affinity"
            " conflict), so Prometheus does not come back"
        ),
    ),
    Row(
        "scenarios/ephemeral-baseline.yaml",
        _loses(),
        kubernetes=_loses(),
        why="emptyDir: a rescheduled pod's volume is a new, empty one",
    ),
    Row(
        "scenarios/local-pv.yaml",
        _holds(),
        why_not_kubernetes=(
            "its ext4 image is made by the local runtime only (on a cluster the PV is the node's directory as it is),"
            " and its 70 s of 20k series after 56 s of fio would add minutes of the serial cluster worker for what"
            " demo.yaml's row covers: a local PV, fio in pods, a SIGKILL and a reschedule a local PV cannot follow"
        ),
    ),
    Row(
        "scenarios/power-loss.yaml",
        _loses(),
        why="the cut loses what came after the WAL's last fsync",
        why_not_kubernetes=_LAYER,
    ),
    Row(
        "scenarios/io-errors.yaml",
        _loses(),
        why="prometheus/prometheus#13027: the repair cuts acknowledged samples",
        why_not_kubernetes=_LAYER,
    ),
    Row("scenarios/io-latency.yaml", _holds(), why_not_kubernetes=_LAYER),
    Row(
        "scenarios/disk-full.yaml",
        _loses(),
        # On a cluster the file's image is not made: the volume filled is the filesystem mounted on the node's
        # directory (as an admin mounts a disk for a local PV).
        kubernetes=_loses(),
        pv=LocalPv(own_filesystem=True),
        why="prometheus/prometheus#13027 after ENOSPC on the WAL",
    ),
    # On the cluster the server is this host's and its client the node's (the kubelet's mount through the test
    # bed's user-space clients): the same restart under a running Prometheus pod.
    Row("scenarios/nfs-server-restart.yaml", _holds(), kubernetes=_holds()),
    Row("scenarios/iscsi-server-restart.yaml", _holds(), kubernetes=_holds()),
    Row(
        "scenarios/nfs-second-writer.yaml",
        _holds(),
        why_not_kubernetes=f"{_NFS}; tests/k8s/test_second_writer_kubernetes.py runs it on an NFS PV",
    ),
    Row(
        "scenarios/nfs.yaml",
        _holds(),
        nightly=False,
        why_not_kubernetes=(
            f"{_NFS}; tests/k8s/test_runtime_kubernetes.py runs the field notes' NFS PV through the kubelet's nfs"
            " plugin"
        ),
    ),
    Row(
        "scenarios/iscsi.yaml",
        _holds(),
        nightly=False,
        why_not_kubernetes=(
            f"{_ISCSI}; tests/k8s/test_iscsi_kubelet.py runs the field notes' iSCSI PV through the kubelet's iscsi"
            " plugin"
        ),
    ),
    Row("scenarios/cephfs.yaml", _holds(), nightly=False, why_not_kubernetes=_CEPH),
    Row("scenarios/rbd.yaml", _holds(), nightly=False, why_not_kubernetes=_CEPH),
    Row(
        "scenarios/rbd-power-loss.yaml",
        _loses(),
        nightly=False,
        why="the cut loses what came after the WAL's last fsync (librbd's cache killed with it keeps what was flushed)",
        why_not_kubernetes=_CEPH,
    ),
    Row(
        "scenarios/ceph-client-crash.yaml",
        # Exit 1: Prometheus stays ready but refuses every write on the dead mount, so it never recovers; nothing
        # was lost up to the SIGKILL's checkpoint, what came after is unchecked (PARTIAL), its own count incomplete.
        Expect(1, MappingProxyType({"history_survival": PARTIAL, "ack_count": SKIPPED, "recovery": FAILED})),
        nightly=False,
        why="ceph-fuse killed: its mount answers ENOTCONN and nothing remounts it",
        why_not_kubernetes=f"{_CEPH}; the same crash on a cluster: scenarios/cephfs-csi-client-crash.yaml",
    ),
    Row(
        "scenarios/sharded-load.yaml",
        _holds(),
        nightly=False,
        why_not_kubernetes=(
            "its 150,000 samples/s for 60 s from writer pods would cost the serial cluster worker minutes for what"
            " tests/k8s/test_shards_kubernetes.py covers: writer pods into one ledger through a SIGKILL on a local PV"
        ),
    ),
    Row(
        "scenarios/scale-1m.yaml",
        _holds(),
        nightly=False,
        why=(
            "1M series: the WAL replay (14 s here) is what the probes must outlast; the run takes 3 min 22 s on 2"
            " cores, over the suite's 3 minutes for it"
        ),
        why_not_kubernetes=(
            "1M series need about 3.2 GB for Prometheus and 3.5 minutes of the serial cluster worker; the local"
            " runtime shows the replay and the check at this size"
        ),
    ),
    Row(
        "scenarios/kubelet-restart.yaml",
        None,
        nightly=False,
        why="the local runtime has no kubelet: it refuses the fault before anything starts (exit 2)",
        kubernetes=_holds(),
        pv=LocalPv(),
    ),
    Row(
        "scenarios/dynamic-class.yaml",
        None,
        nightly=False,
        why="a StorageClass's provisioner exists only on a cluster",
        why_not_kubernetes=(
            "the class is the user's to name; tests/k8s/test_dynamic_class.py runs this shape on the classes of a"
            " local-path provisioner of its own"
        ),
    ),
    Row(
        "scenarios/cephfs-csi.yaml",
        None,
        kubernetes=_holds(),
        nightly=False,
        why="a StorageClass's provisioner exists only on a cluster",
        testbed=CEPH_CSI,
    ),
    Row(
        "scenarios/cephfs-csi-client-crash.yaml",
        None,
        # Exit 1, as scenarios/ceph-client-crash.yaml on the local runtime: the restarted node plugin took ceph-fuse
        # with it, Prometheus stays ready but refuses every write on the dead mount and nothing remounts it.
        kubernetes=Expect(1, MappingProxyType({"history_survival": PARTIAL, "ack_count": SKIPPED, "recovery": FAILED})),
        nightly=False,
        why="a StorageClass's provisioner exists only on a cluster",
        why_kubernetes="ceph-csi's node plugin restarted: its ceph-fuse goes with it and nothing remounts the volume",
        testbed=CEPH_CSI,
    ),
)


def nightly_set() -> dict[str, int]:
    """The nightly set: the rows marked ``nightly``, each with its local exit code."""
    return {row.file: row.local.exit_code for row in CONFORMANCE if row.nightly and row.local is not None}
