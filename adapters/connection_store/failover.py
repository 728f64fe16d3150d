"""Redis first, DynamoDB when Redis fails: two connection stores behind one port.

The rules:

- ``save``: the primary (Redis); on its error or timeout, or while the circuit breaker is
  open, the secondary (DynamoDB). Every failover is logged and reported to ``on_failover``.
- ``get`` / ``refresh``: the primary, then the secondary when the primary did not have the
  record or did not answer, so records written during an outage keep being found and
  refreshed after Redis comes back.
- ``delete``: both stores, idempotent.
- "Not found" is definite only when every store answered: a record that may sit in a store
  that did not answer is ``StoreUnavailableError``, never ``ConnectionNotFoundError`` (the
  Heartbeat use case pongs on the first and closes the connection on the second).

A circuit breaker (pybreaker) guards the primary: after ``fail_max`` consecutive failures
it opens and calls go straight to the secondary without paying Redis's timeout; after
``reset_timeout_seconds`` it half-opens, lets calls try Redis again, and closes on the first
success. A missing record is an answer, not a failure, and does not count against Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

import attrs
import pybreaker

from application.ports import ConnectionRepository
from domain.connection import Connection
from domain.errors import (
    ConnectionLimitExceededError,
    ConnectionNotFoundError,
    StoreUnavailableError,
)

logger = logging.getLogger(__name__)

CIRCUIT_OPEN: Final = "circuit_open"
"""``FailoverEvent.reason`` when the breaker skipped the primary without calling it."""

PRIMARY_UNAVAILABLE: Final = "primary_unavailable"
"""``FailoverEvent.reason`` when the primary was called and failed (error or timeout)."""


@attrs.frozen(slots=True, kw_only=True)
class FailoverEvent:
    """One operation served by the secondary store because the primary could not serve it.

    Attributes:
        operation: ``"save"``, ``"get"``, ``"refresh"`` or ``"delete"``.
        reason: :data:`CIRCUIT_OPEN` or :data:`PRIMARY_UNAVAILABLE`.
        connection_id: the connection concerned.
    """

    operation: str
    reason: str
    connection_id: str


FailoverListener = Callable[[FailoverEvent], None]


def create_circuit_breaker(
    *, fail_max: int = 3, reset_timeout_seconds: float = 10.0, name: str = "redis"
) -> pybreaker.CircuitBreaker:
    """The breaker that guards the primary store.

    Args:
        fail_max: consecutive primary failures (errors or timeouts) that open the circuit.
        reset_timeout_seconds: how long it stays open before half-opening, seconds.
        name: shown in the breaker's log lines.

    ``ConnectionNotFoundError`` and ``ConnectionLimitExceededError`` are excluded (answers,
    not failures). State changes are logged: opening at ERROR level (the alarm's signal),
    closing at INFO. The bounds of both settings are checked once, by ``Settings``.
    """
    return pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=reset_timeout_seconds,
        exclude=[ConnectionNotFoundError, ConnectionLimitExceededError],
        listeners=[_BreakerLogger()],
        name=name,
        throw_new_error_on_trip=False,
    )


class _BreakerLogger(pybreaker.CircuitBreakerListener):
    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        level = logging.ERROR if new_state.name == pybreaker.STATE_OPEN else logging.INFO
        logger.log(
            level,
            "circuit breaker %s: %s -> %s",
            cb.name,
            old_state.name if old_state else None,
            new_state.name,
            extra={
                "breaker": cb.name,
                "from_state": old_state.name if old_state else None,
                "to_state": new_state.name,
            },
        )


class FailoverConnectionRepository(ConnectionRepository):
    """A ``ConnectionRepository`` over a primary and a secondary store; see the module rules.

    Args:
        primary: the fast store (``RedisConnectionRepository``, records and limits).
        secondary: the fallback (``DynamoDbConnectionRepository``).
        breaker: guards the primary (:func:`create_circuit_breaker`). Share one breaker per
            process (the container's singleton) so every use case benefits.
        on_failover: called once per failover with a :class:`FailoverEvent` (metrics). It
            must not raise; if it does, the error is logged and the operation goes on.

    Raises (per operation):
        StoreUnavailableError: see the module rules; ``ConnectionNotFoundError`` only when
            both stores answered without the record.
        ConnectionLimitExceededError: from the primary's ``save`` (an answer, not a failure:
            the record is not written anywhere).
    """

    def __init__(
        self,
        *,
        primary: ConnectionRepository,
        secondary: ConnectionRepository,
        breaker: pybreaker.CircuitBreaker,
        on_failover: FailoverListener | None = None,
    ) -> None:
        self._primary = primary
        self._secondary = secondary
        self._breaker = breaker
        self._on_failover = on_failover

    @property
    def breaker(self) -> pybreaker.CircuitBreaker:
        """The circuit breaker guarding the primary."""
        return self._breaker

    def save(self, connection: Connection, ttl_seconds: int) -> None:
        """Primary; on failure or an open circuit, secondary.

        Raises:
            StoreUnavailableError: neither store took the record.
            ConnectionLimitExceededError: the primary refused it over a limit.
        """
        try:
            with self._guarded_primary():
                self._primary.save(connection, ttl_seconds)
            return
        except _PrimarySkipped as skipped:
            self._report("save", skipped.reason, connection.connection_id)
        try:
            self._secondary.save(connection, ttl_seconds)
        except StoreUnavailableError as exc:
            raise StoreUnavailableError("neither connection store took the record") from exc

    def get(self, connection_id: str) -> Connection:
        """Primary, then secondary when the primary did not have it or did not answer.

        Raises:
            ConnectionNotFoundError: both stores answered and neither has a live record.
            StoreUnavailableError: a store that may hold the record did not answer.
        """
        primary_answered = True
        try:
            with self._guarded_primary():
                return self._primary.get(connection_id)
        except ConnectionNotFoundError:
            pass
        except _PrimarySkipped as skipped:
            primary_answered = False
            self._report("get", skipped.reason, connection_id)
        try:
            return self._secondary.get(connection_id)
        except ConnectionNotFoundError:
            _not_found_unless_unanswered(primary_answered)
            raise

    def refresh(self, connection_id: str, ttl_seconds: int) -> None:
        """Refresh where the record lives: primary, then secondary; never creates one.

        Raises:
            ConnectionNotFoundError: both stores answered and neither has a live record.
            StoreUnavailableError: a store that may hold the record did not answer.
        """
        primary_answered = True
        try:
            with self._guarded_primary():
                self._primary.refresh(connection_id, ttl_seconds)
                return
        except ConnectionNotFoundError:
            pass
        except _PrimarySkipped as skipped:
            primary_answered = False
            self._report("refresh", skipped.reason, connection_id)
        try:
            self._secondary.refresh(connection_id, ttl_seconds)
        except ConnectionNotFoundError:
            _not_found_unless_unanswered(primary_answered)
            raise

    def delete(self, connection_id: str) -> None:
        """Delete from both stores (each idempotent); tries both even if one fails.

        Raises:
            StoreUnavailableError: a store did not answer, so its copy (if any) remains until
                its TTL ends.
        """
        failed: list[str] = []
        try:
            with self._guarded_primary():
                self._primary.delete(connection_id)
        except _PrimarySkipped as skipped:
            failed.append("primary")
            self._report("delete", skipped.reason, connection_id)
        try:
            self._secondary.delete(connection_id)
        except StoreUnavailableError:
            failed.append("secondary")
        if failed:
            raise StoreUnavailableError(f"delete did not reach the {' and '.join(failed)} store")

    @contextmanager
    def _guarded_primary(self) -> Iterator[None]:
        """Run the block on the primary through the breaker.

        Raises:
            _PrimarySkipped: the breaker is open, or the primary failed (error or timeout).
            ConnectionNotFoundError, ConnectionLimitExceededError: the primary's answers.
        """
        try:
            # ``calling()`` (unlike ``call()``) does not hold the breaker's lock while the
            # block runs, so one slow Redis call does not queue the local gateway's threads.
            with self._breaker.calling():
                yield
        except pybreaker.CircuitBreakerError:
            raise _PrimarySkipped(CIRCUIT_OPEN) from None
        except StoreUnavailableError as exc:
            logger.warning(
                "primary connection store failed: %s", exc.message, extra={"reason": exc.message}
            )
            raise _PrimarySkipped(PRIMARY_UNAVAILABLE) from exc

    def _report(self, operation: str, reason: str, connection_id: str) -> None:
        logger.warning(
            "connection store failover: %s went to the secondary store (%s)",
            operation,
            reason,
            extra={"operation": operation, "reason": reason, "connection_id": connection_id},
        )
        if self._on_failover is None:
            return
        try:
            self._on_failover(
                FailoverEvent(operation=operation, reason=reason, connection_id=connection_id)
            )
        except Exception:
            logger.exception("failover listener failed", extra={"operation": operation})


class _PrimarySkipped(Exception):
    """The primary was not called or did not answer; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _not_found_unless_unanswered(primary_answered: bool) -> None:
    """A secondary's "not found" is definite only when the primary answered too.

    Raises:
        StoreUnavailableError: the primary did not answer, so it may hold the record.
    """
    if not primary_answered:
        raise StoreUnavailableError(
            "not in the secondary store, and the primary did not answer"
        ) from None
