"""``harness cleanup``: remove what interrupted runs left behind, found by their ownership marks only.

On this host (``harness.cleanup.local``) a run is its work directory with a marker (``harness.ownership``); in a
cluster (``harness.cleanup.cluster``) it is the objects labelled with its run id. A run whose harness still runs is
never touched. Each finder returns ``RunLeftovers``: what it found, each with how to remove it (or why it stays);
``apply`` removes them in order, every step on its own, and says what happened to each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.errors import HarnessError


@dataclass
class Leftover:
    what: str  # "mount /tmp/prom-harness-…/harness-ab12cd-mnt (ext4 from /dev/loop3)"
    remove: Callable[[], str] | None  # returns how it went ("SIGTERM", "lazily"); None: listed, never removed
    kept_because: str = ""


@dataclass
class RunLeftovers:
    run_id: str
    where: str  # "on this host", "in the cluster (context prom-harness)"
    about: str = ""  # scenario, owner, when, by which process
    items: list[Leftover] = field(default_factory=list)
    refused: str = ""  # set: nothing of this run is touched, and this says why
    refusal_fails: bool = False  # the refusal means something the user asked for stays (exit 2)

    def header(self) -> str:
        about = f" ({self.about})" if self.about else ""
        return f"run {self.run_id} {self.where}{about}:"


@dataclass
class Outcome:
    lines: list[str] = field(default_factory=list)
    removed: int = 0
    failed: list[str] = field(default_factory=list)


def apply(runs: list[RunLeftovers], *, dry_run: bool) -> Outcome:
    """Remove every item of every run that is not refused (``dry_run``: only say what would go)."""
    out = Outcome()
    for run in runs:
        out.lines.append(run.header())
        if run.refused:
            out.lines.append(f"  left alone: {run.refused}")
            if run.refusal_fails:
                out.failed.append(f"run {run.run_id} {run.where}: {run.refused}")
            continue
        if not run.items:
            out.lines.append("  nothing left")
        for item in run.items:
            if item.remove is None:
                out.lines.append(f"  kept    {item.what}: {item.kept_because}")
            elif dry_run:
                out.lines.append(f"  would remove {item.what}")
            else:
                try:
                    how = item.remove()
                except (HarnessError, OSError) as e:
                    reason = " ".join(str(e).split())
                    out.lines.append(f"  FAILED  {item.what}: {reason}")
                    out.failed.append(f"run {run.run_id}: {item.what}: {reason}")
                    continue
                out.removed += 1
                out.lines.append(f"  removed {item.what}" + (f" ({how})" if how else ""))
    return out
