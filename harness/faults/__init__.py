"""The registry of faults: one module per fault action, each registered by its ``action`` name.

A fault module defines ``FAULT``, an ``Injector`` that composes the runtime's primitive operations (signal the
container, delete the pod, cordon a node, reinstall the release; ``harness.runtime.base``) and records the undo of
anything that outlives the fault before it acts. The pipeline asks ``injector_for(spec)``; no runtime knows a fault
by name. Adding a fault is one module here plus its model in the ``faults`` union of ``harness.scenario.model``.
``timeline`` expands a scenario's fault entries into the ordered plan.
"""

from __future__ import annotations

from functools import cache

from harness.capabilities import Capability
from harness.faults.base import AnyInjector, Injector
from harness.registry import registered
from harness.scenario.model import FaultSpec


@cache
def injectors() -> dict[str, AnyInjector]:
    """Every module of this package that defines ``FAULT``, by action (imported here, by name, once)."""
    found = [i for i in registered(__name__, __path__, "FAULT") if isinstance(i, Injector)]
    return {i.action: i for i in found}


def injector_for(spec: FaultSpec) -> AnyInjector:
    try:
        return injectors()[spec.action]
    except KeyError:
        raise AssertionError(f"no fault registered as {spec.action!r}; have {sorted(injectors())}") from None


def needed_capabilities(specs: list[FaultSpec]) -> frozenset[type[Capability]]:
    """The capabilities these faults ask of the runtime (e.g. ``SignalControl``: on Kubernetes a sidecar that can
    signal Prometheus), which the runtime makes for the run."""
    return frozenset(kind for spec in specs for kind in injector_for(spec).needs)


__all__ = ["injector_for", "injectors", "needed_capabilities"]
