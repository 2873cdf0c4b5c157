"""Shared fixtures for the whole suite, and the hooks that shape it.

- ``@pytest.mark.root(reason=...)``: skipped with "needs root: <reason>" unless the suite runs as root.
- Parallel runs (pytest-xdist, ``--dist loadgroup``, as ``nox -s tests`` runs it): every test is spread over the
  workers except those whose resources one process must own, which run in one worker each (``SERIAL_GROUPS``, by
  path): the local cluster's tests run in three workers, one of them owning what the cluster holds for a whole
  session (one local-path provisioner, one operator, node faults), with ``@pytest.mark.cluster_exclusive`` tests
  alone on the cluster (``tests/k8s/conftest.py``); and the two stored real runs of ``real_runs`` are made once for
  the tests that read them. One rpcbind serves the whole suite
  (``pytest_configure``).
- At the end, one loud line names every group of skipped tests and why, so a green run that skipped the cluster
  (or the browser, or root) says so where nobody can miss it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.proc import Daemon

# A test's group (by the first matching path prefix, relative to tests/): tests of one group run in one worker, in
# file order (pytest_xdist_make_scheduler). Everything else runs wherever a worker is free.
SERIAL_GROUPS: dict[str, str] = {  # the first prefix that matches names the group
    # The cluster's tests in three workers, balanced by their measured times (about 12 minutes each, 2026-12-06).
    # The first owns the session-wide pieces of the cluster: the local-path provisioner, the operator and its CRDs
    # (whose absence test_operator_absent shows), node loss. A test that changes the cluster under everyone
    # (cluster_exclusive) waits for the others' tests to end (tests/k8s/conftest.py).
    "k8s/test_dynamic_class.py": "cluster",
    "k8s/test_operator.py": "cluster",
    "k8s/test_operator_absent.py": "cluster",
    "k8s/test_values_operator.py": "cluster",
    "k8s/test_node_loss.py": "cluster",
    "k8s/test_cleanup_cluster.py": "cluster",
    "k8s/test_kept_server_nfs.py": "cluster",  # added 2026-12-07: the shortest group takes it
    "k8s/test_ceph_csi.py": "cluster",  # 2026-12-07: moved from the longest group (cluster-c) with its third run
    "k8s/test_runtime_kubernetes.py": "cluster-b",
    "k8s/test_scrape_kubernetes.py": "cluster-b",
    "k8s/test_binding_vs_controller.py": "cluster-b",
    "k8s/test_smoke.py": "cluster-b",
    "k8s/test_writer_image.py": "cluster-b",
    "k8s/test_values_dry_run.py": "cluster-b",
    "k8s/": "cluster-c",
    "test_trend.py": "real-runs",
    "test_browser.py": "real-runs",
}


_RPCBIND = pytest.StashKey[tuple["Daemon | None", Path]]()


def group_of(nodeid: str) -> str | None:
    """The serial group of a test by its node id (``tests/k8s/test_x.py::test_y``), or None: it may run anywhere."""
    relative = nodeid.removeprefix("tests/")
    return next((group for prefix, group in SERIAL_GROUPS.items() if relative.startswith(prefix)), None)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with the groups of ``SERIAL_GROUPS``, decided from node ids on the controller.

    xdist's own loadgroup reads ``xdist_group`` marks through a node id suffix its workers write, which pytest 9.2 no
    longer keeps (pytest-dev/pytest-xdist#1386: the tests are then spread as if unmarked). Scheduling by scope, with
    every test its own scope except the groups, needs no mark: the largest scopes (the cluster's) go out first.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SerialGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid) or nodeid

    return SerialGroupScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """One rpcbind for the whole suite (as root, when installed and none listens), started by the process that
    spreads the tests, not by each worker: NFSv3 tests would each start and stop their own on port 111 (it cannot
    move), which tests running side by side must not do under each other. It stops when the suite ends."""
    if hasattr(config, "workerinput") or os.geteuid() != 0 or shutil.which("rpcbind") is None:
        return
    from harness.datapath.servers import start_rpcbind
    from harness.errors import HarnessError

    logs = Path(tempfile.mkdtemp(prefix="harness-tests-rpcbind-"))
    try:
        config.stash[_RPCBIND] = (start_rpcbind(logs), logs)
    except HarnessError as e:  # the NFSv3 tests then start their own, as they do alone: slower, never wrong
        print(f"rpcbind for the suite did not start ({e}); the NFSv3 tests start their own")
        shutil.rmtree(logs, ignore_errors=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    daemon, logs = config.stash.get(_RPCBIND, (None, None))
    if daemon is not None:
        daemon.stop(timeout_s=10.0)
    if logs is not None:
        shutil.rmtree(logs, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = os.geteuid() == 0
    for item in items:
        marker = item.get_closest_marker("root")
        if marker is not None and not root:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "root only")
            item.add_marker(pytest.mark.skip(reason=f"needs root: {reason}"))


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(trylast=True)  # after the slowest-tests list, just before pytest's own short summary and counts
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One line naming every group of skipped tests (by folder or file) with its reasons, loud at the end."""
    skipped: list[pytest.TestReport] = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    groups: dict[str, dict[str, int]] = {}
    for report in skipped:
        path = report.nodeid.split("::", 1)[0]
        where = path.rsplit("/", 1)[0] + "/" if path.count("/") > 1 else path
        reasons = groups.setdefault(where, {})
        reason = _skip_reason(report)
        reasons[reason] = reasons.get(reason, 0) + 1
    parts = []
    for where, reasons in sorted(groups.items(), key=lambda kv: -sum(kv[1].values())):
        said = "; ".join(f"{n} x {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
        parts.append(f"{where} ({sum(reasons.values())}): {said}")
    terminalreporter.write_sep("!", f"SKIPPED {len(skipped)} tests", yellow=True, bold=True)
    terminalreporter.write_line("SKIPPED GROUPS: " + " | ".join(parts), yellow=True, bold=True)


@pytest.fixture(scope="session", autouse=True)
def harness_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every run of the suite reads this harness config, never the user's: no kube context is allowed without
    --context, and the owner is the session's own, so what the suite's runs leave is told from anyone else's (other
    sessions', other engineers') and `harness cleanup --all-mine` in a test touches only this session's runs."""
    path = tmp_path_factory.mktemp("harness-config") / "config.yaml"
    path.write_text(f"owner: harness-tests-{uuid.uuid4().hex[:8]}\n")
    previous = os.environ.get("HARNESS_CONFIG")
    os.environ["HARNESS_CONFIG"] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("HARNESS_CONFIG", None)
        else:
            os.environ["HARNESS_CONFIG"] = previous


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A work directory every user can traverse (mode 0755 under /tmp).

    As root the local runtime runs Prometheus as the scenario's uid (1000), which cannot enter pytest's private
    temp tree (mode 0700, and pytest resets that mode whenever another session starts).
    """
    path = Path(tempfile.mkdtemp(prefix="harness-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def area(tmp_path: Path, public_tmp: Path) -> tuple[Path, Path]:
    """Where a run writes its reports, and its work directory (traversable by Prometheus' uid)."""
    return tmp_path / "reports", public_tmp


# --- trend and browser tests: real stored runs -------------------------------------------------------------------

_TINY_SCENARIO = """\
name: nightly-probe
duration: 3s
storage: {backend: local}
loads:
  tsdb: {series: 50, interval: 1s}
  fio: [{profile: wal-append, runtime: 1s, size: 16Mi}, {profile: randwrite-4k, runtime: 1s, size: 16Mi}]
faults: [{action: sigkill, at: 1s}]
"""


@pytest.fixture(scope="session")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real runs (prometheus, fio, a SIGKILL) of a few seconds each, stored as `harness run` stores them: the
    material the trend and browser tests build nights and reports from. Returns the reports root."""
    import subprocess
    import sys

    reports = tmp_path_factory.mktemp("real-runs") / "reports"
    scenario = reports.parent / "nightly-probe.yaml"
    scenario.write_text(_TINY_SCENARIO)
    work = Path(tempfile.mkdtemp(prefix="harness-test-", dir="/tmp"))
    work.chmod(0o755)
    try:
        for _ in range(2):
            argv = ["run", str(scenario), "--reports", str(reports), "--workdir", str(work)]
            proc = subprocess.run(
                [sys.executable, "-m", "harness.cli", *argv],
                capture_output=True,
                text=True,
                check=False,
                timeout=180,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return reports
