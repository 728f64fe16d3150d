"""``TimelineSocket`` against a real ``serve`` (real handlers, real redis-server).

It reconnects after a Management API DELETE and after a gateway restart on the same port,
stops on 401 (after one forced token refresh) until the provider returns a different token,
backs off on 429 (``CONNECTION_LIMIT_PER_USER=1``), hands over before the 2-hour limit (the
limit shortened), keeps messages sent while disconnected and refuses a message over 128 KB.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from timeline_ws_client import (
    AuthError,
    ClientPolicy,
    MessageTooLargeError,
    TimelineSocket,
    static_token,
)
from timeline_ws_client.events import CloseEvent

from tests.support.gateway import RestartableGateway

pytestmark = pytest.mark.slow
TIMEOUT_SECONDS = 20.0
FAST = ClientPolicy(ping_interval_seconds=1.0, pong_timeout_seconds=1.0)


class Recorder:
    """Every event of a socket, by name."""

    def __init__(self, socket: TimelineSocket, *names: str) -> None:
        self.events: dict[str, list[Any]] = {name: [] for name in names}
        for name in names:
            socket.on(name, self.events[name].append)

    def __getitem__(self, name: str) -> list[Any]:
        return self.events[name]


async def until(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT_SECONDS) -> Any:
    """Poll ``condition`` (bounded) on the event loop; fail the test after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = condition()
        if result:
            return result
        await asyncio.sleep(0.02)  # polling interval of a bounded loop
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def connect_statuses(caplog: pytest.LogCaptureFixture, status: int) -> int:
    """``$connect`` invocations answered with ``status`` (the gateway's access log)."""
    return sum(
        1
        for record in caplog.records
        if record.name == "timeline_ws.gateway.access"
        and record.getMessage().startswith("connect ")
        and f"status={status} " in record.getMessage()
    )


def test_given_an_open_socket_when_the_management_api_deletes_it_then_it_reconnects_with_a_new_id(
    server: Callable[..., RestartableGateway],
) -> None:
    gateway = server()

    async def scenario() -> tuple[str, str, Recorder]:
        socket = TimelineSocket(gateway.ws_url, static_token(gateway.token()), policy=FAST)
        events = Recorder(socket, "open", "close", "reconnecting")
        async with socket:
            first = await socket.wait_open(TIMEOUT_SECONDS)
            await asyncio.to_thread(gateway.management().delete_connection, ConnectionId=first)
            await until(lambda: len(events["open"]) >= 2, "the reconnection")
            return first, socket.connection_id or "", events

    first, second, events = asyncio.run(scenario())

    assert second and second != first
    close: CloseEvent = events["close"][0]
    assert (close.code, close.opened, close.requested, close.will_reconnect) == (
        1000,
        True,
        False,
        True,
    )
    assert close.delay_seconds is not None and 0 <= close.delay_seconds < 1.0
    assert [event.connection_id for event in events["open"]] == [first, second]
    assert events["close"][-1].requested  # the context manager's close, reported as asked


def test_given_an_open_socket_when_the_gateway_restarts_on_its_port_then_it_reconnects(
    server: Callable[..., RestartableGateway],
) -> None:
    gateway = server()

    async def scenario() -> tuple[str, str, Recorder]:
        socket = TimelineSocket(gateway.ws_url, static_token(gateway.token()), policy=FAST)
        events = Recorder(socket, "open", "close")
        async with socket:
            first = await socket.wait_open(TIMEOUT_SECONDS)
            await asyncio.to_thread(gateway.stop)
            await until(lambda: len(events["close"]) >= 2, "an attempt against no server")
            await asyncio.to_thread(gateway.start)
            second = await until(
                lambda: len(events["open"]) >= 2 and socket.connection_id, "the reconnection", 60
            )
            return first, second, events

    first, second, events = asyncio.run(scenario())

    assert second != first
    assert events["close"][0].code == 1001  # the shutdown's going away
    refused = events["close"][1]
    assert (refused.opened, refused.error, refused.will_reconnect) == (
        False,
        "ConnectionRefusedError",
        True,
    )


def test_given_a_refused_token_when_connecting_then_one_forced_refresh_then_auth_error_until_a_new_token(
    server: Callable[..., RestartableGateway], caplog: pytest.LogCaptureFixture
) -> None:
    gateway = server()
    good = gateway.token()
    calls: list[bool] = []
    current = {"token": "not-a-valid-token"}

    def provider(*, force_refresh: bool = False) -> str:
        calls.append(force_refresh)
        return current["token"]

    async def scenario() -> Recorder:
        socket = TimelineSocket(gateway.ws_url, provider, policy=FAST)
        events = Recorder(socket, "auth_error", "close", "open", "state")
        async with socket:
            await until(lambda: events["auth_error"], "the auth error")
            # Then: no further handshake while the provider keeps the refused token
            handshakes = connect_statuses(caplog, 401)
            asked = len(calls)
            await until(lambda: len(calls) >= asked + 2, "the provider asked again")
            assert connect_statuses(caplog, 401) == handshakes
            assert socket.state == "auth_error"
            # wait_open raises while the socket waits for a different token
            with pytest.raises(AuthError) as refused:
                await socket.wait_open(TIMEOUT_SECONDS)
            assert (refused.value.status, refused.value.code) == (401, "auth_error")
            # When: the provider has a token the pool accepts, it is picked up by the polling
            current["token"] = good
            await until(lambda: socket.state == "open", "the new token's connection")
        return events

    events = asyncio.run(scenario())

    assert [e.status for e in events["auth_error"]] == [401]
    assert connect_statuses(caplog, 401) == 2  # the attempt and its forced-refresh retry
    assert calls[:2] == [False, True]
    first, second = events["close"][:2]
    assert (first.status, first.will_reconnect) == (401, True)
    assert (second.status, second.will_reconnect) == (401, False)
    assert len(events["open"]) == 1


