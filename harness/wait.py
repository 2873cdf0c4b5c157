"""Bounded waiting. Every wait in the harness goes through here, so each one has a timeout and a description."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from harness.errors import WaitTimeout

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout_s: float,
    interval_s: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None/False, or raise WaitTimeout naming ``what``.

    ``describe`` is asked for the last observed state when giving up, so the error says what was seen.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(what, timeout_s, describe() if describe else "")
        time.sleep(interval_s)
