"""The npm package's module in Chromium on a page from ANOTHER origin than the API, as on AWS.

API Gateway sends no CORS headers, and an application's page is never served by the WebSocket
API. Here the page is served by a plain static server on one loopback port (the app's page,
importing the package's file as it is published) and talks to a real ``serve`` on another
port: another origin, and ``serve`` sends no CORS header either. (Both on loopback, so that
Chromium's local-network-access checks, which a public API on AWS never meets, stay out of
the way.) Without a ``probe``:

- a valid token opens; an expired one is an ``auth_error`` ("token_expired") without any
  handshake; a forged one (valid ``exp``, bad signature) is an ``auth_error`` ("refused")
  after 3 refused handshakes with fresh tokens, within 10 s, and no handshake follows while
  the app keeps that token;
- no request carries the token in its URL but the WebSocket handshakes, and no console line
  shows it (Chromium's own line for a failed handshake aside, which the client cannot stop).
"""

from __future__ import annotations

import http.server
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.browser.test_demo_page import connect_refusals
from tests.support.gateway import RestartableGateway
from tests.support.http import serving, wait_until

pytestmark = pytest.mark.slow
PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "js"
PAGE = """<!doctype html><meta charset="utf-8"><title>an app</title>
<script type="module">
import { connect } from "/node_modules/timeline-ws-client/timeline-ws-client.js";
window.events = [];
window.tokenCalls = 0;
window.start = (url, token) => {
  window.token = token;
  const client = connect({ url, getToken: () => (window.tokenCalls++, window.token) });
  for (const type of ["connecting", "open", "close", "reconnecting", "auth_error", "state"])
    client.on(type, (data) => window.events.push({ type, data, at: performance.now() }));
  window.client = client;
  return performance.now();
};
</script>"""
TEN_SECONDS_MS = 10_000


class _AppFiles(http.server.BaseHTTPRequestHandler):
    """The app's origin: its page and the package's module, nothing else."""

    files: ClassVar[dict[str, tuple[str, bytes]]] = {
        "/": ("text/html", PAGE.encode()),
        "/node_modules/timeline-ws-client/timeline-ws-client.js": (
            "text/javascript",
            (PACKAGE / "timeline-ws-client.js").read_bytes(),
        ),
    }

    def do_GET(self) -> None:
        if self.path not in self.files:
            self.send_error(404)
            return
        content_type, body = self.files[self.path]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def app_origin() -> Iterator[str]:
    with serving(_AppFiles) as origin:
        yield origin


@pytest.fixture
def app_page(chromium: Any, app_origin: str) -> Iterator[Any]:
    """A page of the app's origin; ``page.console`` and ``page.requests`` record what it did."""
    context = chromium.new_context()
    page = context.new_page()
    page.console, page.requests, page.errors = [], [], []
    page.on("console", lambda message: page.console.append(message.text))
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(f"{app_origin}/")
    page.wait_for_function("typeof window.start === 'function'")
    try:
        yield page
    finally:
        context.close()


def events(page: Any, kind: str) -> list[dict[str, Any]]:
    return [e for e in page.evaluate("window.events") if e["type"] == kind]


def assert_token_nowhere_but_handshakes(page: Any, token: str) -> None:
    """No HTTP request URL and no console line (but Chromium's failed-handshake line) has it."""
    assert not [url for url in page.requests if token in url]
    assert not [
        line
        for line in page.console
        if token in line and not line.startswith("WebSocket connection to ")
    ]
    assert not page.errors


def test_given_a_page_on_another_origin_and_a_valid_token_then_it_opens(
    app_page: Any, demo_server: RestartableGateway
) -> None:
    token = demo_server.token()
    started = app_page.evaluate("([url, token]) => start(url, token)", [demo_server.ws_url, token])
    assert demo_server.ws_url.split("/ws")[0] not in app_page.url  # another origin

    app_page.wait_for_function("window.events.some(e => e.type === 'open')", timeout=TEN_SECONDS_MS)
    opened = events(app_page, "open")[0]
    assert opened["data"]["connectionId"]
    assert opened["at"] - started < TEN_SECONDS_MS
    assert app_page.evaluate("window.client.state") == "open"
    assert not events(app_page, "auth_error")
    assert_token_nowhere_but_handshakes(app_page, token)


def test_given_a_page_on_another_origin_and_an_expired_token_then_auth_error_without_a_handshake(
    app_page: Any, demo_server: RestartableGateway, caplog: pytest.LogCaptureFixture
) -> None:
    token = demo_server.expired_token()
    started = app_page.evaluate("([url, token]) => start(url, token)", [demo_server.ws_url, token])

    app_page.wait_for_function(
        "window.events.some(e => e.type === 'auth_error')", timeout=TEN_SECONDS_MS
    )
    error = events(app_page, "auth_error")[0]
    assert error["data"] == {"reason": "token_expired", "status": None}
    assert error["at"] - started < TEN_SECONDS_MS
    assert not events(app_page, "connecting")
    assert connect_refusals(caplog, 401) == 0  # the server never saw it
    assert_token_nowhere_but_handshakes(app_page, token)


def test_given_a_page_on_another_origin_and_a_forged_token_then_auth_error_within_10_s_and_no_more_handshakes(
    app_page: Any, demo_server: RestartableGateway, caplog: pytest.LogCaptureFixture
) -> None:
    header, claims, _ = demo_server.token().split(".")
    token = f"{header}.{claims}.forged-signature"
    started = app_page.evaluate("([url, token]) => start(url, token)", [demo_server.ws_url, token])

    app_page.wait_for_function(
        "window.events.some(e => e.type === 'auth_error')", timeout=TEN_SECONDS_MS
    )
    error = events(app_page, "auth_error")[0]
    assert error["data"] == {"reason": "refused", "status": None}
    assert error["at"] - started < TEN_SECONDS_MS
    assert len(events(app_page, "connecting")) == 3
    assert connect_refusals(caplog, 401) == 3
    # And no further handshake while the app keeps that token (getToken is asked again)
    calls = app_page.evaluate("window.tokenCalls")
    wait_until(
        lambda: app_page.evaluate("window.tokenCalls") > calls,
        timeout=30,
        what="getToken asked again at the backoff cadence",
    )
    assert connect_refusals(caplog, 401) == 3
    assert len(events(app_page, "connecting")) == 3
    assert app_page.evaluate("window.client.state") == "auth_error"
    assert_token_nowhere_but_handshakes(app_page, token)