def test_given_a_per_user_limit_of_one_when_a_second_socket_connects_then_it_backs_off_on_429(
    server: Callable[..., RestartableGateway],
) -> None:
    gateway = server(CONNECTION_LIMIT_PER_USER="1")
    token = gateway.token(sub="limited-user")

    async def scenario() -> tuple[Recorder, str]:
        holder = TimelineSocket(gateway.ws_url, static_token(token), policy=FAST)
        second = TimelineSocket(gateway.ws_url, static_token(token), policy=FAST)
        events = Recorder(second, "close", "reconnecting", "auth_error", "open")
        async with holder:
            await holder.wait_open(TIMEOUT_SECONDS)
            second.start()
            await until(lambda: len(events["close"]) >= 3, "three refused attempts")
            assert not events["open"]
            await holder.close()  # the slot frees: the second one gets in
            connection_id = await second.wait_open(TIMEOUT_SECONDS)
        await second.close()
        return events, connection_id

    events, connection_id = asyncio.run(scenario())

    refused = events["close"][:3]
    assert {e.status for e in refused} == {429}
    assert all(e.will_reconnect for e in refused)
    assert not events["auth_error"]
    # The backoff: attempt n waits at most 1 s * 2^n
    for n, reconnecting in enumerate(events["reconnecting"][:3]):
        assert reconnecting.attempt == n + 1
        assert 0 <= reconnecting.delay_seconds < 2.0**n
    assert connection_id


def test_given_a_connection_near_its_limit_then_a_successor_opens_first_and_the_old_close_is_not_reported(
    server: Callable[..., RestartableGateway],
) -> None:
    gateway = server()
    policy = ClientPolicy(
        ping_interval_seconds=0.5, handover_after_seconds=1.0, handover_jitter_seconds=0.0
    )

    async def scenario() -> tuple[Recorder, str, str]:
        socket = TimelineSocket(gateway.ws_url, static_token(gateway.token()), policy=policy)
        events = Recorder(socket, "open", "close", "pong", "connecting")
        async with socket:
            first = await socket.wait_open(TIMEOUT_SECONDS)
            await until(lambda: len(events["open"]) >= 2, "the handover")
            second = socket.connection_id or ""
            await until(
                lambda: any(p.connection_id == second for p in events["pong"][1:]),
                "a pong on the successor",
            )
            closes_before_exit = list(events["close"])
            assert not closes_before_exit, closes_before_exit
        return events, first, second

    events, first, second = asyncio.run(scenario())

    assert second != first
    assert [e.handover for e in events["open"][:2]] == [False, True]
    assert [e.handover for e in events["connecting"][:2]] == [False, True]
    assert {p.connection_id for p in events["pong"]} >= {first, second}
    assert [e.requested for e in events["close"]] == [True]  # only our own final close


def test_given_messages_sent_while_disconnected_then_they_wait_and_go_out_once_open(
    server: Callable[..., RestartableGateway],
) -> None:
    gateway = server()

    async def scenario() -> tuple[list[Any], list[bool], int]:
        socket = TimelineSocket(gateway.ws_url, static_token(gateway.token()), policy=FAST)
        events = Recorder(socket, "message")
        sent = [await socket.send({"action": "ping", "id": f"queued-{n}"}) for n in range(3)]
        waiting = socket.queued
        async with socket:
            await socket.wait_open(TIMEOUT_SECONDS)
            await until(lambda: len(events["message"]) >= 3, "the answers to the queued pings")
            with pytest.raises(MessageTooLargeError):
                await socket.send("x" * (128 * 1024 + 1))
            assert await socket.send({"action": "ping", "id": "direct"}) is True
            await until(lambda: len(events["message"]) >= 4, "the direct answer")
        return events["message"], sent, waiting

    messages, sent, waiting = asyncio.run(scenario())

    assert sent == [False, False, False] and waiting == 3
    answered = [m.data["id"] for m in messages if m.data.get("action") == "pong"]
    # Queued pings go out in order, but API Gateway (and the local gateway) invokes a
    # connection's messages concurrently, so their pongs may come back in any order.
    assert sorted(answered[:3]) == ["queued-0", "queued-1", "queued-2"]
    assert answered[3:] == ["direct"]
