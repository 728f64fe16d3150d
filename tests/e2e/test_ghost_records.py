"""Issue 14, "No ghost records, no lost ones": the reported scenario, step by step.

Exactly the issue's setup: ``timeline-ws serve --redis-url … --connections-table …
--dynamodb-endpoint …`` (its own process, default breaker settings: 3 failures open the
circuit for 10 s) against a redis-server with its append-only file on (SIGKILLed and
restarted on the same port and folder, then SIGSTOPped and SIGCONTed) and a moto_server,
with real websockets clients. The test reaches the gateway only through its public
surface (the CLI, the WebSocket, the documented Redis keys and DynamoDB items), so it holds
whatever the store code's modules become.

The sequence is deterministic: the circuit closes again after Redis's restart (a ping
refreshes a record in Redis), opens when the first hung ``$connect`` times out, and stays
open for 10 s; the 50 clients close about 2 s after the SIGCONT, so every ``$disconnect``
finds it open. Before the fix those disconnects skipped Redis and nothing remembered it:
the 20 records written before the outage stayed in Redis until their TTL (600 s), each
holding its slot. Now a delete Redis cannot take, or its open breaker skips, becomes a
tombstone in DynamoDB, and the reconciler replays it (every 2 s under ``serve``, whatever
the breakers say).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect

from entrypoints.local_gateway.dev_cognito import DevCognito, load_dev_cognito
from tests.soak.processes import MotoProcess, RedisProcess, ServeProcess

pytestmark = pytest.mark.slow

TABLE = "ghost-connections"
RECORD_PREFIX = "ws:connection:"
EXPIRY_KEY = "ws:limits:{connections}:expiry"
OWNER_KEY = "ws:limits:{connections}:owner"
PER_USER_KEY = "ws:limits:{connections}:per-user"
RECEIVE_TIMEOUT_SECONDS = 10.0
BREAKER_CLOSES_WITHIN_SECONDS = 25.0
"""The default ``REDIS_BREAKER_RESET_SECONDS`` (10) and then some."""
CLEAN_WITHIN_SECONDS = 15.0
POLL_SECONDS = 0.1


class World:
    """The issue's processes, and direct views of both stores."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.redis_server = RedisProcess(folder / "redis")
        self.moto = MotoProcess(folder)
        self.serve: ServeProcess | None = None
        self.cognito: DevCognito | None = None
        self.redis: redis.Redis | None = None
        self.dynamodb: Any = None

    def start(self) -> None:
        self.redis_server.workdir.mkdir(parents=True, exist_ok=True)
        self.redis_server.start()
        self.redis_server.wait_ready()
        self.moto.start()
        self.serve = ServeProcess(
            self.folder,
            redis_port=self.redis_server.port,
            dynamodb_port=self.moto.port,
            table=TABLE,
            workers=16,
            log_level="WARNING",
            extra_env={},
        )
        self.serve.start()
        self.cognito = load_dev_cognito(self.serve.state_dir)
        self.redis = redis.Redis(
            host="127.0.0.1", port=self.redis_server.port, decode_responses=True, socket_timeout=2
        )
        self.dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=self.moto.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        """serve first (its shutdown runs $disconnect for open sockets), then the stores."""
        if self.redis is not None:
            self.redis.close()
        if self.serve is not None:
            self.serve.stop()
        self.moto.stop()
        self.redis_server.stop()

    def url(self, sub: str) -> str:
        assert self.serve is not None and self.cognito is not None
        return f"{self.serve.ws_url}?token={self.cognito.access_token(sub=sub)}"

    def redis_records(self) -> set[str]:
        assert self.redis is not None
        return {
            str(key).removeprefix(RECORD_PREFIX) for key in self.redis.keys(RECORD_PREFIX + "*")
        }

    def dynamodb_items(self) -> set[str]:
        items = self.dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
        return {item["connectionId"]["S"] for item in items}

    def leftovers(self) -> dict[str, object]:
        """What the stores still hold: records (Redis, DynamoDB) and limiter slots."""
        assert self.redis is not None
        return {
            "redis_records": len(self.redis_records()),
            "dynamodb_items": len(self.dynamodb_items()),
            "limiter_slots": int(self.redis.zcard(EXPIRY_KEY)),
            "limiter_owners": int(self.redis.hlen(OWNER_KEY)),
            "limiter_per_user": self.redis.hgetall(PER_USER_KEY),
        }


