"""The base of every scenario model: unknown keys are refused and a parsed model is immutable.

Its own module so that everything reading a YAML file into a model (the scenario's parts, ``harness.config``, the
report's acknowledgements) shares the one rule without importing the scenario.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
