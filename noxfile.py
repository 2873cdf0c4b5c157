"""Developer and CI entry points. `nox -s demo` is the main job; `nox -s tests` is what CI runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).parent


def _system_deps(session: nox.Session) -> None:
    """Install the Debian packages the harness needs (as root), or name them and stop."""
    result = subprocess.run(["bash", str(ROOT / "scripts" / "install-system-deps")], check=False)
    if result.returncode != 0:
        session.error("system packages are missing; see the message above")


def _install(session: nox.Session, *extras: str) -> None:
    spec = "." if not extras else f".[{','.join(extras)}]"
    session.install("-q", "-e", spec)


def _bench(session: nox.Session, *scenarios: str) -> None:
    """`harness run` of each scenario in turn (the session stops at the first that does not pass)."""
    _system_deps(session)
    _install(session)
    runtime = os.environ.get("HARNESS_RUNTIME", "local")
    # A cluster is used only when named: HARNESS_K8S_CONTEXT names it here (or the harness config allows it).
    context = os.environ.get("HARNESS_K8S_CONTEXT")
    named = ["--context", context] if runtime == "kubernetes" and context else []
    for scenario in scenarios:
        session.run("harness", "run", f"scenarios/{scenario}.yaml", "--runtime", runtime, *named, *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: the demo scenario on the local runtime, ending in reports/demo/<run>/report.html."""
    _system_deps(session)
    _install(session)
    session.run("harness", "run", "scenarios/demo.yaml", *session.posargs)


# Workers for `nox -s tests` (HARNESS_TEST_WORKERS overrides; 0 runs serially). Most tests wait on daemons (Prometheus,
# fio, NFS-Ganesha, tgt, a cluster), not on the CPU, and three of the workers hold the cluster's tests, which wait
# for one another's node faults (tests/k8s/conftest.py): three per core keeps the cores busy meanwhile (2 cores,
# clean-clone .ci/run on 2026-12-07: 1,832 s with 4 workers, 1,622 s with 6). At most 8: each may run a Prometheus.
TEST_WORKERS = str(min(3 * (os.cpu_count() or 1), 8))


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, against the real prometheus and fio binaries (and the other daemons where installed), spread
    over TEST_WORKERS processes (tests/conftest.py keeps what must not run side by side in one worker)."""
    _system_deps(session)
    _install(session, "dev")
    workers = os.environ.get("HARNESS_TEST_WORKERS", TEST_WORKERS)
    parallel = ["-n", workers, "--dist", "loadgroup"] if workers != "0" else []
    session.run("pytest", *parallel, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy strict on harness/, and the import-layer contracts."""
    _install(session, "dev")
    session.run("ruff", "check", "harness", "tests", "testbed", "noxfile.py")
    session.run("ruff", "format", "--check", "harness", "tests", "testbed", "noxfile.py")
    session.run("mypy")
    session.run("lint-imports")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs.yml, docs/): `mkdocs build --strict` into site/; `nox -s docs -- serve` serves
    it with live reload. The reference pages are checked first: `python -m harness.docs_gen --write docs/reference`
    regenerates them after a change of the code."""
    _install(session, "dev")
    session.run("python", "-m", "harness.docs_gen", "--check")
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:])
        return
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session(name="bench-local")
def bench_local(session: nox.Session) -> None:
    """The local-PV durability scenario (a loop-mounted ext4 image when root)."""
    _bench(session, "local-pv")


@nox.session(name="bench-nfs")
def bench_nfs(session: nox.Session) -> None:
    """The NFS scenario: an embedded NFS-Ganesha mounted by the harness's user-space client (see
    docs/concepts/storage.md)."""
    _bench(session, "nfs")


@nox.session(name="bench-iscsi")
def bench_iscsi(session: nox.Session) -> None:
    """The iSCSI scenario: an embedded tgt LUN attached by a user-space initiator and a loop device."""
    _bench(session, "iscsi")


@nox.session(name="bench-ceph")
def bench_ceph(session: nox.Session) -> None:
    """CephFS (ceph-fuse) and then RBD (librbd in qemu-storage-daemon, a loop device) on an embedded single-host Ceph
    each: scenarios/cephfs.yaml and scenarios/rbd.yaml; `harness compare` puts the two runs side by side."""
    _bench(session, "cephfs", "rbd")


@nox.session(venv_backend="none")
def cluster(session: nox.Session) -> None:
    """The local Kubernetes cluster of testbed: build (cached) and start; `nox -s cluster -- stop` stops.

    Any other argument is passed on: `-- status`, `-- env`, `-- start --nodes 1`.
    """
    import sys

    _system_deps(session)
    if session.posargs:
        session.run(sys.executable, "-m", "testbed", *session.posargs, external=True)
        return
    session.run(sys.executable, "-m", "testbed", "build", external=True)
    session.run(sys.executable, "-m", "testbed", "start", external=True)


@nox.session
def nightly(session: nox.Session) -> None:
    """`harness nightly` (harness/nightly.py: the set, the comparisons, the trend, the night's JUnit/JSON), its
    options from the environment: HARNESS_RESULTS (default reports/: keep it between nights, e.g. as a CI cache),
    HARNESS_RUNTIME (local|kubernetes) and HARNESS_K8S_CONTEXT, HARNESS_NIGHTLY="file.yaml=0,other.yaml=1" (instead
    of the shipped set), HARNESS_COMPARE_ARGS (options added to each `harness compare`, e.g. "--allow-different
    node" on CI runners whose host name changes every night). Extra arguments go to `harness nightly`."""
    _system_deps(session)
    _install(session)
    runtime = os.environ.get("HARNESS_RUNTIME", "local")
    context = os.environ.get("HARNESS_K8S_CONTEXT")
    args = ["--results", os.environ.get("HARNESS_RESULTS", str(ROOT / "reports")), "--runtime", runtime]
    args += ["--context", context] if runtime == "kubernetes" and context else []
    args += ["--set", os.environ["HARNESS_NIGHTLY"]] if os.environ.get("HARNESS_NIGHTLY") else []
    # One "--compare-args=..." word: its value starts with "--", which argparse would take for an option of its own.
    compare = os.environ.get("HARNESS_COMPARE_ARGS")
    args += [f"--compare-args={compare}"] if compare else []
    session.run("harness", "nightly", *args, *session.posargs)


@nox.session
def benchmark(session: nox.Session) -> None:
    """The harness against its peers and its limits (fio direct, Prometheus' own sender, avalanche built from
    ../shared/peers/ by scripts/build-avalanche, promtool's ceiling, verification and ledger cost):
    reports/benchmarks/<utc>/report.md. `-- --quick`, `-- --full`."""
    _system_deps(session)
    _install(session)
    session.run("python", "-m", "benchmarks.run", *session.posargs)


@nox.session(name="benchmark-scale")
def benchmark_scale(session: nox.Session) -> None:
    """The harness's own speed at growing series counts (write load, history check, recovery): numbers in a report."""
    _system_deps(session)
    _install(session)
    session.run("python", "benchmarks/scale.py", *session.posargs)


@nox.session(name="benchmark-paths")
def benchmark_paths(session: nox.Session) -> None:
    """The same fio jobs on the local disk, the user-space NFS client and the user-space iSCSI path (root)."""
    _system_deps(session)
    _install(session)
    session.run("python", "benchmarks/data_paths.py", *session.posargs)
