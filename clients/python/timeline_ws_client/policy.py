"""The client's policy, without I/O: backoff, the reset rule, liveness, handover, the send queue.

Pure functions and small state holders over numbers a caller passes in (``now`` from a clock,
``random`` drawing a float in [0, 1)), so the unit tests run them with a fake clock. The
browser module ``clients/js/timeline-ws-client.js`` implements the same rules with the same
numbers (the README's "Clients" table lists them once). Times are seconds here (the browser
module uses milliseconds).

The rules:

- **Backoff**: full jitter, drawn for every attempt: ``random() * min(cap, base * 2**attempt)``
  (base 1 s, cap 30 s). The attempt counter grows by one per scheduled attempt and is reset
  only when a connection stayed open for at least ``stable_after_seconds`` (5 s), so a server
  that accepts and drops at once cannot pull a client into a tight loop.
- **Clean server close**: after a close with 1000 or 1001 (``DeleteConnection``, idle
  timeout, the 2-hour limit, a shutdown) of a connection that had been stable, the next
  attempt comes at once, jittered over ``clean_close_jitter_seconds`` (1 s) so a fleet does
  not reconnect in one burst.
- **Liveness**: judged on wall-clock time. A connection is dead only when no message of any
  kind arrived for ``dead_after_seconds`` (default 2 * interval + 10 s) **and** a ping sent at
  least ``pong_timeout_seconds`` ago is still unanswered. A timer that fires late (a throttled
  browser tab wakes once a minute) therefore never kills a live connection on its own: the
  ping it sends is fresh, and the check waits for that ping's own timeout. A *check*
  (after the tab becomes visible or the network comes back) sends a ping with a short
  deadline (5 s): no message since it was sent, deadline passed: dead.
- **Handover**: API Gateway closes every connection after 2 hours. At
  ``handover_after_seconds`` plus ``random() * handover_jitter_seconds`` after a connection
  opened (115 min + up to 3 min), a new connection is opened first and the old one is closed
  (1000) once the new one answered its first ping.
- **Send queue**: while disconnected, at most ``queue_limit`` (100) messages wait; the oldest
  is dropped (and reported) when a new one would exceed the bound.
- **Frame limits** (API Gateway quotas: 32 KB per frame, 128 KB per message): a message over
  ``max_message_bytes`` (128 KB of UTF-8) is refused before sending; one over
  ``MAX_FRAME_BYTES`` (32 KB) goes out as a fragmented message whose frames carry at most
  32 KB each (:func:`fragments`). API Gateway closes the socket with 1009 otherwise.
  https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
- **Heartbeat ids** start with :data:`HEARTBEAT_ID_PREFIX` (``tws:``), which applications
  must not use: an application's own ping ``"1"`` gets its pong as a message.
- **Tokens**: a token whose ``exp`` is within ``token_refresh_margin_seconds`` (60 s) is asked
  for again with a forced refresh before an attempt.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import math
from collections.abc import Callable, Iterator
from typing import Any, Final, Generic, TypeVar

import attrs

from timeline_ws_client.errors import MessageTooLargeError

MAX_MESSAGE_BYTES: Final = 128 * 1024
"""API Gateway's message quota: 128 KB; a message of exactly 128 KB is accepted."""
MAX_FRAME_BYTES: Final = 32 * 1024
"""API Gateway's frame quota: 32 KB; a longer message must be sent in fragments (a browser
never fragments, so the browser module's limit is this one)."""
HEARTBEAT_ID_PREFIX: Final = "tws:"
"""Heartbeat ping ids start with it (the browser module's ``HEARTBEAT_ID_PREFIX`` too)."""
CLEAN_CLOSE_CODES: Final = frozenset({1000, 1001})
"""Server closes after which the client reconnects at once (jittered): a ``DeleteConnection``
(1000), the idle timeout, the 2-hour limit or a shutdown (1001)."""
AUTH_REFUSAL_STATUSES: Final = frozenset({401, 403})
"""Handshake statuses that mean "this token will not do": refresh once, then stop and report."""
THROTTLE_STATUS: Final = 429
"""The handshake was throttled (a rate or connection limit): back off and try again."""

Random = Callable[[], float]
"""Draws a float in [0, 1), like :func:`random.random`."""


def is_configuration_status(status: int) -> bool:
    """Whether a handshake answered with HTTP ``status`` (not 101) is one no retry can fix:
    anything but an auth refusal (401, 403), throttling (429) or a server error (5xx), e.g.
    200 from a web page or a health check, a redirect that was not followed, 404, 405."""
    return status not in AUTH_REFUSAL_STATUSES and status != THROTTLE_STATUS and status < 500


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a finite number greater than 0")


def _not_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be a finite number, 0 or more")


