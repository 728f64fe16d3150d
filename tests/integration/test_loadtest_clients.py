"""The load test's clients against a scripted WebSocket server on loopback (websockets).

The server answers pings with pongs echoing the id, and per token: ``reject`` is refused
with HTTP 401 during the handshake, ``drop`` is closed by the server with 1011 after its
first ping, ``vanish`` loses its TCP connection without a close frame, ``mute`` never gets
a pong, ``unavailable`` is refused with 503 and ``missing`` with 404. What the clients must
tell apart: refused on purpose, failed, closed unexpectedly.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from entrypoints.loadtest.clients import LiveStats, LoadtestPlan, run_load
from tests.support.servers import free_port


def _token(path: str) -> str:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    return query.get("token", [""])[0]


async def _handler(connection: ServerConnection) -> None:
    assert connection.request is not None
    token = _token(connection.request.path)
    async for message in connection:
        if token == "vanish":
            connection.transport.abort()
            return
        if token == "drop":
            await connection.close(1011, "scripted failure")
            return
        if token == "mute":
            continue
        frame = json.loads(message)
        await connection.send(
            json.dumps({"action": "pong", "connectionId": "c", "id": frame.get("id")})
        )
        await connection.send(json.dumps({"action": "pong", "id": "never-sent"}))
        await connection.send("not json")


_REFUSALS = {
    "reject": HTTPStatus.UNAUTHORIZED,
    "unavailable": HTTPStatus.SERVICE_UNAVAILABLE,
    "missing": HTTPStatus.NOT_FOUND,
}


def _process_request(connection: ServerConnection, request: Request) -> Response | None:
    status = _REFUSALS.get(_token(request.path))
    return None if status is None else connection.respond(status, f"{status.phrase}\n")


@asynccontextmanager
async def scripted_server() -> AsyncIterator[str]:
    async with serve(_handler, "127.0.0.1", 0, process_request=_process_request) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws"


def plan(url: str, connections: int, **changes: Any) -> LoadtestPlan:
    values = {
        "duration_seconds": 1.5,
        "ping_interval_seconds": 0.3,
        "ramp_rate_per_second": 100.0,
        "drain_timeout_seconds": 0.5,
        "close_timeout_seconds": 1.0,
        "open_timeout_seconds": 5.0,
    }
    values.update(changes)
    return LoadtestPlan(url=url, connections=connections, **values)


def test_given_healthy_clients_when_they_ping_then_every_ping_is_matched_to_its_pong() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with scripted_server() as url:
            return await run_load(plan(url, 3), ["ok"])

    report = asyncio.run(scenario())

    assert (report.attempted, report.established, report.peak_open) == (3, 3, 3)
    assert report.pings_sent >= 3 * 4
    assert report.pongs_received == report.pings_sent  # "never-sent" pongs are not matched
    assert report.pong_rtt.count == report.pongs_received
    assert report.unexpected_disconnects == {}
    assert report.passed


def test_given_a_mixed_crowd_then_rejections_unexpected_closes_and_silence_are_told_apart() -> None:
    tokens = ["ok", "reject", "drop", "vanish", "mute"]

    async def scenario():  # type: ignore[no-untyped-def]
        async with scripted_server() as url:
            return await run_load(plan(url, len(tokens)), tokens)

    report = asyncio.run(scenario())

    assert report.attempted == 5
    assert report.rejected == {401: 1}
    assert report.established == 4
    assert report.failed == {}
    assert report.unexpected_disconnects == {1011: 1, 1006: 1}
    assert report.pongs_received < report.pings_sent  # the mute client's pings go unanswered
    assert report.disconnect_rate_percent == 50.0
    assert report.exit_status == 1


def test_given_nothing_listens_then_every_connection_failed_and_the_run_fails() -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws"

    report = asyncio.run(run_load(plan(url, 2, duration_seconds=0.2), ["ok"]))

    assert report.failed == {"ConnectionRefusedError": 2}
    assert report.established == 0
    assert not report.passed


def test_given_a_server_that_never_finishes_handshakes_then_clients_time_out_as_failures() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        accepted: list[asyncio.StreamWriter] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)  # accept TCP, never answer the upgrade

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await run_load(
                plan(
                    f"ws://127.0.0.1:{port}/ws", 2, duration_seconds=0.2, open_timeout_seconds=0.5
                ),
                ["ok"],
            )
        finally:
            for writer in accepted:
                writer.close()
            server.close()

    report = asyncio.run(scenario())

    assert report.failed == {"TimeoutError": 2}
    assert report.exit_status == 1


def test_given_refusals_that_are_not_on_purpose_then_they_are_failures_not_rejections() -> None:
    # Given: one token refused with 401 (on purpose), one with 503 (store down), one with 404
    tokens = ["ok", "reject", "unavailable", "missing"]

    async def scenario():  # type: ignore[no-untyped-def]
        async with scripted_server() as url:
            return await run_load(plan(url, len(tokens)), tokens)

    report = asyncio.run(scenario())

    # Then: only the 401 is a rejection; the 503 and 404 fail the run
    assert report.rejected == {401: 1}
    assert report.failed == {"HTTP 503": 1, "HTTP 404": 1}
    assert report.established == 1
    assert report.exit_status == 1


def test_given_an_interrupt_during_the_hold_then_the_clients_drain_close_and_report() -> None:
    # Given: a run planned for an hour, interrupted once three pongs came back
    interrupt_holder: list[asyncio.Event] = []

    def tick(stats: LiveStats) -> None:
        if stats.pongs_received >= 3:
            interrupt_holder[0].set()

    async def scenario():  # type: ignore[no-untyped-def]
        interrupt_holder.append(asyncio.Event())
        async with scripted_server() as url:
            return await run_load(
                plan(url, 3, duration_seconds=3600.0),
                ["ok"],
                tick=tick,
                interrupt=interrupt_holder[0],
            )

    report = asyncio.run(scenario())

    # Then: it stopped long before the hour, closed cleanly and says it was interrupted
    assert report.interrupted
    assert report.wall_seconds < 60
    assert report.established == 3
    assert report.unexpected_disconnects == {}
    assert report.pongs_received >= 3
    assert report.verdict == "INTERRUPTED"
    assert report.exit_status == 130


def test_given_reconnecting_clients_then_every_unexpected_close_is_counted_and_every_handshake_attempted() -> (
    None
):
    # Given: one client the server drops (1011) after its first ping, reconnection on
    async def scenario():  # type: ignore[no-untyped-def]
        async with scripted_server() as url:
            return await run_load(plan(url, 1, duration_seconds=3.0, reconnect=True), ["drop"])

    report = asyncio.run(scenario())

    # Then: it came back after each drop, and each drop is an unexpected disconnect
    assert report.established >= 2
    assert report.attempted == report.established
    assert report.unexpected_disconnects == {1011: report.established}
    assert report.exit_status == 1


def test_given_reconnection_off_then_a_dropped_client_stays_down_and_is_counted_once() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with scripted_server() as url:
            return await run_load(plan(url, 1, duration_seconds=3.0), ["drop"])

    report = asyncio.run(scenario())

    assert (report.attempted, report.established) == (1, 1)
    assert report.unexpected_disconnects == {1011: 1}
