"""Ctrl-C and SIGTERM during a run: raised as ``Interrupted`` where the run was (so cleanup runs in order), and
shielded while cleaning up (a second Ctrl-C must not leave mounts, processes or cluster objects behind)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from harness import ui


class Interrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM arrived; raised where the run was, so cleanup runs in order."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _shield(signum: int, frame: FrameType | None) -> None:
    ui.warn("cleaning up (stopping Prometheus, removing what this run created); please wait")


@contextmanager
def handled_signals(*, interrupt: bool) -> Iterator[None]:
    """Inside the block SIGINT/SIGTERM raise ``Interrupted`` (``interrupt``) or are only acknowledged (cleanup)."""
    handler = _interrupt if interrupt else _shield
    old_int = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
