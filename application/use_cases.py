"""The use cases: Connect, Disconnect, Heartbeat and Reconcile.

One class each; ports come in through the constructor; one ``execute(command) -> result``.
"""

from __future__ import annotations

import contextlib
from typing import Final

from application.commands import (
    ConnectCommand,
    ConnectResult,
    DisconnectCommand,
    DisconnectResult,
    HeartbeatCommand,
    HeartbeatOutcome,
    HeartbeatResult,
    ReconcileCommand,
    ReconcileResult,
)
from application.ports import (
    Clock,
    ConnectionRepository,
    MessageSender,
    StoreReconciler,
    TokenVerifier,
)
from domain.connection import Connection
from domain.errors import (
    ConnectionGoneError,
    ConnectionNotFoundError,
    InvalidTokenError,
    StoreUnavailableError,
)
from domain.protocol import CONNECTION_EXPIRED, error_message

DEFAULT_TTL_SECONDS: Final = 600
"""Connection records live 600 s past their last ping (clients ping every 30 s)."""


class Connect:
    """Accept a WebSocket connection for the bearer of a valid token.

    Rules:
    - A missing or empty token is ``InvalidTokenError("missing")``; the verifier is not asked.
    - The user id is the verified token's ``sub``; nothing else from the token is stored.
    - The record is ``Connection(connection_id, user_id, connected_at=clock.now())`` stored
      with a TTL of ``ttl_seconds`` (600 s by default).
    - Connection limits: at most ``CONNECTION_LIMIT_GLOBAL`` connections in all and
      ``CONNECTION_LIMIT_PER_USER`` per user hold a slot; the repository counts a slot as it
      stores the record, atomically, and refuses one over a limit with
      ``ConnectionLimitExceededError`` (HTTP 429), storing nothing. A slot lives as long as
      its record: a ping extends both, ``$disconnect`` frees both, and a record that expires
      frees its slot. While the store that counts is down and another takes the record, the
      connection is admitted uncounted (a store outage must not lock users out).
    - Nothing is stored when verification fails, and nothing is ever posted to the
      connection: API Gateway answers 410 to posts until ``$connect`` has returned.

    Raises:
        InvalidTokenError, VerifierUnavailableError, StoreUnavailableError,
        ConnectionLimitExceededError: from the ports, unchanged.
    """

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        repository: ConnectionRepository,
        clock: Clock,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> None:
        self._verifier = verifier
        self._repository = repository
        self._clock = clock
        self._ttl_seconds = ttl_seconds

    def execute(self, command: ConnectCommand) -> ConnectResult:
        """Verify ``command.token`` and store the connection; see the class rules."""
        if not command.token:
            raise InvalidTokenError("missing")
        identity = self._verifier.verify(command.token)
        connection = Connection(
            connection_id=command.connection_id,
            user_id=identity.user_id,
            connected_at=self._clock.now(),
        )
        self._repository.save(connection, self._ttl_seconds)
        return ConnectResult(connection_id=connection.connection_id, user_id=connection.user_id)


class Disconnect:
    """Forget a connection that closed.

    Rules:
    - Delete the record; a record that is already gone (expired, or never stored) is fine.

    Raises:
        StoreUnavailableError: from the repository, unchanged (the edge logs it; API Gateway
            ignores ``$disconnect``'s answer).
    """

    def __init__(self, *, repository: ConnectionRepository) -> None:
        self._repository = repository

    def execute(self, command: DisconnectCommand) -> DisconnectResult:
        """Delete the record of ``command.connection_id``."""
        self._repository.delete(command.connection_id)
        return DisconnectResult(connection_id=command.connection_id)


class Heartbeat:
    """Answer a ping: keep the record alive and reply with a pong.

    Rules:
    - Refresh the record's TTL to ``ttl_seconds`` (600 s) without touching ``connectedAt``;
      a missing record is never recreated by a ping.
    - Answer with a pong: the result carries the server time and the ping's id, and the edge
      returns the pong frame as the route response (API Gateway's two-way ``$default``
      route), so a pong costs no Management API call and nothing is sent here.
    - When every store answers that the record does not exist (expired or never stored),
      send a ``connection_expired`` error and close the connection through the gateway, so
      the client reconnects and re-authenticates. No reply then: the connection is closing.
    - When the store cannot be reached, answer with the pong anyway (the socket is alive);
      the outcome says ``PONG_UNRECORDED`` so the edge logs it.

    Raises:
        MessageSendError: the gateway failed the ``connection_expired`` frame or the close
            for a reason other than a gone client.
    """

    def __init__(
        self,
        *,
        repository: ConnectionRepository,
        sender: MessageSender,
        clock: Clock,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> None:
        self._repository = repository
        self._sender = sender
        self._clock = clock
        self._ttl_seconds = ttl_seconds

    def execute(self, command: HeartbeatCommand) -> HeartbeatResult:
        """Refresh ``command.connection_id``; the result is what to answer; see the class rules."""
        connection_id = command.connection_id
        outcome = HeartbeatOutcome.PONG
        try:
            self._repository.refresh(connection_id, self._ttl_seconds)
        except ConnectionNotFoundError:
            return self._expire(command)
        except StoreUnavailableError:
            outcome = HeartbeatOutcome.PONG_UNRECORDED
        return HeartbeatResult(
            connection_id=connection_id,
            outcome=outcome,
            ping_id=command.ping_id,
            server_time=self._clock.now(),
        )

    def _expire(self, command: HeartbeatCommand) -> HeartbeatResult:
        # Sent, not returned: the close below would overtake a route response.
        notice = error_message(
            code=CONNECTION_EXPIRED,
            message="this connection has no live record; reconnect with a fresh token",
            ping_id=command.ping_id,
        )
        with contextlib.suppress(ConnectionGoneError):
            self._sender.send(command.connection_id, notice)
        self._sender.close(command.connection_id)
        return HeartbeatResult(
            connection_id=command.connection_id,
            outcome=HeartbeatOutcome.EXPIRED,
            ping_id=command.ping_id,
        )


class Reconcile:
    """Replay the deletes a connection store could not take, on a schedule.

    Rules:
    - Every pending delete is replayed, idempotently, whatever the circuit breakers say (a
      replay never waits for traffic); a store that fails leaves its deletes for the next
      run. With one store there is nothing to replay.

    Raises:
        Nothing: the reconciler never raises (a failure is logged, and retried next run).
    """

    def __init__(self, *, reconciler: StoreReconciler) -> None:
        self._reconciler = reconciler

    def execute(self, command: ReconcileCommand) -> ReconcileResult:
        """Replay one batch of what is pending; the counts of what was replayed."""
        report = self._reconciler.reconcile()
        return ReconcileResult(
            primary_deletes=report.primary_deletes,
            secondary_deletes=report.secondary_deletes,
            left_in_process=report.left_in_process,
        )
