"""The write load split over the pods of an indexed Job on the local cluster: the pods write to Prometheus through a
Service that follows it across a restart, the harness follows their logs through the API server and merges their
records into one exact ledger; on emptyDir the same shards see the history lost; a writer image without the harness
stops the run as an ERROR, saying which image and how to set another."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.loads.ledger import Ledger
from harness.results.model import Status
from harness.results.store import load_result
from tests.k8s.conftest import LocalPv
from tests.k8s.helpers import assert_nothing_left, harness_run, write_scenario


def _sharded(name: str, storage_yaml: str, faults: str) -> str:
    return f"""
version: 1
name: {name}
duration: 30s
{storage_yaml}loads: {{tsdb: {{series: 2000, batch_series: 500, shards: 3, interval: 1s}}}}
faults: {faults}
"""


@pytest.mark.cluster
@pytest.mark.slow
def test_three_writer_pods_merge_into_one_exact_ledger_through_a_sigkill_on_a_local_pv(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_pv: Callable[[str], LocalPv], writer_image: str
) -> None:
    vol = local_pv("node-1")
    text = _sharded("k8s-shards", vol.storage_yaml(), "[{action: sigkill, at: 12s}]")
    reports = tmp_path / "reports"
    proc = harness_run(write_scenario(tmp_path, text), reports, kubeconfig, HARNESS_K8S_WRITER_IMAGE=writer_image)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = reports.glob("*/*/result.json")
    run_dir = result_file.parent
    result = load_result(run_dir)
    assert result.verdict is Status.PASSED
    assert result.load is not None and result.load.shards == 3
    writers = result.environment.extra["writer shards"]
    assert "3 pod(s) of the indexed Job" in writers and writer_image in writers and "Service" in writers
    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    final = result.durability[-1]
    assert final.acknowledged == result.load.acked_samples
    ledger = Ledger.load(run_dir / "tsdb-ledger.json")
    assert ledger.acknowledged() == result.load.acked_samples
    runs = json.loads((run_dir / "tsdb-ledger.json").read_text())["runs"]
    assert len(runs) == 4 and all(runs)  # 4 batches of 500 series over 3 pods: every batch was written
    assert result.faults[0].first_sample_at_s is not None  # the pods' writes reached the restarted container
    assert_nothing_left(api_client, result.run_id, (vol.pv,), (vol.storage_class,))


@pytest.mark.cluster
@pytest.mark.slow
def test_writer_pods_on_emptydir_see_the_history_lost(
    kubeconfig: Path, api_client: Any, tmp_path: Path, writer_image: str
) -> None:
    text = _sharded("k8s-shards-empty", "storage: {backend: ephemeral}\n", "[{action: restart, at: 12s}]")
    reports = tmp_path / "reports"
    proc = harness_run(write_scenario(tmp_path, text), reports, kubeconfig, HARNESS_K8S_WRITER_IMAGE=writer_image)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [result_file] = reports.glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.FAILED
    after = result.durability[0]
    # The new pod's Service endpoint takes the writes again; what the old pod acknowledged is gone (but for a tick
    # retried into the new pod at most).
    assert after.acknowledged > 0 and after.lost >= after.acknowledged - 2000
    assert_nothing_left(api_client, result.run_id)


@pytest.mark.cluster
def test_a_writer_image_without_the_harness_is_an_error_naming_the_image(
    kubeconfig: Path, api_client: Any, tmp_path: Path
) -> None:
    from testbed import config

    text = _sharded("k8s-shards-noimage", "storage: {backend: ephemeral}\n", "[]")
    reports = tmp_path / "reports"
    # The fio image has no python3: the container cannot start.
    proc = harness_run(write_scenario(tmp_path, text), reports, kubeconfig, HARNESS_K8S_WRITER_IMAGE=config.FIO_IMAGE)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert config.FIO_IMAGE in proc.stderr and "HARNESS_K8S_WRITER_IMAGE" in proc.stderr, proc.stderr
    [result_file] = reports.glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.ERROR
    assert_nothing_left(api_client, result.run_id)
