"""The ``dynamic`` backend: a StorageClass that already exists in the cluster, whose provisioner makes the volume
(Ceph RBD, cloud disks, rancher's local-path...). The run creates only the claim; the provisioner creates the PV when
the claim (or, with WaitForFirstConsumer, its pod) needs one, and deletes it again with the claim when the class
says ``reclaimPolicy: Delete``. The harness never creates, changes or deletes the class or any PV itself.

There is no local equivalent: the local runtime refuses the scenario before anything is created.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import StorageUnavailable
from harness.kube.inventory import PvcInfo
from harness.scenario.model import DynamicStorage
from harness.storage.base import Backend, ProvisionedStorage, operator_claim_name

if TYPE_CHECKING:
    from harness.binding import BindingOutcome
    from harness.kube.inventory import KubeInventory
    from harness.results.model import DoctorFinding
    from harness.scenario.model import SecurityContext


class DynamicBackend(Backend[DynamicStorage]):
    name = "dynamic"

    def local_refusal(self, spec: DynamicStorage) -> str | None:
        return (
            f"storage.backend dynamic claims a volume from the StorageClass {spec.storage_class!r}, whose provisioner "
            "runs in a cluster: a dynamic class needs a cluster. Run it with --runtime kubernetes, or use "
            "storage.backend local to test a directory on this host"
        )

    def provision(self, spec: DynamicStorage, workdir: Path, run_id: str) -> ProvisionedStorage:
        # The local runtime refuses the scenario first (local_refusal); this is the last line, not the message.
        raise StorageUnavailable(self.local_refusal(spec) or "")

    def doctor_findings(
        self, spec: DynamicStorage, security_context: SecurityContext, runtime: str
    ) -> list[DoctorFinding]:
        from harness.doctor.dynamic import check_dynamic

        return check_dynamic(spec, runtime=runtime, refusal=self.local_refusal(spec))

    def binding_findings(
        self, spec: DynamicStorage, outcome: BindingOutcome, inventory: KubeInventory
    ) -> list[DoctorFinding]:
        from harness.doctor.dynamic import class_findings

        return class_findings(spec, inventory)

    def planned_claim(self, spec: DynamicStorage, scenario_name: str, namespace: str) -> PvcInfo | None:
        """The claim names the class explicitly and has no selector: a claim with a selector is never provisioned."""
        return PvcInfo(
            namespace=namespace,
            name=operator_claim_name(scenario_name),
            storage_class=spec.storage_class,
            request_bytes=spec.size_bytes,
            access_modes=tuple(spec.access_modes),
            volume_mode=spec.volume_mode,
        )

    def cluster_description(self, spec: DynamicStorage) -> str:
        return f"a volume the StorageClass {spec.storage_class} provisions for the run's claim"


BACKEND = DynamicBackend()
