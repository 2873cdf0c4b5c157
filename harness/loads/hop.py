"""A slow hop between the write load and Prometheus: every request waits ``latency`` before it is passed on, as it
would crossing a WAN or a cluster's API server proxy (``loads.tsdb.latency``).

A writer with one request in flight is limited by how long each answer takes, not by what Prometheus could take at
once: this is the load's side of the network, so that what sharding is for can be shown on one host. Each request
is delayed on its own (one thread each), like a network's latency and unlike a disk's queue: two requests sent
together arrive together. Prometheus' answer comes back as it was; when there is none (Prometheus down, the
connection refused or cut), the hop gives none either and closes the connection, so the writer counts an attempt
that got no answer, exactly as it would talking to Prometheus itself.
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Passed on both ways; hop-by-hop headers (Connection, Keep-Alive, ...) are the hop's own.
_REQUEST_HEADERS = ("Content-Type", "Content-Encoding", "User-Agent", "X-Prometheus-Remote-Write-Version")
_RESPONSE_HEADERS = ("Content-Type", "Content-Encoding")
UPSTREAM_TIMEOUT_S = 30.0  # the writer's own request timeout is shorter: it gives up first


class DelayHop:
    """``route(endpoint)`` points the hop at Prometheus' base URL and returns the URL the writer uses instead."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self._target: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the hop is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        hop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the writer's session expects

            def do_POST(self) -> None:
                hop._pass_on(self)

            def do_GET(self) -> None:
                hop._pass_on(self)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="delay-hop", daemon=True)
        self._thread.start()

    def route(self, endpoint: str | None) -> str | None:
        self._target = endpoint
        return None if endpoint is None else self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _pass_on(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        time.sleep(self.latency_s)
        target = self._target
        try:
            if target is None:
                raise ConnectionRefusedError("no Prometheus to pass the request on to")
            where = urlsplit(target)
            conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=UPSTREAM_TIMEOUT_S)
            try:
                headers = {k: v for k in _REQUEST_HEADERS if (v := handler.headers.get(k)) is not None}
                conn.request(handler.command, handler.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            handler.close_connection = True  # no answer from Prometheus: none from the hop
            return
        handler.send_response(answer.status)
        for name in _RESPONSE_HEADERS:
            if (value := answer.getheader(name)) is not None:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
