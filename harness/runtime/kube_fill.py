"""``disk_full`` on the kubernetes runtime: a pod of the run's own, on Prometheus' node, mounts Prometheus' claim and
fills the volume's filesystem with one file (``.harness-fill-<run>`` in the volume's root, the same name and the
same "until not one more block" rule as ``harness.datapath.fill`` on the local runtime), then deletes it.

Only a filesystem of the volume's own is filled. The pod reads its own mount table: the volume must be a whole
filesystem on a block device (a local PV on a disk or loop device of its own, an iSCSI or CSI block volume). A local
PV that is a directory of the node's root filesystem shows as a bind-mounted subdirectory there, and filling it
would fill the node: refused, as are NFS, tmpfs and FUSE. An emptyDir cannot be reached from another pod at all and
is refused before the run starts.

The fill runs by exec with busybox (the tools image): ``fallocate`` from what ``statfs`` says root may take, halved
on ENOSPC down to one block. The space comes back through the fault's undo step (``rm`` + ``sync`` by exec, then
the pod is deleted); should the harness die, the pod's own SIGTERM trap deletes the file when ``harness cleanup``
deletes the namespace, or when its ``activeDeadlineSeconds`` runs out.
"""

from __future__ import annotations

import logging
import shlex
import time
from pathlib import PurePosixPath

from harness import fmt
from harness.capabilities.volume_fill import VolumeFill
from harness.datapath.fill import Space, describe, fill_name
from harness.datapath.mounts import parse_mountinfo
from harness.errors import InfraError, StorageUnavailable
from harness.kube.api import KubeApi
from harness.kube.pods import PodInfo
from harness.runtime.manifests.common import Names
from harness.runtime.manifests.helper_pods import FILL_CONTAINER, FILL_VOLUME_DIR, fill_pod_manifest
from harness.scenario.model import Scenario

log = logging.getLogger(__name__)

POD = "harness-fill"
POD_START_TIMEOUT_S = 120.0  # the volume is already attached to the node: mounting it again and a busybox start
FILL_TIMEOUT_S = 120.0  # some 30 fallocate calls, each instant on ext4/xfs
FREE_TIMEOUT_S = 60.0  # rm + sync of the node's dirty pages
DELETE_TIMEOUT_S = 60.0
LIFETIME_MARGIN_S = 600  # beyond the scenario's duration, before the pod frees the space on its own
BUSYBOX = "/bin/busybox"

# Grow the file by fallocate from $want, halving on failure (ENOSPC) down to one block; a failure that is not
# ENOSPC is printed and ends the fill. Prints "filled <bytes allocated>" at the end.
_FILL_SCRIPT = """
set -C
: > "$F"
set +C
off=0
n=$(( want - want % bs ))
while [ "$n" -ge "$bs" ]; do
  if err=$($B fallocate -o "$off" -l "$n" "$F" 2>&1); then
    off=$(( off + n ))
  else
    case "$err" in
      *"No space left"*|*"quota exceeded"*) ;;
      *) echo "error $err"; exit 3 ;;
    esac
    size=$($B stat -c %s "$F")
    [ "$size" -gt "$off" ] && off=$size
    if [ "$n" -gt "$bs" ]; then n=$(( n / 2 - (n / 2) % bs )); [ "$n" -lt "$bs" ] && n=$bs; else n=0; fi
  fi
done
echo "filled $(( $($B stat -c %b "$F") * 512 ))"
"""


