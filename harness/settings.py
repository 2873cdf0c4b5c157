"""The settings of the harness host and its cluster that come from the environment, not from the scenario: one
table (``VARIABLES``), read once by the CLI (``Settings.from_environ``) and handed down; nothing below the CLI reads
the environment. The documentation site's list of variables (``docs/reference/settings.md``) is generated from the
same table (``markdown_table``), and a test holds the two equal.

A variable that is set but means nothing (``HARNESS_K8S_REACH=maybe``) is a UsageError naming it and what it takes
(exit 2), raised when the settings are read, before anything runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from harness.errors import UsageError

Reach = Literal["auto", "pod-ip", "api-proxy"]

DEFAULT_TOOLS_IMAGE = "localhost/harness/tools:latest"
DEFAULT_WRITER_IMAGE = "localhost/harness/writer:latest"
DEFAULT_FIO_IMAGE = "localhost/harness/fio:latest"
# A running operator creates the StatefulSet within a second or two of the resource; a minute means none runs (or
# it does not watch the run's namespace).
DEFAULT_OPERATOR_WAIT_S = 60.0


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, its default in words, and what it sets."""

    name: str
    default: str
    meaning: str


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "HARNESS_K8S_REACH",
        "auto",
        "how the harness reaches Prometheus in a cluster: `auto` (the pod IP when this host routes to it, else the "
        "API server's pod proxy), `pod-ip`, `api-proxy`",
    ),
    Variable(
        "HARNESS_K8S_TOOLS_IMAGE",
        DEFAULT_TOOLS_IMAGE,
        "an image with a static `/bin/busybox`: signal faults' sidecar, fio's and disk_full's helper pods, scrape "
        "mode's exporter (e.g. `busybox:1.36`)",
    ),
    Variable("HARNESS_K8S_FIO_IMAGE", DEFAULT_FIO_IMAGE, "any image with `fio` on its PATH, for fio pods"),
    Variable(
        "HARNESS_K8S_WRITER_IMAGE",
        DEFAULT_WRITER_IMAGE,
        "an image with `python3` and this harness installed (and libfuse3): a sharded load's writer pods and the "
        "fault layer's sidecar",
    ),
    Variable(
        "HARNESS_K8S_OPERATOR_WAIT",
        f"{DEFAULT_OPERATOR_WAIT_S:g}",
        "seconds the Prometheus Operator gets to make the StatefulSet of the run's Prometheus resource",
    ),
    Variable(
        "HARNESS_NODE_STOP",
        "(none)",
        "node_loss without `node_control`: the command (shell words, `{node}` replaced) that makes a node die",
    ),
    Variable("HARNESS_NODE_START", "(none)", "node_loss without `node_control`: the command that brings it back"),
    Variable(
        "HARNESS_NFS_MOUNT",
        "(none)",
        "local runtime: an NFS mount of your own to run on, as `storage.mount_path` when the scenario sets none (the "
        "harness then mounts nothing itself)",
    ),
    Variable(
        "HARNESS_ISCSI_MOUNT",
        "(none)",
        "local runtime: a mounted iSCSI LUN of your own to run on, as `storage.mount_path` when the scenario sets none",
    ),
    Variable(
        "HARNESS_CONFIG",
        "~/.config/prom-harness/config.yaml",
        "the harness config file (allowed contexts, owner); unset: `prom-harness/config.yaml` under "
        "`$XDG_CONFIG_HOME` when that is set",
    ),
)


@dataclass(frozen=True)
class Settings:
    """What the environment set (``VARIABLES``), parsed; the defaults where it set nothing."""

    k8s_reach: Reach = "auto"
    k8s_tools_image: str = DEFAULT_TOOLS_IMAGE
    k8s_fio_image: str = DEFAULT_FIO_IMAGE
    k8s_writer_image: str = DEFAULT_WRITER_IMAGE
    k8s_operator_wait_s: float = DEFAULT_OPERATOR_WAIT_S
    node_stop: tuple[str, ...] = ()  # empty: not set
    node_start: tuple[str, ...] = ()
    mounts: Mapping[str, str] = field(default_factory=dict)  # backend -> a mount of the user's (HARNESS_*_MOUNT)
    config_file: str | None = None  # HARNESS_CONFIG; None: the XDG default
    # Not a HARNESS_* variable (not in VARIABLES): the XDG base directory the default config file is under.
    xdg_config_home: str | None = None

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Settings:
        """The settings ``env`` gives (the CLI passes ``os.environ``); UsageError for a value that means nothing."""

        def text(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        reach_value = text("HARNESS_K8S_REACH", "auto")
        reach = next((r for r in get_args(Reach) if r == reach_value), None)
        if reach is None:
            raise UsageError(f"HARNESS_K8S_REACH={reach_value!r}: use auto, pod-ip or api-proxy")
        wait_value = text("HARNESS_K8S_OPERATOR_WAIT", "")
        wait_s = DEFAULT_OPERATOR_WAIT_S
        if wait_value:
            try:
                wait_s = float(wait_value)
            except ValueError:
                wait_s = 0.0
            if not wait_s > 0:
                raise UsageError(
                    f"HARNESS_K8S_OPERATOR_WAIT={wait_value!r}: give the seconds to wait for the operator, e.g. 60"
                )
        commands = {}
        for name in ("HARNESS_NODE_STOP", "HARNESS_NODE_START"):
            try:
                commands[name] = tuple(shlex.split(text(name, "")))
            except ValueError as e:
                raise UsageError(f"{name}: not shell words ({e})") from e
        mounts = {b: v for b in ("nfs", "iscsi") if (v := text(f"HARNESS_{b.upper()}_MOUNT", ""))}
        return cls(
            k8s_reach=reach,
            k8s_tools_image=text("HARNESS_K8S_TOOLS_IMAGE", DEFAULT_TOOLS_IMAGE),
            k8s_fio_image=text("HARNESS_K8S_FIO_IMAGE", DEFAULT_FIO_IMAGE),
            k8s_writer_image=text("HARNESS_K8S_WRITER_IMAGE", DEFAULT_WRITER_IMAGE),
            k8s_operator_wait_s=wait_s,
            node_stop=commands["HARNESS_NODE_STOP"],
            node_start=commands["HARNESS_NODE_START"],
            mounts=mounts,
            config_file=text("HARNESS_CONFIG", "") or None,
            xdg_config_home=text("XDG_CONFIG_HOME", "") or None,
        )


def markdown_table() -> str:
    """The documentation site's table of variables (``docs/reference/settings.md``), from ``VARIABLES``."""
    rows = [
        f"| `{v.name}` | {v.default if v.default.startswith('(') else f'`{v.default}`'} | {v.meaning} |"
        for v in VARIABLES
    ]
    return "\n".join(["| variable | default | what it sets |", "| --- | --- | --- |", *rows])
