"""API Gateway's throttles: token buckets, as AWS describes them.

"API Gateway throttles requests to your API using the token bucket algorithm, where a token
counts for a request" (https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-protect.html).
Defaults are the account quotas per Region: 10,000 requests per second with a bucket of 5,000
(https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html), shared by the
WebSocket API's messages and the ``@connections`` calls, and 500 new connections per second
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

ACCOUNT_REQUEST_RATE: Final = 10_000.0
"""Requests per second per account and Region (WebSocket messages and ``@connections`` calls)."""
ACCOUNT_REQUEST_BURST: Final = 5_000
"""The account bucket's capacity."""
NEW_CONNECTIONS_PER_SECOND: Final = 500.0
"""New WebSocket connections per second per account and Region."""


class TokenBucket:
    """``rate`` tokens a second into a bucket of ``capacity``; it starts full.

    Args:
        rate: tokens added per second (> 0).
        capacity: the most tokens the bucket holds, i.e. the burst (>= 1).
        clock: a monotonic clock in seconds.

    Raises:
        ValueError: a rate or capacity out of range.

    Used from one thread (the event loop).
    """

    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not rate > 0 or not capacity >= 1:
            raise ValueError("a token bucket needs rate > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = float(capacity)
        self._updated = clock()

    def take(self) -> bool:
        """Take one token: ``True`` if there was one (the request passes), else ``False``."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
