"""The fault proxy in front of a real redis-server: each mode does to a client what it says."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.soak.processes import ProxyProcess
from tests.support.servers import RedisServer, running_redis_server

pytestmark = pytest.mark.slow


@pytest.fixture
def target() -> Iterator[RedisServer]:
    with running_redis_server() as server:
        yield server


@pytest.fixture
def proxy(target: RedisServer, tmp_path: Path) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess("test-proxy", target.port, tmp_path)
    proxy.start()
    yield proxy
    proxy.stop()
    assert not proxy.process.running()


def client(port: int, timeout: float = 0.5) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # one attempt: each failure is the proxy's doing
    )


def round_trip(through: redis.Redis) -> float:
    started = time.perf_counter()
    assert through.ping()
    return time.perf_counter() - started


def test_pass_forwards_and_latency_delays_each_direction(proxy: ProxyProcess) -> None:
    through = client(proxy.port, timeout=2)
    assert round_trip(through) < 0.2
    assert proxy.command("LATENCY 150") == "OK LATENCY 150"
    assert round_trip(through) >= 0.3  # 150 ms there, 150 ms back
    proxy.command("PASS")
    assert round_trip(through) < 0.2


def test_a_blackhole_holds_what_was_sent_and_delivers_it_at_the_heal(
    proxy: ProxyProcess, target: RedisServer
) -> None:
    through = client(proxy.port)
    direct = client(target.port)
    assert through.ping()  # an established connection
    proxy.command("BLACKHOLE")
    with pytest.raises(redis.TimeoutError):
        through.set("late", "1")
    assert direct.get("late") is None  # nothing crossed the partition
    with pytest.raises(redis.RedisError):
        client(proxy.port).set("never", "1")  # accepted during it: never reaches Redis
    proxy.command("PASS")
    deadline = time.monotonic() + 5
    while direct.get("late") is None and time.monotonic() < deadline:
        time.sleep(0.02)  # polling interval of a bounded loop
    assert direct.get("late") == b"1"  # the held command ran late, as TCP would deliver it
    assert direct.get("never") is None
    assert client(proxy.port).ping()


def test_refuse_closes_the_port_and_resets_connections_until_pass(proxy: ProxyProcess) -> None:
    through = client(proxy.port)
    assert through.ping()
    proxy.command("REFUSE")
    with pytest.raises(redis.ConnectionError, match=r"refused|reset|closed"):
        client(proxy.port).ping()
    with pytest.raises(redis.ConnectionError):
        through.ping()
    proxy.command("PASS")
    assert client(proxy.port).ping()
    assert "open=" in proxy.command("STATS")


def test_a_target_that_is_down_resets_the_client(tmp_path: Path) -> None:
    with running_redis_server() as server:
        port = server.port
    proxy = ProxyProcess("orphan-proxy", port, tmp_path)
    proxy.start()
    try:
        with pytest.raises(redis.ConnectionError):
            client(proxy.port).ping()
    finally:
        proxy.stop()
