"""The pods a run adds beside Prometheus on its storage: fio's pod, which holds Prometheus' volume while the runtime
runs fio jobs in it, and disk_full's fill pod on Prometheus' node, which fills the volume as root and frees it
however it ends.
"""

from __future__ import annotations

from harness.kube.inventory import Manifest
from harness.runtime.manifests.common import Names, object_meta
from harness.runtime.manifests.prometheus import pod_security_context
from harness.scenario.model import Scenario
from harness.storage import backend_for

FIO_CONTAINER = "fio"
FIO_DATA_DIR = "/data"  # the storage under test
FIO_OUT_DIR = "/out"  # fio's JSON and logs, copied out afterwards
FIO_BIN_DIR = "/h"  # a static busybox copied from the tools image: the fio image needs no shell of its own


def fio_pod_manifest(
    scenario: Scenario, names: Names, *, pod: str, fio_image: str, tools_image: str, lifetime_s: int
) -> Manifest:
    """A pod that holds the storage Prometheus will use (the run's claim, or the same emptyDir) while the runtime
    runs fio jobs in it by exec. It runs as Prometheus' user and group, like kubestr's pod but under the
    "restricted" pod security profile wherever the scenario's user allows it (no privilege escalation, no
    capabilities, the runtime's default seccomp profile). ``activeDeadlineSeconds`` ends it even if the harness
    dies before deleting it."""
    backend = backend_for(scenario.storage)
    pod_volume = backend.pod_volume(scenario.storage)
    data = pod_volume if pod_volume is not None else {"persistentVolumeClaim": {"claimName": names.claim}}
    security = {
        **pod_security_context(scenario.prometheus.security_context),
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    restricted: Manifest = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": object_meta(pod, names, names.namespace, {"app.kubernetes.io/name": "harness-fio"}),
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": lifetime_s,
            "terminationGracePeriodSeconds": 5,
            "automountServiceAccountToken": False,
            "securityContext": security,
            "initContainers": [
                {
                    "name": "busybox",
                    "image": tools_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/busybox", "cp", "/bin/busybox", f"{FIO_BIN_DIR}/busybox"],
                    "securityContext": restricted,
                    "volumeMounts": [{"name": "bin", "mountPath": FIO_BIN_DIR}],
                }
            ],
            "containers": [
                {
                    "name": FIO_CONTAINER,
                    "image": fio_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": [f"{FIO_BIN_DIR}/busybox", "sleep", str(lifetime_s)],
                    "env": [{"name": "PATH", "value": "/usr/local/bin:/usr/bin:/bin"}],
                    "securityContext": restricted,
                    "volumeMounts": [
                        {"name": "data", "mountPath": FIO_DATA_DIR},
                        {"name": "out", "mountPath": FIO_OUT_DIR},
                        {"name": "bin", "mountPath": FIO_BIN_DIR, "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {"name": "data", **data},
                {"name": "out", "emptyDir": {}},
                {"name": "bin", "emptyDir": {}},
            ],
        },
    }


FILL_CONTAINER = "fill"
FILL_VOLUME_DIR = "/volume"  # Prometheus' volume, whole: the fill file goes in its root


def fill_pod_manifest(
    scenario: Scenario, names: Names, *, pod: str, node: str, tools_image: str, fill_file: str, lifetime_s: int
) -> Manifest:
    """A pod on Prometheus' node that mounts Prometheus' claim (a second pod of the same node may, whatever the
    access mode but ReadWriteOncePod), for ``disk_full``: the runtime fills the volume by exec in it, as root, so
    the root reserve goes too, with only ``DAC_OVERRIDE`` (to create the file whoever owns the volume's root).

    Its own command deletes ``fill_file`` on SIGTERM, so the space comes back however the pod ends: deleted by the
    runtime, by the namespace's deletion (``harness cleanup`` after a killed run) or by ``activeDeadlineSeconds``."""
    busybox = "/bin/busybox"
    hold = f'trap "{busybox} rm -f {fill_file}; {busybox} sync; exit 0" TERM; {busybox} sleep {lifetime_s} & wait'
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": object_meta(pod, names, names.namespace, {"app.kubernetes.io/name": "harness-fill"}),
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": lifetime_s,
            "terminationGracePeriodSeconds": 30,
            "automountServiceAccountToken": False,
            "securityContext": {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False},
            "containers": [
                {
                    "name": FILL_CONTAINER,
                    "image": tools_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": [busybox, "sh", "-c", hold],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"], "add": ["DAC_OVERRIDE"]},
                    },
                    "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}},
                    "volumeMounts": [{"name": "data", "mountPath": FILL_VOLUME_DIR}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": names.claim}}],
        },
    }
