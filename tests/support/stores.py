"""Connection stores as the tests build them: generous limits unless a test is about limits."""

from __future__ import annotations

from typing import Any

from adapters.connection_store import RedisConnectionRepository
from adapters.system_clock import SystemClock
from application.ports import Clock

UNLIMITED = 10_000_000


def redis_repository(
    client: Any,
    *,
    clock: Clock | None = None,
    global_limit: int = UNLIMITED,
    per_user_limit: int = UNLIMITED,
) -> RedisConnectionRepository:
    """A ``RedisConnectionRepository`` over ``client`` (or a callable building it)."""
    return RedisConnectionRepository(
        client,
        clock=clock or SystemClock(),
        global_limit=global_limit,
        per_user_limit=per_user_limit,
    )