@attrs.frozen(slots=True, kw_only=True)
class ClientPolicy:
    """The numbers both clients share. Seconds everywhere; ``None`` ``dead_after_seconds`` means
    ``2 * ping_interval_seconds + 10``.

    Raises:
        ValueError: at construction, on a value that is not a positive finite number (the
            jitters may be 0), a ``queue_limit`` under 1, or ``max_message_bytes`` outside
            1..128 KB.
    """

    ping_interval_seconds: float = attrs.field(default=30.0, validator=_positive)
    pong_timeout_seconds: float = attrs.field(default=10.0, validator=_positive)
    dead_after: float | None = attrs.field(default=None, alias="dead_after_seconds")
    check_deadline_seconds: float = attrs.field(default=5.0, validator=_positive)
    backoff_base_seconds: float = attrs.field(default=1.0, validator=_positive)
    backoff_cap_seconds: float = attrs.field(default=30.0, validator=_positive)
    stable_after_seconds: float = attrs.field(default=5.0, validator=_positive)
    clean_close_jitter_seconds: float = attrs.field(default=1.0, validator=_not_negative)
    handover_after_seconds: float = attrs.field(default=115 * 60.0, validator=_positive)
    handover_jitter_seconds: float = attrs.field(default=180.0, validator=_not_negative)
    queue_limit: int = 100
    max_message_bytes: int = MAX_MESSAGE_BYTES
    token_refresh_margin_seconds: float = attrs.field(default=60.0, validator=_not_negative)

    def __attrs_post_init__(self) -> None:
        if self.dead_after is not None:
            _positive(self, attrs.fields(ClientPolicy).dead_after, self.dead_after)
        if self.queue_limit < 1:
            raise ValueError("queue_limit must be at least 1")
        if not 1 <= self.max_message_bytes <= MAX_MESSAGE_BYTES:
            raise ValueError(f"max_message_bytes must be within 1..{MAX_MESSAGE_BYTES}")

    @property
    def dead_after_seconds(self) -> float:
        """Silence (no message of any kind) after which a connection may be declared dead."""
        if self.dead_after is not None:
            return self.dead_after
        return 2 * self.ping_interval_seconds + 10.0


DEFAULT_POLICY: Final = ClientPolicy()


# -- backoff ----------------------------------------------------------------------------


def backoff_ceiling(policy: ClientPolicy, attempt: int) -> float:
    """``min(cap, base * 2**attempt)``: the most the delay before attempt ``attempt`` may be."""
    if attempt < 0:
        raise ValueError("attempt must be 0 or more")
    # 2**attempt overflows a float past ~1024: the cap is reached long before.
    exponent = min(attempt, 64)
    return min(policy.backoff_cap_seconds, policy.backoff_base_seconds * 2.0**exponent)


def backoff_delay(policy: ClientPolicy, attempt: int, random: Random) -> float:
    """Full jitter: a delay drawn uniformly in ``[0, backoff_ceiling(attempt))`` (seconds)."""
    return random() * backoff_ceiling(policy, attempt)


@attrs.define(slots=True)
class Backoff:
    """The attempt counter and the delay before each attempt (seconds).

    ``next_delay`` draws a fresh random number for every attempt and counts it;
    ``connection_closed`` applies the reset rule and the clean-close rule and returns the delay
    before reconnecting.
    """

    policy: ClientPolicy = DEFAULT_POLICY
    attempt: int = 0

    def next_delay(self, random: Random) -> float:
        """The delay before the next attempt; the counter grows by one."""
        delay = backoff_delay(self.policy, self.attempt, random)
        self.attempt += 1
        return delay

    def is_stable(self, opened_at: float, closed_at: float) -> bool:
        """Whether a connection open from ``opened_at`` to ``closed_at`` lasted long enough to
        reset the counter (at least ``stable_after_seconds``)."""
        return closed_at - opened_at >= self.policy.stable_after_seconds

    def connection_closed(
        self, *, code: int, opened_at: float, closed_at: float, random: Random
    ) -> float:
        """The delay before reconnecting after an opened connection closed with ``code``.

        A connection that stayed open at least ``stable_after_seconds`` resets the counter; if
        it was closed cleanly by the server (1000, 1001) the next attempt comes within
        ``clean_close_jitter_seconds``. Otherwise the backoff schedule goes on.
        """
        if self.is_stable(opened_at, closed_at):
            self.attempt = 0
            if code in CLEAN_CLOSE_CODES:
                self.attempt = 1  # a failure of this quick attempt backs off from 2 s
                return random() * self.policy.clean_close_jitter_seconds
        return self.next_delay(random)


# -- liveness ---------------------------------------------------------------------------


