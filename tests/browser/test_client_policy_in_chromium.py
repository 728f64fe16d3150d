"""The browser client's policy tests, run in Chromium on a fake clock (``client_policy_tests.js``).

The page and the module are served by request interception (Playwright routes), so no server
runs and nothing leaves the browser. One pytest test per JavaScript test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from entrypoints.local_gateway.demo import client_module

HERE = Path(__file__).parent
ORIGIN = "http://127.0.0.1:9"  # never reached: every request is answered by the route below
PAGE = '<!doctype html><script type="module" src="/tests/client_policy_tests.js"></script>'
JS_TESTS = [
    "backoff: full jitter draws a new random number for every attempt",
    "backoff: delays stay in [0, min(30 s, 1 s * 2^attempt)) and the cap holds",
    "backoff: failed attempts back off with one draw each, growing to the cap",
    "reset: a connection open under 5 s does not reset the attempt counter",
    "reset: a connection open 5 s resets the counter; a clean close reconnects within 1 s",
    "liveness: the rule needs silence AND a ping unanswered past its timeout",
    "liveness: a timer 90 s late in a throttled tab does not kill a live connection",
    "liveness: a silent connection is declared dead after 70 s and replaced",
    "liveness: back to visible, a check ping must be answered within 5 s",
    "handover: the successor opens first, the old one closes 1000 unreported",
    "handover: the default comes at 115 min plus up to 3 min",
    "queue: while disconnected at most 100 wait, the oldest dropped and reported",
    "size: 32 KB of UTF-8 passes (one frame on AWS), one byte more throws message_too_large",
    "auth: a refused handshake gets one forced refresh, then the probe; 401 stops",
    "auth without a probe: 3 refusals in a row while the server answers, each with a fresh token",
    "auth without a probe: failures while the server does not answer are network errors",
    "auth: an expired token (unverified exp) is an auth_error at once, without a handshake",
    "auth: an inconclusive probe (null, 426) backs off as for a network error",
    "tokens: a token expiring within 60 s is asked again with forceRefresh",
    "token provider: a failure is reported (token_error) and retried with the backoff",
    "control: reconnect() drops the connection unreported and attempts at once, backoff reset",
    "heartbeat ids carry the reserved prefix; an app's pong with its own id is a message",
    "connect() throws invalid_url and invalid_options",
    "offline: no attempt while navigator.onLine is false, one at once on online",
    "pagehide closes with 1000 and stays away; pageshow (persisted) reconnects",
    "close() closes with 1000 and never reconnects",
]


@pytest.fixture(scope="module")
def results(chromium: Any) -> dict[str, dict[str, Any]]:
    """Run the JavaScript suite once; its results by test name."""
    files = {
        "/": ("text/html", PAGE),
        "/client/timeline-ws.js": ("text/javascript", client_module()),
        "/tests/client_policy_tests.js": (
            "text/javascript",
            (HERE / "client_policy_tests.js").read_text(encoding="utf-8"),
        ),
    }

    def serve(route: Any) -> None:
        path = "/" + route.request.url.removeprefix(ORIGIN).lstrip("/").split("?")[0]
        if path not in files:
            route.abort()
            return
        content_type, body = files[path]
        route.fulfill(status=200, content_type=content_type, body=body)

    context = chromium.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.route("**/*", serve)
        page.goto(ORIGIN + "/")
        page.wait_for_function("window.__done === true", timeout=60_000)
        assert not errors, errors
        names = page.evaluate("window.__testNames")
        results = page.evaluate("window.__results")
    finally:
        context.close()
    assert names == JS_TESTS, "JS_TESTS must list the JavaScript tests, in order"
    return {result["name"]: result for result in results}


@pytest.mark.parametrize("name", JS_TESTS)
def test_in_chromium(results: dict[str, dict[str, Any]], name: str) -> None:
    result = results[name]
    assert result["ok"], result.get("error")
