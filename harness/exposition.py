"""The Prometheus text exposition format (0.0.4), read: the samples of named metrics as (name, labels, value). Enough
of the format for the ``/metrics`` of Prometheus itself (``harness.prom``) and of a kubelet
(``harness.kube.kubelet_metrics``); the ``prometheus_client`` parser is not a dependency of the harness. A module of
its own, importing nothing, so that neither reader pulls in the other's client.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,?)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_exposition(text: str, names: set[str]) -> Iterator[tuple[str, dict[str, str], float]]:
    """The samples of the metrics ``names`` in a text exposition: (name, labels, value). Raises ValueError on a line
    of one of ``names`` it cannot read."""
    for line in text.splitlines():
        m = _METRIC_NAME.match(line)  # comments (#) and blank lines do not match
        if m is None or m.group() not in names:
            continue
        pos, labels = m.end(), {}
        if line.startswith("{", pos):
            pos += 1
            while not line[pos:].lstrip().startswith("}"):
                # A pair, then a comma unless the closing brace follows (a comma before it is allowed too).
                pair = _LABEL_PAIR.match(line, pos)
                if pair is None or not (pair.group(3) or line.startswith("}", pair.end())):
                    raise ValueError(f"unreadable labels in {line!r}")
                labels[pair.group(1)] = re.sub(r"\\[\\\"n]", lambda e: _UNESCAPE[e.group()], pair.group(2))
                pos = pair.end()
            pos = line.index("}", pos) + 1
        fields = line[pos:].split()
        if not fields:
            raise ValueError(f"no value in {line!r}")
        yield m.group(), labels, float(fields[0])
