"""Closes the gateway starts complete the closing handshake (RFC 6455 §7), every time.

A bare client (``tests/support/raw_websocket.py``) reads the gateway's close frame, answers
it, and then must see TCP close cleanly (EOF), never a reset: for a Management API DELETE,
a binary frame and a message over 128 KB, 20 runs each, against ``serve`` with the real
handlers. A client's own close code is echoed.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.e2e.conftest import RunningGateway
from tests.support.raw_websocket import BINARY, TEXT, RawWebSocket

RUNS = 20

pytestmark = pytest.mark.slow


def connected(running: RunningGateway) -> tuple[RawWebSocket, str]:
    """A connection and its connectionId (from the pong of a first ping)."""
    ws = RawWebSocket(running.url(running.token(sub="closer")))
    ws.send(TEXT, b'{"action":"ping","id":"who"}')
    pong = json.loads(ws.receive().payload)
    return ws, pong["connectionId"]


@pytest.mark.parametrize("trigger", ["delete", "binary", "oversized"])
def test_a_close_the_gateway_starts_is_a_clean_closing_handshake_every_time(
    gateway: Callable[..., RunningGateway], trigger: str
) -> None:
    running = gateway()
    management = running.management()
    expected = {"delete": 1000, "binary": 1003, "oversized": 1009}[trigger]
    codes: list[int | None] = []
    clean: list[bool] = []
    for _ in range(RUNS):
        ws, connection_id = connected(running)
        try:
            if trigger == "delete":
                management.delete_connection(ConnectionId=connection_id)
            elif trigger == "binary":
                ws.send(BINARY, b"\x00\x01")
            else:
                ws.send(TEXT, b"x" * (130 * 1024))
            codes.append(ws.receive_until_close().close_code)
            clean.append(ws.answered_then_eof(1000))  # raises ConnectionResetError on a reset
        finally:
            ws.close()
    assert codes == [expected] * RUNS
    assert clean == [True] * RUNS


def test_a_clients_own_close_code_is_echoed_and_the_gateway_then_closes_tcp(
    gateway: Callable[..., RunningGateway],
) -> None:
    running = gateway()
    ws, _ = connected(running)
    try:
        ws.send_close(4000)
        reply = ws.receive_until_close()
        assert reply.close_code == 4000
        assert ws.sock.recv(65536) == b"", "the gateway closes TCP after the exchange"
    finally:
        ws.close()
