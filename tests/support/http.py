"""Bounded waits for servers the tests start: poll a condition, or ``GET /health``."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

READY_TIMEOUT_SECONDS = 15.0
POLL_INTERVAL_SECONDS = 0.02


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(POLL_INTERVAL_SECONDS)  # polling interval of a bounded loop
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def wait_for_health(base_url: str) -> None:
    """Bounded poll of ``GET /health`` until it answers 200."""

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=1) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False

    wait_until(healthy, READY_TIMEOUT_SECONDS, "the gateway's /health")


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` (``http.server``) on a free loopback port in a thread; yields its
    ``http://127.0.0.1:<port>`` and shuts it down on exit."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
