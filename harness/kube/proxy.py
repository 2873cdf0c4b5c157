"""``PodProxy``: a plain-HTTP server on 127.0.0.1 forwarding to a pod's port through the API server's pod proxy,
for hosts that cannot route to the pod network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.fmt import shorten

if TYPE_CHECKING:
    from harness.kube.api import KubeApi


class PodProxy:
    """A plain-HTTP endpoint on 127.0.0.1 that forwards to a pod's port through the API server's pod proxy.

    For hosts that cannot route to the pod network: Prometheus clients (queries, remote write) then talk to
    ``url`` without knowing about the API server's TLS and credentials, which this forwarder adds.
    """

    FORWARDED_HEADERS = (
        "Content-Type",
        "Content-Encoding",
        "X-Prometheus-Remote-Write-Version",
        "Accept",
        "User-Agent",
    )

    def __init__(self, api: KubeApi, namespace: str, pod: str, port: int) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        target = f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy"
        forwarded = self.FORWARDED_HEADERS

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                headers = {k: v for k in forwarded if (v := self.headers.get(k)) is not None}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                try:
                    resp = api.raw(self.command, target + self.path, headers=headers, body=body)
                except (OSError, HTTPError) as e:
                    self.send_error(502, f"API server pod proxy: {shorten(str(e), 100)}")
                    return
                self.send_response(resp.status)
                for key in ("Content-Type", "Content-Encoding"):
                    if key in resp.headers:
                        self.send_header(key, resp.headers[key])
                self.send_header("Content-Length", str(len(resp.data)))
                self.end_headers()
                self.wfile.write(resp.data)

            # http.server dispatches to do_<METHOD>.
            do_GET = _forward
            do_POST = _forward

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: every forwarded request would otherwise go to stderr."""

        from urllib3.exceptions import HTTPError

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="pod-proxy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
