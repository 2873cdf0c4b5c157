"""The harness's only HTTP client to Prometheus and the only importer of ``prometheus_api_client``.

It turns API answers into typed values (``InstantSample``, raw samples keyed by ``LabelsKey``), sends remote-write
requests and reports their outcome, and wraps every transport or API failure into ``PrometheusError`` carrying the
URL and the query. Retries are deliberately off: callers decide what a failure means (a Prometheus that is down
during a fault is expected, not an error to hide behind retries).
"""

from __future__ import annotations

import codecs
import enum
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from harness.errors import PrometheusError
from harness.exposition import parse_exposition
from harness.fmt import shorten

log = logging.getLogger(__name__)

# A series' identity: its label pairs sorted by name, ``__name__`` included. Hashable, so usable as a dict key.
LabelsKey = tuple[tuple[str, str], ...]

REMOTE_WRITE_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "prom-storage-harness",
}


# The ``handler`` label of the remote-write receiver in ``prometheus_http_requests_total``: the ``/api/v1`` prefix the
# API's instrumentation adds to the route ``/write`` (web/web.go, 2.x and 3.x alike; checked on Debian's 2.42).
WRITE_HANDLER = "/api/v1/write"
REQUESTS_METRIC = "prometheus_http_requests_total"
# Samples appended to the head by any path: remote write and Prometheus' own scrapes alike (WAL replay is not counted).
APPENDED_METRIC = "prometheus_tsdb_head_samples_appended_total"
START_METRIC = "process_start_time_seconds"


def labels_key(labels: dict[str, str]) -> LabelsKey:
    return tuple(sorted(labels.items()))


def selector(key: LabelsKey) -> str:
    """PromQL selector of exactly one series, e.g. ``harness_load_0{run_id="r1",series="7"}``."""
    name = dict(key).get("__name__", "")
    matchers = ",".join(f'{k}="{_escape(v)}"' for k, v in key if k != "__name__")
    return f"{name}{{{matchers}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass(frozen=True)
class InstantSample:
    labels: LabelsKey
    timestamp_ms: int
    value: float

    @property
    def metric_name(self) -> str | None:
        return dict(self.labels).get("__name__")


@dataclass(frozen=True)
class ServerWrites:
    """What one Prometheus process says on its own ``/metrics`` about the writes it took since it started. Its
    counters start at 0 with every process, so a run sums them over the processes it saw (``process_start_unix_s``
    tells one from the next)."""

    process_start_unix_s: float | None  # None: not exposed (it is, by the Go process collector on Linux)
    write_requests: dict[str, int]  # remote-write requests it answered, by HTTP status code ("204", "400", ...)
    samples_appended: int  # samples appended to its head: remote write *and* its own scrapes (see ``APPENDED_METRIC``)

    @property
    def accepted_requests(self) -> int:
        """Remote-write requests it answered with a 2xx: each was committed before the answer left."""
        return sum(n for code, n in self.write_requests.items() if code.startswith("2"))

    @property
    def refused_requests(self) -> int:
        """Remote-write requests it answered with a 5xx: it could not commit them (a dead volume under its WAL)."""
        return sum(n for code, n in self.write_requests.items() if code.startswith("5"))


class WriteOutcome(enum.Enum):
    ACKED = "acked"  # 204: Prometheus committed every sample to its WAL
    REJECTED = "rejected"  # an HTTP error: some samples may have been stored, none is acknowledged
    UNREACHABLE = "unreachable"  # no connection could be made: nothing was stored
    UNKNOWN = "unknown"  # the connection broke or timed out after sending: may or may not be stored


