"""Older ``result.json`` formats brought up to the current one, one step per version, so any old run can still be
re-rendered and compared (pyperf reads old files the same way). Each step takes the raw JSON dict of version N and
returns version N+1; the format history is at the top of ``harness.results.model``.
"""

from __future__ import annotations

import re
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


def _v2_to_v3(raw: Raw) -> Raw:
    """Recovery stages: a version 2 fault had the times the harness observed, which become its stages."""
    faults = []
    for fault in raw.get("faults", []):
        observed = [
            ("injected", fault.get("injected_at_s"), "harness: the fault was injected"),
            ("healthy", fault.get("process_up_at_s"), "harness: polled /-/healthy"),
            ("ready", fault.get("ready_at_s"), "harness: polled /-/ready"),
            ("first_sample", fault.get("first_sample_at_s"), "harness: the first sample acknowledged"),
        ]
        stages = [{"stage": s, "at_s": at, "source": src} for s, at, src in observed if at is not None]
        faults.append({**fault, "stages": stages})
    fio = [{**job, "measured_on": None} for job in raw.get("fio", [])]
    return {**raw, "schema_version": 3, "faults": faults, "fio": fio, "cluster": None}


def _v3_to_v4(raw: Raw) -> Raw:
    """Faults below Prometheus: version 3 recorded none of their window, failures or log; power_loss was one. A
    checkpoint's fault was only in its label ("after fault 2 (reschedule)")."""
    faults = [
        {
            **fault,
            "below_prometheus": fault.get("action") == "power_loss",
            "lifted_at_s": None,
            "write_failures": {},
            "write_errors": [],
            "prometheus_log": [],
        }
        for fault in raw.get("faults", [])
    ]
    durability = []
    for checkpoint in raw.get("durability", []):
        m = re.match(r"after fault (\d+) ", checkpoint.get("label", ""))
        durability.append({**checkpoint, "after_fault": int(m.group(1)) if m else None})
    return {**raw, "schema_version": 4, "faults": faults, "durability": durability}


def _v4_to_v5(raw: Raw) -> Raw:
    """fio repetitions: before version 5 every job ran once, under its own name."""
    fio = [{**job, "job": job.get("name"), "repetition": 1} for job in raw.get("fio", [])]
    return {**raw, "schema_version": 5, "fio": fio}


def _v5_to_v6(raw: Raw) -> Raw:
    """fio's CPU use: not kept before version 6 (the raw fio JSON beside the result still has it)."""
    return {**raw, "schema_version": 6, "fio": [{**job, "cpu_pct": None} for job in raw.get("fio", [])]}


def _v6_to_v7(raw: Raw) -> Raw:
    """The class's binding mode: not recorded before version 7."""
    cluster = raw.get("cluster")
    if cluster and cluster.get("volume"):
        cluster = {**cluster, "volume": {**cluster["volume"], "volume_binding_mode": None}}
    return {**raw, "schema_version": 7, "cluster": cluster}


def _v7_to_v8(raw: Raw) -> Raw:
    """Writer shards: before version 8 the load had one writer."""
    load = raw.get("load")
    return {**raw, "schema_version": 8, "load": None if load is None else {**load, "shards": 1}}


# What every harness before version 9 appended to a history check it passed although a later fault was never
# recovered from.
_UNKNOWN_SINCE = re.compile(r"; Prometheus did not recover after fault \d+ \(\w+\), so its history since is unknown$")


def _v8_to_v9(raw: Raw) -> Raw:
    """PARTIAL: before version 9 the harness passed ``history_survival`` when the checkpoints before a fault
    Prometheus never came back from held, and said in the reason that the history since was unknown. What was
    acknowledged after the last checkpoint was never looked at, so that check is PARTIAL; its reason already says
    which part was not checked. The verdict stays: the recovery check of such a run failed, so it was FAILED."""

    def honest(check: Raw) -> Raw:
        passed = check.get("name") == "history_survival" and check.get("status") == "PASSED"
        if passed and _UNKNOWN_SINCE.search(check.get("reason", "")):
            return {**check, "status": "PARTIAL"}
        return check

    return {**raw, "schema_version": 9, "checks": [honest(c) for c in raw.get("checks", [])]}


def _v9_to_v10(raw: Raw) -> Raw:
    """Prometheus' own count of the remote writes it answered: not read before version 10."""
    return {**raw, "schema_version": 10, "server_acks": None}


def _v10_to_v11(raw: Raw) -> Raw:
    """Overrides: before version 11 a run could not be handed any, so it ran the file as written."""
    return {**raw, "schema_version": 11, "overrides": []}


def _v11_to_v12(raw: Raw) -> Raw:
    """The CSI driver's stages: before version 12 the harness did not look for them, so it said nothing missing."""
    faults = [{**fault, "stages_note": ""} for fault in raw.get("faults", [])]
    return {**raw, "schema_version": 12, "faults": faults}


# Version N -> the step that makes it N+1.
_STEPS: dict[int, Callable[[Raw], Raw]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
    5: _v5_to_v6,
    6: _v6_to_v7,
    7: _v7_to_v8,
    8: _v8_to_v9,
    9: _v9_to_v10,
    10: _v10_to_v11,
    11: _v11_to_v12,
}


def migrate(raw: Raw) -> Raw:
    """``raw`` in the current format. The caller has checked that its version is an int no newer than ours."""
    version = raw["schema_version"]
    while version < RESULT_SCHEMA_VERSION:
        raw = _STEPS[version](raw)
        version = raw["schema_version"]
    return raw


def oldest_readable() -> int:
    return min(_STEPS, default=RESULT_SCHEMA_VERSION)
