"""What a run refuses before anything is created (UsageError, exit 2): a fault the runtime cannot play or the
scenario under-specifies, a ``--workdir`` that does not exist, a kube context the user config does not allow.

The runtime's own refusal of a scenario (``harness.runtime.refuse_unsupported``) stays with the runtimes.
"""

from __future__ import annotations

from pathlib import Path

from harness.capabilities import refusal as capability_refusal
from harness.config import UserConfig, choose_context
from harness.errors import UsageError
from harness.faults import injector_for
from harness.runtime import runtime_offers
from harness.scenario.model import Scenario


def refuse_faults(runtime: str, scenario: Scenario) -> None:
    """UsageError, before anything is created, for a fault the runtime cannot play or the scenario under-specifies."""
    offers = runtime_offers(runtime)
    for i, spec in enumerate(scenario.faults):
        injector = injector_for(spec)
        # Each capability says why a run cannot have it (the runtime lacks it, the storage does not give it).
        lacking = capability_refusal(injector.needs, runtime, offers, scenario)
        if lacking is not None:
            raise UsageError(f"faults[{i}] ({spec.action}) {lacking}")
        refusal = injector.refusal(spec)
        if refusal is not None:
            raise UsageError(f"faults[{i}] ({spec.action}): {refusal}")


def refuse_missing_workdir(root: Path | None) -> None:
    if root is not None and not root.is_dir():
        raise UsageError(f"--workdir {root}: no such directory (the run makes its own directory in it)")


def allowed_context(runtime: str, kubeconfig: str | None, context: str | None, config: UserConfig) -> str | None:
    """The kube context a kubernetes run may use; UsageError, before anything is created, when it may use none."""
    if runtime != "kubernetes":
        return None
    return choose_context(kubeconfig, context, config)
