"""The harness's layers contract (pyproject.toml, import-linter) names every top-level module and package of
``harness``: a new one must take its place in the layers, so the contract cannot silently leave it out."""

from __future__ import annotations

import pkgutil
import re
import tomllib
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]
LAYERS_NAME = "The harness's layers follow its folders"


def test_every_top_level_module_has_a_layer() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["name"].startswith(LAYERS_NAME))["layers"]
    named = {m for layer in layers for m in re.split(r"\s*[|:]\s*", layer)}
    modules = {f"harness.{m.name}" for m in pkgutil.iter_modules(harness.__path__) if m.name != "__main__"}
    assert modules - named == set(), "give these a layer in pyproject.toml"
    assert named - modules == set(), "the layers name modules that do not exist"
