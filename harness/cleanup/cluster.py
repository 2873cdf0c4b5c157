"""What killed runs left in a cluster, by their labels only: the namespace ``harness-<run_id>``, PersistentVolumes
and StorageClasses labelled ``app.kubernetes.io/managed-by=prom-storage-harness`` and ``harness/run-id=<id>``
(``--all-mine``: and ``harness/owner=<mine>``), and nodes annotated ``harness/cordoned-by=<id>``. Nothing without
those marks is looked at, let alone touched.

The data of a PV the run created (labelled as above: ``local``, ``nfs``, ``iscsi`` storage) is never deleted: one
whose reclaimPolicy is not Retain is set to Retain first (deleting the namespace deletes the claim, and a Delete or
Recycle policy would then have the PV controller wipe the volume); then the namespace, the PV objects, the
StorageClasses go, each wait bounded, and the run's cordons are undone.

A PV a provisioner made for the run's claim (``dynamic`` storage) carries no run marks and is not set to Retain: it
is the run's own volume, made for its claim, and goes as the class says when the namespace takes the claim with it.
With reclaimPolicy Delete the provisioner deletes the volume and its data, as the run's own stop would have; the
namespace's line says so, naming the claim, the PV and its class, so that ``--dry-run`` shows it before it happens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.cleanup import Leftover, RunLeftovers
from harness.errors import InfraError
from harness.kube.api import KubeApi, ObjectInfo
from harness.ownership import OWNER_ANNOTATION, OWNER_LABEL, RunOwner, owner_label
from harness.runtime.manifests.common import CORDONED_BY, CORDONED_OWNER, MANAGED_BY, RUN_ID_LABEL

DELETE_TIMEOUT_S = 120.0  # a pod's grace period (30 s) plus volume teardown, with room
# What a bound PV's reclaimPolicy does to its volume once its claim is deleted (Retain keeps it, data and all).
DATA_DELETING_POLICIES = {
    "Delete": "deletes that volume and the data on it",
    "Recycle": "has that volume scrubbed: the data on it is deleted",
}


@dataclass
class ClusterRun:
    run_id: str
    namespaces: list[ObjectInfo] = field(default_factory=list)
    volumes: list[ObjectInfo] = field(default_factory=list)
    classes: list[ObjectInfo] = field(default_factory=list)
    nodes: list[ObjectInfo] = field(default_factory=list)

    def owner(self) -> RunOwner | None:
        """Who made it, from the annotations of whichever of its objects carries them."""
        for obj in (*self.namespaces, *self.volumes, *self.classes):
            found = RunOwner.from_annotations(obj.annotations)
            if found is not None:
                return found
        return None


def find(api: KubeApi, *, run_id: str | None, owner: str | None) -> dict[str, ClusterRun]:
    """The runs with marked objects: ``run_id``'s, or all of ``owner``'s (label, and the annotation when set)."""
    selector = f"{MANAGED_BY[0]}={MANAGED_BY[1]}"
    if run_id is not None:
        selector += f",{RUN_ID_LABEL}={run_id}"
    if owner is not None:
        selector += f",{OWNER_LABEL}={owner_label(owner)}"
    runs: dict[str, ClusterRun] = {}

    def mine(obj: ObjectInfo) -> bool:
        # Two owners may sanitise to one label value; the annotation keeps the owner as written.
        written = obj.annotations.get(OWNER_ANNOTATION)
        return owner is None or written is None or written == owner

    for kind, attr in (("Namespace", "namespaces"), ("PersistentVolume", "volumes"), ("StorageClass", "classes")):
        for obj in api.list_objects(kind, selector):
            rid = obj.labels.get(RUN_ID_LABEL, "")
            if rid and mine(obj):
                getattr(runs.setdefault(rid, ClusterRun(rid)), attr).append(obj)
    for node in api.list_objects("Node"):
        rid = node.annotations.get(CORDONED_BY, "")
        if not rid or (run_id is not None and rid != run_id):
            continue
        if owner is not None and node.annotations.get(CORDONED_OWNER) != owner_label(owner):
            continue
        runs.setdefault(rid, ClusterRun(rid)).nodes.append(node)
    return runs


def leftovers(api: KubeApi, run: ClusterRun, where: str) -> RunLeftovers:
    """The removal steps of one run, in order."""
    owner = run.owner()
    about = f"owner {owner.owner}, started by pid {owner.pid} on {owner.host}" if owner is not None else ""
    found = RunLeftovers(run.run_id, where, about=about)
    for pv in run.volumes:
        if pv.reclaim_policy and pv.reclaim_policy != "Retain":
            found.items.append(
                Leftover(
                    f"PersistentVolume {pv.name}: reclaimPolicy {pv.reclaim_policy} -> Retain, so deleting its "
                    "claim cannot wipe the volume",
                    _retain(api, pv.name),
                )
            )
    retained = {pv.name for pv in run.volumes}
    for ns in run.namespaces:
        fates = _volumes_going_with(api, ns.name, retained)
        what = f"namespace {ns.name} (and all in it{''.join(f'; {fate}' for fate in fates)})"
        found.items.append(Leftover(what, _delete(api, "Namespace", ns.name, run)))
    for pv in run.volumes:
        found.items.append(
            Leftover(
                f"PersistentVolume {pv.name} (the object; the data on the volume stays)",
                _delete(api, "PersistentVolume", pv.name, run),
            )
        )
    for sc in run.classes:
        found.items.append(Leftover(f"StorageClass {sc.name}", _delete(api, "StorageClass", sc.name, run)))
    for node in run.nodes:
        what = f"cordon of node {node.name}" if node.unschedulable else f"mark of run {run.run_id} on node {node.name}"
        found.items.append(Leftover(what, _uncordon(api, node, run.run_id)))
    return found


def _volumes_going_with(api: KubeApi, namespace: str, retained: set[str]) -> list[str]:
    """What deleting ``namespace`` does to the data of the volumes its claims are bound to, one sentence per claim
    whose volume's data goes: the claim goes with the namespace, and its PV's reclaimPolicy then decides. The PVs in
    ``retained`` are set to Retain before the namespace goes, so their data stays."""
    fates = []
    try:
        claims = api.claims(namespace)
    except InfraError as e:
        # Not knowing must not stop the cleanup, nor read as "no data goes".
        return [f"its claims could not be read, so whether deleting it deletes a volume's data is unknown: {e}"]
    for claim in claims:
        if not claim.volume_name or claim.volume_name in retained:
            continue
        try:
            pv = api.read_pv(claim.volume_name)
        except InfraError as e:
            fates.append(f"its claim {claim.name} is bound to PersistentVolume {claim.volume_name}, unread: {e}")
            continue
        if pv is None or pv.reclaim_policy not in DATA_DELETING_POLICIES:
            continue
        of_class = f"of StorageClass {pv.storage_class}" if pv.storage_class else "of no StorageClass"
        fates.append(
            f"its claim {claim.name} is bound to PersistentVolume {pv.name} {of_class}, reclaimPolicy "
            f"{pv.reclaim_policy}: deleting the namespace {DATA_DELETING_POLICIES[pv.reclaim_policy]}"
        )
    return fates


def _retain(api: KubeApi, name: str) -> Callable[[], str]:
    def act() -> str:
        api.set_reclaim_policy(name, "Retain")
        return ""

    return act


def _delete(api: KubeApi, kind: str, name: str, run: ClusterRun) -> Callable[[], str]:
    def act() -> str:
        labels = api.labels_of(kind, name)
        if labels is None:
            return "was gone already"
        if labels.get(RUN_ID_LABEL) != run.run_id:
            # Recreated by someone else since it was listed: not ours any more.
            return f"left alone: it no longer carries {RUN_ID_LABEL}={run.run_id}"
        api.delete(kind, name, wait_s=DELETE_TIMEOUT_S)
        return ""

    return act


def _uncordon(api: KubeApi, node: ObjectInfo, run_id: str) -> Callable[[], str]:
    marks: dict[str, str | None] = {CORDONED_BY: None, CORDONED_OWNER: None}

    def act() -> str:
        current = next((n for n in api.list_objects("Node") if n.name == node.name), None)
        if current is None:
            return "the node is gone"
        if current.annotations.get(CORDONED_BY) != run_id:
            return f"left alone: its mark no longer names run {run_id}"
        if current.unschedulable:
            api.set_unschedulable(node.name, False, marks)
            return "uncordoned"
        api.annotate("Node", node.name, marks)
        return "not cordoned any more; the mark removed"

    return act