class PromClient:
    """A Prometheus server's HTTP API at ``base_url`` (e.g. ``http://127.0.0.1:9090``), every call bounded."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        # What the last remote write that was not acknowledged got, in one line ("HTTP 500: ...no space left on
        # device", "connection refused"), for the report of a fault; None after an acknowledged one.
        self.last_write_error: str | None = None
        self._session = requests.Session()
        # POST keeps long selectors (hundreds of series ids in a regex) out of the URL length limit.
        self._api = PrometheusConnect(
            url=self.base_url,
            disable_ssl=True,
            retry=Retry(total=0, raise_on_status=False),
            session=self._session,
            timeout=timeout_s,
            method="POST",
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> PromClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- status ----------------------------------------------------------------------------------------

    def ready(self) -> bool:
        """True when ``/-/ready`` answers 200 (it is 503 during WAL replay)."""
        return self._probe("/-/ready")

    def healthy(self) -> bool:
        """True when ``/-/healthy`` answers 200 (already the case during WAL replay)."""
        return self._probe("/-/healthy")

    def _probe(self, path: str) -> bool:
        try:
            return self._session.get(self.base_url + path, timeout=self.timeout_s).status_code == 200
        except requests.RequestException:
            return False

    def build_version(self) -> str:
        """The server's version string from ``/api/v1/status/buildinfo``, e.g. ``2.42.0+ds``."""
        url = self.base_url + "/api/v1/status/buildinfo"
        try:
            resp = self._session.get(url, timeout=self.timeout_s)
            resp.raise_for_status()
            version = resp.json()["data"]["version"]
        except (requests.RequestException, ValueError, KeyError, TypeError) as e:
            raise PrometheusError(f"cannot read the build info: {e}", url) from e
        return str(version)

    def server_writes(self) -> ServerWrites:
        """Its own count of the remote writes it answered and the samples it appended, from ``/metrics``."""
        url = self.base_url + "/metrics"
        try:
            # The classic text format: what ``parse_exposition`` reads (3.x could otherwise negotiate another).
            resp = self._session.get(url, timeout=self.timeout_s, headers={"Accept": "text/plain;version=0.0.4"})
            resp.raise_for_status()
            requests_by_code: dict[str, int] = {}
            appended = 0
            start: float | None = None
            for name, labels, value in parse_exposition(resp.text, {REQUESTS_METRIC, APPENDED_METRIC, START_METRIC}):
                if name == REQUESTS_METRIC and labels.get("handler") == WRITE_HANDLER:
                    code = labels.get("code", "")
                    requests_by_code[code] = requests_by_code.get(code, 0) + round(value)
                elif name == APPENDED_METRIC:
                    appended += round(value)  # one series per sample type (float, histogram) in 2.4x and 3.x
                elif name == START_METRIC:
                    start = value
        except (requests.RequestException, ValueError) as e:
            raise PrometheusError(f"cannot read its own metrics: {shorten(str(e))}", url) from e
        # 3.x pre-registers handler series at 0 (code 200 of every handler): only counts say anything.
        return ServerWrites(start, {c: n for c, n in sorted(requests_by_code.items()) if n}, appended)

    # --- queries ---------------------------------------------------------------------------------------

    def _query(self, expr: str, at_unix_s: float | None) -> Any:
        params = {} if at_unix_s is None else {"time": f"{at_unix_s:.3f}"}
        try:
            return self._api.custom_query(expr, params=params)
        except (PrometheusApiClientException, requests.RequestException, ValueError, KeyError) as e:
            raise PrometheusError(f"query failed: {shorten(str(e))}", self.base_url + "/api/v1/query", expr) from e

    def instant(self, expr: str, at_unix_s: float | None = None) -> list[InstantSample]:
        """Evaluate ``expr`` at one instant (now by default); a vector or scalar result, typed."""
        result = self._query(expr, at_unix_s)
        try:
            if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
                return [InstantSample((), round(float(result[0]) * 1000), float(result[1]))]  # scalar
            return [
                InstantSample(
                    labels_key(item["metric"]), round(float(item["value"][0]) * 1000), float(item["value"][1])
                )
                for item in result
            ]
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise PrometheusError(
                f"unexpected instant-query result shape: {shorten(repr(result))}", self.base_url, expr
            ) from e

    def instant_stream(self, expr: str, at_unix_s: float) -> Iterator[InstantSample]:
        """Evaluate ``expr`` at one instant and yield its vector's samples as they are read off the wire: a
        per-series answer for a million series is hundreds of MB as one JSON document, and the caller needs one
        sample at a time, so the whole answer is never held."""
        url = self.base_url + "/api/v1/query"
        try:
            resp = self._session.post(
                url, data={"query": expr, "time": f"{at_unix_s:.3f}"}, timeout=self.timeout_s, stream=True
            )
            with resp:
                if resp.status_code != 200:
                    raise PrometheusError(f"query failed: HTTP {resp.status_code}: {shorten(resp.text)}", url, expr)
                for item in stream_vector(resp.iter_content(chunk_size=1 << 16)):
                    value = item["value"]
                    yield InstantSample(labels_key(item["metric"]), round(float(value[0]) * 1000), float(value[1]))
        except requests.RequestException as e:
            raise PrometheusError(f"query failed: {shorten(str(e))}", url, expr) from e
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise PrometheusError(f"unexpected instant-query answer: {shorten(str(e))}", url, expr) from e

    def raw_samples(self, selector: str, window_s: float, at_unix_s: float) -> dict[LabelsKey, list[tuple[int, float]]]:
        """The samples Prometheus stored for ``selector`` in the ``window_s`` before ``at_unix_s``, exactly as stored.

        An instant query of a range selector returns raw samples; ``query_range`` would return step-evaluated values
        (the latest sample within the lookback at each step), which cannot prove a given sample exists.
        """
        expr = f"{selector}[{round(window_s * 1000)}ms]"
        result = self._query(expr, at_unix_s)
        out: dict[LabelsKey, list[tuple[int, float]]] = {}
        try:
            for item in result:
                out[labels_key(item["metric"])] = [(round(float(t) * 1000), float(v)) for t, v in item["values"]]
        except (KeyError, TypeError, ValueError) as e:
            raise PrometheusError(
                f"unexpected range-query result shape: {shorten(repr(result))}", self.base_url, expr
            ) from e
        return out

    def count(self, expr: str, at_unix_s: float | None = None) -> int:
        """How many series ``expr`` evaluates to (0 when it matches nothing)."""
        samples = self.instant(f"count({expr})", at_unix_s)
        return int(samples[0].value) if samples else 0

    # --- remote write ------------------------------------------------------------------------------------

    def remote_write(self, body: bytes) -> WriteOutcome:
        """POST one snappy-compressed ``WriteRequest`` to ``/api/v1/write``; never raises for a down server."""
        url = self.base_url + "/api/v1/write"
        try:
            resp = self._session.post(url, data=body, headers=REMOTE_WRITE_HEADERS, timeout=self.timeout_s)
        except requests.ConnectionError as e:
            reason = getattr(e.args[0], "reason", None) if e.args else None
            if isinstance(reason, NewConnectionError):
                self.last_write_error = "connection refused"
                return WriteOutcome.UNREACHABLE
            log.debug("remote write to %s broke: %s", url, e)
            self.last_write_error = f"connection broke: {type(e).__name__}"
            return WriteOutcome.UNKNOWN
        except requests.RequestException as e:
            log.debug("remote write to %s failed: %s", url, e)
            self.last_write_error = f"no answer: {type(e).__name__}"
            return WriteOutcome.UNKNOWN
        if resp.status_code == 204:
            self.last_write_error = None
            return WriteOutcome.ACKED
        log.debug("remote write to %s answered %d: %s", url, resp.status_code, shorten(resp.text))
        self.last_write_error = f"HTTP {resp.status_code}: {shorten(resp.text.strip(), 300)}"
        return WriteOutcome.REJECTED


