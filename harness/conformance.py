"""The conformance table: every file in ``scenarios/``, the runtimes it runs on as shipped, and how it must end there
(its exit code and the status of each of its checks).

This is what the shipped scenarios promise, held to the files themselves: ``tests/test_conformance.py`` runs every
local row as shipped through ``harness nightly`` (so the nightly path is what proves them) and fails when a file in
``scenarios/`` has no row, when a row names no file, or when a run ends otherwise than its row says; the rows with a
``kubernetes`` outcome run the same files with ``--runtime kubernetes`` on the local cluster
(``tests/k8s/test_conformance_cluster.py``). The nightly set
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

PASSED, FAILED = "PASSED", "FAILED"


# Until `harness nightly` can hand a run what names a node and a path on the cluster (the shipped files name none),
# the cluster runs of these scenarios' faults are tests/k8s's own, each with a node and a local PV of its own.
_CLUSTER_LATER = "no cluster row yet: the file names no node or path; tests/k8s runs its faults with its own"


@dataclass(frozen=True)
class Expect:
    """How a run must end: its exit code, and every check it stores with the status it must have (no more checks)."""

    exit_code: int
    checks: Mapping[str, str]


@dataclass(frozen=True)
class Row:
    file: str  # relative to the repository root, where nox and CI run
    local: Expect | None  # None: the scenario cannot run on the local runtime (``why`` says so)
    kubernetes: Expect | None = None  # None: not run on the local cluster yet (``why`` says so)
    nightly: bool = True  # in the nightly set (``harness nightly`` with no --set)
    why: str = ""  # why it ends as it does, or why it does not run on the local runtime
    why_not_kubernetes: str = _CLUSTER_LATER  # why there is no cluster row yet (where ``kubernetes`` is None)

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


CONFORMANCE: tuple[Row, ...] = (
    Row("scenarios/demo.yaml", _holds()),
    Row(
        "scenarios/ephemeral-baseline.yaml",
        _loses(),
        kubernetes=_loses(),
        why="emptyDir: a rescheduled pod's volume is a new, empty one",
    ),
    Row("scenarios/local-pv.yaml", _holds()),
    Row("scenarios/power-loss.yaml", _loses(), why="the cut loses what came after the WAL's last fsync"),
    Row("scenarios/io-errors.yaml", _loses(), why="prometheus/prometheus#13027: the repair cuts acknowledged samples"),
    Row("scenarios/io-latency.yaml", _holds()),
    Row("scenarios/disk-full.yaml", _loses(), why="prometheus/prometheus#13027 after ENOSPC on the WAL"),
    Row("scenarios/nfs-server-restart.yaml", _holds()),
    Row("scenarios/iscsi-server-restart.yaml", _holds()),
    Row("scenarios/nfs-second-writer.yaml", _holds()),
    Row("scenarios/nfs.yaml", _holds(), nightly=False),
    Row("scenarios/iscsi.yaml", _holds(), nightly=False),
    Row("scenarios/sharded-load.yaml", _holds(), nightly=False),
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
)


def nightly_set() -> dict[str, int]:
    """The nightly set: the rows marked ``nightly``, each with its local exit code."""
    return {row.file: row.local.exit_code for row in CONFORMANCE if row.nightly and row.local is not None}
