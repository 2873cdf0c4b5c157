"""What ``io_errors`` and ``io_latency`` share (no fault of its own): an I/O fault set in the runtime's layer under
Prometheus' data directory for the spec's ``for``, lifted through the undo step recorded before it was set (so
Ctrl-C lifts it too), and what the layer did while it held, added to the fault's detail."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, TypeVar

from harness.capabilities import Capability
from harness.capabilities.fault_layer import FaultLayerControl, IoFault
from harness.faults.base import WindowInjector
from harness.runtime.base import Runtime
from harness.scenario.model import IoFaultWindow
from harness.undo import UndoLog, UndoStep

IoSpecT = TypeVar("IoSpecT", bound=IoFaultWindow)


class IoWindowInjector(WindowInjector[IoSpecT]):
    needs: ClassVar[frozenset[type[Capability]]] = frozenset({FaultLayerControl})

    @abstractmethod
    def settings(self, spec: IoSpecT) -> IoFault:
        """The I/O fault the spec asks for."""

    def begin(self, spec: IoSpecT, runtime: Runtime, undo: UndoLog) -> tuple[float, str, UndoStep]:
        layer = runtime.capability(FaultLayerControl)

        def heal() -> str:
            return layer.io_heal()  # what the layer counted in the window ends the fault's detail

        step = undo.record(f"lift the {self.action} fault under Prometheus' data directory", heal)
        started, detail = layer.io_fault(self.settings(spec))
        return started, detail, step
