"""Issue 24, the killed run whose embedded NFS-Ganesha serves a node: SIGKILLed during its load, the run's Ganesha
does not die with it (the node's NFS client would be left with a dead server under a mounted volume, the kubelet's
unmount racing it): it still runs from the record in the run's work area, with the node's client connected and the
pod's volume mounted. `harness cleanup` deletes the namespace and the PV first, waits for the kubelet's unmount (the
client's connections close), then stops Ganesha, then removes the work area; nothing is left on the host, in any
node or in the cluster. (The iSCSI twin is in test_iscsi_kubelet.py.)"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness.datapath import kept_server
from harness.results.store import load_result
from tests.k8s.helpers import assert_cleaned_objects_then_server, assert_nothing_left, write_scenario
from tests.leftovers import cleanup, left_behind, run_argv, sigkill_during_load

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="the nodes' user-space NFS client needs FUSE"),
]


def test_cleanup_of_a_sigkilled_run_removes_its_cluster_objects_first_and_its_kept_ganesha_last(
    kubeconfig: Path, kube_context: str, api_client: Any, tmp_path: Path, local_cluster: bool
) -> None:
    from kubernetes import client

    if not local_cluster:
        pytest.skip("the embedded Ganesha runs on this host's 127.0.0.1, which only the local cluster's nodes share")
    tag = uuid.uuid4().hex[:8]
    scenario_file = write_scenario(
        tmp_path,
        f"""
version: 1
name: k8s-nfs-killed
duration: 2m
storage:
  backend: nfs
  server: embedded
  embedded: {{owner: "1000:2000", mode: "0755"}}
  claim: {{storage_class: "", size: 1Gi, selector: {{app: nfs-killed-{tag}}}}}
  volume: {{name: harness-nfs-{tag}, labels: {{app: nfs-killed-{tag}}}}}
prometheus: {{security_context: {{run_as_user: 1000, run_as_group: 2000, fs_group: 2000}}}}
loads: {{tsdb: {{series: 100, interval: 1s}}}}
""",
    )
    reports, work = tmp_path / "r", tmp_path / "work"
    work.mkdir()
    env = {"KUBECONFIG": str(kubeconfig)}
    argv = [*run_argv(scenario_file, reports, work), "--runtime", "kubernetes", "--context", kube_context]
    result_file = sigkill_during_load(argv, reports, env)
    run_id = load_result(result_file.parent).run_id
    core = client.CoreV1Api(api_client)
    [pv] = core.list_persistent_volume(label_selector=f"harness/run-id={run_id}").items
    found = next(work.glob(f"*/{kept_server.SERVER_DIR}/{kept_server.RECORD_NAME}"))
    record = kept_server.read(found)
    assert record is not None and record.program == "ganesha.nfsd" and pv.spec.nfs.server == record.listen, record
    time.sleep(2.0)  # what PR_SET_PDEATHSIG would have done, it has done by now
    assert record.alive(), f"the run's Ganesha died with it: {record}"
    # The pod's volume is still mounted on its node (the kubelet's user-space NFS client, whose arguments name the
    # export in the run's work area), connected to that Ganesha.
    assert any("nfs_fuse" in line for line in left_behind(work)), left_behind(work)
    assert kept_server.clients(record), "no node is connected to the kept Ganesha"

    done = cleanup("--run", run_id, "--context", kube_context, "--workdir", str(work), env=env)
    out = done.stdout
    print(out, done.stderr)  # what cleanup said, for the record
    assert done.returncode == 0, out + done.stderr
    assert not record.alive()
    assert_nothing_left(api_client, run_id, (f"harness-nfs-{tag}",))
    assert left_behind(work) == []  # Ganesha, the nodes' NFS clients and their FUSE mounts of its export
    assert list(work.iterdir()) == []
    # The node's NFS client (the kubelet's mount, whose arguments name the export) went with the kubelet's unmount,
    # while Ganesha served it; cleanup never had to signal it (with the server killed first: SIGKILL after 5 s of
    # SIGTERM, stuck on the dead server).
    signalled = [line for line in out.splitlines() if "nfs_fuse" in line and "(had exited)" not in line]
    assert signalled == [], out
    assert_cleaned_objects_then_server(out, run_id, pv.metadata.name, record.describe(), work)
