"""Benchmarks of the harness against its peers and its limits: ``python -m benchmarks.run`` (``nox -s benchmark``)."""
