"""End to end: Redis fails under real WebSocket clients and DynamoDB takes over — nothing lost.

Real parts: the websockets client, ``timeline-ws serve``'s gateway running the real Lambda
handlers, a redis-server with its append-only file on (SIGKILLed and restarted on the same
port and folder, as a replicated ElastiCache node keeps its data), and a moto server for
DynamoDB with the table the gateway creates (local mode).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pybreaker
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from adapters.connection_store.dynamodb import create_dynamodb_client
from adapters.connection_store.redis import EXPIRY_KEY
from entrypoints.local_gateway.emulator.server import GatewaySettings
from entrypoints.local_gateway.wiring import (
    PreparedGateway,
    ensure_local_failover_table,
    prepare_gateway,
)
from tests.e2e.conftest import RunningGateway
from tests.support.app import make_settings
from tests.support.gateway import BackgroundGateway
from tests.support.http import wait_for_health
from tests.support.servers import RedisServer, running_moto_server, running_redis_server

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.slow

RECORD_PREFIX = "ws:connection:"
RECEIVE_TIMEOUT_SECONDS = 10.0
CLIENTS_PER_WAVE = 50


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, persisting every write to its append-only file."""
    with running_redis_server("--appendonly", "yes", "--appendfsync", "always") as server:
        yield server


class FailoverGateway:
    """The gateway over the real handlers, Redis failing over to a moto DynamoDB table."""

    def __init__(
        self,
        redis_server: RedisServer,
        dynamodb_endpoint: str,
        state_dir: Path,
        *,
        breaker_reset_seconds: float = 0.5,
    ) -> None:
        self.redis_server = redis_server
        self.table = f"e2e-connections-{uuid.uuid4().hex[:8]}"
        environ = dict(os.environ)
        for name in (
            "COGNITO_REGION",
            "COGNITO_USER_POOL_ID",
            "COGNITO_APP_CLIENT_IDS",
            "COGNITO_JWKS",
        ):
            environ.pop(name, None)  # the development Cognito stand-in issues the tokens
        environ["REDIS_BREAKER_RESET_SECONDS"] = str(breaker_reset_seconds)
        self.prepared: PreparedGateway = prepare_gateway(
            host="127.0.0.1",
            port=0,
            settings=GatewaySettings(),
            redis_url=redis_server.url,
            state_dir=state_dir,
            environ=environ,
            connections_table=self.table,
            dynamodb_endpoint=dynamodb_endpoint,
        )
        background = BackgroundGateway(self.prepared.app, self.prepared.sock)
        background.start()
        self.running = RunningGateway(background, self.prepared.base_url, self.prepared.dev_cognito)
        wait_for_health(self.running.base_url)
        self.dynamodb: DynamoDBClient = create_dynamodb_client(
            endpoint_url=dynamodb_endpoint, region_name="us-east-1"
        )
        self.redis = redis.Redis.from_url(redis_server.url, decode_responses=True, socket_timeout=2)

    def stop(self) -> None:
        self.running.stop()
        self.redis.close()

    def redis_records(self) -> set[str]:
        return {
            str(key).removeprefix(RECORD_PREFIX) for key in self.redis.keys(RECORD_PREFIX + "*")
        }

    def dynamodb_items(self) -> dict[str, int]:
        items = self.dynamodb.scan(TableName=self.table, ConsistentRead=True)["Items"]
        return {item["connectionId"]["S"]: int(item["expiresAt"]["N"]) for item in items}


@pytest.fixture
def failover_gateway(
    aof_redis: RedisServer, moto_endpoint: str, state_dir: Path
) -> Iterator[FailoverGateway]:
    gateway = FailoverGateway(aof_redis, moto_endpoint, state_dir)
    yield gateway
    gateway.stop()


async def ping(ws: ClientConnection, ping_id: str) -> dict[str, Any]:
    await ws.send(json.dumps({"action": "ping", "id": ping_id}))
    frame = await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)
    document: dict[str, Any] = json.loads(frame)
    return document


async def ping_all(clients: dict[str, ClientConnection], round_name: str) -> list[dict[str, Any]]:
    return list(
        await asyncio.gather(*(ping(ws, f"{round_name}-{cid[:8]}") for cid, ws in clients.items()))
    )


