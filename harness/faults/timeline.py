"""Expand a scenario's fault entries ("at 20s", "every 30s, 3 times") into one ordered list of planned faults."""

from __future__ import annotations

from dataclasses import dataclass

from harness.scenario.model import FaultSpec

# A fault this close to the end of the run could not recover and be checked before the load stops.
MIN_TAIL_S = 1.0


@dataclass(frozen=True)
class PlannedFault:
    index: int  # 1-based, in time order
    at_s: float  # since the load phase started
    spec: FaultSpec

    @property
    def action(self) -> str:
        return self.spec.action


def plan_faults(faults: list[FaultSpec], duration_s: float) -> list[PlannedFault]:
    times: list[tuple[float, int, FaultSpec]] = []
    for order, fault in enumerate(faults):
        if fault.at_s is not None:
            times.append((fault.at_s, order, fault))
            continue
        assert fault.every_s is not None  # the model guarantees exactly one of at/every
        n = 1
        while n * fault.every_s < duration_s - MIN_TAIL_S and (fault.count is None or n <= fault.count):
            times.append((n * fault.every_s, order, fault))
            n += 1
    times.sort(key=lambda t: (t[0], t[1]))
    return [PlannedFault(i + 1, at, spec) for i, (at, _, spec) in enumerate(times)]
