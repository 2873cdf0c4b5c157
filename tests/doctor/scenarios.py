"""Scenario files for the doctor tests, written to a temporary directory (JSON is valid YAML)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.scenario.loader import load_scenario
from harness.scenario.model import Scenario


def write_scenario(
    directory: Path, storage: dict[str, Any], *, name: str = "doctor-test", prometheus: dict[str, Any] | None = None
) -> Path:
    doc: dict[str, Any] = {"name": name, "duration": "1m", "storage": storage}
    if prometheus is not None:
        doc["prometheus"] = prometheus
    path = directory / f"{name}.yaml"
    path.write_text(json.dumps(doc, indent=2))
    return path


def scenario(directory: Path, storage: dict[str, Any], **kw: Any) -> Scenario:
    return load_scenario(write_scenario(directory, storage, **kw))
