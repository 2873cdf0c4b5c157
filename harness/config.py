"""The user's harness config: which kube contexts the harness may use without being told, and who "mine" is.

The file is ``$HARNESS_CONFIG`` when set, else ``$XDG_CONFIG_HOME/prom-harness/config.yaml`` (by default
``~/.config/prom-harness/config.yaml``), both as the CLI read them (``harness.settings``: nothing here reads the
environment); a missing file means the defaults. It is read like a scenario file
(``harness.scenario.loader.load_model``): unknown keys and wrong types are reported with file:line and key path.

    kubernetes:
      allowed_contexts: [prom-harness]   # contexts used without --context when they are the current-context
    owner: alice                         # who "mine" is for `harness cleanup --all-mine` (default user@hostname)

A kube context is used only when ``--context`` names it, or when it is the kubeconfig's current-context and
``allowed_contexts`` lists it: a harness that creates namespaces, PVs and cordons nodes must never land on whatever
cluster a shell happens to point at.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator

from harness.errors import ConfigError, UsageError
from harness.ownership import default_owner
from harness.scenario.model import Strict
from harness.settings import Settings


class KubernetesConfig(Strict):
    allowed_contexts: list[str] = Field(
        default_factory=list,
        description="kube contexts the harness may use without --context, when they are the current-context",
    )


class UserConfig(Strict):
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
    owner: str | None = Field(
        default=None, description="who runs the harness: marks what runs create, selects `cleanup --all-mine`"
    )
    _path: Path | None = PrivateAttr(default=None)  # the file it was read from (or would have been)

    @field_validator("owner")
    @classmethod
    def _owner_has_a_name(cls, value: str | None) -> str | None:
        if value is not None and not any(c.isalnum() for c in value):
            raise ValueError(f"owner {value!r} has no letter or digit; use e.g. your user name")
        return value

    def effective_owner(self) -> str:
        return self.owner or default_owner()

    @property
    def path(self) -> Path | None:
        """The file this config was read from, or the one that would have been read (None: not from a file)."""
        return self._path


def config_path(settings: Settings) -> Path:
    """The harness config file the settings name: ``HARNESS_CONFIG``, else under ``XDG_CONFIG_HOME`` or ~/.config."""
    if settings.config_file:
        return Path(settings.config_file)
    base = settings.xdg_config_home or str(Path.home() / ".config")
    return Path(base) / "prom-harness" / "config.yaml"


def load_user_config(settings: Settings) -> UserConfig:
    """The config file the settings name (``config_path``); defaults when there is no file. ConfigError (exit 2)
    with every problem located when it is invalid."""
    from harness.scenario.loader import load_model

    path = config_path(settings)
    config = (
        load_model(path, UserConfig, what="the harness config file", error=ConfigError, empty_ok=True)
        if path.exists()
        else UserConfig()
    )
    config._path = path
    return config


def choose_context(kubeconfig: str | None, given: str | None, config: UserConfig) -> str:
    """The kube context to use: exactly ``given`` (--context), which must exist; else the current-context when the
    config allows it. Anything else is a UsageError saying how to allow it, before anything touches the cluster."""
    from harness.kube.contexts import kube_contexts

    contexts, current, where = kube_contexts(kubeconfig)
    listed = ", ".join(contexts) if contexts else "(none)"
    if given is not None:
        if given not in contexts:
            raise UsageError(f"kube context {given!r} is not in {where}; its contexts: {listed}")
        return given
    allowed = config.kubernetes.allowed_contexts
    if current is not None and current in allowed:
        return current
    what = (f"the current-context of {where} is {current!r}" if current else f"{where} has no current-context") + (
        f" (its contexts: {listed})" if contexts else ""
    )
    example = current or (contexts[0] if contexts else "NAME")
    listed_allowed = f" (it allows: {', '.join(allowed)})" if allowed else ""
    where_config = config.path or "the harness config"
    raise UsageError(
        f"no kube context given: {what}, and the harness uses a cluster only when told to. Either name the "
        f"context on the command line:\n\n    --context {example}\n\nor allow it in {where_config}"
        f"{listed_allowed}:\n\n    kubernetes:\n      allowed_contexts: [{example}]\n"
    )
