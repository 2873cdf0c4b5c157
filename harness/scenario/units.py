"""Durations and sizes written with units in scenario files ("90s", "5m", "2Gi").

A bare number is refused on purpose: "size: 200" could be bytes or gigabytes, and the field notes show how costly
a wrong guess about storage is. Parsed values carry their unit in the attribute name (``duration_s``, ``size_bytes``).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

DURATION_UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
SIZE_UNITS: dict[str, int] = {
    "B": 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}

_NUM_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def _parse(value: object, units: dict[str, float] | dict[str, int], kind: str, examples: str) -> float:
    """A number with one of ``units`` -> the number times the unit's factor; errors say what is allowed."""
    allowed = ", ".join(units)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a {kind} such as {examples}, got {value!r}")
    if isinstance(value, int | float):
        if value == 0:
            return 0
        first = next(iter(u for u in units if units[u] != 1), "")
        raise ValueError(f"a {kind} needs a unit: write {value}{first}, ... (allowed units: {allowed})")
    m = _NUM_UNIT.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a {kind}; write a number and a unit such as {examples}")
    number, unit = m.groups()
    if unit not in units:
        raise ValueError(f"unknown {kind} unit {unit or '(none)'!r} in {value!r}; allowed units: {allowed}")
    return float(number) * units[unit]


def parse_duration_s(value: object) -> float:
    return float(_parse(value, DURATION_UNITS, "duration", "30s, 5m or 1h"))


def parse_size_bytes(value: object) -> int:
    return int(_parse(value, SIZE_UNITS, "size", "512Mi or 2Gi"))


def format_duration(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def format_size(size_bytes: int) -> str:
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        factor = SIZE_UNITS[unit]
        if size_bytes >= factor and size_bytes % factor == 0:
            return f"{size_bytes // factor}{unit}"
    return f"{size_bytes}B"


# Field types: parsed from unit strings, serialised back to unit strings so a dumped scenario reloads.
Seconds = Annotated[
    float,
    BeforeValidator(parse_duration_s),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)$", "examples": ["30s", "5m"]}),
]
Bytes = Annotated[
    int,
    BeforeValidator(parse_size_bytes),
    PlainSerializer(format_size, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(B|[kKMGT]i?)$", "examples": ["512Mi", "2Gi"]}),
]
