"""End to end: a real WebSocket client against ``timeline-ws serve`` running the real handlers.

Real parts: the websockets client, the aiohttp gateway, the Lambda handlers, redis-server, the
boto3 ``apigatewaymanagementapi`` client, and Cognito-shaped RS256 tokens verified against
the JWKS the gateway serves. AC-1..AC-5 of the specification, then the gateway's features.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
from botocore.exceptions import ClientError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from entrypoints.cli import main
from entrypoints.local_gateway.emulator.server import GatewaySettings
from tests.e2e.conftest import RunningGateway
from tests.support.http import wait_until

RECORD_PREFIX = "ws:connection:"
RECEIVE_TIMEOUT_SECONDS = 10.0

pytestmark = pytest.mark.slow


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def records(client: redis.Redis) -> list[str]:
    """The connection record keys (other keys, e.g. connection-limit counters, are not records)."""
    keys: list[str] = client.keys(RECORD_PREFIX + "*")
    return keys


def only_record(client: redis.Redis) -> tuple[str, dict[str, Any]]:
    keys = client.keys(RECORD_PREFIX + "*")
    assert len(keys) == 1, keys
    return keys[0], json.loads(client.get(keys[0]))


async def receive_json(ws: ClientConnection) -> dict[str, Any]:
    frame = await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)
    document: dict[str, Any] = json.loads(frame)
    return document


async def ping(ws: ClientConnection, ping_id: str = "1") -> dict[str, Any]:
    await ws.send(json.dumps({"action": "ping", "id": ping_id}))
    return await receive_json(ws)


async def wait_closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    await asyncio.wait_for(ws.wait_closed(), RECEIVE_TIMEOUT_SECONDS)
    return ws.close_code, ws.close_reason


# -- AC-1 .. AC-5 -------------------------------------------------------------------------------


def test_ac1_given_a_valid_token_when_connecting_then_the_exact_record_is_stored_with_ttl_600(
    gateway: Callable[..., RunningGateway], redis_client: redis.Redis
) -> None:
    running = gateway()

    async def scenario() -> str:
        async with connect(running.url(running.token(sub="user-ac1"))) as ws:
            key, record = only_record(redis_client)
            pong = await ping(ws)
            assert key == RECORD_PREFIX + pong["connectionId"]
            assert set(record) == {"connectionId", "userId", "connectedAt"}
            assert record["connectionId"] == pong["connectionId"]
            assert record["userId"] == "user-ac1"
            assert record["connectedAt"].endswith("Z")
            return key

    key = run(scenario())
    assert key.startswith(RECORD_PREFIX)


def test_ac1_the_ttl_is_within_590_and_600_seconds_right_after_connect(
    gateway: Callable[..., RunningGateway], redis_client: redis.Redis
) -> None:
    running = gateway()

    async def scenario() -> None:
        async with connect(running.url(running.token())):
            key, _ = only_record(redis_client)
            assert 590 < redis_client.ttl(key) <= 600
            value = redis_client.get(key)
            assert value is not None and value.startswith('{"connectionId":')

    run(scenario())


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "", None, "expired"],
    ids=["garbage", "empty", "missing", "expired"],
)
def test_ac2_ac5_given_a_bad_or_missing_token_then_the_handshake_is_401_and_nothing_is_stored(
    gateway: Callable[..., RunningGateway], redis_client: redis.Redis, token: str | None
) -> None:
    running = gateway()
    if token == "expired":
        assert running.dev_cognito is not None
        claims = running.dev_cognito.access_token_claims(sub="late", now=1_000_000_000)
        token = running.dev_cognito.key.sign(claims)

    async def scenario() -> int:
        with pytest.raises(InvalidStatus) as rejected:
            async with connect(running.url(token)):
                pass
        return int(rejected.value.response.status_code)

    assert run(scenario()) == 401
    assert records(redis_client) == []


def test_ac4_given_a_connection_when_it_pings_then_pong_carries_its_id_and_the_ttl_is_reset(
    gateway: Callable[..., RunningGateway], redis_client: redis.Redis
) -> None:
    running = gateway()

    async def scenario() -> None:
        async with connect(running.url(running.token())) as ws:
            key, before = only_record(redis_client)
            redis_client.expire(key, 100)
            pong = await ping(ws, ping_id="abc")
            assert pong["action"] == "pong"
            assert pong["id"] == "abc"
            assert key == RECORD_PREFIX + pong["connectionId"]
            assert 590 < redis_client.ttl(key) <= 600
            _, after = only_record(redis_client)
            assert after == before  # connectedAt untouched

    run(scenario())


def test_ac3_given_a_connection_when_the_client_closes_then_the_record_is_gone(
    gateway: Callable[..., RunningGateway], redis_client: redis.Redis
) -> None:
    running = gateway()

    async def scenario() -> None:
        async with connect(running.url(running.token())) as ws:
            only_record(redis_client)
            await ws.close()

    run(scenario())
    wait_until(lambda: records(redis_client) == [], what="the record to be deleted")


# -- the Management API through boto3 ----------------------------------------------------------


def test_given_a_connection_when_boto3_deletes_it_then_the_socket_closes_1000_and_the_record_is_gone(
    gateway: Callable[..., RunningGateway], redis_client: redis.Redis
) -> None:
    running = gateway()
    management = running.management()

    async def scenario() -> tuple[int | None, str | None]:
        async with connect(running.url(running.token())) as ws:
            connection_id = (await ping(ws))["connectionId"]
            reply = await asyncio.to_thread(
                management.delete_connection, ConnectionId=connection_id
            )
            assert reply["ResponseMetadata"]["HTTPStatusCode"] == 204
            return await wait_closed(ws)

    code, _ = run(scenario())
    assert code == 1000
    wait_until(lambda: records(redis_client) == [], what="the record to be deleted")


def test_given_an_unknown_connection_id_when_boto3_posts_then_gone_exception(
    gateway: Callable[..., RunningGateway],
) -> None:
    management = gateway().management()

    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"hello")


def test_given_a_connection_when_boto3_posts_then_the_client_receives_the_data(
    gateway: Callable[..., RunningGateway],
) -> None:
    running = gateway()
    management = running.management(stage="local")

    async def scenario() -> str:
        async with connect(running.url(running.token())) as ws:
            connection_id = (await ping(ws))["connectionId"]
            await asyncio.to_thread(
                management.post_to_connection, ConnectionId=connection_id, Data=b"hi there"
            )
            return str(await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS))

    assert run(scenario()) == "hi there"


def test_given_a_connection_when_boto3_gets_it_then_the_documented_fields_come_back(
    gateway: Callable[..., RunningGateway],
) -> None:
    running = gateway()
    management = running.management()

    async def scenario() -> dict[str, Any]:
        async with connect(running.url(running.token()), user_agent_header="e2e-agent/1.0") as ws:
            connection_id = (await ping(ws))["connectionId"]
            reply: dict[str, Any] = await asyncio.to_thread(
                management.get_connection, ConnectionId=connection_id
            )
            return reply

    reply = run(scenario())
    assert reply["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "e2e-agent/1.0"}
    assert reply["ConnectedAt"].tzinfo is not None
    assert reply["LastActiveAt"] >= reply["ConnectedAt"]


def test_given_a_closed_connection_when_boto3_gets_it_then_gone_exception(
    gateway: Callable[..., RunningGateway],
) -> None:
    running = gateway()
    management = running.management()

    async def scenario() -> str:
        async with connect(running.url(running.token())) as ws:
            return str((await ping(ws))["connectionId"])

    connection_id = run(scenario())
    wait_until(
        lambda: running.background.gateway.registry.open(connection_id) is None, what="the close"
    )
    with pytest.raises(ClientError) as gone:
        management.get_connection(ConnectionId=connection_id)
    assert gone.value.response["Error"]["Code"] == "GoneException"
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410


# -- closes --------------------------------------------------------------------------------------


def test_given_an_idle_timeout_of_1s_when_the_client_stays_silent_then_1001_and_the_record_is_gone(
    gateway: Callable[..., RunningGateway], redis_client: redis.Redis
) -> None:
    running = gateway(GatewaySettings(idle_timeout_seconds=1.0))

    async def scenario() -> tuple[int | None, str | None]:
        async with connect(running.url(running.token())) as ws:
            only_record(redis_client)
            return await wait_closed(ws)

    code, _ = run(scenario())
    assert code == 1001
    wait_until(lambda: records(redis_client) == [], what="the record to be deleted")


def test_given_a_130_kb_message_then_the_socket_closes_with_1009_and_the_record_is_gone(
    gateway: Callable[..., RunningGateway], redis_client: redis.Redis
) -> None:
    running = gateway()

    async def scenario() -> tuple[int | None, str | None]:
        async with connect(running.url(running.token()), max_size=None) as ws:
            await ws.send("x" * (130 * 1024))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)
            return await wait_closed(ws)

    code, _ = run(scenario())
    assert code == 1009
    wait_until(lambda: records(redis_client) == [], what="the record to be deleted")


def test_given_a_message_of_exactly_128_kb_then_it_is_handled_and_one_byte_more_closes_with_1009(
    gateway: Callable[..., RunningGateway],
) -> None:
    # API Gateway's limit is "over 128 KB"; a message of exactly 131,072 bytes is a message.
    # Sent in frames of 32 KB, API Gateway's frame quota (a bigger frame alone closes with 1009).
    running = gateway()
    limit = 128 * 1024

    def frames(text: str) -> list[str]:
        return [text[i : i + 32 * 1024] for i in range(0, len(text), 32 * 1024)]

    async def scenario() -> tuple[dict[str, Any], int | None]:
        async with connect(running.url(running.token()), max_size=None) as ws:
            await ws.send(frames("x" * limit))  # not JSON: an error frame, socket open
            answer = json.loads(await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS))
            await ws.send(frames("x" * (limit + 1)))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)
            return answer, (await wait_closed(ws))[0]

    answer, code = run(scenario())
    assert answer["action"] == "error" and answer["code"] == "bad_request"
    assert code == 1009


def test_given_open_connections_when_the_gateway_shuts_down_then_1001_and_no_record_is_left(
    gateway: Callable[..., RunningGateway], redis_client: redis.Redis
) -> None:
    running = gateway()

    async def scenario() -> list[int | None]:
        sockets = [await connect(running.url(running.token(sub=f"user-{n}"))) for n in range(3)]
        assert len(records(redis_client)) == 3
        await asyncio.to_thread(running.stop)
        codes = [(await wait_closed(ws))[0] for ws in sockets]
        return codes

    assert run(scenario()) == [1001, 1001, 1001]
    assert records(redis_client) == []


# -- the protocol ---------------------------------------------------------------------------------


def test_given_a_non_json_message_then_an_error_reply_and_the_socket_stays_open(
    gateway: Callable[..., RunningGateway],
) -> None:
    running = gateway()

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with connect(running.url(running.token())) as ws:
            await ws.send("hello, server")
            error = await receive_json(ws)
            pong = await ping(ws)
            return error, pong

    error, pong = run(scenario())
    assert error["action"] == "error"
    assert error["code"] == "bad_request"
    assert pong["action"] == "pong"


def test_given_the_plain_text_ping_then_pong(gateway: Callable[..., RunningGateway]) -> None:
    running = gateway()

    async def scenario() -> dict[str, Any]:
        async with connect(running.url(running.token())) as ws:
            await ws.send("ping")
            return await receive_json(ws)

    assert run(scenario())["action"] == "pong"


def test_given_the_token_command_output_then_serve_accepts_it(
    gateway: Callable[..., RunningGateway],
    redis_client: redis.Redis,
    state_dir: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    running = gateway()
    assert (
        main(["token", "--sub", "cli-user", "--expires-in", "120", "--state-dir", str(state_dir)])
        == 0
    )
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert len(lines) == 1 and lines[0].count(".") == 2  # only the token

    async def scenario() -> dict[str, Any]:
        async with connect(running.url(lines[0])) as ws:
            await ping(ws)
            return only_record(redis_client)[1]

    assert run(scenario())["userId"] == "cli-user"


# -- the two-way $default route (issue "Pong in the route response") -----------------------------


def management_calls(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The @connections calls the gateway served, as ``"METHOD status"`` (its access lines)."""
    return [
        f"{record.args[0]} {record.args[2]}"  # type: ignore[index]
        for record in caplog.records
        if record.name == "timeline_ws.gateway.management" and record.msg.startswith("@connections")
    ]


