"""Shared exports: two PersistentVolumes (or a PV and the scenario's own storage) that name the same directory on
a file server, or one inside the other. That is how the field notes got Grafana's files inside Prometheus' TSDB
directory: ``prometheus-pv`` and ``prometheus-grafana-pv`` both named ``172.17.73.37:/vol/k8s-prometheus/
prometheus_db``, so the export held blocks owned by 472 (Grafana) next to ones owned by 1000 (Prometheus), and was
"sometimes writable, sometimes not".

Each storage backend says which server directory a PV of its kind or the scenario's storage names
(``Backend.pv_export_location``, ``Backend.export_location``); this module only compares the answers, so it knows no
backend by name. Server names are compared as written: no name is resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from harness.doctor.fmt import bullets
from harness.kube.inventory import KubeInventory, PvInfo
from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import Scenario
from harness.storage import backend_for, backends
from harness.storage.base import ExportLocation

SCENARIO = "the scenario's storage"


@dataclass(frozen=True)
class Named:
    """One volume and the server directory it names."""

    label: str  # "pv/prometheus-pv" or SCENARIO
    where: ExportLocation
    prometheus: bool  # it holds (or would hold) Prometheus' TSDB


def pv_location(pv: PvInfo) -> ExportLocation | None:
    """The server directory ``pv`` names, as the backend of its kind reads it (None: a local disk, a block device)."""
    return next((loc for b in backends().values() if (loc := b.pv_export_location(pv)) is not None), None)


def check_shared_exports(scenario: Scenario, kube: KubeInventory | None) -> list[DoctorFinding]:
    """A WARNING for each pair of volumes naming the same server directory or one inside the other."""
    storage = scenario.storage
    backend = backend_for(storage)
    own = backend.export_location(storage)
    creates = backend.planned_volume(storage, scenario.name)
    planned = creates.name if creates is not None else backend.planned_volume_name(storage, scenario.name)
    named = []
    for pv in kube.pvs if kube is not None else ():
        where = pv_location(pv)
        if where is not None:
            # The PV the run creates, or (the run creating none) one on exactly the scenario's path: Prometheus'.
            mine = pv.name == planned or (creates is None and own is not None and where == own)
            named.append(Named(f"pv/{pv.name}", where, mine))
    if own is not None and not any(n.prometheus for n in named):
        # No PV in sight is Prometheus' (a local run, or a PV the run is about to create): the scenario stands for it.
        named.append(Named(SCENARIO, own, True))
    source = kube.source if kube is not None else "the scenario only"
    return [
        _finding(a, b, relation, source)
        for a, b in combinations(named, 2)
        if (relation := a.where.relation(b.where)) is not None
    ]


def _finding(a: Named, b: Named, relation: str, source: str) -> DoctorFinding:
    if relation == "contains":  # say it from the outer directory's side
        a, b, relation = b, a, "inside"
    prom = a if a.prometheus else b if b.prometheus else None
    other = b if prom is a else a
    if relation == "same":
        title = f"{a.label} and {b.label} name the same NFS directory {a.where}"
        evidence = f"{a.label}: {a.where}; {b.label}: {b.where} (the same directory once normalised)."
    else:
        title = f"{b.label} ({b.where}) lies inside {a.label} ({a.where})"
        evidence = f"{a.label}: {a.where}; {b.label}: {b.where}, a directory inside it."
    who = (
        f"{other.label} writes into Prometheus' TSDB directory ({prom.label})"
        if prom is not None and (relation == "same" or prom is a)
        else f"{a.label} and {b.label} write into each other's files"
    )
    return DoctorFinding(
        check="nfs.shared_export",
        severity=Severity.WARNING,
        title=title,
        evidence=f"{evidence} Inventory: {source}.",
        why=(
            f"Two volumes on one directory are two applications on one set of files: {who}. Each runs as its own "
            "uid (Grafana 472, Prometheus 1000) and Grafana's chart chowns its volume to 472 at every start "
            "(init-chown-data), so the TSDB ends up with mixed owners and Prometheus' mkdir/write fail with "
            "`permission denied` after the other application started: the field notes' \"sometimes writable, "
            'sometimes not". Prometheus also treats its data directory as its own (it deletes and compacts blocks '
            "there), and nothing in Kubernetes stops two claims from binding PVs that name the same server path."
        ),
        fix=bullets(
            [
                "Give every application its own directory on the server (e.g. /vol/k8s-prometheus/prometheus_db and "
                "/vol/k8s-prometheus/grafana, neither inside the other) and point each PV at its own.",
                f"Move the other application's files out of {a.where} on the server, then `chown -R 1000:2000` "
                "Prometheus' directory (kube-prometheus-stack's runAsUser:runAsGroup).",
                "Give each claim a selector matching only its own PV's labels (app: wsg-prometheus / app: "
                "wsg-grafana), so no claim can take the other's volume.",
            ]
        ),
    )


__all__ = ["check_shared_exports", "pv_location"]