_RESULT = '"result":'
_DECODER = json.JSONDecoder()


def stream_vector(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The items of ``data.result`` of a query answer (``{"status":"success","data":{"resultType":"vector",
    "result":[...]}}``), one at a time, from the answer's bytes as they arrive. The stdlib has no streaming JSON
    parser: this finds the result array and decodes one item at a time with ``raw_decode``, so memory stays at one
    network chunk plus one item. Raises ValueError on an answer of another shape or one that ends early."""
    reader = _Chunks(chunks)
    buf = ""
    while (at := buf.find(_RESULT)) < 0 or _skip(buf, at + len(_RESULT)) >= len(buf):
        if at < 0:
            buf = buf[-len(_RESULT) :]  # what precedes the array is not needed, only a key cut in two
        if not reader.more():
            raise ValueError("the answer ended before its result array")
        buf += reader.text
    pos = _skip(buf, at + len(_RESULT))
    if buf[pos] != "[":
        raise ValueError(f"the result is not an array: {buf[pos : pos + 40]!r}")
    buf, pos = buf[pos + 1 :], 0
    while True:
        pos = _skip(buf, pos, ",")
        if pos < len(buf) and buf[pos] == "]":
            return
        try:
            item, end = _DECODER.raw_decode(buf, pos) if pos < len(buf) else (None, pos)
        except ValueError:
            item, end = None, pos  # the item goes on in the next chunk
        if not isinstance(item, dict):
            if item is not None:
                raise ValueError(f"a result item that is not an object: {shorten(repr(item))}")
            if not reader.more():
                raise ValueError("the answer ended inside its result array")
            buf, pos = buf[pos:] + reader.text, 0
            continue
        yield item
        pos = end


class _Chunks:
    """Bytes off the wire as text, a chunk at a time (a UTF-8 character may be cut between chunks)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.text = ""

    def more(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self.text = self._decoder.decode(chunk)
        return True


def _skip(buf: str, pos: int, also: str = "") -> int:
    while pos < len(buf) and (buf[pos].isspace() or buf[pos] in also):
        pos += 1
    return pos
