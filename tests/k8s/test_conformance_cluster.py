"""The conformance table's cluster rows (harness/conformance.py): the same shipped files, as shipped, through
``harness nightly --runtime kubernetes`` on the cluster, each ending as its row says; nothing of theirs is left."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness.conformance import CONFORMANCE, Row
from tests.conformance_night import night_ends_as_the_row_says
from tests.k8s.helpers import assert_nothing_left

CLUSTER_ROWS = [row for row in CONFORMANCE if row.kubernetes is not None]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.mark.parametrize("row", CLUSTER_ROWS, ids=[r.name for r in CLUSTER_ROWS])
def test_shipped_scenario_ends_as_its_row_says_on_the_cluster(
    row: Row, kubeconfig: Path, kube_context: str, api_client: Any, tmp_path: Path
) -> None:
    assert row.kubernetes is not None
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    args = ("--runtime", "kubernetes", "--context", kube_context)
    result = night_ends_as_the_row_says(row.file, row.kubernetes, tmp_path / "results", *args, env=env)
    assert result["runtime"] == "kubernetes"
    assert_nothing_left(api_client, result["run_id"])
