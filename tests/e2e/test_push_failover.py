"""Issue 21, point 4: push works while Redis is down (the directory answers from DynamoDB), and
a push during the outage neither loses nor resurrects records.

Needs the DynamoDB directory (the GSI on userId) and the failover repository's
``connections_of``, issue 21's other half, built in parallel: skipped until they are merged,
then it runs as is against ``serve``'s real wiring (no stand-in).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.e2e.test_failover_e2e import FailoverGateway, kill, ping
from tests.e2e.test_push import invoke
from tests.support.servers import RedisServer, running_redis_server

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis_server("--appendonly", "yes", "--appendfsync", "always") as server:
        yield server


def test_given_redis_down_when_pushing_then_the_directory_answers_from_dynamodb(
    redis_server: RedisServer, moto_endpoint: str, state_dir: Path
) -> None:
    gateway = FailoverGateway(redis_server, moto_endpoint, state_dir)
    running = gateway.running
    try:

        async def scenario() -> tuple[dict[str, object], list[object], set[str], set[str]]:
            # Given Redis down, and alice (2 connections) and bob (1) connected: in DynamoDB
            kill(redis_server)
            sockets = {}
            for user, count in (("alice", 2), ("bob", 1)):
                for index in range(count):
                    ws = await connect(running.url(running.token(sub=user)))
                    pong = await ping(ws, f"{user}-{index}")
                    sockets[pong["connectionId"]] = ws
            before = set(gateway.dynamodb_items())
            # When pushing to both during the outage
            _, result = await asyncio.to_thread(
                invoke, running, {"userIds": ["alice", "bob"], "message": {"n": 1}}
            )
            frames = [
                json.loads(await asyncio.wait_for(ws.recv(), 10.0)) for ws in sockets.values()
            ]
            after = set(gateway.dynamodb_items())
            for ws in sockets.values():
                await ws.close()
            return result, frames, before, after

        result, frames, before, after = asyncio.run(scenario())
    finally:
        gateway.stop()

    # Then every connection got it, and the push neither lost nor added a record
    assert (result["delivered"], result["gone"], result["failed"], result["unavailable"]) == (
        3,
        0,
        0,
        0,
    )
    assert frames == [{"n": 1}] * 3
    assert after == before and len(before) == 3
