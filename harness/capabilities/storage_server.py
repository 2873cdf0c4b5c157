"""Stop the storage server under Prometheus and start it again, as it was: only a server the run started itself
(``embedded``), which the storage gives; the harness never stops a server it did not start."""

from __future__ import annotations

from abc import abstractmethod

from harness.capabilities import StorageGiven
from harness.scenario.model import Scenario
from harness.storage import backend_for


class ServerControl(StorageGiven):
    does = "stop and start the storage server"
    lacking = "it restarts no storage server (a cluster's volumes use servers the run does not own)"

    @classmethod
    def storage_refusal(cls, scenario: Scenario) -> str | None:
        # The storage knows whether the run owns its server; the runtime whether it can restart one at all.
        return backend_for(scenario.storage).server_refusal(scenario.storage)

    @abstractmethod
    def stop(self) -> tuple[float, str]:
        """Stop the server, keeping what starting it again needs; Prometheus keeps running on the storage as its
        client finds it. When it stopped and what was done."""

    @abstractmethod
    def start(self) -> tuple[float, str]:
        """Start the server ``stop`` stopped, as it was; returns once it serves again."""

    @abstractmethod
    def await_data_path(self, timeout_s: float) -> str:
        """After ``start``: wait (bounded) until the data path takes a write again; what the server and the
        storage's client did, in a sentence (a wait that gave up is said, not raised: Prometheus' own recovery is
        the finding)."""
