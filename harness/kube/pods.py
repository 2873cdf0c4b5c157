"""Pods as the runtime reads them: ``PodInfo`` and its containers' states decoded from the client's pod objects,
and the namespace's events about an object (when they happened, what they said).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.kube.decode import unix


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    restart_count: int
    running: bool
    ready: bool
    started_at: str = ""  # RFC 3339, whole seconds (the kubelet's resolution)
    waiting_reason: str = ""  # e.g. CrashLoopBackOff, CreateContainerConfigError
    waiting_message: str = ""
    last_exit_code: int | None = None
    last_reason: str = ""  # e.g. Error, OOMKilled, Completed
    # Unix seconds from the kubelet's RFC 3339 timestamps, which have whole seconds (truncated).
    started_unix_s: float | None = None  # state.running.startedAt
    last_finished_unix_s: float | None = None  # lastState.terminated.finishedAt: the previous container ended
    container_id: str = ""  # containerd://...: a new one for every start, also after its node came back
    exit_code: int | None = None  # state.terminated: the container ended and is not restarted (a Job's pod)
    exit_reason: str = ""
    exit_message: str = ""


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    uid: str
    node: str  # "" while unscheduled
    phase: str
    ip: str
    ready: bool
    deleting: bool
    containers: tuple[ContainerInfo, ...] = ()
    unschedulable: str = ""  # the scheduler's message while PodScheduled is False
    created_unix_s: float | None = None  # metadata.creationTimestamp (whole seconds)
    # Condition type -> lastTransitionTime (Unix seconds, whole) of the conditions that are True.
    true_since: dict[str, float] = field(default_factory=dict)

    def container(self, name: str) -> ContainerInfo | None:
        return next((c for c in self.containers if c.name == name), None)

    def brief(self) -> str:
        parts = [f"pod {self.namespace}/{self.name} uid {self.uid[:8]} phase {self.phase}"]
        parts.append(f"on {self.node}" if self.node else "not scheduled")
        if self.unschedulable:
            parts.append(f"scheduler: {self.unschedulable}")
        for c in self.containers:
            state = "running" if c.running else f"waiting ({c.waiting_reason or '?'}: {c.waiting_message})"
            last = f", last exit {c.last_exit_code} {c.last_reason}" if c.last_exit_code is not None else ""
            parts.append(f"{c.name}: {state}, restarts {c.restart_count}{last}")
        return "; ".join(parts)


def decode_pod(o: Any) -> PodInfo:
    status = o.status
    containers = []
    for c in (status.container_statuses if status else None) or []:
        state, last = c.state, c.last_state
        terminated = last.terminated if last else None
        containers.append(
            ContainerInfo(
                name=c.name,
                restart_count=c.restart_count or 0,
                running=bool(state and state.running),
                ready=bool(c.ready),
                started_at=state.running.started_at.isoformat() if state and state.running else "",
                waiting_reason=(state.waiting.reason or "") if state and state.waiting else "",
                waiting_message=(state.waiting.message or "") if state and state.waiting else "",
                last_exit_code=terminated.exit_code if terminated else None,
                last_reason=(terminated.reason or "") if terminated else "",
                started_unix_s=unix(state.running.started_at) if state and state.running else None,
                last_finished_unix_s=unix(terminated.finished_at) if terminated else None,
                container_id=c.container_id or "",
                exit_code=state.terminated.exit_code if state and state.terminated else None,
                exit_reason=(state.terminated.reason or "") if state and state.terminated else "",
                exit_message=(state.terminated.message or "") if state and state.terminated else "",
            )
        )
    conditions = (status.conditions if status else None) or []
    scheduled = next((c for c in conditions if c.type == "PodScheduled"), None)
    unschedulable = ""
    if scheduled is not None and scheduled.status == "False":
        unschedulable = f"{scheduled.reason}: {scheduled.message}"
    return PodInfo(
        namespace=o.metadata.namespace,
        name=o.metadata.name,
        uid=o.metadata.uid or "",
        node=o.spec.node_name or "",
        phase=(status.phase if status else None) or "Pending",
        ip=(status.pod_ip if status else None) or "",
        ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
        deleting=o.metadata.deletion_timestamp is not None,
        containers=tuple(containers),
        unschedulable=unschedulable,
        created_unix_s=unix(o.metadata.creation_timestamp),
        true_since={
            c.type: t for c in conditions if c.status == "True" and (t := unix(c.last_transition_time)) is not None
        },
    )


def event_times(events: list[Any]) -> list[float]:
    """When the client's ``events`` happened (Unix seconds), oldest first."""
    times = [unix(e.event_time or e.first_timestamp or e.metadata.creation_timestamp) for e in events]
    return sorted(t for t in times if t is not None)


def event_lines(events: list[Any]) -> list[str]:
    """The client's ``events``, oldest first, as ``Reason: message``."""
    events = sorted(events, key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
    return [f"{e.reason}: {e.message}" for e in events]
