"""A tiny stand-in for the API Gateway Management API (``/@connections``) on loopback.

It answers what moto cannot (410 ``GoneException``, 413 ``PayloadTooLargeException``, 429
``LimitExceededException``, a server that never answers) with the wire shape of API
Gateway's rest-json errors: the status code, an ``x-amzn-ErrorType`` header naming the
error, and a small JSON body. It records every request with its raw (still URL-encoded)
path, so tests can see exactly what boto3 put on the wire.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class StubResponse:
    """What the stub answers: status, headers and body bytes. ``hang`` answers nothing."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"{}"
    hang: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received: method, raw path (URL-encoding intact), headers and body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def error_response(status: int, error_type: str | None, body: bytes = b"{}") -> StubResponse:
    """An API Gateway style error: ``x-amzn-ErrorType`` header (when given) and a JSON body."""
    headers = {"Content-Type": "application/json", "x-amzn-RequestId": "stub-request"}
    if error_type is not None:
        headers["x-amzn-ErrorType"] = error_type
    return StubResponse(status=status, headers=headers, body=body)


GONE = error_response(410, "GoneException")
BARE_GONE = StubResponse(status=410, headers={}, body=b"")
PAYLOAD_TOO_LARGE = error_response(
    413, "PayloadTooLargeException", b'{"message":"Message too long"}'
)
THROTTLED = error_response(429, "LimitExceededException")
FORBIDDEN = error_response(403, "ForbiddenException", b'{"message":"Forbidden"}')
HANG = StubResponse(hang=True)


class ManagementApiStub:
    """The running stub. Set ``response`` to change the answer; read ``requests``."""

    def __init__(self) -> None:
        self.response = StubResponse(status=200, headers={"Content-Type": "application/json"})
        self.requests: list[RecordedRequest] = []
        self.released = threading.Event()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with stub._lock:
                    stub.requests.append(
                        RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
                    )
                    answer = stub.response
                if answer.hang:
                    # Hold the request until the test ends: the client's read timeout fires.
                    stub.released.wait(timeout=30)
                    self.close_connection = True
                    return
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_POST = do_DELETE = do_GET = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` (append ``/{stage}`` for a stage endpoint)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def running_management_api_stub() -> Iterator[ManagementApiStub]:
    """Start a :class:`ManagementApiStub` on a free loopback port; stop it afterwards."""
    stub = ManagementApiStub()
    stub.start()
    try:
        yield stub
    finally:
        stub.stop()
