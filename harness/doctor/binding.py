"""Kubernetes volume binding, simulated before anything is applied: which PV the claim the scenario creates will
bind, or why it stays Pending, in the PV controller's own terms.

The rules follow the PV controller (``pkg/controller/volume/persistentvolume``: ``findBestMatchForClaim`` and
``syncUnboundClaim``) and the scheduler's volume binding:

* the claim's class: unset means the default StorageClass (filled in by admission) or, without one, ``""``;
  ``""`` binds only PVs without a class;
* a PV whose ``spec.claimRef`` names this claim (namespace/name, and uid when set) is pre-bound and wins;
* otherwise candidates must have no ``claimRef`` (a ``Released`` PV keeps its stale one), labels matching the
  selector, the same class, the same volume mode, every requested access mode, and at least the requested capacity;
  the smallest such PV is chosen;
* with ``WaitForFirstConsumer`` the controller does not bind: the scheduler picks a node and a PV together, so node
  affinity is a filter; with ``Immediate`` binding ignores node affinity and the pod then fails to schedule
  (``volume node affinity conflict``) when no schedulable node satisfies it.

The inventory comes from ``harness.kube`` (a real cluster) or is written by hand in tests; the PV the scenario
itself would create is added to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from harness.binding import BindingOutcome, PvVerdict
from harness.doctor.fmt import bullets
from harness.fmt import k8s_quantity as size
from harness.kube.inventory import KubeInventory, NodeInfo, PvcInfo, PvInfo, StorageClassInfo
from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import Scenario
from harness.storage import backend_for
from harness.storage.base import NO_PROVISIONER

NO_PV_NO_CLASS = "no persistent volumes available for this claim and no storage class is set"
WAIT_FOR_CONSUMER = "waiting for first consumer to be created before binding"


def planned_claim(scenario: Scenario, namespace: str) -> PvcInfo | None:
    """The claim the scenario's StatefulSet makes (None for a pod without a claim), as its backend plans it."""
    return backend_for(scenario.storage).planned_claim(scenario.storage, scenario.name, namespace)


def planned_volume(scenario: Scenario) -> PvInfo | None:
    """The PV the harness creates for the scenario (``storage.volume.create``), as the controller will see it."""
    return backend_for(scenario.storage).planned_volume(scenario.storage, scenario.name)


def _schedulable(inventory: KubeInventory) -> list[NodeInfo]:
    return [n for n in inventory.nodes if n.schedulable]


def _affinity_reason(pv: PvInfo, inventory: KubeInventory) -> str | None:
    """Why no schedulable node can use this PV, or None when one can (or when nodes are unknown)."""
    if not pv.node_affinity or not inventory.nodes:
        return None
    nodes = _schedulable(inventory)
    if any(pv.fits_node(n) for n in nodes):
        return None
    terms = " OR ".join(f"({t})" for t in pv.node_affinity)
    fitting = [n for n in inventory.nodes if pv.fits_node(n)]
    if fitting:
        why = ", ".join(f"{n.name}: {n.why_unschedulable}" for n in fitting)
        return f"nodeAffinity {terms} matches only unschedulable nodes ({why})"
    names = ", ".join(n.name for n in nodes) or "none"
    return f"nodeAffinity {terms} matches no node (schedulable nodes: {names})"


def _bound_to(pv: PvInfo, claim: PvcInfo) -> bool:
    ref = pv.claim_ref
    return (
        ref is not None
        and (ref.namespace, ref.name) == (claim.namespace, claim.name)
        and (not ref.uid or ref.uid == claim.uid)
    )


