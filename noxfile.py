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


def _bench(session: nox.Session, scenario: str) -> None:
    _system_deps(session)
    _install(session)
    runtime = os.environ.get("HARNESS_RUNTIME", "local")
    # A cluster is used only when named: HARNESS_K8S_CONTEXT names it here (or the harness config allows it).
    context = os.environ.get("HARNESS_K8S_CONTEXT")
    named = ["--context", context] if runtime == "kubernetes" and context else []
    session.run("harness", "run", f"scenarios/{scenario}.yaml", "--runtime", runtime, *named, *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: the demo scenario on the local runtime, ending in reports/demo/<run>/report.html."""
    _system_deps(session)
    _install(session)
    session.run("harness", "run", "scenarios/demo.yaml", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, against the real prometheus and fio binaries (and the other daemons where installed)."""
    _system_deps(session)
    _install(session, "dev")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy strict on harness/, and the import-layer contracts."""
    _install(session, "dev")
    session.run("ruff", "check", "harness", "tests", "noxfile.py")
    session.run("ruff", "format", "--check", "harness", "tests", "noxfile.py")
    session.run("mypy")
    session.run("lint-imports")


@nox.session(name="bench-local")
def bench_local(session: nox.Session) -> None:
    """The local-PV durability scenario (a loop-mounted ext4 image when root)."""
    _bench(session, "local-pv")


@nox.session(name="bench-nfs")
def bench_nfs(session: nox.Session) -> None:
    """The NFS scenario: an embedded NFS-Ganesha mounted by the harness's user-space client (see the README)."""
    _bench(session, "nfs")


@nox.session(name="bench-iscsi")
def bench_iscsi(session: nox.Session) -> None:
    """The iSCSI scenario: an embedded tgt LUN attached by a user-space initiator and a loop device."""
    _bench(session, "iscsi")


@nox.session(venv_backend="none")
def cluster(session: nox.Session) -> None:
    """The local Kubernetes cluster of tests/cluster: build (cached) and start; `nox -s cluster -- stop` stops.

    Any other argument is passed on: `-- status`, `-- env`, `-- start --nodes 1`.
    """
    import sys

    _system_deps(session)
    if session.posargs:
        session.run(sys.executable, "-m", "tests.cluster", *session.posargs, external=True)
        return
    session.run(sys.executable, "-m", "tests.cluster", "build", external=True)
    session.run(sys.executable, "-m", "tests.cluster", "start", external=True)


# Nightly durability runs: each scenario with the exit code it must end with (the emptyDir baseline must lose data, and
# so must a power loss, back to the WAL's last fsync).
NIGHTLY = {"demo": 0, "ephemeral-baseline": 1, "local-pv": 0, "power-loss": 1}


def _trend_report(harness: str, results: Path) -> list[str]:
    """One trend report for all scenarios over the stored nights (results/trend.html, acks from results/acks.yaml);
    a regression at the latest night (exit 1) or a bad ack file (exit 2) fails the night."""
    code = subprocess.run([harness, "trend", str(results), "-o", str(results / "trend.html")], check=False).returncode
    return [] if code == 0 else [f"trend: exit {code} (see {results / 'trend.html'})"]


@nox.session
def nightly(session: nox.Session) -> None:
    """The durability scenarios, each compared with its previous run; archive reports/ afterwards."""
    _system_deps(session)
    _install(session)
    failures = []
    harness = str(Path(session.bin) / "harness")
    for name, expected in NIGHTLY.items():
        code = subprocess.run([harness, "run", f"scenarios/{name}.yaml"], check=False).returncode
        if code != expected:
            failures.append(f"{name}: exit {code}, expected {expected}")
        runs = sorted((ROOT / "reports" / name).glob("*/result.json"))
        if len(runs) >= 2:
            previous, latest = runs[-2].parent, runs[-1].parent
            out = latest / "compare-previous.html"
            subprocess.run([harness, "compare", str(previous), str(latest), "-o", str(out)], check=False)
    failures += _trend_report(harness, ROOT / "reports")
    if failures:
        session.error("; ".join(failures))


@nox.session
def benchmark(session: nox.Session) -> None:
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
