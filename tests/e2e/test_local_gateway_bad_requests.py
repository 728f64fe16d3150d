"""Requests the gateway cannot serve: a plain status, nothing of the request echoed or logged.

Raw sockets send what no well-behaved client would (invalid request lines, control
characters, over-long lines and headers); a real websockets client offers subprotocols. The
fake token is JWT-shaped, so any echo of it in a response body or a log line is caught.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake

from tests.e2e.conftest import RunningGateway
from tests.support.http import wait_until

TOKEN = "eyJraWQiOiJrMSIsImFsZyI6IlJTMjU2In0.eyJzdWIiOiJzZWNyZXQtdXNlciJ9.c2lnbmF0dXJlLXNlY3JldA"
SECRET_PARTS = (TOKEN, TOKEN[:24], "c2lnbmF0dXJlLXNlY3JldA", "token=")
RECEIVE_TIMEOUT_SECONDS = 10.0
READ_LIMIT_BYTES = 1 << 20


def _ok(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200}


HANDLERS = {"$connect": _ok, "$disconnect": _ok, "$default": _ok}


def exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` on a fresh connection; return everything the server sends back."""
    with socket.create_connection(("127.0.0.1", port), timeout=RECEIVE_TIMEOUT_SECONDS) as sock:
        sock.sendall(request)
        received = b""
        while len(received) < READ_LIMIT_BYTES and (chunk := sock.recv(65536)):
            received += chunk
    return received


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    """Every server-side record, with its arguments and traceback (the client's are left out)."""
    lines = [
        f"{r.name} {r.levelname} {r.getMessage()} {r.args!r} {r.exc_text or ''} {r.exc_info!r}"
        for r in caplog.records
        if not r.name.startswith("websockets.client")
    ]
    return "\n".join(lines)