async def open_clients(gateway: FailoverGateway, first_user: int) -> dict[str, ClientConnection]:
    """Open a wave of clients (one user each: the per-user limit is 10); connectionId -> socket."""
    sockets = await asyncio.gather(
        *(
            connect(gateway.running.url(gateway.running.token(sub=f"user-{index}")))
            for index in range(first_user, first_user + CLIENTS_PER_WAVE)
        )
    )
    clients: dict[str, ClientConnection] = {}
    for ws in sockets:
        pong = await ping(ws, "hello")
        clients[pong["connectionId"]] = ws
    return clients


async def until(condition: Callable[[], Awaitable[bool] | bool], seconds: float = 15.0) -> bool:
    """Bounded wait (async) on ``condition``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        outcome = condition()
        if isinstance(outcome, Awaitable):
            outcome = await outcome
        if outcome:
            return True
        await asyncio.sleep(0.05)  # polling interval of a bounded loop
    return False


def kill(server: RedisServer) -> None:
    assert server.process is not None
    server.process.kill()
    server.process.wait(timeout=10)
    server.process = None


def test_given_redis_killed_under_100_clients_then_nothing_is_lost_and_nothing_is_left(
    failover_gateway: FailoverGateway,
) -> None:
    gateway = failover_gateway

    async def scenario() -> None:
        # Given 50 clients connected while Redis is up: their records are in Redis.
        before = await open_clients(gateway, 0)
        assert gateway.redis_records() == set(before)
        assert gateway.dynamodb_items() == {}

        # When Redis dies (SIGKILL), 50 more connect: all succeed and land in DynamoDB.
        kill(gateway.redis_server)
        during = await open_clients(gateway, CLIENTS_PER_WAVE)
        assert set(gateway.dynamodb_items()) == set(during)

        # Pings for all 100 are answered and no connection is closed.
        everyone = {**before, **during}
        pongs = await ping_all(everyone, "outage")
        assert [pong["action"] for pong in pongs] == ["pong"] * 100
        assert all(ws.close_code is None for ws in everyone.values())

        # Redis restarts on the same port and folder: its AOF brings the first 50 back.
        gateway.redis_server.start()
        assert gateway.redis_records() == set(before)

        # Pings for all 100 refresh their records wherever they live. Shorten every TTL
        # first so a refresh is visible: Redis keys to 100 s, DynamoDB items to now + 100 s.
        now = int(time.time())
        for connection_id in before:
            gateway.redis.expire(RECORD_PREFIX + connection_id, 100)
        for connection_id in during:
            gateway.dynamodb.update_item(
                TableName=gateway.table,
                Key={"connectionId": {"S": connection_id}},
                UpdateExpression="SET expiresAt = :soon",
                ExpressionAttributeValues={":soon": {"N": str(now + 100)}},
            )
        probe_id, probe = next(iter(before.items()))

        async def probe_refreshed_in_redis() -> bool:
            # The breaker half-opens after REDIS_BREAKER_RESET_SECONDS; until then pings pong
            # without reaching Redis.
            await ping(probe, "probe")
            return int(gateway.redis.ttl(RECORD_PREFIX + probe_id)) > 500

        assert await until(probe_refreshed_in_redis)
        pongs = await ping_all(everyone, "recovered")
        assert [pong["action"] for pong in pongs] == ["pong"] * 100
        assert all(int(gateway.redis.ttl(RECORD_PREFIX + cid)) > 500 for cid in before)
        assert all(expiry > now + 500 for expiry in gateway.dynamodb_items().values())
        assert gateway.redis_records() == set(before)  # no record moved or was duplicated
        assert set(gateway.dynamodb_items()) == set(during)

        # Disconnect all: zero records left in either store, and no connection slot held.
        await asyncio.gather(*(ws.close() for ws in everyone.values()))
        assert await until(lambda: not gateway.redis_records() and not gateway.dynamodb_items())
        assert int(gateway.redis.zcard(EXPIRY_KEY)) == 0

    asyncio.run(scenario())


def test_the_gateways_aws_clients_keep_one_http_connection_per_thread_that_calls_them(
    failover_gateway: FailoverGateway,
) -> None:
    container = failover_gateway.prepared.container
    workers = GatewaySettings().workers
    assert workers > 10  # botocore's default pool, which would churn connections
    # The handler threads, and for DynamoDB the reconciler's timer thread too ("Connection
    # pool is full, discarding connection" was logged with a pool of exactly `workers`).
    assert container.dynamodb_client().meta.config.max_pool_connections == workers + 1
    sender = container.management_api_clients().sender_for(failover_gateway.running.base_url)
    assert sender.client.meta.config.max_pool_connections == workers


def test_given_both_stores_down_then_connect_is_503_a_ping_still_pongs_and_nothing_crashes(
    aof_redis: RedisServer, state_dir: Path
) -> None:
    with running_moto_server() as own_moto:
        gateway = FailoverGateway(aof_redis, own_moto, state_dir)
    # Leaving the block stopped this moto server: DynamoDB is now unreachable too.
    try:

        async def scenario() -> None:
            async with connect(gateway.running.url(gateway.running.token(sub="early"))) as early:
                connection_id = (await ping(early, "up"))["connectionId"]
                kill(gateway.redis_server)

                with pytest.raises(InvalidStatus) as rejected:
                    async with connect(gateway.running.url(gateway.running.token(sub="late"))):
                        pass
                assert rejected.value.response.status_code == 503

                pong = await ping(early, "down")
                assert pong == {
                    **pong,
                    "action": "pong",
                    "connectionId": connection_id,
                    "id": "down",
                }
                assert early.close_code is None
            # $disconnect ran against two dead stores: the gateway is still serving.
            wait_for_health(gateway.running.base_url)

        asyncio.run(scenario())
    finally:
        gateway.stop()


def test_the_local_failover_table_is_created_only_for_a_local_endpoint(moto_endpoint: str) -> None:
    table = f"e2e-created-{uuid.uuid4().hex[:8]}"
    assert ensure_local_failover_table(make_settings(CONNECTIONS_TABLE=table)) is None
    assert (
        ensure_local_failover_table(
            make_settings(CONNECTIONS_TABLE=table, AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint)
        )
        == table
    )
    client = create_dynamodb_client(endpoint_url=moto_endpoint, region_name="us-east-1")
    assert client.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE"
    client.delete_table(TableName=table)


def test_given_a_user_with_10_sockets_when_an_11th_connects_then_the_handshake_is_429_until_one_closes(
    gateway: Callable[..., RunningGateway], redis_client: redis.Redis
) -> None:
    running = gateway()
    token = running.token(sub="busy-user")

    async def scenario() -> None:
        sockets = [await connect(running.url(token)) for _ in range(10)]
        with pytest.raises(InvalidStatus) as rejected:
            async with connect(running.url(token)):
                pass
        assert rejected.value.response.status_code == 429
        assert len(redis_client.keys(RECORD_PREFIX + "*")) == 10  # the 11th stored nothing

        await sockets.pop().close()

        async def eleventh_accepted() -> bool:
            try:
                sockets.append(await connect(running.url(token)))
            except InvalidStatus:
                return False
            return True

        assert await until(eleventh_accepted)
        await asyncio.gather(*(ws.close() for ws in sockets))

    asyncio.run(scenario())


def test_given_a_hung_redis_then_connects_succeed_and_stop_reaching_redis_once_the_breaker_opens(
    aof_redis: RedisServer, moto_endpoint: str, state_dir: Path
) -> None:
    # A breaker that stays open for the whole test: no half-open trial may reach Redis.
    gateway = FailoverGateway(aof_redis, moto_endpoint, state_dir, breaker_reset_seconds=600)
    container = gateway.prepared.container
    process = gateway.redis_server.process
    assert process is not None
    failures: list[BaseException] = []

    class CountFailures(pybreaker.CircuitBreakerListener):
        """Every call that reached the hung Redis timed out: a failure of the breaker's."""

        def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
            failures.append(exc)

    container.redis_breaker().add_listener(CountFailures())

    def redis_attempts() -> int:
        return len(failures)

    async def scenario() -> None:
        os.kill(process.pid, signal.SIGSTOP)
        try:
            clients = [
                await connect(gateway.running.url(gateway.running.token(sub=f"hung-{index}")))
                for index in range(3)
            ]
            assert container.redis_breaker().current_state == "open"
            attempts_when_open = redis_attempts()

            clients += [
                await connect(gateway.running.url(gateway.running.token(sub=f"hung-{index}")))
                for index in range(3, 10)
            ]
            pongs = [await ping(ws, "hung") for ws in clients]

            assert redis_attempts() == attempts_when_open  # nobody waited on Redis again
            assert [pong["action"] for pong in pongs] == ["pong"] * 10
            assert set(gateway.dynamodb_items()) == {pong["connectionId"] for pong in pongs}
        finally:
            os.kill(process.pid, signal.SIGCONT)
        await asyncio.gather(*(ws.close() for ws in clients))
        assert await until(lambda: not gateway.dynamodb_items())

    try:
        asyncio.run(scenario())
    finally:
        gateway.stop()
