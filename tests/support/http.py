"""Bounded waits for servers the tests start: poll a condition, or ``GET /health``."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
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
