"""Redis first, DynamoDB when Redis fails: two connection stores behind one port.

The rules:

- ``save``: the primary (Redis); on its error or timeout, or while its circuit breaker is
  open, the secondary (DynamoDB). Every failover is logged and reported to ``on_failover``.
  A save neither store took is remembered as a delete (below): a store that failed may
  have written the record before its reply was lost, and the connection is refused.
- ``get`` / ``refresh``: the primary, then the secondary when the primary did not have the
  record or did not answer, so records written during an outage keep being found and
  refreshed after Redis comes back. A ping that refreshes such a record while Redis answers
  also counts its connection-limit slot there (it was admitted uncounted).
- "Not found" is definite only when every store answered: a record that may sit in a store
  that did not answer is ``StoreUnavailableError``, never ``ConnectionNotFoundError`` (the
  Heartbeat use case pongs on the first and closes the connection on the second).
- ``delete``: **never forgotten**. Redis through its breaker, like every operation, then
  DynamoDB. A delete a store could not take (it failed, or its breaker skipped it) is
  remembered in the other one, durably: a Redis delete as a *tombstone* in DynamoDB (which
  also replaces the DynamoDB copy), a DynamoDB delete in a Redis set. Only when both stores
  fail is it remembered in this process alone.
  :meth:`FailoverConnectionRepository.reconcile` replays them: when a breaker closes after
  an outage, and on a schedule (the reconciler Lambda; a timer in the local gateway), and
  the schedule asks Redis whatever the breakers say, so a replay never waits for traffic.
  Replays are idempotent; a tombstone names one connectionId, so it can only delete that
  connection's record and slot, never another's. While Redis's breaker is open a
  ``$disconnect`` costs one DynamoDB write instead of Redis's timeout and its retry (about
  0.6 s of Lambda time, and in the local gateway a worker the pings wait for: soak finding
  14); the price is a record that outlives its connection until the breaker closes or the
  schedule runs, when Redis came back before its breaker noticed.

The directory (``connections_of``): a user's records may sit in either store (written
before, during or after an outage), so the answer is the union of both listings, minus
every connection deleted but not yet gone from a store: tombstoned in DynamoDB (Redis still
holds its record until the replay), remembered closed in Redis (DynamoDB still holds its
record), or remembered by this process; and a DynamoDB record whose connectionId Redis
holds a record of too (saved again after the outage) counts as Redis's, as for ``get``. A
listing never writes, so it never resurrects a record. While Redis is down (or its breaker
open) DynamoDB answers alone; while DynamoDB is down Redis does; with neither,
``StoreUnavailableError``.

Each store has a circuit breaker (pybreaker): after ``fail_max`` consecutive failures it
opens and calls skip that store without paying its timeout; after ``reset_timeout_seconds``
it half-opens and lets **one** trial call through (the others still skip), closing on its
success. A missing record or a limit refusal is an answer, not a failure.

**The last store in line is always asked.** When the primary was skipped or failed, the
secondary is called even while its own breaker is open: a client never gets a 503 (or a
delete is never left to this process alone) without a store having been asked. Otherwise,
after an outage of both, every ``$connect`` would be refused until a breaker half-opened
although the stores answer again. Such a call that gets an answer closes the secondary's
breaker; one that fails leaves it open. The price, while both stores are down, is the
secondary's timeout on each such call (the soak's ``both_down`` fault measures it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs
import pybreaker

from adapters.connection_store.breakers import (
    CIRCUIT_OPEN,
    PRIMARY_UNAVAILABLE,
    Guard,
    Skipped,
    create_circuit_breaker,
    on_close,
)
from adapters.connection_store.failover_roles import (
    PendingSecondaryDeletes,
    PrimaryStore,
    SecondaryStore,
)
from adapters.connection_store.journal import BOTH, SECONDARY, SECONDARY_COPY, DeleteJournal
from adapters.connection_store.reconciler import (
    RECONCILE_BATCH,
    RECONCILE_MAX_BATCHES,
    FailoverReconciler,
)
from application.ports import ConnectionDirectory, ConnectionRepository, StoreReconciler
from domain.connection import Connection, ReconcileReport
from domain.errors import (
    ConnectionNotFoundError,
    StoreUnavailableError,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CIRCUIT_OPEN",
    "PRIMARY_UNAVAILABLE",
    "RECONCILE_BATCH",
    "RECONCILE_MAX_BATCHES",
    "FailoverConnectionRepository",
    "FailoverEvent",
    "FailoverListener",
    "PrimaryStore",
    "SecondaryStore",
    "create_circuit_breaker",
]


@attrs.frozen(slots=True, kw_only=True)
class FailoverEvent:
    """One operation served by the secondary store because the primary could not serve it.

    Attributes:
        operation: ``"save"``, ``"get"``, ``"refresh"``, ``"delete"`` or
            ``"connections_of"``.
        reason: :data:`CIRCUIT_OPEN` or :data:`PRIMARY_UNAVAILABLE`.
        connection_id: the connection concerned; ``""`` for ``connections_of`` (a user's).
    """

    operation: str
    reason: str
    connection_id: str


FailoverListener = Callable[[FailoverEvent], None]


class FailoverConnectionRepository(ConnectionRepository, ConnectionDirectory, StoreReconciler):
    """A ``ConnectionRepository`` over a primary and a secondary store; see the module rules.

    Args:
        primary: the fast store (``RedisConnectionRepository``, records and limits).
        secondary: the fallback (``DynamoDbConnectionRepository``).
        pending_deletes: where the deletes the secondary could not take are remembered,
            durably (``RedisPendingDeletes``, beside the primary).
        breaker: guards the primary (:func:`create_circuit_breaker`); one per process.
        secondary_breaker: guards the secondary; ``None`` builds one with the defaults.
        tombstone_ttl_seconds: how long a remembered delete lives in the other store: the
            record's TTL (after it, the record it stands for has expired anyway).
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
        primary: PrimaryStore,
        secondary: SecondaryStore,
        pending_deletes: PendingSecondaryDeletes,
        breaker: pybreaker.CircuitBreaker,
        secondary_breaker: pybreaker.CircuitBreaker | None = None,
        tombstone_ttl_seconds: int = 600,
        on_failover: FailoverListener | None = None,
    ) -> None:
        self._primary = primary
        self._secondary = secondary
        self._pending_deletes = pending_deletes
        self._primary_guard = Guard(breaker)
        self._secondary_guard = Guard(secondary_breaker or create_circuit_breaker(name="dynamodb"))
        self._tombstone_ttl_seconds = tombstone_ttl_seconds
        self._on_failover = on_failover
        self._journal = DeleteJournal()
        self._reconciler = FailoverReconciler(
            primary=primary,
            secondary=secondary,
            pending_deletes=pending_deletes,
            secondary_guard=self._secondary_guard,
            journal=self._journal,
        )
        for guard in (self._primary_guard, self._secondary_guard):
            on_close(guard.breaker, self._journal.mark_due)

    @property
    def breaker(self) -> pybreaker.CircuitBreaker:
        """The circuit breaker guarding the primary."""
        return self._primary_guard.breaker

    def reconcile(
        self, limit: int = RECONCILE_BATCH, max_batches: int = RECONCILE_MAX_BATCHES
    ) -> ReconcileReport:
        """Replay the deletes a store could not take (``reconciler.py``); never raises."""
        return self._reconciler.reconcile(limit, max_batches)

    def save(self, connection: Connection, ttl_seconds: int) -> None:
        """Primary; on failure or an open circuit, secondary.

        Raises:
            StoreUnavailableError: neither store took the record. One of them may still
                hold it (a write whose reply was lost): this process remembers a delete
                for it, which :meth:`reconcile` replays (module rules), so a refused
                ``$connect`` leaves no record or slot behind.
            ConnectionLimitExceededError: the primary refused it over a limit.
        """
        try:
            with self._primary_guard.calling():
                self._primary.save(connection, ttl_seconds)
            self._reconciler.reconcile_if_due()
            return
        except Skipped as skipped:
            self._report("save", skipped.reason, connection.connection_id)
        try:
            with self._secondary_guard.calling(last_resort=True):
                self._secondary.save(connection, ttl_seconds)
        except Skipped:
            # A store that failed may have written the record before failing (its reply
            # lost to a timeout or a kill): the connection is refused, so its record and
            # slot go the way a $disconnect's would, replayed by this process.
            self._journal.remember(connection.connection_id, BOTH)
            raise StoreUnavailableError("neither connection store took the record") from None

    def get(self, connection_id: str) -> Connection:
        """Primary, then secondary when the primary did not have it or did not answer.

        Raises:
            ConnectionNotFoundError: both stores answered and neither has a live record.
            StoreUnavailableError: a store that may hold the record did not answer.
        """
        primary_answered = True
        try:
            with self._primary_guard.calling():
                return self._primary.get(connection_id)
        except ConnectionNotFoundError:
            pass
        except Skipped as skipped:
            primary_answered = False
            self._report("get", skipped.reason, connection_id)
        try:
            with self._secondary_guard.calling(last_resort=not primary_answered):
                return self._secondary.get(connection_id)
        except ConnectionNotFoundError:
            _not_found_unless_unanswered(primary_answered)
            raise
        except Skipped:
            raise StoreUnavailableError("no store answered") from None

    def refresh(self, connection_id: str, ttl_seconds: int) -> None:
        """Refresh where the record lives: primary, then secondary; never creates one.

        A record found in the secondary while the primary answers gets its slot counted in
        the primary (best effort: a failure is logged, the refresh stands).

        Raises:
            ConnectionNotFoundError: both stores answered and neither has a live record.
            StoreUnavailableError: a store that may hold the record did not answer.
        """
        primary_answered = True
        try:
            with self._primary_guard.calling():
                self._primary.refresh(connection_id, ttl_seconds)
            self._reconciler.reconcile_if_due()
            return
        except ConnectionNotFoundError:
            pass
        except Skipped as skipped:
            primary_answered = False
            self._report("refresh", skipped.reason, connection_id)
        try:
            with self._secondary_guard.calling(last_resort=not primary_answered):
                connection = self._secondary.renew(connection_id, ttl_seconds)
        except ConnectionNotFoundError:
            _not_found_unless_unanswered(primary_answered)
            raise
        except Skipped:
            raise StoreUnavailableError("no store answered") from None
        if primary_answered:
            self._count_slot(connection, ttl_seconds)

    def delete(self, connection_id: str) -> None:
        """Delete from both stores; a delete a store could not take is remembered (module rules).

        Raises:
            StoreUnavailableError: neither store could take the delete or remember it; this
                process remembers it and :meth:`reconcile` retries it.
        """
        try:
            with self._primary_guard.calling():
                self._primary.delete(connection_id)
        except Skipped as skipped:
            self._report("delete", skipped.reason, connection_id)
            try:
                with self._secondary_guard.calling(last_resort=True):
                    self._secondary.bury(connection_id, self._tombstone_ttl_seconds)
            except Skipped:
                self._journal.remember(connection_id, BOTH)
                raise StoreUnavailableError(
                    "neither store took the delete; this process will retry it"
                ) from None
            return
        try:
            with self._secondary_guard.calling():
                self._secondary.delete(connection_id)
        except Skipped:
            # Redis remembers it durably across Lambda environments, this process against
            # Redis losing its data (a restart without its data, a node replaced).
            try:
                self._pending_deletes.remember_secondary_delete(connection_id)
            except StoreUnavailableError:
                self._journal.remember(connection_id, SECONDARY)
            else:
                self._journal.remember(connection_id, SECONDARY_COPY)
        self._reconciler.reconcile_if_due()

    def connections_of(self, user_id: str) -> list[Connection]:
        """The user's live connections in either store, minus every one deleted (module rules).

        Redis's listing (through its breaker), then DynamoDB's (the last resort when Redis
        did not answer), which also says which of Redis's are tombstoned there; the union,
        minus the tombstoned, the ones Redis remembers closed (a delete DynamoDB still
        owes) or holds a record of itself (saved again since, in Redis: ``get``'s answer,
        listed under its own user) and the ones this process remembers deleting. With one
        store down, the other's listing is the answer (the records only the missing store holds cannot be
        known; logged as a failover when it is Redis).

        Raises:
            StoreUnavailableError: neither store answered.
        """
        primary = self._primary_listing(user_id)
        primary_ids = [connection.connection_id for connection in primary or ()]
        try:
            with self._secondary_guard.calling(last_resort=primary is None):
                secondary, buried = self._secondary.listing_of(user_id, primary_ids)
        except Skipped:
            if primary is None:
                raise StoreUnavailableError("no store answered") from None
            secondary, buried = [], frozenset()
        listed = {connection.connection_id: connection for connection in secondary}
        for connection in primary or ():
            if connection.connection_id not in buried:
                listed[connection.connection_id] = connection
        dropped = self._journal.remembered_among(list(listed))
        secondary_only = [i for i in listed if i not in set(primary_ids)]
        if primary is not None and secondary_only:
            try:
                with self._primary_guard.calling():
                    dropped |= self._primary.superseded_among(secondary_only)
            except Skipped:
                pass  # Redis answered a moment ago; the journal's deletes still apply
        return [connection for i, connection in listed.items() if i not in dropped]

    def _primary_listing(self, user_id: str) -> list[Connection] | None:
        """Redis's listing, or ``None`` when it was skipped or failed (a failover, reported)."""
        try:
            with self._primary_guard.calling():
                return self._primary.connections_of(user_id)
        except Skipped as skipped:
            self._report("connections_of", skipped.reason, "")
            return None

    def _count_slot(self, connection: Connection, ttl_seconds: int) -> None:
        try:
            with self._primary_guard.calling():
                self._primary.count_slot(connection, ttl_seconds)
        except Skipped:
            logger.warning(
                "connection limits not enforced: the slot was not counted",
                extra={"connection_id": connection.connection_id, "operation": "refresh"},
            )

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


def _not_found_unless_unanswered(primary_answered: bool) -> None:
    """A secondary's "not found" is definite only when the primary answered too.

    Raises:
        StoreUnavailableError: the primary did not answer, so it may hold the record.
    """
    if not primary_answered:
        raise StoreUnavailableError(
            "not in the secondary store, and the primary did not answer"
        ) from None
