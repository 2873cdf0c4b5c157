"""Where Prometheus runs: ``local`` (managed processes on this host) or ``kubernetes`` (a StatefulSet in a cluster)."""

from __future__ import annotations

RUNTIMES = ("local", "kubernetes")
