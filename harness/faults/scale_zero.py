"""``scale_zero``: the StatefulSet is scaled to 0 and, ``down`` later, back to 1 (a maintenance window, a node drain
with nowhere to go). Prometheus stops cleanly; the new pod gets the same claim, or a new emptyDir.

Recovery counts from the scale back up: the time Prometheus was meant to be down is the scenario's, not a finding.
The scale back is recorded as the undo before scaling down, so Ctrl-C during the window still brings it back.
"""

from __future__ import annotations

import time

from harness.faults.base import Acted, Injector
from harness.runtime.base import Runtime
from harness.scenario.model import ScaleZeroFault
from harness.undo import UndoLog


class ScaleZero(Injector[ScaleZeroFault]):
    action = "scale_zero"

    def act(self, spec: ScaleZeroFault, runtime: Runtime, undo: UndoLog) -> Acted:
        def back_up() -> None:
            runtime.scale(1)

        undo.record("scale Prometheus back to 1 replica", back_up)
        _, down = runtime.scale(0)
        time.sleep(spec.down_s)
        up_at, up = runtime.scale(1)
        return Acted(up_at, f"{down}; {spec.down_s:g} s later {up}")


FAULT = ScaleZero()
