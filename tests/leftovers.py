"""What a run left on this host: processes, mounts and loop devices that still name its work area."""

from __future__ import annotations

import subprocess
from pathlib import Path


def left_behind(work: Path) -> list[str]:
    found = []
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    found += [line.strip() for line in ps.splitlines() if str(work) in line]
    found += [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(work) in line]
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    found += [line for line in loops.splitlines() if str(work) in line]
    return found
