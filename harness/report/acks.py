"""The ack file: known, accepted changes that stop counting as regressions (Orion's idea), kept with the results.

    # reports/acks.yaml
    acks:
      - scenario: demo
        metric: randwrite-4k write bandwidth     # or a glob: "randwrite-4k *"
        run: 20261203T020000Z-a1b2c3             # the run directory's name or its run id ...
        reason: CI moved to a slower disk (INFRA-123)
      - scenario: local-pv
        metric: "*"
        date: 2026-12-04                         # ... or the UTC date the run started
        reason: new kernel, accepted

It is read like a scenario file (``harness.scenario.loader.load_model``): unknown keys, a missing reason, both or
neither of ``run`` and ``date`` are reported with file:line and key path (exit 2).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from pathlib import Path

from pydantic import Field, model_validator

from harness.scenario.model import Strict

ACK_FILE = "acks.yaml"


class Ack(Strict):
    scenario: str = Field(min_length=1, description="the scenario's name, as in reports/<scenario>/")
    metric: str = Field(min_length=1, description="the metric as the trend report names it; shell globs allowed")
    run: str | None = Field(default=None, description="the run the change happened in: directory name or run id")
    date: dt.date | None = Field(default=None, description="or the UTC date of the night the change happened")
    reason: str = Field(min_length=1, description="why the change is accepted: it is shown next to the change")

    @model_validator(mode="after")
    def _one_night(self) -> Ack:
        if (self.run is None) == (self.date is None):
            raise ValueError("give exactly one of 'run' (a run directory or run id) and 'date' (YYYY-MM-DD)")
        return self

    def matches(self, scenario: str, metric: str, run_dir_name: str, run_id: str, night: dt.date) -> bool:
        if scenario != self.scenario or not fnmatch.fnmatchcase(metric, self.metric):
            return False
        if self.run is not None:
            return self.run in (run_dir_name, run_id)
        return self.date == night

    def describe(self) -> str:
        return f"{self.scenario} / {self.metric} / {self.run or self.date}"


class AckFile(Strict):
    acks: list[Ack] = Field(default_factory=list)


def load_acks(path: Path) -> list[Ack]:
    """The acks in ``path``; ScenarioError (exit 2) naming file, line and key path when it is invalid."""
    from harness.scenario.loader import load_model

    return load_model(path, AckFile, what="an ack file", empty_ok=True).acks
