"""Give another NFS client the export that holds Prometheus' data directory (the ``second_writer`` fault writes
there as another application's pod would): only network storage the run knows the export of gives it."""

from __future__ import annotations

from abc import abstractmethod

from harness.capabilities import Capability
from harness.scenario.model import Scenario
from harness.storage import backend_for
from harness.storage.base import ExportAccess


class ExportReach(Capability):
    does = "let a second client write into the NFS export under Prometheus"

    @classmethod
    def refusal(cls, runtime: str, *, offered: bool, scenario: Scenario) -> str | None:
        why = backend_for(scenario.storage).export_refusal(scenario.storage)
        if why is None and not offered:
            why = "it does not know where Prometheus' data is in an export"
        return None if why is None else f"the {runtime} runtime cannot: {why}"

    @abstractmethod
    def data_export(self) -> ExportAccess:
        """How another NFS client reaches the export holding the current Prometheus' data directory."""
