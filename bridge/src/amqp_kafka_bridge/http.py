"""The bridge's HTTP side: ``/metrics`` (Prometheus text), ``/healthz`` (process alive), ``/readyz`` (serving).

``/healthy`` and ``/ready`` answer the same as ``/healthz`` and ``/readyz``: the Strimzi bridge's
paths, so probes written for it keep working.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST


class HttpEndpoint:
    """Serves on a daemon thread. ``ready()`` and ``healthy()`` are called per request and must be cheap."""

    def __init__(
        self, host: str, port: int, metrics: Callable[[], bytes], healthy: Callable[[], bool], ready: Callable[[], bool]
    ) -> None:
        routes = {
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, metrics()),
            "/healthz": lambda: (200, "text/plain", b"ok\n") if healthy() else (503, "text/plain", b"unhealthy\n"),
            "/readyz": lambda: (200, "text/plain", b"ready\n") if ready() else (503, "text/plain", b"not ready\n"),
        }
        routes["/healthy"], routes["/ready"] = routes["/healthz"], routes["/readyz"]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's spelling)
                route = routes.get(self.path.split("?", 1)[0])
                status, ctype, body = route() if route else (404, "text/plain", b"not found\n")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # scrapes every few seconds would drown the structured log

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="bridge-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
