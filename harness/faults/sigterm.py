"""``sigterm``: Prometheus is asked to stop, shuts down cleanly (closing the WAL), and the kubelet restarts the
container in the same pod."""

from __future__ import annotations

import signal

from harness.faults.base import SignalInjector
from harness.scenario.model import SigtermFault


class Sigterm(SignalInjector[SigtermFault]):
    action = "sigterm"
    signal = signal.SIGTERM


FAULT = Sigterm()
