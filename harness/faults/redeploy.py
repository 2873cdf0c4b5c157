"""``redeploy``: the release is uninstalled and installed again (helm uninstall + install): a new pod and, on
Kubernetes, a new claim. On a Retain PV this is the field notes' trap: the PV stays Released with a stale claimRef
and the new claim Pending."""

from __future__ import annotations

from harness.faults.base import Acted, Injector
from harness.runtime.base import Runtime
from harness.scenario.model import RedeployFault
from harness.undo import UndoLog


class Redeploy(Injector[RedeployFault]):
    action = "redeploy"

    def act(self, spec: RedeployFault, runtime: Runtime, undo: UndoLog) -> Acted:
        return Acted(*runtime.reinstall())


FAULT = Redeploy()
