"""Storage benchmarking and data-durability test harness for Prometheus on Kubernetes."""

from __future__ import annotations

__version__ = "0.1.0"
