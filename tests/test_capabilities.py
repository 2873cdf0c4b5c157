"""Capabilities as objects (``harness.capabilities``): what a fault needs is a type, what a runtime can hand out a set
of types, and the sentence that refuses a run comes from the capability itself (or the storage it asks)."""

from __future__ import annotations

from typing import Any

import pytest

from harness.capabilities import Capability, refusal
from harness.capabilities.ceph import CephClientControl, CephOsdControl
from harness.capabilities.kubelet import KubeletControl
from harness.capabilities.nodes import NodeLifecycle
from harness.capabilities.storage_server import ServerControl
from harness.errors import InfraError
from harness.faults import injectors
from harness.runtime import runtime_offers
from harness.runtime.local import LocalRuntime
from harness.scenario.model import Scenario

KUBELET = {"stop": ["true"], "start": ["true"]}


def scenario(storage: dict[str, Any], *faults: dict[str, Any]) -> Scenario:
    return Scenario.model_validate({"name": "t", "duration": "1m", "storage": storage, "faults": list(faults)})


def test_every_fault_need_is_offered_by_some_runtime() -> None:
    offered = runtime_offers("local") | runtime_offers("kubernetes")
    for action, injector in injectors().items():
        assert injector.needs <= offered, f"{action} needs {injector.needs - offered}, which no runtime hands out"
        for kind in injector.needs:
            assert issubclass(kind, Capability) and kind.does, kind


def test_the_local_runtime_refuses_what_it_has_not_in_the_capabilitys_own_words() -> None:
    s = scenario({"backend": "ephemeral"}, {"action": "kubelet_restart", "at": "5s", "kubelet_control": KUBELET})
    why = refusal({KubeletControl}, "local", runtime_offers("local"), s)
    assert why is not None and "stop and start the kubelet" in why and "no kubelet" in why
    why = refusal({NodeLifecycle}, "local", runtime_offers("local"), s)
    assert why is not None and "stop and start nodes" in why and "no nodes" in why
    assert refusal({KubeletControl, NodeLifecycle}, "kubernetes", runtime_offers("kubernetes"), s) is None


def test_a_storage_given_capability_is_refused_by_the_storage() -> None:
    """A server the run did not start is never stopped: the backend says so, on either runtime."""
    mine = scenario({"backend": "nfs", "server": "embedded"})
    theirs = scenario({"backend": "nfs", "server": "10.0.0.1", "export": "/srv"})
    assert refusal({ServerControl}, "local", runtime_offers("local"), mine) is None
    why = refusal({ServerControl}, "local", runtime_offers("local"), theirs)
    assert why is not None and "never stops a server it did not start" in why
    why = refusal({ServerControl}, "kubernetes", runtime_offers("kubernetes"), theirs)
    assert why is not None and "never stops a server it did not start" in why


def test_the_ceph_faults_are_refused_by_their_capabilities_where_the_storage_does_not_give_them() -> None:
    """ceph_osd_down stops only an OSD of the cluster the run started; ceph_client_crash needs a Ceph client of the
    run's. Each says so in its capability's words."""
    embedded = {"backend": "rbd", "monitors": "embedded", "pool": "rbd", "size": "1Gi"}
    named = {**embedded, "monitors": "10.0.0.1:6789", "keyring": "/etc/ceph/k"}
    for kind, fault in ((CephOsdControl, "ceph_osd_down"), (CephClientControl, "ceph_client_crash")):
        assert (
            refusal({kind}, "local", runtime_offers("local"), scenario(embedded, {"action": fault, "at": "5s"})) is None
        )
    why = refusal({CephOsdControl}, "local", runtime_offers("local"), scenario(named))
    assert why is not None and "stop and start an OSD" in why and "never a daemon of someone else's cluster" in why
    assert refusal({CephClientControl}, "local", runtime_offers("local"), scenario(named)) is None
    why = refusal({CephClientControl}, "local", runtime_offers("local"), scenario({"backend": "ephemeral"}))
    assert why is not None and "no Ceph client under Prometheus" in why


def test_ceph_client_crash_on_a_cluster_needs_a_ceph_csi_cephfs_class_and_the_node_plugins_restart_command() -> None:
    """On a cluster the client is ceph-csi's node plugin's: the class must be named as ceph-csi's CephFS driver's
    (upstream's or Rook's name) and the fault must say how the plugin restarts; on the run's own client (cephfs,
    rbd) that command has no place."""
    restart = ["kubectl", "delete", "pod", "-l", "app=csi-cephfsplugin", "--field-selector", "spec.nodeName={node}"]
    crash = {"action": "ceph_client_crash", "at": "5s", "node_plugin_restart": restart}
    dynamic = {"backend": "dynamic", "storage_class": "cephfs"}
    offers = runtime_offers("kubernetes")
    why = refusal({CephClientControl}, "kubernetes", offers, scenario(dynamic, crash))
    assert why is not None and "must name ceph-csi's CephFS driver" in why and "not nothing" in why
    rbd_class = {**dynamic, "provisioner": "rbd.csi.ceph.com"}
    why = refusal({CephClientControl}, "kubernetes", offers, scenario(rbd_class, crash))
    assert why is not None and "not rbd.csi.ceph.com" in why
    for driver in ("cephfs.csi.ceph.com", "rook-ceph.cephfs.csi.ceph.com"):
        cephfs_class = {**dynamic, "provisioner": driver}
        assert refusal({CephClientControl}, "kubernetes", offers, scenario(cephfs_class, crash)) is None
        bare = {"action": "ceph_client_crash", "at": "5s"}
        why = refusal({CephClientControl}, "kubernetes", offers, scenario(cephfs_class, bare))
        assert why is not None and "give it node_plugin_restart" in why
    own = {"backend": "cephfs", "monitors": "embedded"}
    why = refusal({CephClientControl}, "local", runtime_offers("local"), scenario(own, crash))
    assert why is not None and "drop node_plugin_restart" in why


def test_a_capability_not_made_for_the_run_is_a_harness_error(tmp_path: Any) -> None:
    """The runtime makes what the run's faults need, nothing else: asking for more is the harness's bug."""
    s = scenario({"backend": "ephemeral"})
    rt = LocalRuntime(s.prometheus, s.storage, run_id="t", workdir=tmp_path, logs_dir=tmp_path / "logs")
    with pytest.raises(InfraError, match="not prepared to stop and start the storage server"):
        rt.capability(ServerControl)