NOTHING_LEFT = {
    "redis_records": 0,
    "dynamodb_items": 0,
    "limiter_slots": 0,
    "limiter_owners": 0,
    "limiter_per_user": {},
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path)
    try:
        world.start()
        yield world
    finally:
        world.stop()


async def ping(ws: ClientConnection, ping_id: str) -> dict[str, Any]:
    await ws.send(json.dumps({"action": "ping", "id": ping_id}))
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS))
    return reply


async def connect_wave(world: World, prefix: str, count: int) -> dict[str, ClientConnection]:
    """``count`` clients, one user each, connected together; connectionId -> socket."""
    sockets = await asyncio.gather(
        *(connect(world.url(f"{prefix}-{index}")) for index in range(count))
    )
    clients: dict[str, ClientConnection] = {}
    for ws in sockets:
        pong = await ping(ws, "hello")
        assert pong["action"] == "pong"
        clients[pong["connectionId"]] = ws
    return clients


async def pong_actions(clients: dict[str, ClientConnection], round_name: str) -> list[str]:
    replies = await asyncio.gather(*(ping(ws, round_name) for ws in clients.values()))
    return [reply["action"] for reply in replies]


def test_given_clients_closing_while_the_breaker_is_open_then_no_record_or_slot_outlives_them_by_15_s(
    world: World,
) -> None:
    assert world.redis is not None

    async def scenario() -> None:
        # Given 20 clients connected while Redis is up: their records are in Redis.
        first = await connect_wave(world, "before", 20)
        assert world.redis_records() == set(first)

        # When Redis is killed, 20 more connect: their records are in DynamoDB.
        world.redis_server.kill()
        second = await connect_wave(world, "outage", 20)
        assert world.dynamodb_items() == set(second)
        everyone = {**first, **second}
        assert await pong_actions(everyone, "outage") == ["pong"] * 40

        # Redis restarts from its AOF: the first 20 are back. Once the breaker has closed
        # again (it half-opens 10 s after the last failure), a ping refreshes a record in
        # Redis: shorten one record's TTL and ping it until the TTL is long again.
        world.redis_server.start()
        world.redis_server.wait_ready()
        assert world.redis_records() == set(first)
        probe_id, probe = next(iter(first.items()))
        world.redis.expire(RECORD_PREFIX + probe_id, 100)
        deadline = time.monotonic() + BREAKER_CLOSES_WITHIN_SECONDS
        while int(world.redis.ttl(RECORD_PREFIX + probe_id)) <= 500:
            assert time.monotonic() < deadline, "the breaker never closed after Redis returned"
            assert (await ping(probe, "probe"))["action"] == "pong"
            await asyncio.sleep(POLL_SECONDS)  # polling interval of a bounded loop
        assert await pong_actions(everyone, "recovered") == ["pong"] * 40
        assert world.redis_records() == set(first)
        assert world.dynamodb_items() == set(second)

        # Redis hangs (SIGSTOP); 10 more connect (DynamoDB) and all 50 pings are answered.
        world.redis_server.send_signal(signal.SIGSTOP)
        try:
            third = await connect_wave(world, "hung", 10)
            everyone.update(third)
            assert await pong_actions(everyone, "hung") == ["pong"] * 50
        finally:
            world.redis_server.send_signal(signal.SIGCONT)

        # One second after Redis resumes, all 50 clients close (the breaker is still open).
        await asyncio.sleep(1.0)  # the scenario's timing, not a synchronisation
        await asyncio.gather(*(ws.close() for ws in everyone.values()))
        closed_at = time.monotonic()

        # Then within 15 s no record is left in either store and no slot is held.
        left = world.leftovers()
        while left != NOTHING_LEFT and time.monotonic() < closed_at + CLEAN_WITHIN_SECONDS:
            await asyncio.sleep(POLL_SECONDS)  # polling interval of a bounded loop
            left = world.leftovers()
        assert left == NOTHING_LEFT, (
            f"{CLEAN_WITHIN_SECONDS:.0f} s after 50 clients closed, the stores still hold {left}"
        )

    asyncio.run(scenario())
