"""``TimelineSocket``'s edges: its API used wrongly, a full send queue, a listener that
raises, ``check()`` on an open connection, and a server that stops answering.

The dead-server test runs a real ``websockets`` server on 127.0.0.1 that accepts every
connection and never answers a ping (what a half-open TCP connection looks like from the
client); the rest need no server, or a real ``serve``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from timeline_ws_client import ClientPolicy, TimelineSocket, static_token
from timeline_ws_client.events import CloseEvent, DroppedEvent, PongEvent
from websockets.asyncio.server import ServerConnection, serve

from tests.e2e.test_client import TIMEOUT_SECONDS, Recorder, until
from tests.support.gateway import RestartableGateway

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway(redis_url: str, tmp_path: Path) -> Iterator[RestartableGateway]:
    started = RestartableGateway(state_dir=tmp_path / "state", redis_url=redis_url).start()
    yield started
    started.stop()


# -- the API used wrongly -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("http://127.0.0.1:1/ws", {}, "ws:// or wss://"),
        ("ws://127.0.0.1:1/ws", {"heartbeat_offset_seconds": -1.0}, "0 or more"),
    ],
)
def test_a_bad_url_or_offset_is_refused_at_construction(
    url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TimelineSocket(url, static_token("t"), **options)


def test_unknown_events_are_refused_and_removing_an_unknown_listener_is_harmless() -> None:
    socket = TimelineSocket("ws://127.0.0.1:1/ws", static_token("t"))
    with pytest.raises(ValueError, match="unknown event 'pongs'"):
        socket.on("pongs", print)
    socket.off("pong", print)  # never registered: no error
    with pytest.raises(ValueError, match="unknown event"):
        socket.off("pongs", print)


def test_start_outside_an_event_loop_says_to_call_it_from_a_coroutine() -> None:
    socket = TimelineSocket("ws://127.0.0.1:1/ws", static_token("t"))

    with pytest.raises(RuntimeError, match="call it from a coroutine"):
        socket.start()

    assert socket.state == "idle"


def test_start_is_a_plain_call_that_returns_at_once_before_any_attempt() -> None:
    async def scenario() -> tuple[object, str]:
        socket = TimelineSocket("ws://127.0.0.1:1/ws", static_token("t"))
        started = socket.start()  # the README: no await
        state = socket.state
        socket.abort()
        return started, state

    started, state = asyncio.run(scenario())

    assert started is None and state == "idle"


def test_a_socket_closed_before_it_started_is_closed_for_good() -> None:
    async def scenario() -> None:
        socket = TimelineSocket("ws://127.0.0.1:1/ws", static_token("t"))
        with pytest.raises(RuntimeError, match="start"):
            await socket.wait_open(0.1)
        await socket.close()
        assert socket.state == "closed"
        with pytest.raises(RuntimeError, match="closed"):
            socket.start()
        with pytest.raises(RuntimeError, match="closed"):
            await socket.send({"action": "ping"})
        await socket.wait_closed()  # never started: returns at once

    asyncio.run(scenario())


def test_given_a_full_queue_then_the_oldest_message_is_dropped_and_reported() -> None:
    async def scenario() -> tuple[list[DroppedEvent], int]:
        socket = TimelineSocket(
            "ws://127.0.0.1:1/ws", static_token("t"), policy=ClientPolicy(queue_limit=2)
        )
        dropped = Recorder(socket, "dropped")
        for n in range(3):
            assert await socket.send(f"m{n}") is False  # not started: queued
        return dropped["dropped"], socket.queued

    dropped, queued = asyncio.run(scenario())
    assert [event.message for event in dropped] == ["m0"]
    assert queued == 2


# -- with a real serve ----------------------------------------------------------------------


def test_given_an_open_socket_when_checked_then_a_ping_goes_out_and_its_pong_comes_back_despite_a_failing_listener(
    gateway: RestartableGateway, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: object) -> None:
        raise RuntimeError("a bug in the application's listener")

    async def scenario() -> list[PongEvent]:
        socket = TimelineSocket(gateway.ws_url, static_token(gateway.token()))  # 30 s pings
        pongs = Recorder(socket, "pong")
        socket.on("pong", broken)
        async with socket:
            await socket.wait_open(TIMEOUT_SECONDS)  # the opening ping's pong
            await socket.check()
            await until(lambda: len(pongs["pong"]) >= 2, "the check's pong")
        return pongs["pong"]

    with caplog.at_level(logging.ERROR, logger="timeline_ws_client.timeline_socket"):
        pongs = asyncio.run(scenario())

    assert len(pongs) == 2 and pongs[0].id != pongs[1].id
    assert pongs[1].connection_id == pongs[0].connection_id
    assert [r.getMessage() for r in caplog.records] == ["a pong listener raised"] * 2


# -- a server that stops answering ----------------------------------------------------------


def test_given_a_server_that_never_answers_then_the_connection_is_declared_dead_and_replaced() -> (
    None
):
    accepted: list[ServerConnection] = []

    async def silent(connection: ServerConnection) -> None:
        accepted.append(connection)
        await connection.wait_closed()  # reads every frame, answers none

    async def scenario() -> tuple[list[CloseEvent], int]:
        async with serve(silent, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            policy = ClientPolicy(
                ping_interval_seconds=0.2,
                pong_timeout_seconds=0.2,
                dead_after_seconds=0.5,
                backoff_base_seconds=0.05,
                backoff_cap_seconds=0.1,
            )
            socket = TimelineSocket(f"ws://127.0.0.1:{port}/ws", static_token("t"), policy=policy)
            closes = Recorder(socket, "close")
            async with socket:
                await until(lambda: len(accepted) >= 2, "a second connection after the first died")
            return closes["close"], len(accepted)

    closes, attempts = asyncio.run(scenario())
    dead = closes[0]
    assert dead.error == "HeartbeatTimeout" and dead.code == 1006
    assert dead.opened and dead.will_reconnect
    assert attempts >= 2