class PodFill:
    """Fills and frees Prometheus' volume from a pod of the run (see the module docstring)."""

    def __init__(self, api: KubeApi, scenario: Scenario, names: Names, *, tools_image: str) -> None:
        self.api = api
        self.scenario = scenario
        self.names = names
        self.tools_image = tools_image
        self.file = str(PurePosixPath(FILL_VOLUME_DIR) / fill_name(names.run_id))
        self._pod: PodInfo | None = None  # from its creation until it is deleted

    def fill(self, node: str) -> VolumeFill:
        """Fill the volume from a pod on ``node`` (Prometheus'); the caller recorded ``free`` as the undo first."""
        if self._pod is not None:
            raise InfraError(f"the volume is already filled ({self.file} in pod {POD}): one disk_full at a time")
        ns = self.names.namespace
        self.api.wait_gone("Pod", POD, ns, timeout_s=DELETE_TIMEOUT_S)  # the pod of an earlier disk_full, if any
        lifetime = int(self.scenario.duration_s) + LIFETIME_MARGIN_S
        manifest = fill_pod_manifest(
            self.scenario, self.names, pod=POD, node=node, tools_image=self.tools_image, fill_file=self.file,
            lifetime_s=lifetime,
        )  # fmt: skip
        self.api.create(manifest)
        self._pod = self.api.wait_pod(
            ns, POD, _started, what=f"pod {ns}/{POD} (disk_full) running on {node}", timeout_s=POD_START_TIMEOUT_S
        )
        mount = self._volume_mount()
        block, before = self._space()
        started = time.monotonic()
        script = f"B={BUSYBOX}; F={shlex.quote(self.file)}; bs={block}; want={before.for_root};{_FILL_SCRIPT}"
        done = self.api.exec_run(ns, POD, FILL_CONTAINER, [BUSYBOX, "sh", "-c", script], timeout_s=FILL_TIMEOUT_S)
        took = time.monotonic() - started
        at = time.time()
        out = done.stdout.strip().splitlines()
        if done.returncode != 0 or not out or not out[-1].startswith("filled "):
            raise InfraError(
                f"filling {mount} from pod {ns}/{POD} failed (exit {done.returncode}): "
                f"{fmt.shorten((done.stdout + done.stderr).strip()) or 'no output'}"
            )
        allocated = int(out[-1].split()[1])
        _, after = self._space()
        detail = describe(
            allocated=allocated,
            where=f"{mount} from pod {ns}/{POD} on {node}",
            name=f"{PurePosixPath(self.file).name} in the volume's root",
            took_s=took,
            method="fallocate",
            before=before,
            after=after,
            who="even as root",
        )
        log.info("%s", detail)
        return VolumeFill(at, detail)

    def free(self) -> None:
        """Delete the fill file, then the pod; nothing when nothing was filled. The space is back when the ``rm``
        returns (the fault's lift is timed from here), so the pod's deletion is not waited for; should the ``rm``
        fail, the pod's deletion is, since its SIGTERM trap deletes the file."""
        if self._pod is None:
            return
        ns = self.names.namespace
        problem = ""
        try:
            argv = [BUSYBOX, "sh", "-c", f"{BUSYBOX} rm -f {shlex.quote(self.file)} && {BUSYBOX} sync"]
            done = self.api.exec_run(ns, POD, FILL_CONTAINER, argv, timeout_s=FREE_TIMEOUT_S)
            if done.returncode != 0:
                problem = f"rm exited {done.returncode}: {fmt.shorten(done.stderr.strip())}"
        except InfraError as e:
            problem = str(e)
        try:
            self.api.delete("Pod", POD, ns, wait_s=DELETE_TIMEOUT_S if problem else None)
        except InfraError as e:
            why = "; ".join(x for x in (problem, str(e)) if x)
            raise InfraError(f"could not free the disk_full fill {self.file} on Prometheus' volume ({why})") from e
        if problem:
            log.warning("deleting %s by exec failed (%s); the pod deleted it as it ended", self.file, problem)
        self._pod = None

    def _volume_mount(self) -> str:
        """The volume's mount as the pod sees it; StorageUnavailable unless it is a filesystem of its own."""
        text = self.api.exec(self.names.namespace, POD, FILL_CONTAINER, [BUSYBOX, "cat", "/proc/self/mountinfo"])
        entry = next((e for e in parse_mountinfo(text) if str(e.mount_point) == FILL_VOLUME_DIR), None)
        if entry is None:
            raise InfraError(f"pod {self.names.namespace}/{POD} shows no mount at {FILL_VOLUME_DIR}")
        what = f"{entry.fstype} from {entry.source}" + (f", directory {entry.root}" if entry.root != "/" else "")
        if not entry.own_block_filesystem:
            raise StorageUnavailable(
                f"disk_full fills the filesystem under Prometheus' data directory, and the harness fills only a "
                f"filesystem of the volume's own; this volume is {what}: a directory of another filesystem (the "
                "node's, for a directory local PV) or not a block device's. Give the PV a disk or loop device of its "
                "own (a local PV's path where one is mounted), or a block StorageClass"
            )
        return what

    def _space(self) -> tuple[int, Space]:
        """The volume's block size and free space (``statfs``)."""
        text = self.api.exec(
            self.names.namespace, POD, FILL_CONTAINER, [BUSYBOX, "stat", "-f", "-c", "%S %f %a", FILL_VOLUME_DIR]
        )
        try:
            bs, free, avail = (int(x) for x in text.split())
        except ValueError as e:
            raise InfraError(f"statfs of {FILL_VOLUME_DIR} in pod {POD} printed {text!r}") from e
        return bs, Space(free * bs, avail * bs)


def _started(pod: PodInfo) -> bool:
    c = pod.container(FILL_CONTAINER)
    if c is not None and c.waiting_reason in {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"}:
        raise InfraError(f"the disk_full pod cannot start: {c.waiting_reason} ({c.waiting_message})")
    return pod.phase == "Running" and c is not None and c.running
