"""The undo log: what to revert, recorded *before* acting, so an interrupted run can still revert it.

krkn's one good idea, made exact: a fault (a cordon, later a filled disk or a stopped kubelet) and every resource a
run creates record how to undo themselves before they act. ``unwind_to(mark)`` reverts what was recorded since a
mark (a fault's own steps, once Prometheus has recovered), ``unwind()`` everything left, newest first (cleanup,
also after Ctrl-C). A step that fails is reported and the others still run: one failure must not leave the rest
behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from harness.errors import HarnessError

log = logging.getLogger(__name__)


@dataclass
class UndoStep:
    what: str  # "uncordon node node-2": said in the log and in an error
    # What it returns when it is a string is what undoing said ("the OSD is up again after 2.8 s"): ``run_now``
    # hands it to the fault that planned it, so no fault keeps a run's state on its registered instance.
    action: Callable[[], object]
    done: bool = False


class UndoLog:
    def __init__(self) -> None:
        self._steps: list[UndoStep] = []

    def record(self, what: str, action: Callable[[], object]) -> UndoStep:
        """Record how to undo what the caller is about to do; call this before doing it."""
        step = UndoStep(what, action)
        self._steps.append(step)
        return step

    def run_now(self, step: UndoStep) -> str:
        """Undo ``step`` now, as its fault planned (a disk filled for a window is freed when the window ends); it is
        then done, and an unwind skips it. Returns what undoing said ("" when it said nothing, or was done
        already). Raises what the action raises."""
        if step.done:
            return ""
        step.done = True
        log.debug("undo now: %s", step.what)
        said = step.action()
        return said if isinstance(said, str) else ""

    def mark(self) -> int:
        return len(self._steps)

    @property
    def pending(self) -> list[str]:
        return [s.what for s in self._steps if not s.done]

    def unwind_to(self, mark: int) -> list[str]:
        """Undo, newest first, what was recorded since ``mark``; returns the errors (one line each)."""
        errors: list[str] = []
        while len(self._steps) > mark:
            step = self._steps.pop()
            if step.done:
                continue
            step.done = True
            try:
                log.debug("undo: %s", step.what)
                step.action()
            except (HarnessError, OSError) as e:
                errors.append(f"could not {step.what}: {e}")
        return errors

    def unwind(self) -> list[str]:
        return self.unwind_to(0)
