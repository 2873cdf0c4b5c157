"""The outcome of Kubernetes volume binding, as the doctor simulates it (``harness.doctor.binding``): which PV the
claim binds, or why it stays Pending, with a verdict per PV. A pure model, no I/O: the doctor makes it, the storage
backends read it (``Backend.binding_findings``) and ``harness values`` shows it, so it sits below the storage and the
doctor and imports neither. The claims, volumes and classes it names are the inventory's (``harness.kube``).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.kube.inventory import PvcInfo, PvInfo


@dataclass(frozen=True)
class PvVerdict:
    pv: PvInfo
    reasons: tuple[str, ...]  # empty: a candidate
    planned: bool = False  # the scenario would create this PV

    @property
    def candidate(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class BindingOutcome:
    claim: PvcInfo
    effective_class: str
    wait_for_first_consumer: bool
    bound_pv: str | None  # the PV it binds (or, with WaitForFirstConsumer, the one the scheduler would pick)
    pre_bound: bool
    dynamic: str | None  # provisioner that would create a new PV instead, when no static PV matches
    event: str  # the controller's event text for the claim
    pod_event: str | None  # what the scheduler would say about the pod, when it cannot place it
    verdicts: tuple[PvVerdict, ...]

    @property
    def pending_forever(self) -> bool:
        return self.bound_pv is None and self.dynamic is None

    def verdict_lines(self) -> list[str]:
        return [
            f"pv/{v.pv.name}{' (created by the scenario)' if v.planned else ''}: "
            + ("matches" if v.candidate else "; ".join(v.reasons))
            for v in self.verdicts
        ]
