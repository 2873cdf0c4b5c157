"""The fio load: one job run as a subprocess on this host, sized to the free space, its outputs collected into a
typed result, and its data files removed afterwards (Ctrl-C included).

The job's command line and sizing are ``harness.loads.fio_job``, the parsing of its JSON and logs
``harness.loads.fio_output``; this module runs fio and collects what it wrote, here or (``collect_result``) copied
out of a pod by ``harness.runtime.kube_fio``. The names that module and ``harness.pipeline`` use from the job
definitions are re-exported here (``__all__``).
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import fmt, proc
from harness.errors import CommandFailed, StorageUnavailable, UsageError, WaitTimeout
from harness.loads.fio_job import AUTO_MAX_TOTAL_BYTES, build_argv, default_timeout_s, job_name, plan_size_bytes
from harness.loads.fio_output import fio_error_lines, load_fio_json, parse_fio_json, parse_fio_logs, tail
from harness.results.model import FioJobResult
from harness.scenario.model import FioJob

__all__ = [
    "AUTO_MAX_TOTAL_BYTES",
    "JobFiles",
    "build_argv",
    "collect_result",
    "default_timeout_s",
    "fio_version",
    "job_files",
    "job_name",
    "plan_size_bytes",
    "run_fio_job",
]

log = logging.getLogger(__name__)


def fio_version() -> str:
    """The installed fio's version, e.g. "3.33" (``fio --version`` prints "fio-3.33")."""
    out = proc.run(["fio", "--version"], timeout_s=30).stdout.strip()
    return out.removeprefix("fio-")


@dataclass(frozen=True)
class JobFiles:
    """Where one job's outputs go in the run directory, under the same names on every runtime: fio's JSON
    (``fio-<name>.json``, the result's ``raw_json_file``), its console output (``fio-<name>.log``) and its
    bw/iops/latency logs (``fio-<name>.logs/<name>_*.log``)."""

    name: str
    out_dir: Path

    @property
    def raw_json(self) -> Path:
        return self.out_dir / f"fio-{self.name}.json"

    @property
    def console_log(self) -> Path:
        return self.out_dir / f"fio-{self.name}.log"

    @property
    def logs_dir(self) -> Path:
        return self.out_dir / f"fio-{self.name}.logs"

    @property
    def log_prefix(self) -> Path:
        return self.logs_dir / self.name


def job_files(job: FioJob, out_dir: Path) -> JobFiles:
    """The job's output files in ``out_dir``; UsageError when another job of the run already wrote there."""
    files = JobFiles(job_name(job), out_dir)
    if files.raw_json.exists() or files.logs_dir.exists():
        raise UsageError(f"fio job name {files.name!r} is used twice in {out_dir}; give each fio job a distinct name")
    return files


def collect_result(
    job: FioJob,
    files: JobFiles,
    *,
    argv: list[str],
    directory: str,
    size_bytes: int,
    returncode: int,
    where: str,
) -> FioJobResult:
    """The typed result of a finished fio run whose outputs are in ``files`` (written there by fio itself, or
    copied out of a pod): JSON, per-second series, and fio's own error lines when it failed. ``where`` says what
    ran it where (e.g. this host, or a pod on a node), for the report."""
    raw = _read(files.raw_json)
    try:
        doc = load_fio_json(raw)
    except CommandFailed as e:
        raise CommandFailed(
            f"fio job {files.name!r} in {directory} ({where}) wrote no JSON",
            returncode,
            tail(_read(files.console_log)),
        ) from e
    result = parse_fio_json(doc, job=job, argv=argv, directory=Path(directory), size_bytes=size_bytes)
    update: dict[str, object] = {"raw_json_file": files.raw_json.name, "measured_on": where}
    if result.read is not None:
        update["read"] = result.read.model_copy(update={"timeseries": parse_fio_logs(files.log_prefix, "read")})
    if result.write is not None:
        update["write"] = result.write.model_copy(update={"timeseries": parse_fio_logs(files.log_prefix, "write")})
    if returncode != 0:
        detail = fio_error_lines(_read(files.console_log)) or fio_error_lines(raw) or result.error
        update["error"] = f"fio exited with code {returncode}" + (f": {detail}" if detail else "")
    return result.model_copy(update=update)


def run_fio_job(job: FioJob, directory: Path, out_dir: Path, *, timeout_s: float | None = None) -> FioJobResult:
    """Run one fio job on this host in a fresh subdirectory of ``directory`` (the storage under test) and return
    its result; its outputs go to ``out_dir`` (see ``JobFiles``). The subdirectory and the data files in it are
    removed afterwards, also on timeout or Ctrl-C; nothing else is touched.

    A job fio reports as failed (non-zero exit or a job error such as ENOSPC) comes back with ``error`` set and
    whatever it measured. StorageUnavailable: the directory is unusable or too full; CommandFailed: fio timed out or
    wrote no JSON; MissingBinary: fio is not installed.
    """
    files = job_files(job, out_dir)
    proc.which("fio")
    try:
        work_dir = Path(tempfile.mkdtemp(prefix=f"fio-{files.name}-", dir=directory))
    except OSError as e:
        raise StorageUnavailable(f"cannot create a directory for fio job {files.name!r} in {directory}: {e}") from e
    try:
        size = plan_size_bytes(job, shutil.disk_usage(work_dir).free)
        files.logs_dir.mkdir(parents=True)
        argv = [*build_argv(job, work_dir, size, files.log_prefix), f"--output={files.raw_json}"]
        budget_s = timeout_s if timeout_s is not None else default_timeout_s(job, size)
        log.info("fio %s: %s x %d in %s for %gs", files.name, fmt.size(size), job.numjobs, work_dir, job.runtime_s)
        returncode = _run_to_completion(files.name, argv, files.console_log, budget_s)
    finally:
        _remove_work_dir(work_dir)
    where = f"this host ({socket.gethostname()})"
    return collect_result(
        job, files, argv=argv, directory=str(directory), size_bytes=size, returncode=returncode, where=where
    )


def _run_to_completion(name: str, argv: list[str], console_log: Path, timeout_s: float) -> int:
    """Run fio and wait for it; on timeout or Ctrl-C stop it and reap it by PID before returning or raising.

    fio runs as a daemon rather than through ``proc.run``: subprocess.run does not wait for a child it killed on
    KeyboardInterrupt, so the caller could start removing the data files while fio still writes them.
    """
    daemon = proc.start_daemon(f"fio {name}", argv, log_path=console_log)
    try:
        return daemon.wait(timeout_s)
    except WaitTimeout as e:
        raise CommandFailed(
            f"fio job {name!r} did not finish within {timeout_s:g} s", stderr_tail=tail(daemon.log_text())
        ) from e
    finally:
        # A no-op when fio has exited; otherwise SIGTERM (fio stops its jobs and still writes its JSON), then SIGKILL.
        daemon.stop(timeout_s=10.0)


def _remove_work_dir(work_dir: Path) -> None:
    """Remove the directory run_fio_job created with mkdtemp: only fio's data files live there."""
    try:
        shutil.rmtree(work_dir)
    except OSError as e:
        # Raising here would hide the exception in flight (Ctrl-C, timeout); the measurement itself is fine.
        log.warning("could not remove fio's data directory %s (space is still taken): %s", work_dir, e)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