@attrs.define(slots=True)
class Liveness:
    """What one connection has heard, to tell a live connection from a dead one (seconds).

    ``last_message_at``: when the last message of any kind arrived (it starts when the socket
    opened); ``pending``: ping id -> when it was sent, for pings not answered yet;
    ``check_sent_at``: when a check ping (short deadline) was sent, until a message arrives.
    """

    policy: ClientPolicy
    last_message_at: float
    pending: dict[str, float] = attrs.field(factory=dict)
    check_sent_at: float | None = None

    def ping_sent(self, ping_id: str, now: float) -> None:
        """Record a heartbeat ping."""
        self.pending[ping_id] = now

    def check_sent(self, ping_id: str, now: float) -> None:
        """Record a check ping: the connection must answer within ``check_deadline_seconds``."""
        self.pending[ping_id] = now
        if self.check_sent_at is None:
            self.check_sent_at = now

    def message_received(self, now: float) -> None:
        """Any message proves the connection alive."""
        self.last_message_at = max(self.last_message_at, now)
        self.check_sent_at = None

    def pong_received(self, ping_id: str, now: float) -> float | None:
        """The round trip (seconds) of our ping ``ping_id``; ``None`` when it is not ours."""
        self.message_received(now)
        sent = self.pending.pop(ping_id, None)
        return None if sent is None else max(0.0, now - sent)

    def oldest_unanswered(self) -> float | None:
        """When the oldest unanswered ping was sent, or ``None``."""
        return min(self.pending.values(), default=None)

    def is_dead(self, now: float) -> bool:
        """The liveness rule; see the module docstring."""
        if (
            self.check_sent_at is not None
            and now - self.check_sent_at >= self.policy.check_deadline_seconds
        ):
            return True
        oldest = self.oldest_unanswered()
        return (
            oldest is not None
            and now - oldest >= self.policy.pong_timeout_seconds
            and now - self.last_message_at >= self.policy.dead_after_seconds
        )


# -- handover ---------------------------------------------------------------------------


def handover_delay(policy: ClientPolicy, random: Random) -> float:
    """Seconds after a connection opened at which its successor is opened (115 min + jitter)."""
    return policy.handover_after_seconds + random() * policy.handover_jitter_seconds


# -- the send queue and the size limit ---------------------------------------------------

T = TypeVar("T")


class SendQueue(Generic[T]):
    """Messages waiting for a connection, oldest first, at most ``limit`` of them."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._items: collections.deque[T] = collections.deque()
        self.limit = limit

    def push(self, item: T) -> T | None:
        """Add ``item``; return the oldest message when it had to be dropped, else ``None``."""
        self._items.append(item)
        if len(self._items) > self.limit:
            return self._items.popleft()
        return None

    def push_front(self, item: T) -> T | None:
        """Put back a message that could not be sent (it goes first); the newest is dropped
        and returned when the bound is exceeded."""
        self._items.appendleft(item)
        if len(self._items) > self.limit:
            return self._items.pop()
        return None

    def pop(self) -> T:
        """The oldest message.

        Raises:
            IndexError: the queue is empty.
        """
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items))


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (what API Gateway measures)."""
    return len(text.encode("utf-8", "surrogatepass"))


def check_message_size(text: str, limit: int = MAX_MESSAGE_BYTES) -> None:
    """Refuse a message over ``limit`` bytes of UTF-8 (exactly ``limit`` passes).

    Raises:
        MessageTooLargeError: it is larger.
    """
    size = utf8_size(text)
    if size > limit:
        raise MessageTooLargeError(size, limit)


def fragments(text: str, limit: int = MAX_FRAME_BYTES) -> list[str]:
    """``text`` cut into pieces of at most ``limit`` bytes of UTF-8 each, never inside a
    character: the frames of one fragmented message (one piece when it fits in a frame).

    Raises:
        ValueError: ``limit`` under 4 (a character may take 4 bytes).
    """
    if limit < 4:
        raise ValueError("limit must be at least 4 bytes")
    if utf8_size(text) <= limit:
        return [text]
    if text.isascii():  # one byte per character
        return [text[start : start + limit] for start in range(0, len(text), limit)]
    pieces: list[str] = []
    start = size = 0
    for index, character in enumerate(text):
        width = utf8_size(character)
        if size + width > limit:
            pieces.append(text[start:index])
            start, size = index, 0
        size += width
    pieces.append(text[start:])
    return pieces


# -- tokens -----------------------------------------------------------------------------


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, read without verifying it; ``None`` when the
    token is not a JWT or has no numeric ``exp``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        return None
    return float(exp)


def token_expires_soon(token: str, now: float, margin: float) -> bool:
    """Whether ``token`` expires within ``margin`` seconds of ``now`` (epoch seconds); a token
    without a readable ``exp`` never does (the server is the judge)."""
    exp = token_expiry(token)
    return exp is not None and exp - now < margin
