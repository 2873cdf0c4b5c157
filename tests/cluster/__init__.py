"""A real Kubernetes cluster on this machine, built from source and Debian packages, for tests and demos.

`python -m tests.cluster build|start|stop|status|env`. See tests/cluster/README.md.
"""
