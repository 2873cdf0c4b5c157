"""The scenario model: what a scenario file may say, validated once at load time.

Every model forbids unknown keys. Quantities are written with units in the file ("90s", "2Gi") and carry the unit in
the attribute name once parsed (``duration_s``, ``size_bytes``). The runtime (local processes or Kubernetes) is not
part of the scenario: one file runs on both, the runtime is chosen per run.

This module holds the top-level ``Scenario`` and its JSON schema; its parts have a module each in this package
(``strict``: the base model; ``storage``, ``prometheus``, ``loads``, ``faults``, ``checks``: the sections of a file),
and every name of theirs is re-exported here, so ``from harness.scenario.model import ...`` reaches them all.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.scenario.checks import Checks, HistorySurvival, RecoveryLimits
from harness.scenario.faults import (
    DiskFullFault,
    Fault,
    FaultSpec,
    FaultTiming,
    FaultWindow,
    IoErrorsFault,
    IoFaultWindow,
    IoLatencyFault,
    IoMethod,
    KubeletCommands,
    KubeletRestartFault,
    NodeControl,
    NodeLossFault,
    PowerLossFault,
    RedeployFault,
    RescheduleFault,
    RestartFault,
    ScaleZeroFault,
    SecondWriterFault,
    ServerRestartFault,
    SigkillFault,
    SigtermFault,
)
from harness.scenario.loads import Churn, FioJob, FioProfileName, Loads, TsdbLoad
from harness.scenario.prometheus import Probe, Probes, PrometheusSpec, Resources, SecurityContext
from harness.scenario.storage import (
    EMBEDDED,
    AccessMode,
    CephClientSpec,
    CephFsStorage,
    DataPathClient,
    DynamicStorage,
    EmbeddedCeph,
    EmbeddedExport,
    EmbeddedLun,
    EphemeralStorage,
    IscsiStorage,
    LocalStorage,
    LoopImage,
    NfsStorage,
    PersistentVolume,
    RbdStorage,
    Storage,
    StorageSpec,
    VolumeClaim,
)
from harness.scenario.strict import Strict
from harness.scenario.units import Seconds

__all__ = [
    "EMBEDDED",
    "AccessMode",
    "CephClientSpec",
    "CephFsStorage",
    "Checks",
    "Churn",
    "DataPathClient",
    "DiskFullFault",
    "DynamicStorage",
    "EmbeddedCeph",
    "EmbeddedExport",
    "EmbeddedLun",
    "EphemeralStorage",
    "Fault",
    "FaultSpec",
    "FaultTiming",
    "FaultWindow",
    "FioJob",
    "FioProfileName",
    "HistorySurvival",
    "IoErrorsFault",
    "IoFaultWindow",
    "IoLatencyFault",
    "IoMethod",
    "IscsiStorage",
    "KubeletCommands",
    "KubeletRestartFault",
    "Loads",
    "LocalStorage",
    "LoopImage",
    "NfsStorage",
    "NodeControl",
    "NodeLossFault",
    "PersistentVolume",
    "PowerLossFault",
    "Probe",
    "Probes",
    "PrometheusSpec",
    "RbdStorage",
    "RecoveryLimits",
    "RedeployFault",
    "RescheduleFault",
    "Resources",
    "RestartFault",
    "ScaleZeroFault",
    "Scenario",
    "SecondWriterFault",
    "SecurityContext",
    "ServerRestartFault",
    "SigkillFault",
    "SigtermFault",
    "Storage",
    "StorageSpec",
    "Strict",
    "TsdbLoad",
    "VolumeClaim",
    "json_schema",
]


class Scenario(Strict):
    version: Literal[1] = Field(default=1, description="the scenario format's version; 1 is the only one so far")
    name: str = Field(
        pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        description="results go to reports/<name>/ (a night's history of the scenario too); on Kubernetes it names "
        "the StatefulSet prometheus-<name> and its claim",
    )
    description: str = Field(default="", description="what the scenario shows, in a sentence; kept with each result")
    duration_s: Seconds = Field(
        alias="duration",
        description="length of the load and fault phase (a fio-only scenario, no TSDB load and no fault, has none)",
    )
    storage: Storage = Field(description="where the TSDB lives: one of the backends below, told apart by `backend`")
    prometheus: PrometheusSpec = Field(
        default_factory=PrometheusSpec,
        description="how Prometheus runs: its binary or image, flags, security context, resources and probes",
    )
    loads: Loads = Field(
        default_factory=Loads,
        description="what runs against the storage: fio jobs first, then the TSDB write load for `duration`",
    )
    faults: list[Fault] = Field(
        default_factory=list,
        description="what happens to Prometheus or its storage meanwhile: one entry per fault, told apart by "
        "`action`; none by default",
    )
    checks: Checks = Field(
        default_factory=Checks,
        description="what must hold for the run to pass: the history kept, recovery limits, a fio floor",
    )

    @model_validator(mode="after")
    def _timeline(self) -> Scenario:
        if self.duration_s <= 0:
            raise ValueError("duration must be positive")
        for i, fault in enumerate(self.faults):
            if fault.at_s is not None and fault.at_s >= self.duration_s:
                raise ValueError(
                    f"faults[{i}] at {fault.at_s:g}s is not before the end of the run (duration {self.duration_s:g}s)"
                )
        return self

    @property
    def runs_prometheus(self) -> bool:
        """False for a fio-only scenario (``loads.tsdb: null`` and no fault): fio measures the storage and the run
        ends there, with no Prometheus started and no idle wait for ``duration``."""
        return self.loads.tsdb is not None or bool(self.faults)


def json_schema() -> dict[str, object]:
    """JSON Schema of a scenario file (by alias: the keys people write), for editor completion."""
    schema = Scenario.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Prometheus storage harness scenario"
    return schema
