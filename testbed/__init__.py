"""A real Kubernetes cluster on this machine, built from source and Debian packages, for tests and demos.

`python -m testbed build|start|stop|status|env`. See testbed/README.md.
"""
