"""What ``io_errors`` and ``io_latency`` share (no fault of its own): an I/O fault set in the runtime's layer under
Prometheus' data directory for the spec's ``for``, lifted through the undo step recorded before it was set (so
Ctrl-C lifts it too), and what the layer did while it held, added to the fault's detail."""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import ClassVar, TypeVar

from harness.capabilities import Capability
from harness.capabilities.fault_layer import FaultLayerControl, IoFault
from harness.faults.base import Acted, WindowInjector
from harness.runtime.base import Runtime
from harness.scenario.model import IoFaultWindow
from harness.undo import UndoLog, UndoStep

IoSpecT = TypeVar("IoSpecT", bound=IoFaultWindow)


class IoWindowInjector(WindowInjector[IoSpecT]):
    needs: ClassVar[frozenset[type[Capability]]] = frozenset({FaultLayerControl})

    def __init__(self) -> None:
        # What the layer said when the last window was lifted (faults run one at a time).
        self._healed = ""

    @abstractmethod
    def settings(self, spec: IoSpecT) -> IoFault:
        """The I/O fault the spec asks for."""

    def begin(self, spec: IoSpecT, runtime: Runtime, undo: UndoLog) -> tuple[float, str, UndoStep]:
        self._healed = ""

        layer = runtime.capability(FaultLayerControl)

        def heal() -> None:
            self._healed = layer.io_heal()

        step = undo.record(f"lift the {self.action} fault under Prometheus' data directory", heal)
        started, detail = layer.io_fault(self.settings(spec))
        return started, detail, step

    def act(self, spec: IoSpecT, runtime: Runtime, undo: UndoLog) -> Acted:
        acted = super().act(spec, runtime, undo)
        return dataclasses.replace(acted, detail=f"{acted.detail}; {self._healed}")
