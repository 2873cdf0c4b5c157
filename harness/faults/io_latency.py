"""``io_latency``: for a time, a share of chosen operations under Prometheus' data directory each take longer (a
slow disk; Chaos Mesh IOChaos' latency action), and still succeed. Prometheus keeps running: the load records what
it gave up on, the record quotes what Prometheus logged, and every acknowledged sample must survive. The runtime
needs the ``io-faults`` capability (the local runtime's FUSE layer, ``harness.fault_fuse``)."""

from __future__ import annotations

from harness.faults.io_window import IoWindowInjector
from harness.runtime.base import IoFault
from harness.scenario.model import IoLatencyFault


class IoLatency(IoWindowInjector[IoLatencyFault]):
    action = "io_latency"

    def settings(self, spec: IoLatencyFault) -> IoFault:
        return IoFault(tuple(spec.methods), spec.percent, delay_s=spec.delay_s, path=spec.path)


FAULT = IoLatency()
