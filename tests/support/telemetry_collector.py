"""A loopback telemetry collector whose answers a test scripts; shared by telemetry and runtime tests."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Long enough for any scripted exchange on a loaded CI box; tests normally finish far sooner.
WAIT_S = 5.0


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class CollectorServer:
    """A loopback telemetry collector whose answers a test scripts."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.accepted: list[list[dict[str, Any]]] = []  # record lists of batches answered 2xx
        self._script: list[int] = []
        self._default_status = 200
        self._hanging = False
        self.release = threading.Event()  # lets hanging handlers go (at teardown, or when a test says so)
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _CollectorHandler)
        self._httpd.collector = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest"

    def answer(self, *statuses: int, then: int = 200) -> None:
        """Answer the next requests with `statuses`, in order, and every later one with `then`."""
        with self._lock:
            self._script = list(statuses)
            self._default_status = then

    def hang(self) -> None:
        """Hold every request until `release` is set (then answer as scripted)."""
        self._hanging = True

    def next_status(self) -> int:
        with self._lock:
            return self._script.pop(0) if self._script else self._default_status

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()


class _QuietServer(ThreadingHTTPServer):
    collector: CollectorServer
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out leaves a broken pipe behind; that is the point of the test, not noise."""


class _CollectorHandler(BaseHTTPRequestHandler):
    server: _QuietServer

    def do_POST(self) -> None:
        collector = self.server.collector
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        with collector._lock:
            collector.requests.append(ReceivedRequest(self.path, dict(self.headers.items()), body))
        if collector._hanging:
            collector.release.wait(WAIT_S)
        status = collector.next_status()
        if 200 <= status < 300:
            with collector._lock:
                collector.accepted.append(body["records"])
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""
