"""Where Prometheus runs: ``local`` (managed processes on this host) now, ``kubernetes`` in a later step."""

from __future__ import annotations

RUNTIMES = ("local", "kubernetes")
