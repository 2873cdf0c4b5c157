"""The stages of Prometheus' recovery from a fault, in the order they happen: the vocabulary shared by the runtimes
(which observe them), the result (which stores them), the scenario (whose ``max_recovery`` may bound any of them)
and the report (which draws them). A fault passes through the stages that apply to it: a container restarted in
its pod has no "scheduled", a local process has no pod at all.
"""

from __future__ import annotations

from typing import Literal

StageId = Literal[
    "injected",
    "node_not_ready",
    "pod_force_deleted",
    "node_restored",
    "lifted",
    "container_ended",
    "pod_created",
    "scheduled",
    "volume_attached",
    "volume_staged",
    "volume_published",
    "volumes_mounted",
    "container_started",
    "healthy",
    "ready",
    "first_sample",
]

# id -> (label for people, what marks it)
STAGES: dict[StageId, tuple[str, str]] = {
    "injected": ("fault injected", "the harness acted"),
    "node_not_ready": ("node NotReady", "the node's Ready condition turned False or Unknown: Kubernetes noticed"),
    "pod_force_deleted": ("pod force-deleted", "the harness deleted the pod with grace period 0"),
    "node_restored": ("node back", "the node's start command returned and the node is Ready again"),
    "lifted": (
        "condition lifted",
        "a fault that lasts: the harness lifted its condition (space freed, I/O healed, the server back)",
    ),
    "container_ended": ("old container ended", "the old container's lastState.terminated.finishedAt"),
    "pod_created": (
        "old pod gone, new pod created",
        "the new pod's creationTimestamp: a StatefulSet creates the replacement only once the old pod is gone",
    ),
    "scheduled": ("scheduled", "the new pod's PodScheduled condition"),
    "volume_attached": ("volume attached", "the SuccessfulAttachVolume event (attachable volumes only)"),
    "volume_staged": (
        "volume staged",
        "the CSI driver's NodeStageVolume returned OK on the new pod's node: the kubelet's csi_operations_seconds "
        "(read through the API's node proxy, polled) counted it; CSI volumes only, where the driver stages",
    ),
    "volume_published": (
        "volume published",
        "the CSI driver's NodePublishVolume returned OK (the volume bound into the pod's directory), counted the "
        "same way",
    ),
    "volumes_mounted": (
        "volumes mounted",
        "the PodReadyToStartContainers condition: the kubelet mounts a pod's volumes before creating its sandbox",
    ),
    "container_started": ("container started", "the container's state.running.startedAt, or the process spawned"),
    "healthy": ("/-/healthy", "Prometheus answered /-/healthy"),
    "ready": ("/-/ready", "Prometheus answered /-/ready: the WAL replay is over"),
    "first_sample": ("first new sample stored", "the first sample acknowledged after the fault"),
}

ORDER: dict[str, int] = {stage: i for i, stage in enumerate(STAGES)}


def label(stage: str) -> str:
    return next((text for known, (text, _why) in STAGES.items() if known == stage), stage)
