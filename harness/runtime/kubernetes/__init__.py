"""The kubernetes runtime: Prometheus deployed in a cluster the way kube-prometheus-stack's operator deploys it, and
the runtime's primitives (delete the pod, cordon, scale, reinstall) played on the real objects.

A run gets a namespace of its own (``harness-<run_id>``) holding a ConfigMap with the generated config and a
one-replica StatefulSet ``prometheus-<scenario>`` whose volumeClaimTemplate ``prometheus-<scenario>-db`` makes the
operator's claim name; the storage backend plans the PersistentVolume (and any StorageClass it needs) the doctor
simulated. Everything carries the managed-by and run-id labels, and ``stop`` deletes exactly what ``start``
created, each registered before its create call: a PV or StorageClass that existed before is never touched. The
manifests are built by ``harness.runtime.manifests``; ``harness.kube`` makes the calls. With ``prometheus.deploy:
operator`` a Prometheus resource takes the place of the ConfigMap and StatefulSet, and a running prometheus-operator
makes a StatefulSet of the same name (``harness.runtime.deployments``): everything else acts on its pod unchanged.

The package, top to bottom (an import-linter layers contract holds it):

- ``runtime``: ``KubernetesRuntime``, the ``Runtime`` interface as a thin front composing the modules below, and
  ``refuse_unsupported``;
- ``pods``: the pod tracker, the named states behind ``wait_recovered`` (what was done to the pod, what counts as
  Prometheus back), the recovery stages and Prometheus' logs;
- ``resources``: what the run creates and deletes (namespace, PV, class, claim) with its ownership;
- ``reach``: how this host reaches Prometheus' port (the pod IP or the API server's pod proxy).

The capabilities it hands out to faults (signal, nodes, the kubelet, the fault layer, the volume fill, the export)
are in ``harness.runtime.kube_capabilities``; the pod gets a sidecar only for those a run's faults need.

Settings that describe the harness host and cluster, not the scenario, come as a ``harness.settings.Settings`` (the
CLI reads them from the environment; ``harness.settings.VARIABLES`` says what each means): how to reach the pod
(``HARNESS_K8S_REACH``), the tools, fio and writer images (``HARNESS_K8S_TOOLS_IMAGE``, ``HARNESS_K8S_FIO_IMAGE``,
``HARNESS_K8S_WRITER_IMAGE``) and, in operator mode, how long the operator gets (``HARNESS_K8S_OPERATOR_WAIT``).
"""

from harness.runtime.kubernetes.runtime import KubernetesRuntime, refuse_unsupported

__all__ = ["KubernetesRuntime", "refuse_unsupported"]
