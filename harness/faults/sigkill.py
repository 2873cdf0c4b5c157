"""``sigkill``: Prometheus' container is killed; the kubelet restarts it in the same pod (volumes, even an emptyDir,
stay). Nothing Prometheus acknowledged may be lost: its WAL write()s every commit before answering."""

from __future__ import annotations

import signal

from harness.faults.base import SignalInjector
from harness.scenario.model import SigkillFault


class Sigkill(SignalInjector[SigkillFault]):
    action = "sigkill"
    signal = signal.SIGKILL


FAULT = Sigkill()
