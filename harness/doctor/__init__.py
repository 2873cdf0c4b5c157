"""The storage doctor: checks the storage a scenario names for the traps in the field notes, before anything is
deployed, and says for each finding what is wrong, the evidence, why it matters for Prometheus, and the fix.

``run_doctor`` asks the scenario's storage backend (``harness.storage``) for its own checks (each backend points at
its family here: nfs, iscsi, local), then runs the common ones (binding, operator mode, probes). A family whose own
tooling is missing here (say, no libiscsi) reports that as a WARNING instead of failing the whole doctor: the other
families still say what they know. The shared-export check compares the server directories that every PV in sight
and the scenario's storage name (two applications on one NFS path). ``blocking`` tells the CLI and ``harness run``
whether to stop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from harness.doctor import binding, operator, probes, shared
from harness.errors import InfraError
from harness.kube.inventory import KubeInventory
from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import Scenario
from harness.storage import backend_for

_ORDER = {Severity.BLOCKER: 0, Severity.WARNING: 1, Severity.INFO: 2}


def run_doctor(
    scenario: Scenario,
    *,
    runtime: str,
    kube: KubeInventory | None = None,
    previous_wal_replay_s: float | None = None,
    replay_rate: probes.ReplayRate | None = None,
) -> list[DoctorFinding]:
    """All findings for ``scenario`` on ``runtime`` ("local" or "kubernetes"), blockers first."""
    storage = scenario.storage
    sc = scenario.prometheus.security_context
    backend = backend_for(storage)
    checks: list[tuple[str, Callable[[], list[DoctorFinding]]]] = [
        (backend.name, lambda: backend.doctor_findings(storage, sc, runtime))
    ]
    if runtime == "kubernetes" or kube is not None:
        checks.append(("k8s", lambda: binding.check_binding(scenario, kube)))
        checks.append(("operator", lambda: operator.check_operator(scenario, kube)))
    checks.append(("shared-export", lambda: shared.check_shared_exports(scenario, kube)))
    needed = probes.needed_replay_samples(scenario)
    budget = scenario.prometheus.probes
    checks.append(("probes", lambda: probes.check_probes(budget, previous_wal_replay_s, replay_rate, needed)))

    findings: list[DoctorFinding] = []
    for family, check in checks:
        try:
            findings += check()
        except InfraError as e:
            findings.append(
                DoctorFinding(
                    check=f"{family}.unchecked",
                    severity=Severity.WARNING,
                    title=f"The {family} checks could not run here",
                    evidence=str(e),
                    why="The doctor cannot say whether this storage has the known traps.",
                    fix="Install what the message names and run `harness doctor` again.",
                )
            )
    return sorted(findings, key=lambda f: _ORDER[f.severity])


def blocking(findings: Iterable[DoctorFinding]) -> bool:
    """True when a finding says the run (or the deployment) would fail."""
    return any(f.severity is Severity.BLOCKER for f in findings)


__all__ = ["blocking", "run_doctor"]
