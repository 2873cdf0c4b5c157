"""``KubeApi``'s one table of kinds, without a cluster: every verb a kind lists names a method the installed client
has, taking its leading arguments in the order ``Kind.args`` gives them; a kind or verb not in the table is an
``UnsupportedKind`` naming both."""

from __future__ import annotations

import inspect

import kubernetes
import pytest

from harness.kube.api import KubeApi
from harness.kube.kinds import KINDS, UnsupportedKind

APIS = {
    "core": kubernetes.client.CoreV1Api,
    "apps": kubernetes.client.AppsV1Api,
    "storage": kubernetes.client.StorageV1Api,
    "custom": kubernetes.client.CustomObjectsApi,
    "extensions": kubernetes.client.ApiextensionsV1Api,
    "batch": kubernetes.client.BatchV1Api,
}


@pytest.mark.parametrize(("kind", "verb"), [(k, v) for k, spec in KINDS.items() for v in sorted(spec.verbs)])
def test_every_verb_names_a_client_method_with_its_arguments_in_order(kind: str, verb: str) -> None:
    spec = KINDS[kind]
    method = getattr(APIS[spec.api], spec.method(verb))  # type: ignore[arg-type]
    required = inspect.signature(method).parameters.items()
    params = [n for n, p in required if p.default is inspect.Parameter.empty and n != "self"]
    if verb == "list":
        assert params == []
        return
    names = {"<target>": "body" if verb == "create" else "name", "<ns>": "namespace"}
    if spec.custom is not None:
        names.update(zip(spec.custom, ("group", "version", "plural"), strict=True))
    expected = [names[a] for a in spec.args(verb, "<target>", "<ns>")]  # type: ignore[arg-type]
    assert params == [*expected, *(["body"] if verb == "patch" else [])]


def test_a_kind_or_verb_not_in_the_table_is_named() -> None:
    api = object.__new__(KubeApi)  # no client: the table is consulted before any call
    with pytest.raises(UnsupportedKind, match=r"cannot delete a ConfigMap \(.*: create\)"):
        api._method("ConfigMap", "delete")
    with pytest.raises(UnsupportedKind, match="cannot read a Node"):
        api.exists("Node", "node-1")
    with pytest.raises(UnsupportedKind, match="no kind 'Deployment'"):
        api.create({"kind": "Deployment", "metadata": {"name": "x", "namespace": "y"}})
