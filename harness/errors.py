"""The harness's error tree: every failure the tool reports is one of these.

    HarnessError                      base; ``exit_code`` says how the CLI exits
    +-- UsageError                    bad input from the user (exit 2)
    |   +-- ScenarioError             a scenario file is invalid; carries every problem with file:line
    |       +-- ConfigError           the user's harness config file is invalid (same file:line problems)
    +-- InfraError                    the environment or the harness broke (exit 2)
    |   +-- MissingBinary             a required program is not installed; names the package
    |   +-- CommandFailed             a subprocess exited non-zero or timed out
    |   +-- WaitTimeout               a bounded wait gave up; says what it waited for
    |   +-- PrometheusError           the Prometheus HTTP API answered with an error
    |   +-- StorageUnavailable        the storage a scenario names cannot be used here
    +-- NotRecovered                  Prometheus or its storage did not come back after a fault (exit 1)

"The system under test failed" (exit 1) is kept apart from "the tool or environment broke" (exit 2), so a
nightly job can tell a storage regression from a broken runner.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.fmt import shorten


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code: int = 2


class UsageError(HarnessError):
    """The user gave input the harness cannot work with."""


@dataclass(frozen=True)
class ScenarioProblem:
    """One problem in a scenario file, located as precisely as the YAML allows."""

    file: str
    line: int | None
    column: int | None
    key_path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {self.key_path}:" if self.key_path else ""
        return f"{where}:{key} {self.message}"


class ScenarioError(UsageError):
    """A scenario file is invalid. Carries all problems found, not just the first."""

    def __init__(self, problems: list[ScenarioProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigError(ScenarioError):
    """The user's harness config file (``harness.config``) is invalid; reported like a scenario file's problems."""


class InfraError(HarnessError):
    """The environment or the harness itself broke; says nothing about the storage under test."""


class MissingBinary(InfraError):
    def __init__(self, binary: str, package: str) -> None:
        self.binary = binary
        self.package = package
        super().__init__(
            f"required program {binary!r} is not installed; install the Debian/Ubuntu package {package!r} "
            f"(apt-get install {package})"
        )


class CommandFailed(InfraError):
    def __init__(self, reason: str, return_code: int | None = None, stderr_tail: str = "") -> None:
        self.reason = reason
        self.return_code = return_code
        self.stderr_tail = stderr_tail
        msg = reason if return_code is None else f"{reason} (exit code {return_code})"
        if stderr_tail:
            msg += f"\n{stderr_tail}"
        super().__init__(msg)


class WaitTimeout(InfraError):
    def __init__(self, what: str, timeout_s: float, last_state: str = "") -> None:
        self.what = what
        self.timeout_s = timeout_s
        self.last_state = last_state
        # Rounded: a wait given "what is left of a deadline" would otherwise say 24.9999 s.
        msg = f"gave up after {round(timeout_s, 1):g} s waiting for {what}"
        if last_state:
            msg += f" (last seen: {last_state})"
        super().__init__(msg)


class PrometheusError(InfraError):
    def __init__(self, message: str, url: str, query: str | None = None) -> None:
        self.url = url
        self.query = query
        where = f" [{url}" + (f" query={shorten(query, 200)}" if query else "") + "]"
        super().__init__(message + where)


class StorageUnavailable(InfraError):
    """The storage a scenario names cannot be used on this runtime/host; the message says what to configure."""


class NotRecovered(HarnessError):
    """Prometheus did not come back after a fault: not ready within ``ready_timeout``, exited, or its pod cannot be
    placed because of its storage (a local PV pinned to a cordoned node, a Released PV). That is a finding about
    the storage or Prometheus (FAILED, exit 1), not a broken harness; the message gives the system's own reason."""

    exit_code = 1