def test_given_pings_then_each_pong_is_the_route_response_and_the_management_api_gets_no_request(
    gateway: Callable[..., RunningGateway], caplog: pytest.LogCaptureFixture
) -> None:
    running = gateway()

    async def scenario() -> list[dict[str, Any]]:
        async with connect(running.url(running.token())) as ws:
            return [await ping(ws, ping_id=str(n)) for n in range(5)]

    pongs = run(scenario())
    assert [(pong["action"], pong["id"]) for pong in pongs] == [("pong", str(n)) for n in range(5)]
    assert management_calls(caplog) == [], "no pong went through @connections"


def test_given_bad_messages_then_error_frames_come_back_as_route_responses_and_the_socket_stays_open(
    gateway: Callable[..., RunningGateway], caplog: pytest.LogCaptureFixture
) -> None:
    running = gateway()

    async def scenario() -> list[dict[str, Any]]:
        async with connect(running.url(running.token())) as ws:
            replies = []
            for frame in ("not json", '{"action":"sendmessage"}', '{"id":"no action"}'):
                await ws.send(frame)
                replies.append(await receive_json(ws))
            replies.append(await ping(ws))
            return replies

    replies = run(scenario())
    assert [reply.get("code") for reply in replies[:3]] == [
        "bad_request",
        "unsupported_action",
        "bad_request",
    ]
    assert replies[3]["action"] == "pong", "the socket stayed open"
    assert management_calls(caplog) == []


def test_given_an_expired_record_when_pinging_then_connection_expired_close_1000_and_disconnect(
    gateway: Callable[..., RunningGateway],
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = gateway()

    async def scenario() -> tuple[dict[str, Any], int | None]:
        async with connect(running.url(running.token())) as ws:
            key, _ = only_record(redis_client)
            redis_client.delete(key)  # the TTL ran out
            await ws.send(json.dumps({"action": "ping", "id": "late"}))
            notice = await receive_json(ws)
            code, _ = await wait_closed(ws)
            return notice, code

    notice, code = run(scenario())
    assert (notice["code"], notice["id"]) == ("connection_expired", "late")
    assert code == 1000
    assert management_calls(caplog) == ["POST 200", "DELETE 204"]
    wait_until(
        lambda: any(
            "route=$disconnect" in record.getMessage()
            for record in caplog.records
            if record.name == "timeline_ws.gateway.access"
        ),
        what="$disconnect to run",
    )
    assert records(redis_client) == []