def _reasons(pv: PvInfo, claim: PvcInfo, effective_class: str) -> list[str]:
    reasons = []
    if pv.deleting:
        reasons.append("being deleted")
    if pv.volume_mode != claim.volume_mode:
        reasons.append(f"volumeMode {pv.volume_mode}, claim wants {claim.volume_mode}")
    ref = pv.claim_ref
    if ref is not None:
        same_name = (ref.namespace, ref.name) == (claim.namespace, claim.name)
        if pv.phase == "Released":
            stale = (
                "names a claim of the same name that was deleted (the new claim gets a new uid)"
                if same_name
                else f"still names the deleted claim {ref}"
            )
            reasons.append(
                f"Released: spec.claimRef {stale}; the controller never gives a Released PV to a new claim "
                f"until its claimRef is cleared (reclaim policy {pv.reclaim_policy})"
            )
        else:
            reasons.append(f"already bound to {ref} ({pv.phase})")
    if claim.selector is not None:
        missing = {k: v for k, v in claim.selector.items() if pv.labels.get(k) != v}
        if missing:
            have = ", ".join(f"{k}={v}" for k, v in sorted(pv.labels.items())) or "no labels"
            want = ", ".join(f"{k}={v}" for k, v in sorted(claim.selector.items()))
            reasons.append(f"labels ({have}) do not match the selector ({want})")
    if pv.storage_class != effective_class:
        reasons.append(f'storageClassName "{pv.storage_class}", claim has "{effective_class}"')
    if ref is None and pv.phase not in ("Available", "Pending"):
        reasons.append(f"phase {pv.phase}")
    missing_modes = [m for m in claim.access_modes if m not in pv.access_modes]
    if missing_modes:
        reasons.append(f"accessModes [{', '.join(pv.access_modes)}] lack {', '.join(missing_modes)}")
    if pv.capacity_bytes < claim.request_bytes:
        reasons.append(f"capacity {size(pv.capacity_bytes)} < request {size(claim.request_bytes)}")
    return reasons


def simulate_binding(claim: PvcInfo, inventory: KubeInventory, planned: PvInfo | None = None) -> BindingOutcome:
    """Decide what the PV controller (and, for WaitForFirstConsumer, the scheduler) does with ``claim``."""
    pvs = [pv for pv in inventory.pvs if planned is None or pv.name != planned.name]
    planned_names = set()
    if planned is not None and not any(pv.name == planned.name for pv in inventory.pvs):
        pvs.append(planned)
        planned_names.add(planned.name)
    elif planned is not None:
        pvs.append(next(pv for pv in inventory.pvs if pv.name == planned.name))

    default = inventory.default_class()
    effective_class = claim.storage_class if claim.storage_class is not None else (default.name if default else "")
    sc = inventory.storage_class(effective_class) if effective_class else None
    wffc = sc is not None and sc.volume_binding_mode == "WaitForFirstConsumer"

    verdicts = []
    for pv in pvs:
        if _bound_to(pv, claim):
            reasons = [r for r in [_affinity_reason(pv, inventory)] if r and wffc]
        else:
            reasons = _reasons(pv, claim, effective_class)
            affinity = _affinity_reason(pv, inventory)
            if affinity and wffc:
                reasons.append(affinity)
        verdicts.append(PvVerdict(pv, tuple(reasons), planned=pv.name in planned_names))

    pre = next((v for v in verdicts if _bound_to(v.pv, claim)), None)
    candidates = sorted((v for v in verdicts if v.candidate), key=lambda v: (v.pv.capacity_bytes, v.pv.name))
    chosen = pre.pv if pre is not None and pre.candidate else (candidates[0].pv if candidates else None)

    dynamic = None
    pod_event = None
    if chosen is not None:
        event = (
            f"{WAIT_FOR_CONSUMER} (the scheduler will bind pv/{chosen.name} with the pod)"
            if wffc
            else f"bound to volume {chosen.name}"
        )
        affinity = _affinity_reason(chosen, inventory)
        if affinity and not wffc:
            n = len(inventory.nodes)
            pod_event = f"0/{n} nodes are available: {n} node(s) had volume node affinity conflict ({affinity})"
    else:
        event, dynamic, pod_event = _unmatched(claim, inventory, effective_class, wffc)
    return BindingOutcome(
        claim=claim,
        effective_class=effective_class,
        wait_for_first_consumer=wffc,
        bound_pv=chosen.name if chosen is not None else None,
        pre_bound=pre is not None and chosen is not None and pre.pv.name == chosen.name,
        dynamic=dynamic,
        event=event,
        pod_event=pod_event,
        verdicts=tuple(verdicts),
    )