BAD_REQUESTS = {
    "space_in_query": f"GET /ws?token={TOKEN}&a=b c HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "control_character": f"GET /ws?token={TOKEN}\x01 HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "non_ascii_path": f"GET /wsé?token={TOKEN} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "request_line_over_8190_bytes": (
        f"GET /ws?token={TOKEN}&pad={'a' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    ),
    "connections_id_over_8190_bytes": (
        f"GET /@connections/{TOKEN}{'a' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    ),
    "header_over_8190_bytes": (
        f"GET /ws HTTP/1.1\r\nHost: x\r\nX-Token: {TOKEN}{'b' * 9000}\r\n\r\n".encode()
    ),
    "too_many_headers": (
        "GET /ws HTTP/1.1\r\nHost: x\r\n"
        + "".join(f"X-{n}: {TOKEN}\r\n" for n in range(200))
        + "\r\n"
    ).encode(),
}


@pytest.mark.parametrize("request_bytes", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_given_a_malformed_request_then_a_plain_400_and_one_secret_free_log_line(
    stub_gateway: Callable[..., RunningGateway],
    caplog: pytest.LogCaptureFixture,
    request_bytes: bytes,
) -> None:
    running = stub_gateway(HANDLERS)
    caplog.set_level(logging.DEBUG)

    # When the request cannot be parsed
    response = exchange(running.background.port, request_bytes)

    # Then the status is 400 and the body says only that
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
    assert body == b"400 Bad Request"
    # And one line is logged, with no traceback and nothing of the request
    rejected = wait_until(
        lambda: [r for r in caplog.records if "malformed request" in r.getMessage()],
        what="the rejection's log line",
    )
    assert len(rejected) == 1
    assert rejected[0].exc_info is None
    everything = server_log(caplog)
    assert "Traceback" not in everything
    for part in SECRET_PARTS:
        assert part not in everything


def test_given_a_bad_request_then_the_gateway_keeps_serving(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    running = stub_gateway(HANDLERS)
    exchange(running.background.port, BAD_REQUESTS["control_character"])

    reply = exchange(
        running.background.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )

    assert reply.startswith(b"HTTP/1.1 200 OK")


# -- subprotocols ------------------------------------------------------------------------------


def _connect_returning(protocol: str | None) -> dict[str, Callable[..., Any]]:
    def connect_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if protocol is None:
            return {"statusCode": 200}
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": protocol}}

    return {**HANDLERS, "$connect": connect_handler}


@pytest.mark.parametrize("offered", [[TOKEN], ["chat"], ["chat", TOKEN]], ids=str)
def test_given_client_subprotocols_the_handler_does_not_choose_then_none_is_logged(
    stub_gateway: Callable[..., RunningGateway],
    caplog: pytest.LogCaptureFixture,
    offered: list[str],
) -> None:
    running = stub_gateway(_connect_returning(None))
    caplog.set_level(logging.DEBUG)

    async def scenario() -> str | None:
        async with connect(running.url("t"), subprotocols=offered) as ws:  # type: ignore[arg-type]
            return ws.subprotocol

    # Then the handshake completes without a subprotocol, as API Gateway does
    assert asyncio.run(scenario()) is None
    everything = server_log(caplog)
    assert "overlap" not in everything
    for value in offered:
        assert value not in everything


def test_given_the_handler_answers_a_subprotocol_the_client_offered_then_it_is_selected(
    stub_gateway: Callable[..., RunningGateway], caplog: pytest.LogCaptureFixture
) -> None:
    running = stub_gateway(_connect_returning("chat"))
    caplog.set_level(logging.DEBUG)

    async def scenario() -> str | None:
        async with connect(running.url("t"), subprotocols=[TOKEN, "chat"]) as ws:  # type: ignore[list-item]
            return ws.subprotocol

    assert asyncio.run(scenario()) == "chat"
    assert TOKEN not in server_log(caplog)


def test_given_the_handler_answers_a_subprotocol_the_client_did_not_offer_then_it_is_passed_back(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    """API Gateway returns the handler's header as is; the client then refuses the handshake."""
    running = stub_gateway(_connect_returning("v9"))

    async def scenario() -> None:
        async with connect(running.url("t"), subprotocols=["v1"]):  # type: ignore[list-item]
            pass

    with pytest.raises(InvalidHandshake, match="v9"):
        asyncio.run(scenario())


# -- failures of the gateway itself ------------------------------------------------------------------


def test_given_the_gateway_fails_a_request_then_a_plain_500_and_no_secret_in_the_log(
    stub_gateway: Callable[..., RunningGateway], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a $connect handler whose subprotocol header aiohttp refuses to write
    running = stub_gateway(_connect_returning(f"v1\r\nX-Leak: {TOKEN}"))
    caplog.set_level(logging.INFO)
    upgrade = (
        f"GET /ws?token={TOKEN} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    ).encode()

    response = exchange(running.background.port, upgrade)

    head, _, body = response.partition(b"\r\n\r\n")
    assert b" 500 " in head.split(b"\r\n", 1)[0]
    assert body == b"500 Internal Server Error"
    failed = wait_until(
        lambda: [r for r in caplog.records if "failed: 500" in r.getMessage()],
        what="the failure's log line",
    )
    assert len(failed) == 1 and failed[0].exc_info is None  # the traceback only at DEBUG
    everything = server_log(caplog)
    for part in SECRET_PARTS:
        assert part not in everything


def test_aiohttp_s_other_failures_log_one_line_without_the_exception_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aiohttp import web

    from entrypoints.local_gateway.emulator.server import GatewayRunner

    async def scenario() -> None:
        runner = GatewayRunner(web.Application())
        await runner.setup()
        try:
            assert runner.server is not None
            handler = runner.server()
            handler.log_exception("Unhandled exception", exc_info=ValueError(TOKEN))
            handler.log_exception("Error handling request from %s", "127.0.0.1")
        finally:
            await runner.cleanup()

    caplog.set_level(logging.DEBUG)
    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "timeline_ws.gateway"]
    assert lines == ["aiohttp: Unhandled exception (ValueError)", "aiohttp: failure (-)"]
    assert TOKEN not in server_log(caplog)


def test_close_frames_carry_the_code_and_no_reason_text(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    """AWS documents the codes API Gateway sends, not a reason text (see the README)."""
    from entrypoints.local_gateway.emulator.server import GatewaySettings

    running = stub_gateway(HANDLERS, GatewaySettings(idle_timeout_seconds=0.3))

    async def scenario() -> tuple[int | None, str | None]:
        async with connect(running.url("t")) as ws:
            await asyncio.wait_for(ws.wait_closed(), RECEIVE_TIMEOUT_SECONDS)
            return ws.close_code, ws.close_reason

    assert asyncio.run(scenario()) == (1001, "")


def upgrade_request(*extra_headers: bytes) -> bytes:
    """A raw, valid WebSocket upgrade (lower-case names, as some clients send) plus headers."""
    return (
        b"GET /ws?token=t HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        + b"".join(header + b"\r\n" for header in extra_headers)
        + b"\r\n"
    )


def test_given_subprotocols_and_a_header_that_is_not_utf8_then_the_upgrade_completes(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    running = stub_gateway(_connect_returning("chat"))
    sock = socket.create_connection(("127.0.0.1", running.background.port), timeout=10)
    with sock:
        sock.sendall(upgrade_request(b"Sec-WebSocket-Protocol: chat", b"X-Name: caf\xe9"))
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"\r\nSec-WebSocket-Protocol: chat\r\n" in head


def test_given_subprotocols_and_a_handshake_header_that_is_not_utf8_then_400(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    running = stub_gateway(HANDLERS)
    sock = socket.create_connection(("127.0.0.1", running.background.port), timeout=10)
    with sock:
        sock.sendall(
            upgrade_request(b"Sec-WebSocket-Protocol: chat", b"Sec-WebSocket-Extensions: caf\xe9")
        )
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 400 ")


# -- unknown paths -----------------------------------------------------------------------------


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ForbiddenException" in r.getMessage()]


@pytest.mark.parametrize(
    ("request_line", "logged"),
    [
        (f"GET /nope?token={TOKEN}", "GET /nope "),
        ("GET /dev/token", "GET /dev/token "),
        (
            "DELETE /other-stage/@connections/x?X-Amz-Signature=s",
            "DELETE /other-stage/@connections/x ",
        ),
    ],
    ids=["plain", "dev_token", "wrong_stage"],
)
def test_given_an_unknown_path_then_403_and_the_log_line_names_what_was_asked(
    stub_gateway: Callable[..., RunningGateway],
    caplog: pytest.LogCaptureFixture,
    request_line: str,
    logged: str,
) -> None:
    running = stub_gateway(HANDLERS)
    caplog.set_level(logging.INFO)

    # When a path the gateway does not serve is asked (the catch-all route answers it)
    request = f"{request_line} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    response = exchange(running.background.port, request.encode())

    # Then 403 ForbiddenException as API Gateway answers, and one line naming the method and
    # the path, not an @connections call, and without the query string
    assert response.split(b"\r\n", 1)[0].endswith(b" 403 Forbidden")
    [line] = wait_until(lambda: refusal_lines(caplog), what="the refusal's log line")
    assert line == f"{logged}status=403 refused ForbiddenException: no such resource"
    for part in SECRET_PARTS:
        assert part not in server_log(caplog)


def test_given_a_websocket_handshake_to_an_unknown_path_then_the_log_line_names_it(
    stub_gateway: Callable[..., RunningGateway], caplog: pytest.LogCaptureFixture
) -> None:
    running = stub_gateway(HANDLERS)
    caplog.set_level(logging.INFO)

    async def handshake() -> None:
        async with connect(f"ws://127.0.0.1:{running.background.port}/nope?token={TOKEN}"):
            pass

    with pytest.raises(InvalidHandshake) as refused:
        asyncio.run(handshake())

    assert "403" in str(refused.value)
    [line] = wait_until(lambda: refusal_lines(caplog), what="the refusal's log line")
    assert line == "GET /nope status=403 refused ForbiddenException: no such resource"
    for part in SECRET_PARTS:
        assert part not in server_log(caplog)
