"""The storage doctor: checks the storage a scenario names for the traps in the field notes, before anything is
deployed, and says for each finding what is wrong, the evidence, why it matters for Prometheus, and the fix.

``run_doctor`` dispatches to one module per check family (nfs, iscsi, local, binding, probes). A family whose own
tooling is missing here (say, no libiscsi) reports that as a WARNING instead of failing the whole doctor: the other
families still say what they know. ``blocking`` tells the CLI and ``harness run`` whether to stop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from harness.doctor import binding, iscsi, local, nfs, probes
from harness.errors import InfraError
from harness.kube import KubeInventory
from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import EphemeralStorage, IscsiStorage, LocalStorage, NfsStorage, Scenario

_ORDER = {Severity.BLOCKER: 0, Severity.WARNING: 1, Severity.INFO: 2}


def run_doctor(
    scenario: Scenario,
    *,
    runtime: str,
    kube: KubeInventory | None = None,
    previous_wal_replay_s: float | None = None,
) -> list[DoctorFinding]:
    """All findings for ``scenario`` on ``runtime`` ("local" or "kubernetes"), blockers first."""
    storage = scenario.storage
    sc = scenario.prometheus.security_context
    checks: list[tuple[str, Callable[[], list[DoctorFinding]]]] = []
    if isinstance(storage, NfsStorage):
        checks.append(("nfs", lambda: nfs.check_nfs(storage, sc)))
    elif isinstance(storage, IscsiStorage):
        checks.append(("iscsi", lambda: iscsi.check_iscsi(storage)))
    elif isinstance(storage, LocalStorage):
        checks.append(("local", lambda: local.check_local(storage, sc, runtime=runtime)))
    elif isinstance(storage, EphemeralStorage):
        checks.append(("ephemeral", lambda: local.check_ephemeral(storage)))
    if runtime == "kubernetes" or kube is not None:
        checks.append(("k8s", lambda: binding.check_binding(scenario, kube)))
    checks.append(("probes", lambda: probes.check_probes(scenario.prometheus.probes, previous_wal_replay_s)))

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
