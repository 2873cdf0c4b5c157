"""Developer and CI entry points. `nox -s demo` is the main job; `nox -s tests` is what CI runs."""

from __future__ import annotations

import os
import shlex
import subprocess
from datetime import UTC, datetime
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


# --- nightly: runs, gates, comparisons (JUnit/JSON for CI) ---------------------------------------------------
# Nightly durability runs: each scenario with the exit code it must end with (the emptyDir baseline must lose data, and
# so must a power loss, back to the WAL's last fsync; I/O errors or a full disk under the WAL leave a torn record that
# the next restart's repair cuts, with what was acknowledged after it: prometheus/prometheus#13027).
# A second writer on the NFS export makes Prometheus refuse writes while its files are chowned, but loses nothing it
# acknowledged: 0.
NIGHTLY = {
    "scenarios/demo.yaml": 0,
    "scenarios/ephemeral-baseline.yaml": 1,
    "scenarios/local-pv.yaml": 0,
    "scenarios/power-loss.yaml": 1,
    "scenarios/io-errors.yaml": 1,
    "scenarios/io-latency.yaml": 0,
    "scenarios/disk-full.yaml": 1,
    # The embedded server stops for 15 s and comes back: the clients hold or retry the writes, nothing acknowledged
    # is lost (exit 1 would be a finding: samples lost or Prometheus not back).
    "scenarios/nfs-server-restart.yaml": 0,
    "scenarios/iscsi-server-restart.yaml": 0,
    "scenarios/nfs-second-writer.yaml": 0,
}


def _nightly_set() -> dict[str, int]:
    """NIGHTLY, or HARNESS_NIGHTLY="file.yaml=0,other.yaml=1" (e.g. a quick set for trying the gate itself); a
    file's stem must be its scenario's name (its runs are found under <results>/<name>/)."""
    spec = os.environ.get("HARNESS_NIGHTLY")
    if not spec:
        return NIGHTLY
    pairs = [item.rsplit("=", 1) for item in spec.split(",") if item.strip()]
    return {path.strip(): int(code) for path, code in pairs}


# Tonight is compared with this many earlier runs of its scenario, pooled: one broken or unreadable night does not
# leave the comparison without a baseline, and nights that disagree among themselves make a metric "unstable".
BASELINE_RUNS = 3


def _runs(results: Path, name: str) -> list[Path]:
    """The scenario's run directories, oldest first (their names start with the UTC start time)."""
    return sorted(p.parent for p in (results / name).glob("*/result.json"))


@nox.session
def nightly(session: nox.Session) -> None:
    """The durability scenarios, each compared with its previous runs; fails on a scenario ending otherwise than it
    must and on a regression. HARNESS_RUNTIME (local|kubernetes) and HARNESS_K8S_CONTEXT pick where; results stay in
    HARNESS_RESULTS (default reports/: keep it between nights, e.g. as a CI cache) with this night's JUnit and JSON
    in <results>/nightly/<utc>/; HARNESS_COMPARE_ARGS adds options to each `harness compare`."""
    _system_deps(session)
    _install(session)
    runtime = os.environ.get("HARNESS_RUNTIME", "local")
    context = os.environ.get("HARNESS_K8S_CONTEXT")
    named = ["--context", context] if runtime == "kubernetes" and context else []
    results = Path(os.environ.get("HARNESS_RESULTS", ROOT / "reports")).resolve()
    night = results / "nightly" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    night.mkdir(parents=True, exist_ok=True)
    harness = str(Path(session.bin) / "harness")
    # e.g. "--allow-different node" on CI runners whose host name changes every night
    compare_args = shlex.split(os.environ.get("HARNESS_COMPARE_ARGS", ""))
    failures = []
    for scenario, expected in _nightly_set().items():
        name = Path(scenario).stem
        before = set(_runs(results, name))
        run = [harness, "run", scenario, "--runtime", runtime, *named, "--reports", str(results)]
        verdict = "PASSED" if expected == 0 else "FAILED"
        ci = ["--junit", str(night / f"{name}-run.xml"), "--json", str(night / f"{name}-run.json")]
        code = subprocess.run([*run, *ci, "--expect-verdict", verdict], check=False, cwd=ROOT).returncode
        if code != expected:
            failures.append(f"{name}: exit {code}, expected {expected}")
        new = [r for r in _runs(results, name) if r not in before]
        if not new:
            continue
        latest = new[-1]
        previous = [r for r in _runs(results, name) if r < latest][-BASELINE_RUNS:]
        if not previous:
            continue
        out = latest / "compare-previous.html"
        compare = [harness, "compare", "--baseline", *map(str, previous), "--candidate", str(latest), "-o", str(out)]
        ci = ["--junit", str(night / f"{name}-compare.xml"), "--json", str(night / f"{name}-compare.json")]
        code = subprocess.run([*compare, *ci, *compare_args], check=False, cwd=ROOT).returncode
        if code == 1:
            failures.append(f"{name}: regression against the previous {len(previous)} run(s), see {out}")
        elif code != 0:
            failures.append(f"{name}: compare could not run (exit {code})")
    failures += _nightly_trend(session, results, night)
    if failures:
        session.error("; ".join(failures))


def _nightly_trend(session: nox.Session, results: Path, night: Path) -> list[str]:
    """One trend report over all scenarios' histories in `results` (`harness trend`: change points, the ack file
    `results`/acks.yaml), written next to this night's JUnit/JSON in `night`. A change for the worse that tonight is the
    first to confirm, not acknowledged (exit 1), or a bad ack file (exit 2) fails the night."""
    out = night / "trend.html"
    harness = str(Path(session.bin) / "harness")
    code = subprocess.run([harness, "trend", str(results), "-o", str(out)], check=False, cwd=ROOT).returncode
    return [] if code == 0 else [f"trend: exit {code}, see {out}"]


# --- end nightly -------------------------------------------------------------------------------------------------


@nox.session
def benchmark(session: nox.Session) -> None:
    """The harness against its peers and its limits (fio direct, Prometheus' own sender, avalanche when given,
    promtool's ceiling, verification and ledger cost): reports/benchmarks/<utc>/report.md. `-- --quick`, `-- --full`."""
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