def _unmatched(
    claim: PvcInfo, inventory: KubeInventory, effective_class: str, wffc: bool
) -> tuple[str, str | None, str | None]:
    """(claim event, provisioner that will create a PV or None, pod event) when no existing PV matches."""
    sc = inventory.storage_class(effective_class) if effective_class else None
    n = len(inventory.nodes)
    if wffc and sc is not None and sc.provisioner == NO_PROVISIONER:
        no_pv = f"0/{n} nodes are available: {n} node(s) didn't find available persistent volumes to bind"
        return WAIT_FOR_CONSUMER, None, no_pv
    if effective_class == "":
        return NO_PV_NO_CLASS, None, None
    if sc is None:
        return f'storageclass.storage.k8s.io "{effective_class}" not found', None, None
    if sc.provisioner == NO_PROVISIONER:
        return f"no volume plugin matched name: {NO_PROVISIONER}", None, None
    if claim.selector is not None:
        return "claim Selector is not supported (a claim with a selector cannot be dynamically provisioned)", None, None
    waiting = (
        f'waiting for a volume to be created, either by external provisioner "{sc.provisioner}" or manually '
        "created by system administrator"
    )
    return waiting, sc.provisioner, None


def with_class_to_create(inventory: KubeInventory, scenario: Scenario) -> KubeInventory:
    """The inventory as the claim will see it: the run (or a team applying `harness values`) creates the scenario's
    StorageClass when the cluster lacks it (a local PV's no-provisioner class), as it does the PV."""
    wanted = backend_for(scenario.storage).class_to_create(scenario.storage)
    if wanted is None or inventory.storage_class(wanted.name) is not None:
        return inventory
    created = StorageClassInfo(wanted.name, wanted.provisioner, wanted.volume_binding_mode)
    return replace(inventory, storage_classes=(*inventory.storage_classes, created))


def check_binding(scenario: Scenario, kube: KubeInventory | None) -> list[DoctorFinding]:
    inventory = kube if kube is not None else KubeInventory(source="no cluster: only the PV this scenario creates")
    backend = backend_for(scenario.storage)
    inventory = with_class_to_create(inventory, scenario)
    claim = planned_claim(scenario, inventory.namespace)
    if claim is None:
        return []
    existing = inventory.pvc(claim.namespace, claim.name)
    if existing is not None and existing.phase == "Bound":
        return [
            DoctorFinding(
                check="k8s.binding",
                severity=Severity.INFO,
                title=f"The claim {claim.namespace}/{claim.name} already exists, bound to pv/{existing.volume_name}",
                evidence=f"inventory: {inventory.source}.",
            )
        ]
    if existing is not None:
        claim = replace(claim, uid=existing.uid)
    planned = planned_volume(scenario)
    taken = inventory.pv(planned.name) if planned is not None else None
    if taken is not None:
        return [_name_taken(taken, inventory.source)]
    intended = backend.planned_volume_name(scenario.storage, scenario.name)
    outcome = simulate_binding(claim, inventory, planned)
    findings = binding_findings(outcome, intended=intended, source=inventory.source)
    if kube is not None:
        findings += backend.binding_findings(scenario.storage, outcome, inventory)
    return findings


