"""One schedule's world: redis-server, moto_server, the two proxies and ``timeline-ws serve``,
plus the checker's direct view of the stores and the fault injector.

::

    clients --ws--> serve --redis-url--> redis proxy ------> redis-server (AOF)
                          --dynamodb---> dynamodb proxy ---> moto_server
    checker --------------------------------(direct)-------> redis-server, moto_server
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import attrs
import boto3
import redis.asyncio
from botocore.config import Config

from tests.soak.clients import World
from tests.soak.faults import FaultKind, FaultRecord, HealthTimeline, PlannedFault
from tests.soak.invariants import Snapshot
from tests.soak.processes import (
    MotoProcess,
    ProxyProcess,
    RedisProcess,
    ServeProcess,
    Stoppers,
)

# The stores' documented layout (README: "The record", "Connection limits"), spelled out here
# rather than imported, so the checker reads what the contract says whatever module holds it.
RECORD_PREFIX: Final = "ws:connection:"
EXPIRY_KEY: Final = "ws:limits:{connections}:expiry"
RECORDS_WITH_TTLS: Final = """
local found = {}
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
    found[#found + 1] = key
    found[#found + 1] = redis.call('PTTL', key)
end
return found
"""
"""The record keys and each one's PTTL (ms; -1 without a TTL), read atomically in the MULTI."""
OWNER_KEY: Final = "ws:limits:{connections}:owner"
PER_USER_KEY: Final = "ws:limits:{connections}:per-user"
DIRECTORY_KEY: Final = "ws:limits:{connections}:by-user"
"""The directory: members ``<n>:<userId>:<connectionId>``, ``n`` the userId's UTF-8 length."""
TABLE: Final = "soak-connections"
READ_TIMEOUT_SECONDS: Final = 2.0
READY_TIMEOUT_SECONDS: Final = 30.0
POLL_SECONDS: Final = 0.05


@attrs.frozen(slots=True, kw_only=True)
class GatewayConfig:
    """What ``serve`` is started with."""

    breaker_reset: float
    workers: int
    global_limit: int
    per_user_limit: int
    log_level: str = "WARNING"
    disconnect_loss: float = 0.0
    """serve's ``--disconnect-loss``: the share of ``$disconnect`` invocations it skips."""

    def arguments(self) -> list[str]:
        """serve's options beyond the processes' addresses."""
        return ["--disconnect-loss", f"{self.disconnect_loss:g}"] if self.disconnect_loss else []

    def environment(self) -> dict[str, str]:
        return {
            # Both breakers: the checker's grace for a replayed delete is one reset, and a
            # delete DynamoDB missed is replayed once its breaker lets a call through.
            "REDIS_BREAKER_RESET_SECONDS": f"{self.breaker_reset:g}",
            "DYNAMODB_BREAKER_RESET_SECONDS": f"{self.breaker_reset:g}",
            "CONNECTION_LIMIT_GLOBAL": str(self.global_limit),
            "CONNECTION_LIMIT_PER_USER": str(self.per_user_limit),
            # The handlers' own level (serve's --log-level is the gateway's): warnings and
            # errors (failovers, breaker changes, pong_unrecorded) stay, per-call INFO goes.
            "LOG_LEVEL": self.log_level,
            # As in Lambda, the adapters' lines (failovers, breaker changes, the limiter)
            # then go out as JSON with their extra fields (connection_id, operation, reason):
            # what tests/soak/diagnosis.py reads to say why a record was left behind.
            "AWS_LAMBDA_FUNCTION_NAME": "timeline-ws-soak",
        }


class SoakEnvironment:
    """Starts (in order) and stops (in reverse) every process of one schedule."""

    def __init__(self, workdir: Path, config: GatewayConfig) -> None:
        self.workdir = workdir
        self.config = config
        self.stoppers = Stoppers()
        self.redis = RedisProcess(workdir / "redis")
        self.moto = MotoProcess(workdir)
        self.redis_proxy: ProxyProcess | None = None
        self.dynamodb_proxy: ProxyProcess | None = None
        self.serve: ServeProcess | None = None
        self._redis_view: redis.asyncio.Redis | None = None
        self._dynamodb_view: Any = None

    def start(self) -> None:
        """Start every process and wait (bounded) until each answers."""
        (self.workdir / "redis").mkdir(parents=True, exist_ok=True)
        self.stoppers.add(self.redis.stop)
        self.redis.start()
        self.redis.wait_ready()
        self.redis_proxy = ProxyProcess("redis-proxy", self.redis.port, self.workdir)
        self.stoppers.add(self.redis_proxy.stop)
        self.redis_proxy.start()
        self.stoppers.add(self.moto.stop)
        self.moto.start()
        self.dynamodb_proxy = ProxyProcess("dynamodb-proxy", self.moto.port, self.workdir)
        self.stoppers.add(self.dynamodb_proxy.stop)
        self.dynamodb_proxy.start()
        self.serve = ServeProcess(
            self.workdir,
            redis_port=self.redis_proxy.port,
            dynamodb_port=self.dynamodb_proxy.port,
            table=TABLE,
            workers=self.config.workers,
            log_level=self.config.log_level,
            extra_env=self.config.environment(),
            extra_args=self.config.arguments(),
        )
        self.stoppers.add(self.serve.stop)
        self.serve.start()
        self._dynamodb_view = boto3.client(
            "dynamodb",
            endpoint_url=self.moto.endpoint,
            region_name="us-east-1",
            aws_access_key_id="soak",
            aws_secret_access_key="soak",
            config=Config(
                connect_timeout=1,
                read_timeout=READ_TIMEOUT_SECONDS,
                retries={"mode": "standard", "total_max_attempts": 1},
            ),
        )

    def stop(self) -> None:
        """Stop every process (serve first), whatever state each is in."""
        self.stoppers.stop_all()

    async def close_views(self) -> None:
        if self._redis_view is not None:
            await self._redis_view.aclose()
            self._redis_view = None

    # -- the checker's direct view ---------------------------------------------------------

    def _redis(self) -> redis.asyncio.Redis:
        if self._redis_view is None:
            self._redis_view = redis.asyncio.Redis(
                host="127.0.0.1",
                port=self.redis.port,
                decode_responses=True,
                socket_timeout=READ_TIMEOUT_SECONDS,
                socket_connect_timeout=1,
            )
        return self._redis_view

    async def observe(self, redis_readable: bool) -> Snapshot:
        """Read both stores directly (concurrently) and the gateway's RSS."""
        redis_part, dynamodb_part = await asyncio.gather(
            self._read_redis() if redis_readable else _nothing(),
            asyncio.to_thread(self._read_dynamodb),
        )
        ttls, slots, owners, per_user, directory = redis_part or (None,) * 5
        dynamodb_users = (
            None if dynamodb_part is None else {i: u for i, u in dynamodb_part.items() if u}
        )
        return Snapshot(
            redis_records=None if ttls is None else frozenset(ttls),
            redis_ttls=ttls,
            slots=slots,
            owners=owners,
            per_user=per_user,
            dynamodb_records=None if dynamodb_part is None else frozenset(dynamodb_part),
            directory=directory,
            dynamodb_users=dynamodb_users,
            rss_bytes=self.serve.process.rss_bytes() if self.serve else None,
        )

    async def _read_redis(
        self,
    ) -> (
        tuple[dict[str, float], dict[str, float], dict[str, str], dict[str, int], dict[str, str]]
        | None
    ):
        try:
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                async with self._redis().pipeline(transaction=True) as pipe:
                    pipe.eval(RECORDS_WITH_TTLS, 0, RECORD_PREFIX + "*")
                    pipe.zrange(EXPIRY_KEY, 0, -1, withscores=True)
                    pipe.hgetall(OWNER_KEY)
                    pipe.hgetall(PER_USER_KEY)
                    pipe.zrange(DIRECTORY_KEY, 0, -1)
                    keyed, slots, owners, per_user, entries = await pipe.execute()
        except (TimeoutError, redis.RedisError, OSError):
            await self._reset_redis_view()
            return None
        ttls = {
            key.removeprefix(RECORD_PREFIX): int(ttl) / 1000 if int(ttl) >= 0 else -1.0
            for key, ttl in zip(keyed[::2], keyed[1::2], strict=True)
        }
        return (
            ttls,
            {member: float(score) for member, score in slots},
            dict(owners),
            {user: int(count) for user, count in per_user.items()},
            dict(directory_entry(member) for member in entries),
        )

    async def _reset_redis_view(self) -> None:
        view, self._redis_view = self._redis_view, None
        if view is not None:
            with contextlib.suppress(Exception):  # a broken connection: dropping it is the point
                await view.aclose()

    def _read_dynamodb(self) -> dict[str, str] | None:
        """The live items, connectionId -> userId (``""`` for a tombstone, which has none)."""
        from botocore.exceptions import BotoCoreError, ClientError

        now = time.time()
        found: dict[str, str] = {}
        try:
            paginator = self._dynamodb_view.get_paginator("scan")
            for page in paginator.paginate(TableName=TABLE, ConsistentRead=True):
                for item in page.get("Items", []):
                    if float(item["expiresAt"]["N"]) > now:
                        found[item["connectionId"]["S"]] = item.get("userId", {}).get("S", "")
        except (BotoCoreError, ClientError):
            return None
        return found

    # -- faults ------------------------------------------------------------------------------

    async def inject(
        self,
        planned: PlannedFault,
        record: FaultRecord,
        *,
        clock: Callable[[], float],
        world: World,
    ) -> None:
        """Make ``planned`` happen, wait its duration, heal, and wait until it is healed."""
        kind = planned.kind
        redis_proxy, dynamodb_proxy = self.redis_proxy, self.dynamodb_proxy
        assert redis_proxy is not None and dynamodb_proxy is not None
        if kind is FaultKind.REDIS_WIPE:
            now = clock()
            for conn in world.conns:
                if conn.closed_at is None and conn.started_at <= now:
                    conn.wipe_exempt_at = now
        if kind in (FaultKind.REDIS_KILL, FaultKind.REDIS_WIPE, FaultKind.BOTH_DOWN):
            self.redis.kill()
        if kind is FaultKind.REDIS_WIPE:
            self.redis.wipe_data()
        if kind is FaultKind.REDIS_HANG:
            self.redis.send_signal(signal.SIGSTOP)
        if kind is FaultKind.REDIS_LATENCY:
            await asyncio.to_thread(redis_proxy.command, f"LATENCY {planned.latency_ms}")
        if kind is FaultKind.REDIS_BLACKHOLE:
            await asyncio.to_thread(redis_proxy.command, "BLACKHOLE")
        if kind in (FaultKind.DYNAMODB_DOWN, FaultKind.BOTH_DOWN):
            await asyncio.to_thread(dynamodb_proxy.command, "REFUSE")
        if kind is FaultKind.DYNAMODB_BLACKHOLE:
            await asyncio.to_thread(dynamodb_proxy.command, "BLACKHOLE")

        await asyncio.sleep(planned.duration)  # the fault's duration

        if kind in (FaultKind.REDIS_KILL, FaultKind.BOTH_DOWN):
            self.redis.start()
        if kind is FaultKind.REDIS_WIPE:
            self.redis.start(without_data=True)
        if kind is FaultKind.REDIS_HANG:
            self.redis.send_signal(signal.SIGCONT)
        if kind in (FaultKind.REDIS_LATENCY, FaultKind.REDIS_BLACKHOLE):
            await asyncio.to_thread(redis_proxy.command, "PASS")
        if kind in (FaultKind.DYNAMODB_DOWN, FaultKind.DYNAMODB_BLACKHOLE, FaultKind.BOTH_DOWN):
            await asyncio.to_thread(dynamodb_proxy.command, "PASS")
        record.ended = clock()
        await self._until_redis_answers()
        record.healed = clock()

    async def _until_redis_answers(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not await asyncio.to_thread(self.redis.answers):
            if not self.redis.running():
                raise RuntimeError("redis-server exited while restarting")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer after a fault")
            await asyncio.sleep(POLL_SECONDS)  # polling interval of a bounded readiness loop


def directory_entry(member: str) -> tuple[str, str]:
    """``<n>:<userId>:<connectionId>`` as (connectionId, userId)."""
    length, _, rest = member.partition(":")
    size = int(length)
    raw = rest.encode("utf-8")
    return raw[size + 1 :].decode("utf-8"), raw[:size].decode("utf-8")


async def _nothing() -> None:
    return None


def timeline_redis_readable(timeline: HealthTimeline, t: float) -> bool:
    """Whether the checker may try to read Redis at ``t`` (redis-server up and running)."""
    return not timeline.redis_server_down(t)
