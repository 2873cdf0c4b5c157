"""``io_errors``: for a time, a share of chosen operations under Prometheus' data directory fail with an errno
(default EIO) and do nothing, then work again (Chaos Mesh IOChaos' fault action). Prometheus keeps running: the load
records the writes it rejected, the record quotes what it logged, and the history check says what was lost. The
runtime hands out the fault layer (``FaultLayerControl``: ``harness.datapath.fault_fuse`` under the data directory)."""

from __future__ import annotations

from harness.capabilities.fault_layer import IoFault
from harness.faults.io_window import IoWindowInjector
from harness.scenario.model import IoErrorsFault


class IoErrors(IoWindowInjector[IoErrorsFault]):
    action = "io_errors"

    def settings(self, spec: IoErrorsFault) -> IoFault:
        return IoFault(tuple(spec.methods), spec.percent, errno_name=spec.errno, path=spec.path)


FAULT = IoErrors()
