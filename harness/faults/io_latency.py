"""``io_latency``: for a time, a share of chosen operations under Prometheus' data directory each take longer (a
slow disk; Chaos Mesh IOChaos' latency action), and still succeed. Prometheus keeps running: the load records what
it gave up on, the record quotes what Prometheus logged, and every acknowledged sample must survive. The runtime
hands out the fault layer (``FaultLayerControl``: ``harness.datapath.fault_fuse`` under the data directory)."""

from __future__ import annotations

from harness.capabilities.fault_layer import IoFault
from harness.faults.io_window import IoWindowInjector
from harness.scenario.model import IoLatencyFault


class IoLatency(IoWindowInjector[IoLatencyFault]):
    action = "io_latency"

    def settings(self, spec: IoLatencyFault) -> IoFault:
        return IoFault(tuple(spec.methods), spec.percent, delay_s=spec.delay_s, path=spec.path)


FAULT = IoLatency()
