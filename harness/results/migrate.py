"""Older ``result.json`` formats brought up to the current one, one step per version, so any old run can still be
re-rendered and compared (pyperf reads old files the same way). Each step takes the raw JSON dict of version N and
returns version N+1; the format history is at the top of ``harness.results.model``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from harness.results.model import RESULT_SCHEMA_VERSION

Raw = dict[str, Any]


def _v1_to_v2(raw: Raw) -> Raw:
    """Absolute event times; no t0 when the load phase never started.

    Version 1 timed an event from the run's start until the load phase began, and from ``t0_unix_s`` after that,
    without saying which. Events are stored in order, so the switch is where a time would otherwise lie after t0
    when counted from the start, or where the times step back.
    """
    t0 = raw.get("t0_unix_s") or None
    started = datetime.fromisoformat(raw["started_at"]).timestamp()
    origin, previous = started, float("-inf")
    events = []
    for event in raw.get("events", []):
        t_s = float(event["t_s"])
        if t0 is not None and origin == started and (started + t_s > t0 or t_s < previous):
            origin = t0
        previous = t_s
        events.append({"at_unix_s": round(origin + t_s, 3), "kind": event["kind"], "message": event["message"]})
    return {**raw, "schema_version": 2, "t0_unix_s": t0, "events": events}


# Version N -> the step that makes it N+1.
_STEPS: dict[int, Callable[[Raw], Raw]] = {1: _v1_to_v2}


def migrate(raw: Raw) -> Raw:
    """``raw`` in the current format. The caller has checked that its version is an int no newer than ours."""
    version = raw["schema_version"]
    while version < RESULT_SCHEMA_VERSION:
        raw = _STEPS[version](raw)
        version = raw["schema_version"]
    return raw


def oldest_readable() -> int:
    return min(_STEPS, default=RESULT_SCHEMA_VERSION)
