"""A stand-in ``ConnectionDirectory`` over the records in a real Redis, for the push's E2E tests
until the Redis directory (issue 21's other half, built in parallel) is merged.

It SCANs ``ws:connection:*``: a test's price, never the product's (the real directory is
proportional to the user's connections). Once the Redis directory is on main, the E2E
fixtures drop this override and the same tests run against it unchanged.
"""

from __future__ import annotations

import redis

from adapters.connection_store.record import decode_record
from application.ports import ConnectionDirectory
from domain.connection import Connection


class ScanningRedisDirectory(ConnectionDirectory):
    """The live records of a user, found by scanning the records' keys."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)

    def connections_of(self, user_id: str) -> list[Connection]:
        """Every record naming ``user_id`` (a record that expired is gone from Redis)."""
        found = []
        for key in self._client.scan_iter(match="ws:connection:*", count=1000):
            text = self._client.get(key)
            if text is not None and (connection := decode_record(text)).user_id == user_id:
                found.append(connection)
        return found
