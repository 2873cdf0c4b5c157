"""A file of a node's ``/var/log`` as its kubelet serves it (``GET /api/v1/nodes/NODE/proxy/logs/NAME``, the
kubelet's system log handler, on by default): how long it is now, and what was appended since. What a node's kernel
storage clients (NFS, open-iscsi) say about their server goes to its kernel log, ``kern.log`` on most
distributions; the harness reads it through the API, never by logging into the node. A kubelet that serves no such
file (journald only, ``enableSystemLogHandler: false``, no ``nodes/proxy`` right) gives ``None``: the caller says so.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from harness.errors import InfraError
from harness.fmt import shorten

if TYPE_CHECKING:
    from harness.kube.api import KubeApi

MAX_READ_BYTES = 1 << 20  # what a restart's window appended: a busy node's kernel log is not read whole

_TOTAL = re.compile(r"/(\d+)\s*$")


def _total(content_range: str) -> int | None:
    found = _TOTAL.search(content_range)
    return int(found.group(1)) if found else None


def _get(api: KubeApi, node: str, name: str, first: int, last: int) -> tuple[bytes, int | None] | None:
    """A ranged GET of the node's ``/var/log/<name>``: (the bytes ``first``..``last`` that exist, the file's length
    when the kubelet said it); None when the kubelet serves no such file."""
    from urllib3.exceptions import HTTPError

    try:
        response: Any = api.raw(
            "GET", f"/api/v1/nodes/{node}/proxy/logs/{name}", headers={"Range": f"bytes={first}-{last}"}
        )
    except (HTTPError, OSError) as e:
        raise InfraError(f"could not read {name} of node {node} via {api.where}: {shorten(str(e))}") from e
    if response.status == 416:  # nothing at or after ``first``: its Content-Range says how long the file is
        return b"", _total(response.headers.get("Content-Range", ""))
    if response.status in (403, 404):
        return None
    if response.status >= 300:
        said = shorten(response.data.decode(errors="replace"))
        raise InfraError(f"could not read {name} of node {node} via {api.where}: {response.status} {said}")
    body: bytes = response.data
    if response.status == 206:
        return body, _total(response.headers.get("Content-Range", ""))
    # A server that ignores Range sends the whole file.
    return body[first : last + 1], len(body)


def log_size(api: KubeApi, node: str, name: str) -> int | None:
    """The length of the node's ``/var/log/<name>`` now (None: not served, or its length not said)."""
    got = _get(api, node, name, 0, 0)
    return got[1] if got is not None else None


def log_since(api: KubeApi, node: str, name: str, offset: int) -> str | None:
    """What was appended to the node's ``/var/log/<name>`` after its first ``offset`` bytes (at most
    ``MAX_READ_BYTES``); None when the kubelet serves no such file."""
    got = _get(api, node, name, offset, offset + MAX_READ_BYTES - 1)
    return got[0].decode(errors="replace") if got is not None else None
