"""Ports: the roles the use cases need from the outside world, as ``typing.Protocol`` classes.

Each speaks only domain types. Adapters (``adapters/``) subclass them explicitly so mypy
checks the signatures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from domain.connection import Connection, ReconcileReport, VerifiedIdentity

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class Clock(Protocol):
    """The current time. ``now()`` returns an aware UTC datetime."""

    def now(self) -> datetime:
        """The current instant, aware, in UTC."""
        ...


class TokenVerifier(Protocol):
    """Verifies a bearer token; raises ``InvalidTokenError`` (401) or ``VerifierUnavailableError`` (503)."""

    def verify(self, token: str) -> VerifiedIdentity:
        """Return the identity a valid token proves; never returns for an invalid one.

        Raises:
            InvalidTokenError: the token is malformed, forged, expired or meant for someone else.
            VerifierUnavailableError: the signing keys cannot be obtained (nothing cached).
        """
        ...


class ConnectionRepository(Protocol):
    """Stores connection records with a TTL in seconds; raises ``StoreUnavailableError`` when no store answers."""

    def save(self, connection: Connection, ttl_seconds: int) -> None:
        """Store (or overwrite) the record so that it expires ``ttl_seconds`` from now.

        Raises:
            StoreUnavailableError: the record could not be stored anywhere.
            ConnectionLimitExceededError: a store that enforces limits refused it.
        """
        ...

    def get(self, connection_id: str) -> Connection:
        """Return the record.

        Raises:
            ConnectionNotFoundError: every store answered and none holds it (or it expired).
            StoreUnavailableError: a store that might hold it did not answer.
        """
        ...

    def refresh(self, connection_id: str, ttl_seconds: int) -> None:
        """Make an existing record expire ``ttl_seconds`` from now; never creates one.

        Raises:
            ConnectionNotFoundError: every store answered and none holds it (or it expired).
            StoreUnavailableError: a store that might hold it did not answer.
        """
        ...

    def delete(self, connection_id: str) -> None:
        """Remove the record. Idempotent: deleting a missing record succeeds.

        Raises:
            StoreUnavailableError: a store that might hold it did not answer.
        """
        ...


class ConnectionDirectory(Protocol):
    """Answers which connections a user has right now; raises ``StoreUnavailableError`` when a store that might hold one does not answer."""

    def connections_of(self, user_id: str) -> list[Connection]:
        """The user's live connections, in no particular order; ``[]`` when none.

        A deleted or expired connection is never returned: its record's TTL is the truth.
        The cost is proportional to that user's connections, never a scan of the store.
        With a failover store, while one store is down the other's listing is the answer
        (the connections only the missing store records cannot be known then).

        Raises:
            StoreUnavailableError: no store that might hold them answered.
        """
        ...


class StoreReconciler(Protocol):
    """Replays the deletes a connection store could not take (the other store, or this
    process, remembered them); idempotent; never raises."""

    def reconcile(self) -> ReconcileReport:
        """Replay what is pending now; the counts of what was replayed."""
        ...


class MessageSender(Protocol):
    """Pushes frames to, and closes, client connections through the gateway; raises ``ConnectionGoneError`` once a client is gone."""

    def send(self, connection_id: str, data: str | bytes) -> None:
        """Deliver one frame (text for ``str``, binary for ``bytes``) to the connection.

        Raises:
            ConnectionGoneError: the gateway no longer has the connection.
            ThrottledError: the gateway answered 429 ``LimitExceededException`` (after no
                retry of its own: retrying is the caller's choice); nothing was delivered.
            PayloadTooLargeError: ``data`` exceeds 128 KB in UTF-8 bytes; nothing was sent.
            MessageSendError: any other refusal or failure of the gateway.
        """
        ...

    def close(self, connection_id: str) -> None:
        """Close the connection from the server side; a connection already gone is fine.

        Raises:
            MessageSendError: the gateway refused or failed the request.
        """
        ...


class FanOut(Protocol):
    """Runs one call per item concurrently, at most a bound the adapter fixes at once; the
    outcomes in the items' order. A call must not raise (it returns its failure)."""

    def map(self, call: Callable[[Item], Outcome], items: Sequence[Item]) -> list[Outcome]:
        """``[call(item) for item in items]``, run concurrently; blocks until all returned."""
        ...


class Sleeper(Protocol):
    """Waits: ``sleep(seconds)`` blocks the calling thread for ``seconds`` (>= 0)."""

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` seconds."""
        ...
