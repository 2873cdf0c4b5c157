"""``harness values``: the PV and StorageClass manifests it prints are accepted by a real API server (a server-side
dry run: admission and validation run, nothing is stored), and one the API server rejects fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.errors import InfraError
from harness.kube.api import KubeApi
from tests.test_values import CLUSTER_SETTINGS, SCENARIOS, documents, flat

pytestmark = pytest.mark.cluster


@pytest.fixture
def api(kubeconfig: Path, kube_context: str) -> Iterator[KubeApi]:
    api = KubeApi(str(kubeconfig), context=kube_context)
    try:
        yield api
    finally:
        api.close()


def printed(
    capsys: pytest.CaptureFixture[str], name: str, *, tag: str, api: KubeApi, kubeconfig: Path, context: str
) -> tuple[int, str]:
    """``harness values --only manifests`` for a shipped scenario, reading this cluster, with names of this test's
    own (the dry run of an object whose name exists is refused as AlreadyExists, whatever its fields)."""
    node = api.nodes()[0].name
    settings = [s.replace("node-2", node) for s in CLUSTER_SETTINGS[name]]
    settings += [f"storage.volume.name=values-{tag}", f"storage.claim.storage_class=values-{tag}"]
    argv = ["values", str(SCENARIOS / f"{name}.yaml"), "--only", "manifests", "--namespace", tag]
    argv += ["--kubeconfig", str(kubeconfig), "--context", context]
    code = main([*argv, *(a for s in settings for a in ("--set", s))])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("name", ["local-pv", "nfs", "iscsi"])
def test_the_printed_manifests_pass_a_server_side_dry_run(
    capsys: pytest.CaptureFixture[str], api: KubeApi, kubeconfig: Path, *, kube_context: str, namespace: str, name: str
) -> None:
    code, out = printed(capsys, name, tag=namespace, api=api, kubeconfig=kubeconfig, context=kube_context)
    assert code in (0, 1), out  # 1: the doctor cannot reach the NFS server / iSCSI target named (none runs there)
    docs = documents(out)
    assert "PersistentVolume" in [d["kind"] for d in docs]
    for doc in docs:
        api.create(doc, dry_run=True)
    for doc in docs:
        assert not api.exists(doc["kind"], doc["metadata"]["name"])  # a dry run stores nothing
    assert f"binds pv/values-{namespace}" in flat(out)  # the doctor read the cluster and still sees it bind
    if name == "local-pv":
        assert [d["kind"] for d in docs] == ["StorageClass", "PersistentVolume"]
        assert "the cluster has no StorageClass of this name" in flat(out)


def test_a_manifest_the_api_server_rejects_fails_the_dry_run(
    capsys: pytest.CaptureFixture[str], api: KubeApi, kubeconfig: Path, kube_context: str, namespace: str
) -> None:
    _, out = printed(capsys, "local-pv", tag=namespace, api=api, kubeconfig=kubeconfig, context=kube_context)
    [pv] = [d for d in documents(out) if d["kind"] == "PersistentVolume"]
    broken: dict[str, Any] = {**pv, "spec": {**pv["spec"], "accessModes": ["ReadWriteSometimes"]}}
    with pytest.raises(InfraError, match="Unsupported value"):
        api.create(broken, dry_run=True)
    api.create(pv, dry_run=True)  # the same PV as printed passes
