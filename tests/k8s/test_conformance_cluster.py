"""The conformance table's cluster rows (harness/conformance.py): the same shipped files, as shipped, through
``harness nightly --runtime kubernetes`` on the cluster, each ending as its row says; nothing of theirs is left.

A row with a ``pv`` is handed a fresh directory on a node (``--override storage.node=... --override
storage.path=...``, nothing else), with a filesystem of its own mounted there where the row says; the directory
goes afterwards, so the run's data does not outlive the test."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from harness.conformance import CONFORMANCE, LocalPv, Row
from harness.datapath.mounts import create_loop_mount
from harness.scenario.loader import load_scenario
from harness.storage import backend_for
from tests.conformance_night import night_ends_as_the_row_says
from tests.k8s.helpers import assert_nothing_left
from tests.leftovers import ROOT

NODE = "node-1"
OWN_FILESYSTEM_BYTES = 256 << 20  # what disk-full.yaml's image is on the local runtime

# A row that needs an on-demand test-bed component runs in the test that starts it (``TESTBED_TESTS``).
CLUSTER_ROWS = [row for row in CONFORMANCE if row.kubernetes is not None and not row.testbed]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


# Faults that change a node for every pod on it (a cordon, a stopped kubelet: NotReady, unreachable taints): the
# row holds the cluster alone, as tests/k8s/test_node_loss.py does (CI, 2026-12-06: a kubelet_restart beside another
# test's pod on node-1 had that test's doctor refuse the node).
NODE_WIDE = {"reschedule", "node_loss", "kubelet_restart"}


def _param(row: Row) -> Any:
    marks = []
    if row.pv is not None and row.pv.own_filesystem:
        marks.append(pytest.mark.root(reason="a loop-mounted ext4 under the local PV"))
    actions = {f.action for f in load_scenario(ROOT / row.file, _overrides(row)).faults}
    if actions & NODE_WIDE:
        marks.append(pytest.mark.cluster_exclusive)
    return pytest.param(row, id=row.name, marks=marks)


def _overrides(row: Row) -> tuple[str, ...]:
    return LocalPv.overrides(NODE, "/mnt/disks/x") if row.pv is not None else ()


@pytest.fixture
def pv_of(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[LocalPv], tuple[str, ...]]]:
    """``pv_of(row.pv)``: a fresh directory on ``NODE`` (its own ext4 mounted there where the row says) as the
    row's overrides; unmounted and removed at the end. ``node_dir`` only when asked for: it needs the local cluster,
    which a row without a PV does not."""
    with ExitStack() as undo:

        def make(pv: LocalPv) -> tuple[str, ...]:
            node_dir: Callable[[str, str], str] = request.getfixturevalue("node_dir")
            path = Path(node_dir(NODE, f"conformance-{uuid.uuid4().hex[:8]}"))
            undo.callback(shutil.rmtree, path, ignore_errors=True)
            if pv.own_filesystem:
                mount = create_loop_mount(
                    tmp_path / "pv.img", path, filesystem="ext4", size_bytes=OWN_FILESYSTEM_BYTES, direct_io=False
                )
                undo.callback(mount.image.unlink, missing_ok=True)
                undo.callback(mount.unmount)
            return LocalPv.overrides(NODE, str(path))

        yield make


@pytest.mark.parametrize("row", [_param(r) for r in CLUSTER_ROWS])
def test_shipped_scenario_ends_as_its_row_says_on_the_cluster(
    row: Row,
    on_the_cluster: tuple[dict[str, str], tuple[str, ...]],
    api_client: Any,
    tmp_path: Path,
    pv_of: Callable[[LocalPv], tuple[str, ...]],
) -> None:
    from kubernetes import client

    assert row.kubernetes is not None
    overrides = pv_of(row.pv) if row.pv is not None else ()
    scenario = load_scenario(ROOT / row.file, overrides)
    storage = backend_for(scenario.storage)
    pv = storage.planned_volume_name(scenario.storage, scenario.name)
    wanted = storage.class_to_create(scenario.storage)
    # The class the run makes where the cluster lacks it (a local PV's no-provisioner class) must go with the run.
    existing = {sc.metadata.name for sc in client.StorageV1Api(api_client).list_storage_class().items}
    classes = (wanted.name,) if wanted is not None and wanted.name not in existing else ()
    env, args = on_the_cluster
    result = night_ends_as_the_row_says(
        row.file, row.kubernetes, tmp_path / "results", *args, env=env, overrides=overrides
    )
    assert result["runtime"] == "kubernetes"
    for fault in result["faults"]:
        if fault["action"] == "server_restart":
            assert_the_client_is_quoted(scenario.storage.backend, fault["detail"] or "")
    if scenario.storage.backend == "iscsi":  # the doctor read the run's LUN from this host, as on the local runtime
        assert any(f["check"].startswith("iscsi.") for f in result["doctor"]), result["doctor"]
    assert_nothing_left(api_client, result["run_id"], (pv,) if pv else (), classes)


# The storage client's own words after the server came back, as on the local runtime (tests/test_server_restart.py):
# the node's client logged them in its kern.log (the test bed's kubelets: testbed/iscsi_launch.py).
CLIENT_WORDS = {"iscsi": "UNIT_ATTENTION", "nfs": "POLLHUP"}


def assert_the_client_is_quoted(backend: str, detail: str) -> None:
    """A server restart on the cluster says when writes got through again and what the pod's node's storage
    client (the kubelet's mount) logged meanwhile, in its own words."""
    assert "Prometheus answered a remote write again" in detail, detail
    assert "the storage client logged" in detail and "kern.log: " in detail, detail
    assert CLIENT_WORDS[backend] in detail, detail
