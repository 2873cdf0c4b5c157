"""Every shipped scenario, as shipped, ends as its row of the conformance table says (harness/conformance.py).

Each local row runs through ``harness nightly --set FILE=CODE`` itself, so the nightly path is what proves the
files: the night must pass (the run's exit code is the row's), and the stored run's checks must be exactly the row's
checks with the row's statuses. A file in ``scenarios/`` without a row, or a row without its file, fails the suite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.conformance import CONFORMANCE, TESTBED_TESTS, LocalPv, Row, nightly_set
from harness.nightly import NIGHTLY
from harness.refusals import refuse_faults
from harness.runtime import refuse_unsupported
from harness.scenario.loader import load_scenario
from tests.cli import harness_cli
from tests.conformance_night import night_ends_as_the_row_says
from tests.leftovers import ROOT

LOCAL_ROWS = [row for row in CONFORMANCE if row.local is not None]
NOT_LOCAL_ROWS = [row for row in CONFORMANCE if row.local is None]
CLUSTER_ROWS = [row for row in CONFORMANCE if row.kubernetes is not None]


def test_every_scenario_file_has_exactly_one_row() -> None:
    shipped = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "scenarios").glob("*.yaml"))
    tabled = [row.file for row in CONFORMANCE]
    assert len(tabled) == len(set(tabled)), "a file has two rows"
    assert sorted(tabled) == shipped, "scenarios/ and harness/conformance.py disagree: add or remove the row"
    for row in CONFORMANCE:
        assert row.local is not None or row.why, f"{row.file}: why it does not run on the local runtime"
        assert row.kubernetes is not None or row.why_not_kubernetes, f"{row.file}: why it has no cluster row"
        assert row.kubernetes is None or not row.why_not_kubernetes, f"{row.file}: has a cluster row and a why not"
        assert row.pv is None or row.kubernetes is not None, f"{row.file}: a PV for a cluster row it does not have"
        assert not row.testbed or row.testbed in TESTBED_TESTS, f"{row.file}: no test starts {row.testbed}"
        assert not row.testbed or row.kubernetes is not None, f"{row.file}: needs {row.testbed} for no cluster row"


@pytest.mark.parametrize("row", CLUSTER_ROWS, ids=[r.name for r in CLUSTER_ROWS])
def test_a_cluster_row_is_handed_only_a_node_and_a_path_and_the_kubernetes_runtime_takes_it(row: Row) -> None:
    """What tests/k8s/test_conformance_cluster.py hands each row is all the file lacks for the cluster: with it the
    file validates and the kubernetes runtime refuses nothing of it (checked here, without a cluster)."""
    overrides = LocalPv.overrides("node-1", "/mnt/disks/x") if row.pv is not None else ()
    assert all(o.startswith(("storage.node=", "storage.path=")) for o in overrides)
    scenario = load_scenario(ROOT / row.file, overrides)
    refuse_unsupported("kubernetes", scenario)
    refuse_faults("kubernetes", scenario)


def test_the_nightly_set_is_the_tables_nightly_rows() -> None:
    assert nightly_set() == NIGHTLY
    assert NIGHTLY["scenarios/ephemeral-baseline.yaml"] == 1, "the emptyDir baseline must lose its history"


@pytest.mark.slow
@pytest.mark.root(reason="the shipped scenarios mount images, serve NFS and iSCSI and chown as root")
@pytest.mark.parametrize("row", LOCAL_ROWS, ids=[r.name for r in LOCAL_ROWS])
def test_shipped_scenario_ends_as_its_row_says_on_the_local_runtime(row: Row, tmp_path: Path) -> None:
    assert row.local is not None
    night_ends_as_the_row_says(row.file, row.local, tmp_path / "results")


@pytest.mark.parametrize("row", NOT_LOCAL_ROWS, ids=[r.name for r in NOT_LOCAL_ROWS])
def test_a_file_that_cannot_run_locally_is_refused_there_before_anything_starts(row: Row, tmp_path: Path) -> None:
    """As shipped, on the local runtime: exit 2 with one line saying why, no traceback, nothing stored."""
    run = harness_cli("run", row.file, "--runtime", "local", "--reports", str(tmp_path / "reports")).expect(2)
    assert "Traceback" not in run.output and run.result_files == [], run.output
    assert run.stderr.startswith("error: "), run.output
