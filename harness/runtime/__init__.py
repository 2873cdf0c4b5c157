"""Where Prometheus runs: ``local`` (managed processes on this host) or ``kubernetes`` (a StatefulSet in a cluster).

``create_runtime`` is the one place a runtime is chosen by name; everything after asks the ``Runtime`` interface
(``harness.runtime.base``). Each runtime is imported only when chosen: the local one needs no Kubernetes client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.capabilities import Capability
from harness.errors import UsageError
from harness.ownership import RunOwner
from harness.runtime.base import Runtime
from harness.scenario.model import Scenario
from harness.settings import Settings
from harness.storage import backend_for
from harness.storage.base import EmbeddedServer

RUNTIME_NAMES = ("local", "kubernetes")


@dataclass(frozen=True)
class RuntimeContext:
    scenario: Scenario
    run_id: str
    workdir: Path
    logs_dir: Path
    settings: Settings  # the host's HARNESS_* settings, read once by the CLI (harness.settings)
    kubeconfig: str | None = None  # kubernetes: None means $KUBECONFIG or ~/.kube/config
    context: str | None = None  # kubernetes: the kube context the run was allowed to use (harness.config)
    owner: RunOwner | None = None  # who runs it: marks what the run creates in a cluster
    needs: frozenset[type[Capability]] = field(default_factory=frozenset)  # what the scenario's faults ask for
    storage_server: EmbeddedServer[Any] | None = None  # the server the run started for its storage (embedded)


def refuse_unsupported(name: str, scenario: Scenario) -> None:
    """UsageError, before anything is created, for an unknown runtime or what the named one cannot do yet."""
    if name == "kubernetes":
        from harness.runtime.kubernetes import refuse_unsupported as kubernetes_refuses

        kubernetes_refuses(scenario)
    elif name == "local":
        refusal = backend_for(scenario.storage).local_refusal(scenario.storage)
        if refusal is not None:
            raise UsageError(refusal)
    else:
        raise UsageError(f"unknown runtime {name!r}; use --runtime {' or '.join(RUNTIME_NAMES)}")


def runtime_offers(name: str) -> frozenset[type[Capability]]:
    """The capabilities the runtime called ``name`` can hand out (``Runtime.offers``)."""
    if name == "kubernetes":
        from harness.runtime.kubernetes import KubernetesRuntime

        return KubernetesRuntime.offers
    from harness.runtime.local import LocalRuntime

    return LocalRuntime.offers


def create_runtime(name: str, ctx: RuntimeContext) -> Runtime:
    """The runtime called ``name``; refuses (UsageError) what it cannot do before anything is created."""
    if name == "local":
        from harness.runtime.local import LocalRuntime

        return LocalRuntime(
            ctx.scenario.prometheus,
            ctx.scenario.storage,
            run_id=ctx.run_id,
            workdir=ctx.workdir,
            logs_dir=ctx.logs_dir,
            needs=ctx.needs,
            storage_server=ctx.storage_server,
        )
    if name == "kubernetes":
        from harness.runtime.kubernetes import KubernetesRuntime

        return KubernetesRuntime(
            ctx.scenario,
            ctx.run_id,
            settings=ctx.settings,
            logs_dir=ctx.logs_dir,
            kubeconfig=ctx.kubeconfig,
            context=ctx.context,
            owner=ctx.owner,
            needs=ctx.needs,
            storage_server=ctx.storage_server,
        )
    raise UsageError(f"unknown runtime {name!r}; use --runtime {' or '.join(RUNTIME_NAMES)}")
