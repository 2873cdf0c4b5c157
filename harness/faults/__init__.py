"""The registry of faults: one module per fault action, each registered by its ``action`` name.

A fault module defines ``FAULT``, an ``Injector`` that composes the runtime's primitive operations (signal the
container, delete the pod, cordon a node, reinstall the release; ``harness.runtime.base``) and records the undo of
anything that outlives the fault before it acts. The pipeline asks ``injector_for(spec)``; no runtime knows a fault
by name. Adding a fault is one module here plus its model in the ``faults`` union of ``harness.scenario.model``.
``timeline`` expands a scenario's fault entries into the ordered plan.
"""

from __future__ import annotations

from functools import cache

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


def required_capabilities(specs: list[FaultSpec]) -> set[str]:
    """What the runtime must be able to do for these faults (e.g. ``signal``: a sidecar that can kill Prometheus)."""
    return {cap for spec in specs for cap in injector_for(spec).requires}


__all__ = ["injector_for", "injectors", "required_capabilities"]