def _name_taken(pv: PvInfo, source: str) -> DoctorFinding:
    """The run creates its PV under a name another PV already has: it will stop rather than reuse or delete it."""
    state = pv.phase + (f", claimRef {pv.claim_ref.namespace}/{pv.claim_ref.name}" if pv.claim_ref else "")
    return DoctorFinding(
        check="k8s.pv_name",
        severity=Severity.BLOCKER,
        title=f"PersistentVolume {pv.name} already exists and was not created by this run",
        evidence=f"pv/{pv.name}: {state}, {size(pv.capacity_bytes)}, {pv.source or 'source not shown'}. "
        f"Inventory: {source}.",
        why="storage.volume.create is true, so the run creates this PV itself, and deletes exactly what it created "
        "afterwards. It never reuses or deletes a PV it did not create: that one may hold somebody's data.",
        fix=bullets(
            [
                f"If pv/{pv.name} is a leftover of an earlier run, delete it (its data stays on the storage).",
                "Or set storage.volume.name to a name no PV has.",
                f"Or set storage.volume.create: false to run on pv/{pv.name} as it is.",
            ]
        ),
    )


def binding_findings(outcome: BindingOutcome, *, intended: str | None, source: str) -> list[DoctorFinding]:
    claim = outcome.claim
    cls = "unset" if claim.storage_class is None else f'"{claim.storage_class}"'
    selector = (
        ", ".join(f"{k}={v}" for k, v in sorted(claim.selector.items())) if claim.selector is not None else "none"
    )
    head = (
        f'claim {claim.namespace}/{claim.name}: storageClassName {cls} (effective "{outcome.effective_class}"), '
        f"selector {selector}, {size(claim.request_bytes)}, {', '.join(claim.access_modes)}, {claim.volume_mode}. "
        f"Inventory: {source}."
    )
    evidence = head + ("\n" + "\n".join(outcome.verdict_lines()) if outcome.verdicts else "\nno PersistentVolumes")
    findings = []
    if outcome.pending_forever:
        findings.append(
            DoctorFinding(
                check="k8s.binding",
                severity=Severity.BLOCKER,
                title=f"The claim will stay Pending: {outcome.event}",
                evidence=evidence,
                why="Prometheus' StatefulSet pod waits for its claim forever (`pod has unbound immediate "
                "PersistentVolumeClaims`); nothing starts and no error tells you which PV field is wrong.",
                fix=bullets(_fixes(outcome, intended)),
            )
        )
    elif outcome.dynamic is not None:
        findings.append(
            DoctorFinding(
                check="k8s.binding",
                severity=Severity.WARNING if intended else Severity.INFO,
                title=f'No existing PV matches: StorageClass "{outcome.effective_class}" will provision a new volume',
                evidence=evidence,
                why="The TSDB then lives on whatever that provisioner creates, not on the PV this scenario is about"
                if intended
                else "",
                fix=bullets(_fixes(outcome, intended)) if intended else "",
            )
        )
    elif outcome.bound_pv != intended and intended is not None:
        findings.append(
            DoctorFinding(
                check="k8s.binding",
                severity=Severity.WARNING,
                title=f"The claim will bind pv/{outcome.bound_pv}, not pv/{intended}",
                evidence=evidence,
                why=(
                    "Without a selector the controller takes the smallest matching PV, whichever it is: the TSDB "
                    "lands on the wrong volume, or another claim (e.g. Grafana's) takes the volume meant for "
                    "Prometheus."
                    if claim.selector is None
                    else f"The selector matches pv/{outcome.bound_pv} too, and the controller takes the smallest "
                    "matching PV."
                ),
                fix=(
                    f"Label pv/{intended} and set storage.claim.selector (volumeClaimTemplate.spec.selector."
                    "matchLabels) to those labels."
                    if claim.selector is None
                    else f"Give pv/{intended} a label pv/{outcome.bound_pv} does not have and add it to "
                    "storage.claim.selector, so that the selector matches only the intended PV."
                ),
            )
        )
    else:
        how = "pre-bound by claimRef" if outcome.pre_bound else "smallest matching PV"
        when = " when the pod is scheduled (WaitForFirstConsumer)" if outcome.wait_for_first_consumer else ""
        findings.append(
            DoctorFinding(
                check="k8s.binding",
                severity=Severity.INFO,
                title=f"The claim will bind pv/{outcome.bound_pv}{when} ({how})",
                evidence=evidence,
            )
        )
    if outcome.pod_event is not None and not outcome.pending_forever:
        findings.append(
            DoctorFinding(
                check="k8s.node_affinity",
                severity=Severity.BLOCKER,
                title=f"The pod cannot be scheduled: {outcome.pod_event}",
                evidence=evidence,
                why="The claim binds, but the PV's nodeAffinity allows no node the pod may run on, so Prometheus "
                "stays Pending.",
                fix="Fix storage.node / the PV's nodeAffinity (kubernetes.io/hostname In [<node>]) to name a "
                "schedulable node, or uncordon / untaint that node.",
            )
        )
    return findings


