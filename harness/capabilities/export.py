"""Give another NFS client the export that holds Prometheus' data directory (the ``second_writer`` fault writes
there as another application's pod would): only network storage the run knows the export of gives it."""

from __future__ import annotations

from abc import abstractmethod

from harness.capabilities import StorageGiven
from harness.scenario.model import Scenario
from harness.storage import backend_for
from harness.storage.base import ExportAccess


class ExportReach(StorageGiven):
    does = "let a second client write into the NFS export under Prometheus"
    lacking = "it does not know where Prometheus' data is in an export"

    @classmethod
    def storage_refusal(cls, scenario: Scenario) -> str | None:
        return backend_for(scenario.storage).export_refusal(scenario.storage)

    @abstractmethod
    def data_export(self) -> ExportAccess:
        """How another NFS client reaches the export holding the current Prometheus' data directory."""
