"""The cluster smoke test: Prometheus from the local image on a local PersistentVolume, bound by the real PV
controller, survives its pod being deleted (the new pod mounts the same volume and still has the old samples)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testbed import config
from tests.k8s.helpers import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

READY_TIMEOUT_S = 180


def _pod_ready(pod: Any) -> bool:
    conditions = (pod.status and pod.status.conditions) or []
    return pod.metadata.deletion_timestamp is None and any(c.type == "Ready" and c.status == "True" for c in conditions)


def _prom_query(api_client: Any, namespace: str, pod: str, query: str) -> list[dict[str, Any]]:
    """An instant query through the API server's pod proxy (no Service, no kube-proxy needed)."""
    method, url, headers, body, post = api_client.param_serialize(
        "GET",
        f"/api/v1/namespaces/{namespace}/pods/{pod}:9090/proxy/api/v1/query",
        query_params=[("query", query)],
        auth_settings=["BearerToken"],
    )
    resp = api_client.call_api(method, url, header_params=headers, body=body, post_params=post, _request_timeout=10)
    resp.read()
    result = json.loads(resp.data)
    assert result["status"] == "success", result
    return list(result["data"]["result"])


def _raw_sample_times(api_client: Any, namespace: str, pod: str) -> list[float]:
    result = _prom_query(api_client, namespace, pod, 'up{job="prometheus"}[1h]')
    return sorted(float(t) for series in result for t, _v in series["values"])


def test_nodes_ready(api_client: Any) -> None:
    from kubernetes import client

    nodes = client.CoreV1Api(api_client).list_node().items
    ready = [
        n.metadata.name for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
    ]
    assert ready, f"no Ready node among {[n.metadata.name for n in nodes]}"


