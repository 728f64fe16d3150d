"""A ``ConnectionRepository`` built on first use: a store down at cold start is an outage, not a crash.

A Redis Cluster client reads the slot map while it is built: with every node down,
building it raises ``StoreUnavailableError``. Behind this wrapper that error surfaces from
the first operation instead of from the container, where the failover repository (and its
circuit breaker) can route around it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from application.ports import ConnectionRepository
from domain.connection import Connection


class LazyConnectionRepository(ConnectionRepository):
    """Calls ``factory`` on the first operation (thread-safely) and delegates to what it built.

    A factory that raises is called again on the next operation; once it succeeds, the
    repository is kept for the life of the process.

    Raises:
        Whatever ``factory`` raises (``StoreUnavailableError`` for an unreachable store), and
        whatever the built repository raises.
    """

    def __init__(self, factory: Callable[[], ConnectionRepository]) -> None:
        self._factory = factory
        self._repository: ConnectionRepository | None = None
        self._lock = threading.Lock()

    def _built(self) -> ConnectionRepository:
        repository = self._repository
        if repository is None:
            with self._lock:
                repository = self._repository
                if repository is None:
                    repository = self._repository = self._factory()
        return repository

    def save(self, connection: Connection, ttl_seconds: int) -> None:
        """The built repository's ``save``."""
        self._built().save(connection, ttl_seconds)

    def get(self, connection_id: str) -> Connection:
        """The built repository's ``get``."""
        return self._built().get(connection_id)

    def refresh(self, connection_id: str, ttl_seconds: int) -> None:
        """The built repository's ``refresh``."""
        self._built().refresh(connection_id, ttl_seconds)

    def delete(self, connection_id: str) -> None:
        """The built repository's ``delete``."""
        self._built().delete(connection_id)
