"""``TimelineSocket``'s controls and failures an application sees, against a real ``serve``.

A 100 KB message goes out in frames of at most 32 KB (API Gateway's frame quota) and the
gateway answers it; a token provider that raises is asked again with the backoff (a
``token_error`` each time) instead of closing the socket; ``wait_open()`` raises
``AuthError`` on a refused token and ``ConfigurationError`` on a 404, a 200 (serve's
``/health`` and demo page) or a URL websockets cannot use; after ``reconnect()`` it waits
for the new connection; ``set_token()`` and ``reconnect()`` reopen within 1 s (measured between events).
"""

from __future__ import annotations

import asyncio
import http.server
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from timeline_ws_client import (
    MAX_FRAME_BYTES,
    AuthError,
    ClientPolicy,
    ConfigurationError,
    TimelineSocket,
    static_token,
)
from timeline_ws_client.events import TokenErrorEvent
from websockets.asyncio.client import ClientConnection

from tests.e2e.test_client import TIMEOUT_SECONDS, until
from tests.support.gateway import RestartableGateway
from tests.support.http import serving

pytestmark = pytest.mark.slow
FAST = ClientPolicy(ping_interval_seconds=1.0, pong_timeout_seconds=1.0)


@pytest.fixture
def api(server: Callable[..., RestartableGateway]) -> RestartableGateway:
    """A started ``serve`` (the ``server`` fixture of tests/e2e/conftest.py)."""
    return server()


class TimedRecorder:
    """Every event of a socket with the event loop's time it arrived (seconds)."""

    def __init__(self, socket: TimelineSocket, *names: str) -> None:
        self.events: list[tuple[str, float, Any]] = []
        for name in names:
            socket.on(name, lambda event, name=name: self.record(name, event))

    def record(self, name: str, event: Any) -> None:
        self.events.append((name, asyncio.get_running_loop().time(), event))

    def of(self, name: str) -> list[Any]:
        return [event for kind, _, event in self.events if kind == name]

    def first_after(self, name: str, moment: float) -> float | None:
        return next((at for kind, at, _ in self.events if kind == name and at >= moment), None)


