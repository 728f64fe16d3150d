"""The use cases: Connect, Disconnect, Heartbeat, Reconcile and Push.

One class each; ports come in through the constructor; one ``execute(command) -> result``.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from typing import Final

from application.commands import (
    ConnectCommand,
    ConnectResult,
    DeliveryOutcome,
    DisconnectCommand,
    DisconnectResult,
    HeartbeatCommand,
    HeartbeatOutcome,
    HeartbeatResult,
    PushCommand,
    PushResult,
    ReconcileCommand,
    ReconcileResult,
    UserDeliveries,
)
from application.ports import (
    Clock,
    ConnectionDirectory,
    ConnectionRepository,
    FanOut,
    MessageSender,
    Sleeper,
    StoreReconciler,
    TokenVerifier,
)
from domain.connection import Connection
from domain.errors import (
    ConnectionGoneError,
    ConnectionNotFoundError,
    InvalidPushError,
    InvalidTokenError,
    MessageSendError,
    PayloadTooLargeError,
    StoreUnavailableError,
    ThrottledError,
)
from domain.protocol import CONNECTION_EXPIRED, MAX_MESSAGE_BYTES, error_message

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


MAX_PUSH_USERS: Final = 100
"""Users one push may name. With the default per-user limit of 10 connections that is at
most 1,000 posts per invocation: a fifth of API Gateway's account burst of 5,000 requests
(shared by every API of the account and region, ``@connections`` included), done in about
1-3 s at :data:`PUSH_CONCURRENCY` posts in flight, well inside a Lambda timeout; a caller
with more users splits them (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html)."""

PUSH_CONCURRENCY: Final = 10
"""Posts (and directory lookups) in flight per push invocation. At 10-30 ms a post that is
300-1,000 requests/s per invocation, so ten concurrent pushes stay under the account's
steady 10,000 requests/s; it is also botocore's HTTP pool (10 connections per client):
more threads would only wait for a connection (limits page above)."""

THROTTLE_ATTEMPTS: Final = 3
"""Attempts of a post API Gateway throttled (429 ``LimitExceededException``), first included."""

THROTTLE_BASE_DELAY_SECONDS: Final = 0.1
THROTTLE_MAX_DELAY_SECONDS: Final = 1.0
"""Full-jitter exponential backoff between attempts: uniform in [0, min(1 s, 0.1 s * 2**n))
(https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/)."""


class Push:
    """Post one message to every live connection of some users (the timeline's fan-out).

    Rules:
    - Refused before any post (``InvalidPushError``): no user ids, more than
      :data:`MAX_PUSH_USERS` distinct ones, or a message over 128 KB (131,072 bytes) in
      UTF-8, API Gateway's message limit. A user id named twice is pushed to once.
    - Each user's connections come from the ``ConnectionDirectory`` (live ones only), and a
      connection is posted to only when its record names that user: nothing a push names
      reaches another user's connection.
    - Lookups and posts run through the ``FanOut`` port, at most :data:`PUSH_CONCURRENCY`
      at once (the use case does no I/O and starts no thread of its own: the adapter owns
      the concurrency). No ordering is promised, between connections or between pushes:
      API Gateway promises none.
    - A 410 ``GoneException`` (``ConnectionGoneError``) removes the connection's record
      through ``ConnectionRepository.delete``, the same path as ``$disconnect`` (record,
      directory entry and limit slot go together), so a lost ``$disconnect`` heals on the
      next push; a store that cannot take the delete leaves it to the record's TTL. The
      connection counts as ``gone`` either way.
    - A 429 (``ThrottledError``) is retried with full-jitter exponential backoff, at most
      :data:`THROTTLE_ATTEMPTS` attempts in all, then counts as ``failed``; the sender
      itself does not retry throttling, so a post is never retried twice over. Any other
      refusal counts as ``failed`` at once. A retried post may have been delivered
      (at-least-once).
    - A user whose lookup fails (``StoreUnavailableError``) is ``unavailable``: nothing is
      posted to them; the others are pushed to.

    Raises:
        InvalidPushError: see the first rule; nothing was posted.
    """

    def __init__(
        self,
        *,
        directory: ConnectionDirectory,
        repository: ConnectionRepository,
        sender: MessageSender,
        fan_out: FanOut,
        sleeper: Sleeper,
        jitter: Callable[[], float] = random.random,
        max_users: int = MAX_PUSH_USERS,
        attempts: int = THROTTLE_ATTEMPTS,
    ) -> None:
        self._directory = directory
        self._repository = repository
        self._sender = sender
        self._fan_out = fan_out
        self._sleeper = sleeper
        self._jitter = jitter
        self._max_users = max_users
        self._attempts = attempts

    def execute(self, command: PushCommand) -> PushResult:
        """Push ``command.message`` to the users; per-user counts; see the class rules."""
        user_ids = tuple(dict.fromkeys(command.user_ids))
        self._check(user_ids, command.message)
        found = self._fan_out.map(self._lookup, user_ids)
        targets = [
            (user_id, connection.connection_id)
            for user_id, connections in zip(user_ids, found, strict=True)
            for connection in connections or ()
            if connection.user_id == user_id
        ]
        outcomes = self._fan_out.map(
            lambda target: self._deliver(target[1], command.message), targets
        )
        counts: dict[str, dict[DeliveryOutcome, int]] = {u: {} for u in user_ids}
        for (user_id, _), outcome in zip(targets, outcomes, strict=True):
            counts[user_id][outcome] = counts[user_id].get(outcome, 0) + 1
        users = tuple(
            UserDeliveries(
                user_id=user_id,
                delivered=counts[user_id].get(DeliveryOutcome.DELIVERED, 0),
                gone=counts[user_id].get(DeliveryOutcome.GONE, 0),
                failed=counts[user_id].get(DeliveryOutcome.FAILED, 0),
                unavailable=connections is None,
            )
            for user_id, connections in zip(user_ids, found, strict=True)
        )
        return PushResult(
            delivered=sum(u.delivered for u in users),
            gone=sum(u.gone for u in users),
            failed=sum(u.failed for u in users),
            unavailable=sum(u.unavailable for u in users),
            users=users,
        )

    def _check(self, user_ids: tuple[str, ...], message: str) -> None:
        if not user_ids:
            raise InvalidPushError("no_users", "a push names at least one user id")
        if len(user_ids) > self._max_users:
            raise InvalidPushError(
                "too_many_users",
                f"a push names at most {self._max_users} user ids ({len(user_ids)} given)",
            )
        size = len(message.encode("utf-8"))
        if size > MAX_MESSAGE_BYTES:
            raise InvalidPushError(
                "payload_too_large",
                f"the message is {size} bytes in UTF-8; at most {MAX_MESSAGE_BYTES}",
            )

    def _lookup(self, user_id: str) -> list[Connection] | None:
        try:
            return self._directory.connections_of(user_id)
        except StoreUnavailableError:
            return None

    def _deliver(self, connection_id: str, message: str) -> DeliveryOutcome:
        for attempt in range(self._attempts):
            try:
                self._sender.send(connection_id, message)
            except ConnectionGoneError:
                with contextlib.suppress(StoreUnavailableError):  # the TTL will remove it
                    self._repository.delete(connection_id)
                return DeliveryOutcome.GONE
            except ThrottledError:
                if attempt + 1 < self._attempts:
                    ceiling = min(
                        THROTTLE_MAX_DELAY_SECONDS, THROTTLE_BASE_DELAY_SECONDS * 2**attempt
                    )
                    self._sleeper.sleep(self._jitter() * ceiling)
            except (MessageSendError, PayloadTooLargeError):
                return DeliveryOutcome.FAILED
            else:
                return DeliveryOutcome.DELIVERED
        return DeliveryOutcome.FAILED
