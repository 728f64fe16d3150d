"""A ``ConnectionRepository`` decorator that enforces connection limits on ``save``.

Keeping the limits here, behind the port, leaves the use cases unchanged: ``Connect`` saves
the record and ``ConnectionLimitExceededError`` (HTTP 429) comes out of ``save`` like any
other repository error, before anything is stored.
"""

from __future__ import annotations

from typing import Protocol

from application.ports import ConnectionRepository
from domain.connection import Connection


class ConnectionLimiter(Protocol):
    """Counts connection slots; ``acquire`` raises ``ConnectionLimitExceededError`` past a limit."""

    def acquire(self, connection: Connection, ttl_seconds: int) -> bool:
        """Hold a slot until ``now + ttl_seconds``; ``False`` when it could not be counted.

        Raises:
            ConnectionLimitExceededError: a limit is reached; nothing was counted.
        """
        ...

    def touch(self, connection_id: str, ttl_seconds: int) -> None:
        """Keep a held slot until ``now + ttl_seconds``; never raises."""
        ...

    def release(self, connection_id: str) -> None:
        """Free the slot (idempotent); never raises."""
        ...


class LimitedConnectionRepository(ConnectionRepository):
    """Wraps ``repository`` with ``limiter``.

    - ``save``: acquire a slot first (raises ``ConnectionLimitExceededError`` and stores
      nothing when a limit is reached), then save; if the save fails, the slot is released.
    - ``refresh``: refresh the record, then keep its slot alive as long.
    - ``delete``: delete the record and release the slot, even when the delete failed
      (the connection is closed either way).
    - ``get``: unchanged.

    Raises:
        Whatever the wrapped repository raises, plus ``ConnectionLimitExceededError`` from
        ``save``.
    """

    def __init__(self, repository: ConnectionRepository, limiter: ConnectionLimiter) -> None:
        self._repository = repository
        self._limiter = limiter

    def save(self, connection: Connection, ttl_seconds: int) -> None:
        """Acquire a slot, then store the record; see the class rules."""
        counted = self._limiter.acquire(connection, ttl_seconds)
        try:
            self._repository.save(connection, ttl_seconds)
        except BaseException:
            if counted:
                self._limiter.release(connection.connection_id)
            raise

    def get(self, connection_id: str) -> Connection:
        """The wrapped repository's ``get``."""
        return self._repository.get(connection_id)

    def refresh(self, connection_id: str, ttl_seconds: int) -> None:
        """Refresh the record, then its slot."""
        self._repository.refresh(connection_id, ttl_seconds)
        self._limiter.touch(connection_id, ttl_seconds)

    def delete(self, connection_id: str) -> None:
        """Delete the record and free its slot."""
        try:
            self._repository.delete(connection_id)
        finally:
            self._limiter.release(connection_id)