def _fixes(outcome: BindingOutcome, intended: str | None) -> list[str]:
    claim = outcome.claim
    fixes: list[str] = []
    target = next((v for v in outcome.verdicts if v.pv.name == intended), None)
    verdicts = [target] if target is not None else list(outcome.verdicts)
    for v in verdicts:
        for reason in v.reasons:
            fixes.append(f"pv/{v.pv.name}: {_fix_for(reason, v.pv, claim)}")
    if claim.selector is None:
        fixes.append(
            "Give the claim a selector (storage.claim.selector / volumeClaimTemplate.spec.selector.matchLabels) that "
            "matches the labels of the PV meant for Prometheus, so no other claim (Grafana's) can take that PV and "
            "this claim cannot take another."
        )
    if not outcome.verdicts:
        fixes.append(
            "Create the PersistentVolume first (storage.volume.create: true lets the harness create it), with "
            f'storageClassName "{outcome.effective_class}" and capacity >= {size(claim.request_bytes)}.'
        )
    return list(dict.fromkeys(fixes))


def _class_fix(pv: PvInfo, claim: PvcInfo) -> str:
    if claim.storage_class is None:
        return (
            "the claim sets no storageClassName, so admission gives it the cluster's default class; set "
            f'storage.claim.storage_class to "{pv.storage_class}" explicitly to bind this PV'
        )
    return (
        f'set the same storageClassName on the claim and the PV (claim "{claim.storage_class}", '
        f'PV "{pv.storage_class}")'
    )


def _labels_fix(pv: PvInfo, claim: PvcInfo) -> str:
    labels = ", ".join(f"{k}: {v}" for k, v in sorted((claim.selector or {}).items()))
    return f"add the labels {{{labels}}} to the PV, or change the claim's selector"


# One fix per kind of rejection, keyed by how the reason starts (see _reasons).
_FIXES: dict[str, Callable[[PvInfo, PvcInfo], str]] = {
    "Released": lambda pv, _c: (
        f"clear the stale claimRef: `kubectl patch pv {pv.name} --type merge -p "
        '\'{"spec":{"claimRef":null}}\'` (the data stays: Retain), or delete and recreate the PV'
    ),
    "already bound": lambda _p, _c: (
        "bound to another claim; give each claim a selector matching only its own PV, and recreate them"
    ),
    "labels": _labels_fix,
    "storageClassName": _class_fix,
    "accessModes": lambda _p, c: (
        f"add {', '.join(c.access_modes)} to the PV's accessModes (or request what the PV offers)"
    ),
    "capacity": lambda _p, c: f"raise the PV's capacity to >= {size(c.request_bytes)} or lower the claim's request",
    "volumeMode": lambda _p, c: f"use volumeMode {c.volume_mode} on both",
    "nodeAffinity": lambda _p, _c: "make the PV's nodeAffinity name a schedulable node",
}


def _fix_for(reason: str, pv: PvInfo, claim: PvcInfo) -> str:
    fix = next((f for prefix, f in _FIXES.items() if reason.startswith(prefix)), None)
    return fix(pv, claim) if fix is not None else reason


__all__ = [
    "NO_PV_NO_CLASS",
    "BindingOutcome",
    "PvVerdict",
    "binding_findings",
    "check_binding",
    "planned_claim",
    "planned_volume",
    "simulate_binding",
]
