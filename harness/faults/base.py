"""What a fault is: an ``Injector`` for one ``action``, composing the runtime's primitives, its undo recorded first.

``inject`` returns once the runtime has acted and the replacement instance is on its way (not necessarily ready);
the pipeline then waits for recovery, reverts what the fault recorded in the undo log (``UndoLog.unwind_to``), and
checks the history. ``requires`` names runtime capabilities the fault needs, so a runtime can prepare them up
front (the Kubernetes pod gets its signal sidecar only when a fault needs one).
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, TypeVar

from harness.runtime.base import Injection, Runtime
from harness.undo import UndoLog

SpecT = TypeVar("SpecT")


class Injector(ABC, Generic[SpecT]):
    action: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset()

    def refusal(self, spec: SpecT) -> str | None:
        """Why this fault cannot run as the scenario gives it (checked before anything is created); None: it can."""
        return None

    def inject(self, spec: SpecT, runtime: Runtime, undo: UndoLog) -> Injection:
        before = runtime.instance()
        injected_at, detail = self.act(spec, runtime, undo)
        return Injection(self.action, injected_at, before, runtime.instance(), detail)

    @abstractmethod
    def act(self, spec: SpecT, runtime: Runtime, undo: UndoLog) -> tuple[float, str]:
        """Do the fault; returns when it was injected (Unix seconds) and what was done, in a sentence."""


class SignalInjector(Injector[SpecT]):
    """A fault that sends Prometheus one signal; the container restarts in the same pod."""

    signal: ClassVar[signal.Signals]
    requires = frozenset({"signal"})

    def act(self, spec: SpecT, runtime: Runtime, undo: UndoLog) -> tuple[float, str]:
        return runtime.signal_prometheus(self.signal)


AnyInjector = Injector[Any]
