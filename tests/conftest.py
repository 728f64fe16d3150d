"""Fixtures shared by every tier: real servers on loopback, AWS test credentials."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from tests.support.servers import RedisServer, running_moto_server, running_redis_server

# boto3 must never reach a real account from the test suite.
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_SESSION_TOKEN"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session (127.0.0.1, free port, no persistence)."""
    with running_redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session's Redis URL, flushed before and after the test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    try:
        yield redis_server.url
    finally:
        client.flushall()
        client.close()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server (real HTTP) for the session; yields ``http://127.0.0.1:PORT``."""
    with running_moto_server() as endpoint:
        yield endpoint
