"""The one table of the kinds of object ``KubeApi`` handles (``KINDS``): each kind once, with the client API
serving it, its method names and the verbs (create, read, delete, list, patch) ``KubeApi`` does to it. A kind or verb
not in the table is an ``UnsupportedKind`` naming both, never a bare KeyError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from harness.kube.inventory import PROMETHEUS_API

Verb = Literal["create", "read", "delete", "list", "patch"]


@dataclass(frozen=True)
class Kind:
    """A kind of object ``KubeApi`` handles: the client API serving it (the ``KubeApi`` attribute holding it), the
    stem of that API's method names (``pod``: ``create_namespaced_pod``, ``read_namespaced_pod``, ...), whether it
    is namespaced, and the verbs ``KubeApi`` does to it. A custom resource names its (group, version, plural): the
    custom objects API serves it (``get_namespaced_custom_object`` reads)."""

    api: str
    stem: str
    namespaced: bool
    verbs: frozenset[Verb]
    custom: tuple[str, str, str] | None = None

    def method(self, verb: Verb) -> str:
        """The name of the client method doing ``verb`` to this kind."""
        prefix = "get" if verb == "read" and self.custom is not None else verb
        return f"{prefix}_{'namespaced_' if self.namespaced else ''}{self.stem}"

    def args(self, verb: Verb, target: Any, namespace: str) -> tuple[Any, ...]:
        """The leading positional arguments of ``verb``'s method, ``target`` being the manifest (create) or the name
        (any other verb; a patch's body follows them)."""
        if self.custom is not None:
            group, version, plural = self.custom
            return group, version, namespace, plural, target
        if not self.namespaced:
            return (target,)
        return (namespace, target) if verb == "create" else (target, namespace)


def _verbs(*verbs: Verb) -> frozenset[Verb]:
    return frozenset(verbs)


_CREATE_READ_DELETE = _verbs("create", "read", "delete")

# Every kind KubeApi handles, once: a verb not listed is refused with an ``UnsupportedKind`` naming kind and verb.
KINDS: dict[str, Kind] = {
    "Namespace": Kind("core", "namespace", False, _CREATE_READ_DELETE | {"list"}),
    "PersistentVolume": Kind("core", "persistent_volume", False, _CREATE_READ_DELETE | {"list", "patch"}),
    "StorageClass": Kind("storage", "storage_class", False, _CREATE_READ_DELETE | {"list"}),
    "Node": Kind("core", "node", False, _verbs("list", "patch")),
    "CustomResourceDefinition": Kind("extensions", "custom_resource_definition", False, _verbs("read")),
    "PersistentVolumeClaim": Kind("core", "persistent_volume_claim", True, _CREATE_READ_DELETE),
    "ConfigMap": Kind("core", "config_map", True, _verbs("create")),
    "Secret": Kind("core", "secret", True, _verbs("create")),
    "Pod": Kind("core", "pod", True, _CREATE_READ_DELETE),
    "Service": Kind("core", "service", True, _CREATE_READ_DELETE),
    "StatefulSet": Kind("apps", "stateful_set", True, _CREATE_READ_DELETE),
    "Job": Kind("batch", "job", True, _CREATE_READ_DELETE),
    "Prometheus": Kind("custom", "custom_object", True, _CREATE_READ_DELETE | {"patch"}, custom=PROMETHEUS_API),
}


class UnsupportedKind(LookupError):
    """``KubeApi`` was asked for a kind it does not handle, or a verb it does not do to that kind."""