class FrameRecordingConnection(ClientConnection):
    """websockets' client connection, recording the payload size and FIN of each data frame."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames: list[tuple[int, bool]] = []
        protocol = self.protocol
        send_text, send_continuation = protocol.send_text, protocol.send_continuation

        def text(data: bytes, fin: bool = True) -> None:
            self.frames.append((len(data), fin))
            send_text(data, fin)

        def continuation(data: bytes, fin: bool) -> None:
            self.frames.append((len(data), fin))
            send_continuation(data, fin)

        protocol.send_text = text  # type: ignore[method-assign]
        protocol.send_continuation = continuation  # type: ignore[method-assign]


def test_given_a_100_kb_message_then_it_goes_out_in_frames_of_at_most_32_kb_and_the_gateway_answers(
    api: RestartableGateway,
) -> None:
    connections: list[FrameRecordingConnection] = []

    class Recording(FrameRecordingConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            connections.append(self)

    big = {"action": "ping", "id": "big", "padding": "x" * (100 * 1024)}

    async def scenario() -> tuple[list[Any], list[Any], str]:
        socket = TimelineSocket(
            api.ws_url,
            static_token(api.token()),
            policy=FAST,
            connect_options={"create_connection": Recording},
        )
        events = TimedRecorder(socket, "message", "close")
        async with socket:
            await socket.wait_open(TIMEOUT_SECONDS)
            # a ping whose extra member makes it 100 KB: the route answers it with a pong
            assert await socket.send(big) is True
            await until(lambda: events.of("message"), "the answer to the 100 KB message")
            state = socket.state
        return events.of("message"), events.of("close"), state

    messages, closes, state = asyncio.run(scenario())

    assert [m.data.get("action") for m in messages] == ["pong"]
    assert messages[0].data["id"] == "big"
    assert state == "open" and [c.requested for c in closes] == [True]  # only our own close
    sent = connections[0].frames
    start = next(i for i, (size, _) in enumerate(sent) if size > 1000)
    end = next(i for i in range(start, len(sent)) if sent[i][1])  # the frame with FIN
    frames = sent[start : end + 1]
    assert sum(size for size, _ in frames) == len(json.dumps(big, separators=(",", ":")))
    assert all(size <= MAX_FRAME_BYTES for size, _ in frames), frames
    assert len([size for size, _ in frames if size]) == 4  # 100 KB and its JSON: 4 frames


def test_given_a_token_provider_that_fails_twice_then_each_failure_is_reported_and_retried_with_the_backoff(
    api: RestartableGateway,
) -> None:
    good = api.token()
    calls: list[bool] = []

    def provider(*, force_refresh: bool = False) -> str:
        calls.append(force_refresh)
        if len(calls) <= 2:
            raise ConnectionError("the login service is down")
        return good

    async def scenario() -> tuple[TimedRecorder, str]:
        socket = TimelineSocket(api.ws_url, provider, policy=FAST)
        events = TimedRecorder(socket, "token_error", "state", "close")
        async with socket:
            connection_id = await socket.wait_open(TIMEOUT_SECONDS)
        return events, connection_id

    events, connection_id = asyncio.run(scenario())

    failures: list[TokenErrorEvent] = events.of("token_error")
    assert [str(f.error) for f in failures] == ["the login service is down"] * 2
    assert [f.attempt for f in failures] == [1, 2]
    assert 0 <= failures[0].delay_seconds < 1.0 and 0 <= failures[1].delay_seconds < 2.0
    assert connection_id
    states = [s.state for s in events.of("state")]
    assert states[:3] == ["reconnecting", "connecting", "open"]
    assert [c.requested for c in events.of("close")] == [True]  # never closed by a failure


def test_given_a_refused_token_then_wait_open_raises_auth_error_without_waiting_for_its_timeout(
    api: RestartableGateway,
) -> None:
    async def scenario() -> tuple[AuthError, TimedRecorder, str]:
        socket = TimelineSocket(api.ws_url, static_token("forged-token"), policy=FAST)
        events = TimedRecorder(socket, "connecting", "auth_error")
        async with socket:
            with pytest.raises(AuthError) as raised:
                await socket.wait_open(timeout=600)  # raised long before: no TimeoutError
            state = socket.state
        return raised.value, events, state

    error, events, state = asyncio.run(scenario())

    assert (error.status, error.code) == (401, "auth_error")
    assert len(events.of("connecting")) == 2  # the attempt and its forced refresh, at once
    assert [e.status for e in events.of("auth_error")] == [401]
    assert state == "auth_error"


class _NotFound(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # websockets reads HTTP/1.1 responses only

    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:  # the request line has the token
        pass


@pytest.fixture
def not_found_server() -> Iterator[str]:
    """A plain web server on a loopback port that answers 404 to every path (a wrong host)."""
    with serving(_NotFound) as base_url:
        yield base_url.replace("http://", "ws://", 1) + "/prod"


def test_given_a_url_the_server_answers_404_then_wait_open_raises_a_configuration_error_and_the_socket_stops(
    not_found_server: str,
) -> None:
    async def scenario() -> tuple[ConfigurationError, TimedRecorder, str]:
        socket = TimelineSocket(not_found_server, static_token("any-token"), policy=FAST)
        events = TimedRecorder(socket, "connecting", "close")
        socket.start()
        with pytest.raises(ConfigurationError) as raised:
            await socket.wait_open(timeout=600)
        await socket.wait_closed()
        return raised.value, events, socket.state

    error, events, state = asyncio.run(scenario())

    assert (error.status, error.code) == (404, "invalid_url")
    assert len(events.of("connecting")) == 1  # no retry: no retry could fix it
    assert [(c.status, c.will_reconnect) for c in events.of("close")] == [(404, False)]
    assert state == "closed"


def test_given_a_bad_url_then_the_constructor_raises_a_configuration_error() -> None:
    cases = {
        "https://example.invalid/ws": "ws:// or wss://",
        "not a url": "ws:// or wss://",
        "": "ws:// or wss://",
        "ws://127.0.0.1:notaport/ws": "cannot be used",
        "ws:///ws": "cannot be used",
    }
    for url, message in cases.items():
        with pytest.raises(ConfigurationError, match=message) as raised:
            TimelineSocket(url, static_token("t"))
        assert raised.value.code == "invalid_url" and isinstance(raised.value, ValueError)


def test_given_auth_error_when_set_token_then_it_reopens_within_1_s_and_reconnect_reopens_within_1_s(
    api: RestartableGateway,
) -> None:
    async def scenario() -> tuple[TimedRecorder, float, float, str, str]:
        loop = asyncio.get_running_loop()
        socket = TimelineSocket(api.ws_url, static_token("revoked-token"), policy=FAST)
        events = TimedRecorder(socket, "auth_error", "open", "close", "connecting")
        async with socket:
            await until(lambda: events.of("auth_error"), "the auth error")
            # When: the app gives a new token
            given_at = loop.time()
            socket.set_token(api.token())
            first = await socket.wait_open(TIMEOUT_SECONDS)
            # When: the app asks for a reconnection of the open socket
            asked_at = loop.time()
            socket.reconnect()
            await until(lambda: len(events.of("open")) >= 2, "the reconnection")
            second = socket.connection_id or ""
        return events, given_at, asked_at, first, second

    events, given_at, asked_at, first, second = asyncio.run(scenario())

    opened_after_token = events.first_after("open", given_at)
    opened_after_reconnect = events.first_after("open", asked_at)
    assert opened_after_token is not None and opened_after_token - given_at < 1.0
    assert opened_after_reconnect is not None and opened_after_reconnect - asked_at < 1.0
    assert second and second != first
    reconnect_close = events.of("close")[-2]
    assert (reconnect_close.code, reconnect_close.requested, reconnect_close.will_reconnect) == (
        1000,
        True,
        True,
    )
    assert events.of("connecting")[-1].attempt == 0  # the backoff counter was reset


def test_reconnect_before_start_or_after_close_raises_and_set_token_before_start_is_kept() -> None:
    async def scenario() -> None:
        socket = TimelineSocket("ws://127.0.0.1:9/ws", static_token("old"))
        with pytest.raises(RuntimeError, match="start"):
            socket.reconnect()
        socket.set_token("new")  # not started: nothing to reconnect, the token is kept
        assert await socket._token(False) == "new"
        await socket.close()
        with pytest.raises(RuntimeError, match="closed"):
            socket.reconnect()

    asyncio.run(scenario())


def test_given_an_open_socket_when_set_token_and_reconnect_then_wait_open_waits_for_the_new_connection(
    api: RestartableGateway,
) -> None:
    async def scenario() -> tuple[str, str, TimedRecorder, int]:
        socket = TimelineSocket(api.ws_url, static_token(api.token()), policy=FAST)
        events = TimedRecorder(socket, "open", "close")
        async with socket:
            old = await socket.wait_open(TIMEOUT_SECONDS)
            # When: a new token, then a reconnection, then wait_open() at once
            socket.set_token(api.token(sub="after-login"))
            socket.reconnect()
            new = await socket.wait_open(TIMEOUT_SECONDS)
            closes_seen = len(events.of("close"))
        return old, new, events, closes_seen

    old, new, events, closes_seen = asyncio.run(scenario())

    # Then: it returned the new connection's id, after the old one closed
    assert new and new != old
    assert closes_seen >= 1 and events.of("close")[0].requested
    assert [e.connection_id for e in events.of("open")] == [old, new]


@pytest.mark.parametrize("path", ["/health", "/"])
def test_given_a_url_whose_handshake_answers_200_then_wait_open_raises_a_configuration_error_at_once(
    api: RestartableGateway, path: str
) -> None:
    # Given: serve's health check and its demo page, which answer a handshake with 200
    url = api.base_url.replace("http://", "ws://", 1) + path

    async def scenario() -> tuple[ConfigurationError, TimedRecorder, str]:
        socket = TimelineSocket(url, static_token(api.token()), policy=FAST)
        events = TimedRecorder(socket, "connecting", "close")
        socket.start()
        with pytest.raises(ConfigurationError) as raised:
            await socket.wait_open(timeout=TIMEOUT_SECONDS)
        await socket.wait_closed()
        return raised.value, events, socket.state

    error, events, state = asyncio.run(scenario())

    # Then: no retry (none could fix it), the status in the error and the close event
    assert (error.status, error.code) == (200, "invalid_url")
    assert len(events.of("connecting")) == 1
    assert [(c.status, c.will_reconnect) for c in events.of("close")] == [(200, False)]
    assert state == "closed"


@pytest.mark.parametrize("path", ["/ws", "/local"])
def test_serve_accepts_the_handshake_at_ws_and_at_its_stage(
    api: RestartableGateway, path: str
) -> None:
    async def scenario() -> str:
        url = api.base_url.replace("http://", "ws://", 1) + path
        async with TimelineSocket(url, static_token(api.token()), policy=FAST) as socket:
            return await socket.wait_open(TIMEOUT_SECONDS)

    assert asyncio.run(scenario())


def test_a_wrong_stage_answers_403_which_the_client_reports_as_an_auth_error(
    api: RestartableGateway,
) -> None:
    # Given: a valid token, but a stage serve does not have (as on API Gateway: 403)
    async def scenario() -> AuthError:
        url = api.base_url.replace("http://", "ws://", 1) + "/prod"
        async with TimelineSocket(url, static_token(api.token()), policy=FAST) as socket:
            with pytest.raises(AuthError) as raised:
                await socket.wait_open(TIMEOUT_SECONDS)
            return raised.value

    assert asyncio.run(scenario()).status == 403
