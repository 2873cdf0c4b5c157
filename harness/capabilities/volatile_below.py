"""What the storage holds volatile below Prometheus' filesystem, which a power cut takes too: a client-side write-back
cache in a process of the run's (librbd's in qemu-storage-daemon, for ``rbd`` with ``cache: writeback``).

The fault layer (``harness.capabilities.fault_layer``) takes the page cache above the filesystem (what Prometheus
wrote but did not fsync); this takes what sits below it and was not flushed: the process holding it is SIGKILLed,
the filesystem over the dead disk unmounted (its dirty pages can never be written), the storage attached again and
the filesystem mounted again (journal replay). Storage with nothing volatile there (``cache: none``, a local disk,
a kernel client the harness does not own) says so, and the cut takes nothing more. Every runtime that cuts the power
hands it out; what is below a Kubernetes pod's volume is the node's, never the harness's to cut.
"""

from __future__ import annotations

from abc import abstractmethod

from harness.capabilities import Capability


class VolatileBelow(Capability):
    does = "say what the storage holds volatile below Prometheus' filesystem and lose it with the power"

    @abstractmethod
    def held(self) -> str:
        """What is volatile below the filesystem, in a phrase (also when nothing is: "librbd's cache is off
        (cache.direct=on): ...")."""

    @abstractmethod
    def volatile(self) -> bool:
        """Whether there is anything volatile below the filesystem for ``lose`` to take."""

    @abstractmethod
    def lose(self) -> str:
        """The power fails below the filesystem: SIGKILL what holds the volatile state, unmount the filesystem
        over the dead disk, attach the storage again and mount the filesystem again (journal replay). Call it
        with nothing open on the filesystem (Prometheus killed, the fault layer unmounted). What was done and how
        long each step took, in a sentence."""
