"""Storage backends as the local runtime sees them: one module per backend, each provisioning a data directory.

``provision(storage, workdir)`` picks the backend module; every backend returns a ``ProvisionedStorage`` that hands
each Prometheus "pod" its TSDB directory and removes only what it created.
"""

from __future__ import annotations

from pathlib import Path

from harness.scenario.model import EphemeralStorage, IscsiStorage, LocalStorage, NfsStorage, Storage
from harness.storage.base import ProvisionedStorage


def provision(storage: Storage, workdir: Path, run_id: str) -> ProvisionedStorage:
    # Imported per branch: backends do not import each other, and only the chosen one runs its checks.
    if isinstance(storage, LocalStorage):
        from harness.storage import local

        return local.provision(storage, workdir, run_id)
    if isinstance(storage, EphemeralStorage):
        from harness.storage import ephemeral

        return ephemeral.provision(storage, workdir, run_id)
    if isinstance(storage, NfsStorage | IscsiStorage):
        from harness.storage import mounted

        return mounted.provision(storage, workdir, run_id)
    raise AssertionError(f"unhandled storage backend {storage!r}")
