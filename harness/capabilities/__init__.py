"""What a fault may ask of a runtime beyond the primitives every runtime has (``harness.runtime.base``).

Each capability is an interface in a module of its own, with the sentence that says why a run cannot have it
(``Capability.refusal``): the runtime lacks it, or the storage does not give it (a server the run did not start,
a volume that is no network export). A runtime class lists the kinds it can hand out (``Runtime.offers``), makes
for a run only those the run's faults need (the Kubernetes pod gets a sidecar only for a fault that signals
Prometheus) and hands them out by type: ``runtime.capability(NodeLifecycle)``. A fault names the kinds it needs
(``Injector.needs``); the pipeline checks them before anything is created (``refusal``), so a fault never meets a
missing capability at run time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar, TypeVar

from harness.scenario.model import Scenario


class Capability(ABC):
    # What it lets a fault do, completing "needs a runtime that can ...".
    does: ClassVar[str]
    # Why a runtime that does not offer it cannot, completing "the local runtime cannot: ...".
    lacking: ClassVar[str] = "use --runtime kubernetes"

    @classmethod
    def refusal(cls, runtime: str, *, offered: bool, scenario: Scenario) -> str | None:
        """Why a run of ``scenario`` on ``runtime`` cannot have this capability; None: it can. ``offered``: the
        runtime can hand this kind out (``Runtime.offers``)."""
        return None if offered else f"the {runtime} runtime cannot: {cls.lacking}"


class StorageGiven(Capability):
    """A capability the storage gives or not (a server the run started, an export another client can reach), on
    a runtime that can use it: the storage says why first."""

    @classmethod
    @abstractmethod
    def storage_refusal(cls, scenario: Scenario) -> str | None:
        """Why the scenario's storage does not give it; None: it does."""

    @classmethod
    def refusal(cls, runtime: str, *, offered: bool, scenario: Scenario) -> str | None:
        why = cls.storage_refusal(scenario)
        if why is None and not offered:
            why = cls.lacking
        return None if why is None else f"the {runtime} runtime cannot: {why}"


CapabilityT = TypeVar("CapabilityT", bound=Capability)


def refusal(
    kinds: Iterable[type[Capability]], runtime: str, offers: frozenset[type[Capability]], scenario: Scenario
) -> str | None:
    """The first of ``kinds`` a run of ``scenario`` on ``runtime`` cannot have, said in full; None: it has them."""
    for kind in sorted(kinds, key=lambda k: k.__name__):
        why = kind.refusal(runtime, offered=kind in offers, scenario=scenario)
        if why is not None:
            return f"needs a runtime that can {kind.does}; {why}"
    return None


__all__ = ["Capability", "CapabilityT", "StorageGiven", "refusal"]
