"""What a fault is: an ``Injector`` for one ``action``, composing the runtime's primitives, its undo recorded first.

``inject`` returns once the runtime has acted and the replacement instance is on its way (not necessarily ready);
the pipeline then waits for recovery, reverts what the fault recorded in the undo log (``UndoLog.unwind_to``), and
checks the history. ``needs`` names the capabilities (``harness.capabilities``) the fault asks of the runtime: the
pipeline refuses a run whose runtime or storage cannot give them before anything is created, and the runtime makes
only those a run's faults need (the Kubernetes pod gets its signal sidecar only when a fault signals).
"""

from __future__ import annotations

import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from harness.capabilities import Capability
from harness.capabilities.signals import SignalControl
from harness.runtime.base import Injection, Runtime, StageMark
from harness.scenario.model import FaultWindow
from harness.undo import UndoLog, UndoStep

SpecT = TypeVar("SpecT")
WindowSpecT = TypeVar("WindowSpecT", bound=FaultWindow)


@dataclass(frozen=True)
class Acted:
    """What a fault's ``act`` did: when it was injected (Unix seconds), what was done in a sentence, and what it saw
    on the way (stages such as a lost node marked NotReady, the last WAL fsync before a power cut, the end of a
    fault that lasts)."""

    at_unix_s: float
    detail: str
    stages: tuple[StageMark, ...] = ()
    last_wal_fsync_unix_s: float | None = None
    lifted_at_unix_s: float | None = None


class Injector(ABC, Generic[SpecT]):
    action: ClassVar[str]
    needs: ClassVar[frozenset[type[Capability]]] = frozenset()
    # True: Prometheus keeps running through the fault, so the load keeps writing to it (and records what it
    # rejects) instead of being held off while the instance is replaced.
    keeps_instance: ClassVar[bool] = False
    # True: the fault happens in the storage under Prometheus (the report's "faults below Prometheus" section).
    below_prometheus: ClassVar[bool] = False

    def refusal(self, spec: SpecT) -> str | None:
        """Why this fault cannot run as the scenario gives it (checked before anything is created); None: it can."""
        return None

    def inject(self, spec: SpecT, runtime: Runtime, undo: UndoLog) -> Injection:
        before = runtime.instance()
        acted = self.act(spec, runtime, undo)
        return Injection(
            self.action,
            acted.at_unix_s,
            before,
            runtime.instance(),
            acted.detail,
            stages=acted.stages,
            last_wal_fsync_unix_s=acted.last_wal_fsync_unix_s,
            lifted_at_unix_s=acted.lifted_at_unix_s,
        )

    @abstractmethod
    def act(self, spec: SpecT, runtime: Runtime, undo: UndoLog) -> Acted:
        """Do the fault; returns when it was injected and what was done (``Acted``)."""


class SignalInjector(Injector[SpecT]):
    """A fault that sends Prometheus one signal; the container restarts in the same pod."""

    signal: ClassVar[signal.Signals]
    needs = frozenset({SignalControl})

    def act(self, spec: SpecT, runtime: Runtime, undo: UndoLog) -> Acted:
        return Acted(*runtime.capability(SignalControl).send(self.signal))


class WindowInjector(Injector[WindowSpecT]):
    """A fault that lasts: ``begin`` sets up its condition (recording how to lift it in the undo log, first), the
    condition holds for the spec's ``for``, then it is lifted through that same undo step, so Ctrl-C during the
    window lifts it too. Prometheus keeps running: the load writes through the window and records what failed."""

    keeps_instance = True
    below_prometheus = True

    def act(self, spec: WindowSpecT, runtime: Runtime, undo: UndoLog) -> Acted:
        started, detail, lift = self.begin(spec, runtime, undo)
        # A plain sleep: Ctrl-C interrupts it, and the pipeline's cleanup then lifts the condition.
        time.sleep(max(0.0, started + spec.for_s - time.time()))
        said = undo.run_now(lift)
        lifted = time.time()
        return Acted(
            started,
            f"{detail}; lifted after {lifted - started:.1f} s" + (f"; {said}" if said else ""),
            stages=(StageMark("lifted", lifted, "harness: the fault's condition was lifted"),),
            lifted_at_unix_s=lifted,
        )

    @abstractmethod
    def begin(self, spec: WindowSpecT, runtime: Runtime, undo: UndoLog) -> tuple[float, str, UndoStep]:
        """Set the condition up; returns when it took hold (Unix seconds), what was done in a sentence, and the
        undo step (recorded before acting) that lifts it; what that step returns (a string) ends the detail."""


AnyInjector = Injector[Any]
