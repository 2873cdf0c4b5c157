"""The scenario's ``checks``: how much acknowledged history may be lost, the recovery limits per stage, and the fio
floors.
"""

from __future__ import annotations

from typing import Annotated, Any, get_args

from pydantic import BeforeValidator, Field, WithJsonSchema

from harness.scenario.strict import Strict
from harness.scenario.units import Seconds
from harness.stages import StageId


class HistorySurvival(Strict):
    enabled: bool = Field(default=True, description="false: the history is not checked")
    max_samples_lost: int = Field(default=0, ge=0, description="acknowledged samples that may be missing")
    after_each_fault: bool = Field(default=True, description="also check right after each recovery")


def _total_bounds_the_first_sample(value: object) -> object:
    """``max_recovery: 30s`` is the limit of the whole recovery: injection to the first new sample stored."""
    return value if isinstance(value, dict) or value is None else {"first_sample": value}


_DURATION_SCHEMA: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "number"}]}
# Stage -> the most seconds it may take after the injection; a plain duration bounds first_sample.
RecoveryLimits = Annotated[
    dict[StageId, Seconds],
    BeforeValidator(_total_bounds_the_first_sample),
    WithJsonSchema(
        {
            "anyOf": [
                *_DURATION_SCHEMA["anyOf"],
                {
                    "type": "object",
                    "propertyNames": {"enum": list(get_args(StageId))},
                    "additionalProperties": _DURATION_SCHEMA,
                },
            ]
        }
    ),
]


class Checks(Strict):
    history_survival: HistorySurvival = Field(
        default_factory=HistorySurvival,
        description="the durability oracle: the samples Prometheus acknowledged must be there afterwards",
    )
    recovery_limits_s: RecoveryLimits = Field(
        default_factory=dict,
        alias="max_recovery",
        description=(
            "fault injected -> first new sample stored; or a mapping from recovery stages to their limits, each "
            "counted from the injection, e.g. {scheduled: 5s, ready: 30s, first_sample: 40s}"
        ),
    )
    min_fio_write_iops: float | None = Field(
        default=None,
        ge=0,
        description="a floor: every fio job that writes must reach this many write IOPS (check fio-write-iops); "
        "unset: no floor",
    )
