"""Waiting on Kubernetes objects with list + watch loops that always end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_for(
    list_fn: Callable[..., Any],
    predicate: Callable[[Any], bool],
    *,
    timeout: float,
    what: str,
    **kwargs: Any,
) -> Any:
    """List, then watch, until an object satisfies `predicate`; return it or fail after `timeout` seconds."""
    from kubernetes import watch

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        listing = list_fn(**kwargs)
        for obj in listing.items:
            last = obj
            if predicate(obj):
                return obj
        w = watch.Watch()
        remaining = max(1, int(deadline - time.monotonic()))
        try:
            for event in w.stream(
                list_fn,
                resource_version=listing.metadata.resource_version,
                timeout_seconds=min(remaining, 30),
                **kwargs,
            ):
                obj = event["object"]
                last = obj
                if event["type"] in ("ADDED", "MODIFIED") and predicate(obj):
                    return obj
                if time.monotonic() > deadline:
                    break
        finally:
            w.stop()
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {_brief(last)}")


def _brief(obj: Any) -> str:
    if obj is None:
        return "nothing"
    status = getattr(obj, "status", None)
    return f"{obj.kind if hasattr(obj, 'kind') else type(obj).__name__} {obj.metadata.name}: {status}"