def test_prometheus_on_local_pv_survives_pod_deletion(
    api_client: Any, namespace: str, node_dir: Callable[[str, str], str], local_cluster: bool
) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    storage = client.StorageV1Api(api_client)

    # The last node: with two nodes this puts the pod on node-2 through the PV's nodeAffinity, not by chance.
    node = sorted(n.metadata.name for n in core.list_node().items)[-1]
    path = node_dir(node, f"{namespace}-prom")
    sc_name, pv_name = f"local-{namespace}", f"local-pv-{namespace}"

    storage.create_storage_class(
        client.V1StorageClass(
            metadata=client.V1ObjectMeta(name=sc_name),
            provisioner="kubernetes.io/no-provisioner",
            volume_binding_mode="WaitForFirstConsumer",
        )
    )
    core.create_persistent_volume(
        client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=pv_name),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": "1Gi"},
                volume_mode="Filesystem",
                access_modes=["ReadWriteOnce"],
                persistent_volume_reclaim_policy="Retain",
                storage_class_name=sc_name,
                local=client.V1LocalVolumeSource(path=path),
                node_affinity=client.V1VolumeNodeAffinity(
                    required=client.V1NodeSelector(
                        node_selector_terms=[
                            client.V1NodeSelectorTerm(
                                match_expressions=[
                                    client.V1NodeSelectorRequirement(
                                        key="kubernetes.io/hostname", operator="In", values=[node]
                                    )
                                ]
                            )
                        ]
                    )
                ),
            ),
        )
    )
    try:
        labels = {"app": "prometheus"}
        core.create_namespaced_service(
            namespace,
            client.V1Service(
                metadata=client.V1ObjectMeta(name="prometheus"),
                spec=client.V1ServiceSpec(
                    cluster_ip="None", selector=labels, ports=[client.V1ServicePort(name="web", port=9090)]
                ),
            ),
        )
        container = client.V1Container(
            name="prometheus",
            image=config.PROMETHEUS_IMAGE,
            image_pull_policy="Never",
            args=[
                "--config.file=/etc/prometheus/prometheus.yml",
                "--storage.tsdb.path=/prometheus",
                "--web.listen-address=:9090",
            ],
            ports=[client.V1ContainerPort(name="web", container_port=9090)],
            readiness_probe=client.V1Probe(
                http_get=client.V1HTTPGetAction(path="/-/ready", port=9090), period_seconds=2, failure_threshold=30
            ),
            volume_mounts=[client.V1VolumeMount(name="data", mount_path="/prometheus")],
            security_context=client.V1SecurityContext(run_as_user=0),
        )
        apps.create_namespaced_stateful_set(
            namespace,
            client.V1StatefulSet(
                metadata=client.V1ObjectMeta(name="prometheus"),
                spec=client.V1StatefulSetSpec(
                    service_name="prometheus",
                    replicas=1,
                    selector=client.V1LabelSelector(match_labels=labels),
                    template=client.V1PodTemplateSpec(
                        metadata=client.V1ObjectMeta(labels=labels),
                        spec=client.V1PodSpec(
                            containers=[container],
                            automount_service_account_token=False,
                            termination_grace_period_seconds=30,
                        ),
                    ),
                    volume_claim_templates=[
                        client.V1PersistentVolumeClaim(
                            metadata=client.V1ObjectMeta(name="data"),
                            spec=client.V1PersistentVolumeClaimSpec(
                                access_modes=["ReadWriteOnce"],
                                storage_class_name=sc_name,
                                resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
                            ),
                        )
                    ],
                ),
            ),
        )

        first = wait_for(
            core.list_namespaced_pod, _pod_ready, timeout=READY_TIMEOUT_S, what="prometheus-0 Ready",
            namespace=namespace, field_selector="metadata.name=prometheus-0",
        )  # fmt: skip
        assert first.spec.node_name == node

        # The claim was bound by the PV controller to our PV (WaitForFirstConsumer: only once the pod was scheduled).
        pvc = core.read_namespaced_persistent_volume_claim("data-prometheus-0", namespace)
        assert pvc.status.phase == "Bound"
        assert pvc.spec.volume_name == pv_name
        pv = core.read_persistent_volume(pv_name)
        assert pv.status.phase == "Bound"
        assert pv.spec.claim_ref.name == "data-prometheus-0"

        # Wait until Prometheus has scraped itself a few times, then remember the oldest raw sample.
        deadline = time.monotonic() + 60
        times: list[float] = []
        while time.monotonic() < deadline:
            times = _raw_sample_times(api_client, namespace, "prometheus-0")
            if len(times) >= 3:
                break
            time.sleep(1)
        assert len(times) >= 3, f"Prometheus scraped itself only {len(times)} times in 60 s"
        oldest_before = times[0]
        if local_cluster:
            assert (Path(path) / "wal").is_dir(), f"no WAL in the volume's directory {path}"

        core.delete_namespaced_pod("prometheus-0", namespace)
        second = wait_for(
            core.list_namespaced_pod,
            lambda p: p.metadata.uid != first.metadata.uid and _pod_ready(p),
            timeout=READY_TIMEOUT_S,
            what="a new prometheus-0 Ready after deleting the first",
            namespace=namespace,
            field_selector="metadata.name=prometheus-0",
        )
        assert second.spec.node_name == node
        assert core.read_namespaced_persistent_volume_claim("data-prometheus-0", namespace).spec.volume_name == pv_name
        claims = [v.persistent_volume_claim.claim_name for v in second.spec.volumes if v.persistent_volume_claim]
        assert claims == ["data-prometheus-0"]

        after = _raw_sample_times(api_client, namespace, "prometheus-0")
        assert after, "the new Prometheus has no samples at all"
        assert after[0] <= oldest_before, (
            f"the samples scraped before the pod was deleted are gone: oldest now {after[0]}, was {oldest_before}"
        )
    finally:
        apps.delete_namespaced_stateful_set("prometheus", namespace, propagation_policy="Foreground")
        core.delete_persistent_volume(pv_name)
        storage.delete_storage_class(sc_name)


def _wait_pod_phase(core: Any, namespace: str, name: str, phases: set[str], timeout_s: float) -> Any:
    return wait_for(
        core.list_namespaced_pod,
        lambda p: p.status is not None and p.status.phase in phases,
        timeout=timeout_s,
        what=f"pod {name} in phase {sorted(phases)}",
        namespace=namespace,
        field_selector=f"metadata.name={name}",
    )


