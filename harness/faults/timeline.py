"""Expand a scenario's fault entries ("at 20s", "every 30s, 3 times") into one ordered list of planned faults."""

from __future__ import annotations

from dataclasses import dataclass

from harness.scenario.model import Fault, FaultAction

# A fault this close to the end of the run could not recover and be checked before the load stops.
MIN_TAIL_S = 1.0


@dataclass(frozen=True)
class PlannedFault:
    index: int  # 1-based, in time order
    at_s: float  # since the load phase started
    action: FaultAction


def plan_faults(faults: list[Fault], duration_s: float) -> list[PlannedFault]:
    times: list[tuple[float, int, FaultAction]] = []
    for order, fault in enumerate(faults):
        if fault.at_s is not None:
            times.append((fault.at_s, order, fault.action))
            continue
        assert fault.every_s is not None  # the model guarantees exactly one of at/every
        n = 1
        while n * fault.every_s < duration_s - MIN_TAIL_S and (fault.count is None or n <= fault.count):
            times.append((n * fault.every_s, order, fault.action))
            n += 1
    times.sort()
    return [PlannedFault(i + 1, at, action) for i, (at, _, action) in enumerate(times)]
