"""The spoke's probe endpoints for its Deployment: ``/healthz`` and ``/livez`` (the loop is turning),
``/readyz`` (and the in-cluster state is loaded and enforced). Each answer's body also carries the
spoke's state problems, one a line (a missing or damaged state or inventory Secret, what it stops and
what to do), so ``curl :8081/healthz`` says why a live spoke enforces nothing.

A stdlib HTTP server on its own thread; what "alive" and "ready" mean is the agent's, passed in as
callables, so this module knows nothing of the loop.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["HealthServer"]


class HealthServer:
    """Answers the probes on ``host:port`` (port 0: any free port, see ``port``) until ``close()``."""

    def __init__(self, host: str, port: int, *, alive: Callable[[], bool], ready: Callable[[], bool],
                 problems: Callable[[], list[str]] = list) -> None:

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the stdlib's name
                if self.path in ("/healthz", "/livez"):
                    code = 200 if alive() else 503
                elif self.path == "/readyz":
                    code = 200 if alive() and ready() else 503
                else:
                    code = 404
                lines = ["ok" if code == 200 else "not ok"]
                if code != 404:
                    lines += [f"problem: {p}" for p in problems()]
                body = ("\n".join(lines) + "\n").encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds would flood the log

        self._http = http.server.ThreadingHTTPServer((host, port), Handler)
        self._http.daemon_threads = True
        self.port = int(self._http.server_address[1])
        threading.Thread(target=self._http.serve_forever, name="convoy-healthz", daemon=True).start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