def test_fio_image_runs_and_logs_come_back(api_client: Any, namespace: str) -> None:
    """The local fio image runs a real job in a pod; its JSON comes back through the API server from the kubelet."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    node = sorted(n.metadata.name for n in core.list_node().items)[0]
    size = 8 * 1024 * 1024
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="fio"),
            spec=client.V1PodSpec(
                node_name=node,
                restart_policy="Never",
                automount_service_account_token=False,
                containers=[
                    client.V1Container(
                        name="fio",
                        image=config.FIO_IMAGE,
                        image_pull_policy="Never",
                        command=["/usr/bin/fio"],
                        args=[
                            "--name=smoke",
                            "--directory=/data",
                            f"--size={size}",
                            "--bs=4k",
                            "--rw=write",
                            "--ioengine=psync",
                            "--output-format=json",
                        ],
                        volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")],
                    )
                ],
                volumes=[client.V1Volume(name="data", empty_dir=client.V1EmptyDirVolumeSource())],
            ),
        ),
    )
    pod = _wait_pod_phase(core, namespace, "fio", {"Succeeded", "Failed"}, READY_TIMEOUT_S)
    log = core.read_namespaced_pod_log("fio", namespace)
    assert pod.status.phase == "Succeeded", log
    report = json.loads(log[log.index("{") :])
    assert report["jobs"][0]["write"]["io_bytes"] == size


def test_pods_reach_each_other_across_nodes_and_through_a_service(
    api_client: Any, namespace: str, local_cluster: bool
) -> None:
    """Prometheus on the first node scrapes Prometheus on the last node, by pod IP (bridge to bridge through the
    host) and by a ClusterIP Service (kube-proxy's iptables rules)."""
    import urllib.request

    from kubernetes import client

    core = client.CoreV1Api(api_client)
    names = sorted(n.metadata.name for n in core.list_node().items)
    first, last = names[0], names[-1]

    def prometheus(name: str, node: str, config_map: str | None) -> client.V1Pod:
        mounts, volumes, args = [], [], ["--storage.tsdb.path=/prometheus", "--web.listen-address=:9090"]
        if config_map:
            mounts = [client.V1VolumeMount(name="config", mount_path="/config")]
            volumes = [client.V1Volume(name="config", config_map=client.V1ConfigMapVolumeSource(name=config_map))]
            args.append("--config.file=/config/prometheus.yml")
        else:
            args.append("--config.file=/etc/prometheus/prometheus.yml")
        return client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
            spec=client.V1PodSpec(
                node_name=node,
                automount_service_account_token=False,
                containers=[
                    client.V1Container(
                        name="prometheus",
                        image=config.PROMETHEUS_IMAGE,
                        image_pull_policy="Never",
                        args=args,
                        volume_mounts=mounts,
                        readiness_probe=client.V1Probe(
                            http_get=client.V1HTTPGetAction(path="/-/ready", port=9090), period_seconds=2
                        ),
                    )
                ],
                volumes=volumes,
            ),
        )

    core.create_namespaced_pod(namespace, prometheus("target", last, None))
    service = core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="target"),
            spec=client.V1ServiceSpec(selector={"app": "target"}, ports=[client.V1ServicePort(port=9090)]),
        ),
    )
    cluster_ip = service.spec.cluster_ip
    target = wait_for(
        core.list_namespaced_pod, _pod_ready, timeout=READY_TIMEOUT_S, what="pod target Ready",
        namespace=namespace, field_selector="metadata.name=target",
    )  # fmt: skip
    scrape = (
        "global: {scrape_interval: 2s}\n"
        "scrape_configs:\n"
        f"  - job_name: pod\n    static_configs: [{{targets: ['{target.status.pod_ip}:9090']}}]\n"
        f"  - job_name: service\n    static_configs: [{{targets: ['{cluster_ip}:9090']}}]\n"
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="scraper"), data={"prometheus.yml": scrape}),
    )
    core.create_namespaced_pod(namespace, prometheus("scraper", first, "scraper"))
    wait_for(
        core.list_namespaced_pod, _pod_ready, timeout=READY_TIMEOUT_S, what="pod scraper Ready",
        namespace=namespace, field_selector="metadata.name=scraper",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    up: dict[str, str] = {}
    while time.monotonic() < deadline:
        up = {r["metric"]["job"]: r["value"][1] for r in _prom_query(api_client, namespace, "scraper", "up")}
        if up == {"pod": "1", "service": "1"}:
            break
        time.sleep(1)
    assert up == {"pod": "1", "service": "1"}, (
        f"from {first}: pod {target.status.pod_ip} and service {cluster_ip} on {last}: up = {up}"
    )
    if local_cluster:  # this machine is every node's host: the Service answers here too
        with urllib.request.urlopen(f"http://{cluster_ip}:9090/-/ready", timeout=5) as resp:
            assert resp.status == 200
