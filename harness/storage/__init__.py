"""The registry of storage backends: one module per backend, each registered by its ``storage.backend`` name.

The pipeline, the runtimes and the doctor ask ``backend_for(scenario.storage)`` and call the backend's methods; none
of them tests a type or compares a name. Adding a backend is one module here defining ``BACKEND`` (found by
``backends()``), plus its model in the ``storage`` union of ``harness.scenario.model``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from harness.registry import registered
from harness.scenario.model import StorageSpec
from harness.storage.base import AnyBackend, Backend, ProvisionedStorage


@cache
def backends() -> dict[str, AnyBackend]:
    """Every module of this package that defines ``BACKEND``, by backend name (imported here, once, by name, so
    backends stay independent of each other and nothing imports a backend module directly)."""
    found = [b for b in registered(__name__, __path__, "BACKEND") if isinstance(b, Backend)]
    return {b.name: b for b in found}


def backend_named(name: str) -> AnyBackend:
    try:
        return backends()[name]
    except KeyError:
        raise AssertionError(f"no storage backend registered as {name!r}; have {sorted(backends())}") from None


def backend_for(spec: StorageSpec) -> AnyBackend:
    """The backend of a validated ``storage`` section (its ``backend`` field is the discriminator)."""
    return backend_named(spec.backend)


def provision(spec: StorageSpec, workdir: Path, run_id: str) -> ProvisionedStorage:
    """Local runtime: make the scenario's storage usable on this host."""
    return backend_for(spec).provision(spec, workdir, run_id)


__all__ = ["backend_for", "backend_named", "backends", "provision"]
