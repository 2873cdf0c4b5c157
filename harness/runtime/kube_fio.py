"""fio on the storage under test, in a pod of the run's namespace (what kubestr does, with the same job definitions,
sizing and parsing as on the local runtime).

The pod mounts the very volume Prometheus will get: the run's claim, created ahead of the StatefulSet (a static PV
binds one claim only, so fio must use that claim, before Prometheus starts), or the same emptyDir definition. fio
runs by exec in the pod's fio container, whose own command is a ``sleep`` of a static busybox copied from the tools
image, so any image with ``fio`` on its PATH serves. Results come back as files, never scraped from a log stream:
fio writes its JSON and per-second logs into an emptyDir, and a ``tar | base64`` of that directory is read through
exec and unpacked into the run directory, where ``harness.loads.fio`` parses them exactly like a local run's.

Each job gets a directory of its own on the volume, removed afterwards (also on a timeout or Ctrl-C, after fio is
stopped); the pod is deleted afterwards and, should the harness die first, ends itself by ``activeDeadlineSeconds``.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import tarfile
from pathlib import Path, PurePosixPath

from harness import fmt
from harness.errors import CommandFailed, InfraError, StorageUnavailable, WaitTimeout
from harness.kube.api import KubeApi
from harness.kube.pods import PodInfo
from harness.loads import fio
from harness.results.model import FioJobResult
from harness.runtime.manifests.common import Names
from harness.runtime.manifests.helper_pods import (
    FIO_BIN_DIR,
    FIO_CONTAINER,
    FIO_DATA_DIR,
    FIO_OUT_DIR,
    fio_pod_manifest,
)
from harness.scenario.model import FioJob, Scenario

log = logging.getLogger(__name__)

POD_START_TIMEOUT_S = 180.0  # scheduling, attaching and mounting the volume, starting two small containers
EXEC_TIMEOUT_S = 60.0  # a quick command in the pod (stat, mkdir, rm, tar of a few MB of logs)
DELETE_TIMEOUT_S = 60.0  # grace period 5 s; the volume must be free before Prometheus' pod claims it
BUSYBOX = f"{FIO_BIN_DIR}/busybox"


class PodFio:
    """Runs a run's fio jobs, one pod per job, on the volume Prometheus will use."""

    def __init__(self, api: KubeApi, scenario: Scenario, names: Names, *, fio_image: str, tools_image: str) -> None:
        self.api = api
        self.scenario = scenario
        self.names = names
        self.fio_image = fio_image
        self.tools_image = tools_image
        self._count = 0
        self._version: str | None = None

    def version(self) -> str | None:
        """The version of the fio that ran in the pods ("3.33"), once a job has run."""
        return self._version

    def run(self, job: FioJob, out_dir: Path) -> FioJobResult:
        files = fio.job_files(job, out_dir)
        self._count += 1
        pod_name = _pod_name(self._count, files.name)
        namespace = self.names.namespace
        timeout_s = fio.default_timeout_s(job, fio.AUTO_MAX_TOTAL_BYTES if job.size_bytes is None else job.size_bytes)
        lifetime_s = round(POD_START_TIMEOUT_S + timeout_s + 4 * EXEC_TIMEOUT_S)
        self.api.create(
            fio_pod_manifest(
                self.scenario,
                self.names,
                pod=pod_name,
                fio_image=self.fio_image,
                tools_image=self.tools_image,
                lifetime_s=lifetime_s,
            )
        )
        try:
            pod = self._wait_running(pod_name)
            return self._run_in(pod, job, files)
        finally:
            try:
                self.api.delete("Pod", pod_name, namespace, wait_s=DELETE_TIMEOUT_S)
            except InfraError as e:
                # The namespace goes at the end of the run, and the pod ends itself by its deadline.
                log.warning("could not delete fio pod %s/%s: %s", namespace, pod_name, e)

    def volume(self) -> str:
        """What the pods mount, for the report: the claim and the PV bound to it, or the emptyDir."""
        names = self.names
        if self.api.exists("PersistentVolumeClaim", names.claim, names.namespace):
            claim = self.api.read_pvc(names.namespace, names.claim)
            bound = f" (pv/{claim.volume_name})" if claim is not None and claim.volume_name else " (not bound yet)"
            return f"claim {names.namespace}/{names.claim}{bound}"
        return f"the pod's {self.scenario.storage.backend} volume"

    def _wait_running(self, pod_name: str) -> PodInfo:
        namespace = self.names.namespace

        def running(p: PodInfo) -> bool:
            c = p.container(FIO_CONTAINER)
            if p.phase in ("Failed", "Succeeded"):
                raise StorageUnavailable(f"fio pod {namespace}/{pod_name} ended before fio ran: {p.brief()}")
            return c is not None and c.running

        try:
            return self.api.wait_pod(
                namespace,
                pod_name,
                running,
                what=f"fio pod {namespace}/{pod_name} to run on {self.volume()}",
                timeout_s=POD_START_TIMEOUT_S,
                describe=self._describe,
            )
        except WaitTimeout as e:
            # The pod could not get the volume (or a node): the storage, or its setup, is the problem.
            raise StorageUnavailable(str(e)) from e

    def _describe(self, pod: PodInfo | None) -> str:
        if pod is None:
            return "no pod yet"
        events = self.api.events(pod.namespace, "Pod", pod.name)
        return pod.brief() + (f"; last events: {' | '.join(events[-3:])}" if events else "")

    def _run_in(self, pod: PodInfo, job: FioJob, files: fio.JobFiles) -> FioJobResult:
        if self._version is None:
            self._version = self._sh(pod, ["fio", "--version"]).strip().removeprefix("fio-")
        free_bytes = _free_bytes(self._sh(pod, [BUSYBOX, "stat", "-f", "-c", "%a %S", FIO_DATA_DIR]))
        size = fio.plan_size_bytes(job, free_bytes)
        work_dir = PurePosixPath(FIO_DATA_DIR) / f"harness-fio-{self.names.run_id}-{files.name}"
        out = PurePosixPath(FIO_OUT_DIR)
        log_prefix = out / files.logs_dir.name / files.name
        raw_json = out / files.raw_json.name
        self._sh(pod, [BUSYBOX, "mkdir", "-p", str(work_dir), str(log_prefix.parent)])
        argv = [*fio.build_argv(job, work_dir, size, log_prefix), f"--output={raw_json}"]
        budget_s = fio.default_timeout_s(job, size)
        volume = self.volume()
        where = f"pod {pod.namespace}/{pod.name} on node {pod.node}, {volume}"
        log.info("fio %s: %s x %d in %s (%s)", files.name, fmt.size(size), job.numjobs, work_dir, where)
        try:
            try:
                done = self.api.exec_run(pod.namespace, pod.name, FIO_CONTAINER, argv, timeout_s=budget_s)
            except WaitTimeout as e:
                raise CommandFailed(f"fio job {files.name!r} did not finish within {budget_s:g} s ({where})") from e
        finally:
            self._remove(pod, work_dir)
        files.logs_dir.parent.mkdir(parents=True, exist_ok=True)
        files.console_log.write_text(done.stdout + done.stderr)
        self._copy_out(pod, files.out_dir)
        return fio.collect_result(
            job,
            files,
            argv=argv,
            directory=str(work_dir.parent),
            size_bytes=size,
            returncode=done.returncode,
            where=where,
        )

    def _remove(self, pod: PodInfo, work_dir: PurePosixPath) -> None:
        """Stop fio if it still runs (a timeout, Ctrl-C: the exec's end does not stop it) and remove its files."""
        script = f"{BUSYBOX} killall -q fio; n=0; while {BUSYBOX} pidof fio >/dev/null && [ $n -lt 50 ]; do "
        script += f"{BUSYBOX} sleep 0.2; n=$((n+1)); done; {BUSYBOX} rm -rf '{work_dir}'"
        try:
            self.api.exec_run(pod.namespace, pod.name, FIO_CONTAINER, [BUSYBOX, "sh", "-c", script], timeout_s=30)
        except InfraError as e:
            log.warning("could not remove fio's directory %s in pod %s (space stays taken): %s", work_dir, pod.name, e)

    def _copy_out(self, pod: PodInfo, out_dir: Path) -> None:
        """fio's JSON and logs, as files: a tar of the pod's output directory, base64 on the exec stream."""
        script = f"{BUSYBOX} tar -C {FIO_OUT_DIR} -cf - . | {BUSYBOX} base64"
        text = self._sh(pod, [BUSYBOX, "sh", "-c", script])
        try:
            data = base64.b64decode("".join(text.split()), validate=True)
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                tar.extractall(out_dir, filter="data")  # "data": nothing outside out_dir, no devices or links out
        except (binascii.Error, tarfile.TarError, OSError) as e:
            raise InfraError(f"could not copy fio's output out of pod {pod.namespace}/{pod.name}: {e}") from e

    def _sh(self, pod: PodInfo, argv: list[str]) -> str:
        done = self.api.exec_run(pod.namespace, pod.name, FIO_CONTAINER, argv, timeout_s=EXEC_TIMEOUT_S)
        if done.returncode != 0:
            raise InfraError(
                f"{' '.join(argv)} failed in fio pod {pod.namespace}/{pod.name} (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-500:]}"
            )
        return done.stdout


def _pod_name(index: int, job: str) -> str:
    """A DNS-1123 name for the job's pod (the job name is free text, the pod name is not)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", job.lower()).strip("-")[:40].strip("-")
    return f"harness-fio-{index}-{slug}" if slug else f"harness-fio-{index}"


def _free_bytes(stat_output: str) -> int:
    """``stat -f -c "%a %S"``: blocks available to an unprivileged user, and the block size."""
    try:
        blocks, block_size = (int(v) for v in stat_output.split())
    except ValueError as e:
        raise InfraError(f"unexpected output of stat -f in the fio pod: {stat_output!r}") from e
    return blocks * block_size
